"""In-context learning: classify with a frozen decoder by prompting, training nothing.

Templates (:mod:`.templates`), prompts as a shared prefix + a body (:mod:`.prompts`), label-word scoring
with the prefix's key/value cache reused (:mod:`.scoring`), contextual calibration (:mod:`.calibration`),
demonstrations (:mod:`.demonstrations`: balanced random, or nearest neighbours), the classifier a run saves
and the Predictor loads (:mod:`.classifier`), and the recipe's run (:mod:`.run`).
"""

from .arguments import InContextArguments
from .classifier import InContextClassifier, load_in_context
from .run import run_in_context

__all__ = ["InContextArguments", "InContextClassifier", "load_in_context", "run_in_context"]
