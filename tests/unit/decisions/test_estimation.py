"""Confidence-based performance estimation: right under covariate shift, blind to concept shift."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from include.decisions.estimation import calibration, estimate, expected_roc_auc

RULE = np.array([1.5, -1.0])  # the outcome rule: P(y=1 | x) = sigmoid(x @ RULE)


def draw(n: int, shift: float, rule=RULE, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(loc=[shift, 0.0], size=(n, 2))
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ rule)))).astype(int)
    return X, y


@pytest.fixture(scope="module")
def fitted():
    X, y = draw(6000, 0.0, seed=1)
    model = LogisticRegression().fit(X, y)
    Xh, yh = draw(4000, 0.0, seed=2)  # the holdout the champion is calibrated on
    return model, calibration(model.predict_proba(Xh)[:, 1], yh)


@pytest.mark.parametrize("shift", [0.0, 1.5, -1.5])
def test_the_estimate_follows_the_truth_under_covariate_shift(fitted, shift):
    """The inputs move (so the true metric moves), the rule stays: the estimate tracks it within 0.02."""
    model, cal = fitted
    X, y = draw(20_000, shift, seed=3)
    s, d = model.predict_proba(X)[:, 1], model.predict(X)
    q = cal.predict(s)
    assert estimate("roc_auc", s, d, q) == pytest.approx(roc_auc_score(y, s), abs=0.02)
    assert estimate("accuracy_score", s, d, q) == pytest.approx(accuracy_score(y, d), abs=0.02)
    assert estimate("f1_score", s, d, q) == pytest.approx(f1_score(y, d), abs=0.03)


def test_a_pure_concept_shift_is_invisible_by_construction(fitted):
    """Same inputs, a new outcome rule: the true ROC AUC collapses, the estimate does not move.
    A documented limit (include/decisions/estimation.py); realized decay catches it once labels come."""
    model, cal = fitted
    X, y_new = draw(20_000, 0.0, rule=np.array([-0.3, -1.0]), seed=4)
    s, d = model.predict_proba(X)[:, 1], model.predict(X)
    estimated, true = estimate("roc_auc", s, d, cal.predict(s)), roc_auc_score(y_new, s)
    assert true < 0.7 < estimated


def test_ties_and_degenerate_batches():
    s = np.array([0.9, 0.9, 0.1, 0.1])
    assert expected_roc_auc(s, np.array([1.0, 1.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert expected_roc_auc(s, np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.5)  # no information
    assert expected_roc_auc(s, np.ones(4)) is None  # no expected negative: undefined
    assert estimate("roc_auc", [], [], []) is None and estimate("precision_recall_auc", s, s, s) is None
    assert calibration(np.arange(10) / 10, np.ones(10)) is None  # too few rows and one class
