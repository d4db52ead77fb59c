"""Metrics: names, directions and the one way a model is scored.

The names are those ``mlflow.models.evaluate`` reports for a binary classifier, so the
promotion rule, the bootstrap and the drift check's performance floor all speak of the same
numbers. Cheap to import (scikit-learn is imported inside the functions).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

MetricName = Literal["roc_auc", "precision_recall_auc", "accuracy_score", "f1_score", "log_loss"]
LOWER_IS_BETTER = frozenset({"log_loss"})


def greater_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def orientation(metric: str) -> int:
    """+1 when a higher value is better, -1 when lower is better."""
    return 1 if greater_is_better(metric) else -1


def is_worse(metric: str, value: float, bound: float) -> bool:
    """Whether ``value`` is on the bad side of ``bound`` for this metric."""
    return value < bound if greater_is_better(metric) else value > bound


def metric_fn(name: str) -> Callable[[np.ndarray, np.ndarray, np.ndarray], float]:
    """``fn(y_true, p_positive, y_pred) -> float``, defined as ``mlflow.models.evaluate`` defines it.

    ``precision_recall_auc`` is average precision (what MLflow reports under that name);
    accuracy and F1 use the model's own ``predict`` (not a 0.5 cut of the probability).
    """
    from sklearn import metrics

    return {
        "roc_auc": lambda y, p, d: metrics.roc_auc_score(y, p),
        "precision_recall_auc": lambda y, p, d: metrics.average_precision_score(y, p),
        "log_loss": lambda y, p, d: metrics.log_loss(y, p, labels=[0, 1]),
        "accuracy_score": lambda y, p, d: metrics.accuracy_score(y, d),
        "f1_score": lambda y, p, d: metrics.f1_score(y, d, zero_division=0),
    }[name]


def _raw(model):
    """The scikit-learn model inside an MLflow pyfunc model (or the model itself)."""
    return model.get_raw_model() if hasattr(model, "get_raw_model") else model


def positive_scores(model, X: pd.DataFrame) -> np.ndarray:
    """Probability of the positive class (label 1) for each row.

    ``model`` is a scikit-learn classifier or an MLflow pyfunc model wrapping one.
    """
    return _raw(model).predict_proba(X)[:, 1]


def predictions(model, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(p_positive, predicted label)`` for each row: everything any metric here needs.

    One pass through the model: the label is the most probable class (what ``predict`` returns
    for scikit-learn's probabilistic classifiers), not a second ``predict`` over the same rows."""
    import numpy as np

    raw = _raw(model)
    proba = raw.predict_proba(X)
    return proba[:, 1], np.asarray(raw.classes_)[np.argmax(proba, axis=1)]


def score(model, X: pd.DataFrame, y, metric: str) -> float:
    """One metric of a fitted classifier on labelled rows."""
    import numpy as np

    proba, pred = predictions(model, X)
    return float(metric_fn(metric)(np.asarray(y), proba, pred))
