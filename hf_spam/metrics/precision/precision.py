"""Precision, binary or averaged over classes (an offline `evaluate` module)."""

import datasets
import evaluate
from sklearn.metrics import precision_score

_DESCRIPTION = "Precision = TP / (TP + FP): of the examples predicted positive, the fraction that are."
_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted labels.
    references (list of int): true labels.
    average (str): "binary" (default; the score of `pos_label`), "macro", "micro" or "weighted".
    pos_label (int): the positive class for average="binary" (default 1).
    labels (list of int, optional): the classes to include when averaging.
    zero_division: the value when the score is undefined (default 0.0).
Returns:
    precision (float): in [0, 1].
"""
_CITATION = "scikit-learn: Machine Learning in Python, Pedregosa et al., JMLR 12, 2011."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Precision(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
            ),
        )

    def _compute(
        self, predictions, references, average="binary", pos_label=1, labels=None, zero_division=0.0
    ):
        score = precision_score(
            references,
            predictions,
            average=average,
            pos_label=pos_label,
            labels=labels,
            zero_division=zero_division,
        )
        return {"precision": float(score)}
