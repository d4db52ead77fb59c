"""Metric names, directions and the one way a model is scored."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from include.foundation import metrics


def test_metric_directions():
    assert metrics.greater_is_better("roc_auc") and not metrics.greater_is_better("log_loss")
    assert metrics.orientation("log_loss") == -1
    assert metrics.is_worse("roc_auc", 0.59, 0.6) and not metrics.is_worse("roc_auc", 0.61, 0.6)
    assert metrics.is_worse("log_loss", 0.7, 0.6) and not metrics.is_worse("log_loss", 0.5, 0.6)


def test_score_uses_the_positive_class_and_unwraps_pyfunc():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=500)})
    y = (X["x"] + rng.normal(0, 0.3, 500) > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    auc = metrics.score(model, X, y, "roc_auc")
    assert auc > 0.9
    wrapped = SimpleNamespace(get_raw_model=lambda: model)  # what an MLflow pyfunc model offers
    assert metrics.score(wrapped, X, y, "roc_auc") == auc
    assert metrics.score(model, X, 1 - y, "roc_auc") == pytest.approx(1 - auc)


@pytest.mark.parametrize("estimator", ["LogisticRegression", "HistGradientBoostingClassifier"])
def test_predictions_take_one_pass_and_agree_with_predict(estimator, monkeypatch):
    import sklearn.ensemble
    import sklearn.linear_model

    cls = getattr(sklearn.linear_model, estimator, None) or getattr(sklearn.ensemble, estimator)
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"x": rng.normal(size=400), "z": rng.normal(size=400)})
    y = np.where(X["x"] + rng.normal(0, 0.5, 400) > 0, "late", "on_time")  # labels need not be 0/1
    model = cls().fit(X, y)
    expected = model.predict(X)
    monkeypatch.setattr(model, "predict", lambda X: pytest.fail("a second pass over the rows"))
    proba, labels = metrics.predictions(model, X)
    assert (labels == expected).all() and proba.shape == (400,)


# ---------------------------------------------------------------- the other target kinds


def _fitted(kind: str, n: int = 600, seed: int = 2):
    """A fitted model of ``kind`` on a small synthetic frame, its rows and labels."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    if kind == "regression":
        y = 3 * X["a"] - X["b"] + rng.normal(0, 0.5, n) + 10
        return LinearRegression().fit(X, y), X, y
    y = np.array(["x", "y", "z"])[np.argmax(np.stack([X["a"], X["b"], -X["a"] - X["b"]], 1)
                                             + rng.normal(0, 0.7, (n, 3)), axis=1)]  # fmt: skip
    return LogisticRegression(max_iter=500).fit(X, y), X, pd.Series(y)


@pytest.mark.parametrize(
    "kind, average", [("multiclass", "weighted"), ("multiclass", "macro"), ("regression", None)]
)
def test_each_kinds_metrics_are_mlflows_own(kind, average):
    """Every metric a rule may name is what ``mlflow.models.evaluate`` reports for the kind's
    model_type (and averaging): the gate, the bootstrap and the drift check speak MLflow's numbers."""
    import mlflow

    from include.stages.evaluation import _evaluate

    model, X, y = _fitted(kind)
    scorer = metrics.Scorer(kind, ("x", "y", "z") if kind == "multiclass" else (), average or "weighted")
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", input_example=X.head(2))
        loaded = mlflow.pyfunc.load_model(info.model_uri)
        reported = _evaluate(loaded, X.assign(target=y.to_numpy()), "target", scorer)
    p, d = scorer.predictions(loaded, X)
    for name in metrics.KIND_METRICS[kind]:
        assert scorer.metric_fn(name)(y.to_numpy(), p, d) == pytest.approx(reported[name], rel=1e-9), name


def test_directions_of_the_regression_and_multiclass_vocabularies():
    assert all(
        not metrics.greater_is_better(m) for m in metrics.KIND_METRICS["regression"] if m != "r2_score"
    )
    assert metrics.greater_is_better("r2_score") and metrics.greater_is_better("f1_score")
    assert metrics.is_worse("root_mean_squared_error", 5.1, 5.0)
    with pytest.raises(metrics.UnknownMetric, match="not a regression metric"):
        metrics.Scorer("regression").metric_fn("roc_auc")


def test_multiclass_predictions_keep_the_declared_classes_order():
    """A model that never saw a class still gives one probability column per declared class."""
    from sklearn.linear_model import LogisticRegression

    model, X, y = _fitted("multiclass")
    two = y != "y"
    partial = LogisticRegression(max_iter=500).fit(X[two], y[two])  # classes x and z only
    scorer = metrics.Scorer("multiclass", ("x", "y", "z"))
    p, d = scorer.predictions(partial, X)
    assert p.shape == (len(X), 3) and (p[:, 1] == 0).all() and np.allclose(p.sum(axis=1), 1)
    assert set(d) <= {"x", "z"}
    assert (scorer.served_score(p, d) == p.max(axis=1)).all()
    assert not scorer.measurable(["x", "z", "x"]) and scorer.measurable(["x", "y", "z"])


def test_regression_predictions_are_the_values():
    model, X, y = _fitted("regression")
    scorer = metrics.Scorer("regression")
    p, d = scorer.predictions(model, X)
    assert (p == model.predict(X)).all() and (d == p).all()
    assert scorer.score(model, X, y, "root_mean_squared_error") < 0.6
    assert not scorer.measurable([3.0, 3.0]) and scorer.measurable([3.0, 3.5])
