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
