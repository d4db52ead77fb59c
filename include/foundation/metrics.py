"""Metrics: the target kinds, each kind's metric names and directions, and the one way a model
is scored.

The names and definitions are those ``mlflow.models.evaluate`` reports for the kind's
``model_type`` (binary and multiclass: ``classifier``; regression: ``regressor``), so the
promotion rule, the bootstrap, the slices, the realized metric and the drift check's
performance floor all speak of the same numbers. This module is the one place that says which
metric fits which kind and which way is better. Cheap to import (scikit-learn is imported
inside the functions).

What a model "said" about some rows is a pair ``(p, d)``, whatever the kind:

- binary: ``p`` the probability of the positive class (label 1), ``d`` the predicted label;
- multiclass: ``p`` the class probabilities, one column per class in :attr:`Scorer.classes`
  order, ``d`` the predicted class;
- regression: ``p`` and ``d`` both the predicted value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from include.foundation.errors import PermanentError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


class UnknownMetric(PermanentError, ValueError):
    """A metric that is not in the target kind's vocabulary (the config refuses it on load)."""


TargetKind = Literal["binary", "multiclass", "regression"]
TARGET_KINDS: tuple[TargetKind, ...] = ("binary", "multiclass", "regression")

MetricName = Literal[
    "roc_auc", "precision_recall_auc", "accuracy_score", "f1_score", "log_loss", "precision_score",
    "recall_score", "root_mean_squared_error", "mean_absolute_error", "mean_squared_error", "r2_score",
    "max_error", "mean_absolute_percentage_error",
]  # fmt: skip

# Each kind's vocabulary: the metrics MLflow reports for it that a rule may name.
KIND_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "precision_recall_auc", "accuracy_score", "f1_score", "log_loss",
               "precision_score", "recall_score"),
    "multiclass": ("f1_score", "roc_auc", "accuracy_score", "log_loss", "precision_score", "recall_score"),
    "regression": ("root_mean_squared_error", "mean_absolute_error", "r2_score", "mean_squared_error",
                   "max_error", "mean_absolute_percentage_error"),
}  # fmt: skip
# What can be estimated before the outcomes arrive (include/decisions/estimation.py): binary only.
ESTIMABLE = ("roc_auc", "accuracy_score", "f1_score", "precision_score", "recall_score", "log_loss")
DEFAULT_METRIC: dict[str, str] = {
    "binary": "roc_auc",
    "multiclass": "f1_score",
    "regression": "root_mean_squared_error",
}
LOWER_IS_BETTER = frozenset(
    {"log_loss", "root_mean_squared_error", "mean_absolute_error", "mean_squared_error", "max_error",
     "mean_absolute_percentage_error"}
)  # fmt: skip


def greater_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def orientation(metric: str) -> int:
    """+1 when a higher value is better, -1 when lower is better."""
    return 1 if greater_is_better(metric) else -1


def is_worse(metric: str, value: float, bound: float) -> bool:
    """Whether ``value`` is on the bad side of ``bound`` for this metric."""
    return value < bound if greater_is_better(metric) else value > bound


def _raw(model):
    """The scikit-learn model inside an MLflow pyfunc model (or the model itself)."""
    return model.get_raw_model() if hasattr(model, "get_raw_model") else model


