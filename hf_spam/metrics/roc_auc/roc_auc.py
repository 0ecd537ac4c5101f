"""Area under the ROC curve from predicted probabilities (an offline `evaluate` module).

Config "binary" (default): `prediction_scores` is the probability of the positive class per example.
Config "multiclass": `prediction_scores` is a list of class probabilities per example (one-vs-rest).
"""

import datasets
import evaluate
from sklearn.metrics import roc_auc_score

_DESCRIPTION = (
    "ROC AUC: the probability that a random positive example is scored above a random negative one."
)
_KWARGS_DESCRIPTION = """
Args:
    prediction_scores: binary: list of float (positive-class probability);
        multiclass: list of list of float (probabilities of every class).
    references (list of int): true labels.
    average (str): averaging for multiclass (default "macro").
    multi_class (str): "ovr" (default) or "ovo", for multiclass.
Returns:
    roc_auc (float): in [0, 1]; NaN when only one class is present in the references.
"""
_CITATION = "scikit-learn: Machine Learning in Python, Pedregosa et al., JMLR 12, 2011."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RocAuc(evaluate.Metric):
    def _info(self):
        if self.config_name == "multiclass":
            scores = datasets.Sequence(datasets.Value("float64"))
        else:
            scores = datasets.Value("float64")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"prediction_scores": scores, "references": datasets.Value("int32")}),
        )

    def _compute(self, prediction_scores, references, average="macro", multi_class="ovr"):
        if len(set(references)) < 2:
            return {"roc_auc": float("nan")}
        if self.config_name == "multiclass":
            score = roc_auc_score(references, prediction_scores, average=average, multi_class=multi_class)
        else:
            score = roc_auc_score(references, prediction_scores)
        return {"roc_auc": float(score)}
