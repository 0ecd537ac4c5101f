"""Classification metrics from class probabilities, in one `evaluate` module (loaded by path, offline).

Accuracy, precision, recall, F1, ROC AUC and the confusion matrix, all computed by scikit-learn from the
same probabilities. Two classes: precision/recall/F1 of class `pos_label` (default 1) and ROC AUC of its
probability. More: macro averages and one-vs-rest ROC AUC. ROC AUC is NaN when a class is missing from
the references (it is not defined then).
"""

import datasets
import evaluate
import numpy as np
from sklearn import metrics

_DESCRIPTION = (
    "Accuracy, precision, recall, F1, ROC AUC and the confusion matrix of a classifier, from its class "
    "probabilities (the predicted label is the most probable class)."
)
_KWARGS_DESCRIPTION = """
Args:
    prediction_scores (list of list of float): the probability of every class, per example.
    references (list of int): true labels, in 0 .. number of classes - 1.
    pos_label (int): the positive class when there are two classes (default 1).
    zero_division: precision/recall/F1 when undefined (default 0.0).
Returns:
    accuracy, precision, recall, f1, roc_auc (float): in [0, 1] (roc_auc NaN when a class is missing);
    confusion_matrix (list of list of int): row = true class, column = predicted class.
"""
_CITATION = "scikit-learn: Machine Learning in Python, Pedregosa et al., JMLR 12, 2011."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Classification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "prediction_scores": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Value("int32"),
                }
            ),
        )

    def _compute(self, prediction_scores, references, pos_label=1, zero_division=0.0):
        scores = np.asarray(prediction_scores, dtype=np.float64)
        references = np.asarray(references, dtype=np.int64)
        labels = list(range(scores.shape[1]))
        predictions = scores.argmax(axis=1)
        binary = len(labels) == 2
        average = {"average": "binary", "pos_label": pos_label} if binary else {"average": "macro"}
        common = {"labels": labels, "zero_division": zero_division, **average}
        results = {"accuracy": float(metrics.accuracy_score(references, predictions))}
        results["precision"] = float(metrics.precision_score(references, predictions, **common))
        results["recall"] = float(metrics.recall_score(references, predictions, **common))
        results["f1"] = float(metrics.f1_score(references, predictions, **common))
        if set(references.tolist()) != set(labels):
            roc_auc = float("nan")
        elif binary:
            roc_auc = metrics.roc_auc_score(references == pos_label, scores[:, pos_label])
        else:
            roc_auc = metrics.roc_auc_score(references, scores, average="macro", multi_class="ovr")
        results["roc_auc"] = float(roc_auc)
        matrix = metrics.confusion_matrix(references, predictions, labels=labels)
        results["confusion_matrix"] = matrix.tolist()
        return results