@dataclass(frozen=True)
class Scorer:
    """How one target kind is scored: its metrics (MLflow's definitions), what a model says about
    rows, and when a set of labels can be measured at all.

    ``classes`` (multiclass: the declared classes, sorted) fixes the probability columns, so
    models trained on batches that missed a class are still compared column by column.
    ``average`` is the multiclass averaging (MLflow's ``evaluator_config["average"]``).
    """

    kind: str = "binary"
    classes: tuple = ()
    average: str = "weighted"

    def metric_fn(self, name: str) -> Callable[[np.ndarray, np.ndarray, np.ndarray], float]:
        """``fn(y_true, p, d) -> float``, defined as ``mlflow.models.evaluate`` defines it.

        Binary: ``precision_recall_auc`` is average precision (what MLflow reports under that
        name); accuracy, F1, precision and recall use the model's own prediction. Multiclass:
        averaged by :attr:`average`, ROC AUC one-vs-rest. Regression: MLflow's regressor metrics.
        """
        from sklearn import metrics as m

        if name not in KIND_METRICS[self.kind]:
            raise UnknownMetric(
                f"{name!r} is not a {self.kind} metric; expected one of {KIND_METRICS[self.kind]}"
            )
        if self.kind == "regression":
            return {
                "root_mean_squared_error": lambda y, p, d: m.root_mean_squared_error(y, d),
                "mean_absolute_error": lambda y, p, d: m.mean_absolute_error(y, d),
                "mean_squared_error": lambda y, p, d: m.mean_squared_error(y, d),
                "r2_score": lambda y, p, d: m.r2_score(y, d),
                "max_error": lambda y, p, d: m.max_error(y, d),
                "mean_absolute_percentage_error": lambda y, p, d: m.mean_absolute_percentage_error(y, d),
            }[name]
        if self.kind == "multiclass":
            avg, labels = self.average, list(self.classes)
            return {
                "f1_score": lambda y, p, d: m.f1_score(y, d, average=avg, labels=labels, zero_division=0),
                "precision_score": lambda y, p, d: m.precision_score(y, d, average=avg, labels=labels,
                                                                     zero_division=0),
                "recall_score": lambda y, p, d: m.recall_score(y, d, average=avg, labels=labels, zero_division=0),
                "accuracy_score": lambda y, p, d: m.accuracy_score(y, d),
                "log_loss": lambda y, p, d: m.log_loss(y, p, labels=labels),
                "roc_auc": lambda y, p, d: m.roc_auc_score(y, p, average=avg, multi_class="ovr", labels=labels),
            }[name]  # fmt: skip
        return {
            "roc_auc": lambda y, p, d: m.roc_auc_score(y, p),
            "precision_recall_auc": lambda y, p, d: m.average_precision_score(y, p),
            "log_loss": lambda y, p, d: m.log_loss(y, p, labels=[0, 1]),
            "accuracy_score": lambda y, p, d: m.accuracy_score(y, d),
            "f1_score": lambda y, p, d: m.f1_score(y, d, zero_division=0),
            "precision_score": lambda y, p, d: m.precision_score(y, d, zero_division=0),
            "recall_score": lambda y, p, d: m.recall_score(y, d, zero_division=0),
        }[name]

    def measurable(self, y) -> bool:
        """Whether a metric of these labels means anything: both classes (binary), every class
        (multiclass: one-vs-rest ROC AUC and log loss need each), two distinct values (regression)."""
        import numpy as np

        present = np.unique(np.asarray(y))
        if self.kind == "multiclass":
            return set(present.tolist()) >= set(self.classes)
        return len(present) >= 2

    def predictions(self, model, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(p, d)`` for each row (see the module docstring): everything any metric here needs,
        in one pass through the model (a classifier's label is its most probable class, what
        ``predict`` returns for scikit-learn's probabilistic classifiers)."""
        import numpy as np

        raw = _raw(model)
        if self.kind == "regression":
            value = np.asarray(raw.predict(X), dtype="float64")
            return value, value
        proba = raw.predict_proba(X)
        label = np.asarray(raw.classes_)[np.argmax(proba, axis=1)]
        if self.kind == "binary":
            return proba[:, 1], label
        return self.aligned(proba, raw.classes_), label

    def aligned(self, proba: np.ndarray, model_classes) -> np.ndarray:
        """Class probabilities with one column per declared class (0 for a class the model never saw)."""
        import numpy as np

        out = np.zeros((len(proba), len(self.classes)))
        index = {c: i for i, c in enumerate(self.classes)}
        for j, c in enumerate(np.asarray(model_classes).tolist()):
            out[:, index[c]] = proba[:, j]
        return out

    def score(self, model, X: pd.DataFrame, y, metric: str) -> float:
        """One metric of a fitted model on labelled rows."""
        import numpy as np

        p, d = self.predictions(model, X)
        return float(self.metric_fn(metric)(np.asarray(y), p, d))

    def served_score(self, p: np.ndarray, d: np.ndarray) -> np.ndarray:
        """The one number per row the prediction log keeps as ``score`` and prediction drift
        watches: the positive-class probability, the predicted class's probability, or the value."""
        if self.kind == "multiclass":
            return p.max(axis=1)
        return p

    def evaluate_args(self) -> dict[str, Any]:
        """``model_type`` and ``evaluator_config`` for ``mlflow.models.evaluate``."""
        config: dict[str, Any] = {"log_model_explainability": False}
        if self.kind == "regression":
            return {"model_type": "regressor", "evaluator_config": config}
        if self.kind == "binary":
            config["pos_label"] = 1
        else:
            config["average"] = self.average
        return {"model_type": "classifier", "evaluator_config": config}


BINARY = Scorer()


def metric_fn(name: str) -> Callable[[np.ndarray, np.ndarray, np.ndarray], float]:
    """A binary metric (:meth:`Scorer.metric_fn` of :data:`BINARY`)."""
    return BINARY.metric_fn(name)


def predictions(model, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A binary classifier's ``(p_positive, predicted label)`` (:meth:`Scorer.predictions`)."""
    return BINARY.predictions(model, X)


def score(model, X: pd.DataFrame, y, metric: str) -> float:
    """One binary metric of a fitted classifier on labelled rows."""
    return BINARY.score(model, X, y, metric)
