"""Performance estimated before the labels arrive: confidence-based performance estimation (CBPE).

The champion's raw scores are calibrated on its own holdout (isotonic regression: the holdout's
labels are known). On a batch whose outcomes have not arrived, each row's calibrated probability
``q`` is taken as the chance it is positive, so every count of a confusion matrix has an expected
value (TP = sum of ``q`` over the rows predicted positive, ...) and so does the ROC curve (rows in
descending score order, expected positives ``q`` and negatives ``1 - q`` accumulated along it).
The estimate is unbiased while the model stays calibrated on the new inputs: covariate shift is
seen, a pure concept shift (the same inputs, a new outcome rule) is not, by construction
(``tests/unit/decisions/test_estimation.py`` shows both).

Binary classifiers only. Multiclass and regression are not estimated: a multiclass estimate
needs one calibrator per class and the project's multiclass metrics are macro averages over
predicted labels (left for later); a regression model gives no confidence to calibrate (an
estimate would need a second model of its errors, NannyML's DLE), so the loop waits for the
outcomes there. Pure: arrays in, a number out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from include.foundation.metrics import ESTIMABLE

if TYPE_CHECKING:
    import numpy as np

MIN_HOLDOUT = 50  # rows: a calibration on fewer says little


def calibration(scores, labels):
    """An isotonic map from raw scores to the positive rate observed on a labelled holdout; None
    when the holdout cannot calibrate (too few rows, or a single class)."""
    import numpy as np
    from sklearn.isotonic import IsotonicRegression

    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float)
    if len(scores) < MIN_HOLDOUT or len(np.unique(labels)) < 2:
        return None
    return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, labels)


def estimate(metric: str, scores, predicted, calibrated) -> float | None:
    """The expected ``metric`` of a batch from its raw ``scores``, the model's ``predicted``
    labels and the calibrated probabilities; None for a metric not estimated or an empty batch."""
    import numpy as np

    s, d, q = (np.asarray(a, dtype=float) for a in (scores, predicted, calibrated))
    if metric not in ESTIMABLE or len(s) == 0:
        return None
    if metric == "roc_auc":
        return expected_roc_auc(s, q)
    if metric == "log_loss":
        p = np.clip(s, 1e-15, 1 - 1e-15)
        return float(np.mean(-(q * np.log(p) + (1 - q) * np.log(1 - p))))
    positive = d == 1
    tp, fp = q[positive].sum(), (1 - q[positive]).sum()
    fn, tn = q[~positive].sum(), (1 - q[~positive]).sum()
    if metric == "accuracy_score":
        return float((tp + tn) / len(s))
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    if metric == "precision_score":
        return float(precision)
    if metric == "recall_score":
        return float(recall)
    return float(2 * precision * recall / (precision + recall)) if precision + recall > 0 else 0.0


def expected_roc_auc(scores: np.ndarray, calibrated: np.ndarray) -> float | None:
    """The area under the expected ROC curve: rows by descending score (ties as one step), each
    adding ``q`` expected positives and ``1 - q`` expected negatives."""
    import numpy as np

    order = np.argsort(-scores, kind="mergesort")
    s, q = scores[order], calibrated[order]
    positives, negatives = q.sum(), (1 - q).sum()
    if positives <= 0 or negatives <= 0:
        return None
    ends = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # the last row of each tied score
    tpr = np.r_[0.0, np.cumsum(q)[ends] / positives]
    fpr = np.r_[0.0, np.cumsum(1 - q)[ends] / negatives]
    return float(np.trapezoid(tpr, fpr))


def estimate_batch(metric: str, holdout_scores, holdout_labels, scores, predicted) -> float | None:
    """The champion's expected ``metric`` on a batch, calibrated on its own holdout: what the
    scoring DAG logs with each batch and the replay computes alike."""
    cal = calibration(holdout_scores, holdout_labels)
    if cal is None:
        return None
    return estimate(metric, scores, predicted, cal.predict(scores))
