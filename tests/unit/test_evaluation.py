from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from include.config import PromotionSpec
from include.evaluation import decide, paired_bootstrap_ci

RULE = PromotionSpec(
    primary_metric="roc_auc", min_improvement=0.002, absolute_floor=0.6, guardrails={"log_loss": 0.02}
)


def m(auc: float, ll: float = 0.5) -> dict[str, float]:
    return {"roc_auc": auc, "log_loss": ll}


def test_no_champion_promotes_above_floor_only():
    assert decide(RULE, m(0.7), None).promote
    d = decide(RULE, m(0.55), None)
    assert not d.promote and "roc_auc" in d.reason


def test_tie_never_promotes():
    d = decide(RULE, m(0.7), m(0.7))
    assert not d.promote and d.difference == 0


def test_better_by_margin_promotes_and_below_margin_does_not():
    assert decide(RULE, m(0.705), m(0.7)).promote
    assert not decide(RULE, m(0.701), m(0.7)).promote


def test_guardrail_regression_blocks_promotion():
    d = decide(RULE, m(0.75, ll=0.6), m(0.7, ll=0.5))
    assert not d.promote and "log_loss" in d.reason
    assert decide(RULE, m(0.75, ll=0.51), m(0.7, ll=0.5)).promote  # within tolerance


def test_lower_is_better_primary_metric():
    rule = PromotionSpec(primary_metric="log_loss", min_improvement=0.01, absolute_floor=0.69)
    assert decide(rule, {"log_loss": 0.40}, {"log_loss": 0.45}).promote
    assert not decide(rule, {"log_loss": 0.45}, {"log_loss": 0.40}).promote
    assert not decide(rule, {"log_loss": 0.75}, None).promote  # worse than the floor


def test_ci_lower_bound_requirement():
    rule = RULE.model_copy(
        update={"bootstrap": RULE.bootstrap.model_copy(update={"require_lower_bound_above_zero": True})}
    )
    assert not decide(rule, m(0.71), m(0.70), ci=(-0.001, 0.02)).promote
    assert decide(rule, m(0.71), m(0.70), ci=(0.001, 0.02)).promote
    no_ci = decide(rule, m(0.71), m(0.70), ci=None)
    assert not no_ci.promote and "not computed" in no_ci.reason


@settings(max_examples=300, deadline=None)
@given(
    champion=st.floats(0, 1, allow_nan=False),
    challenger=st.floats(0, 1, allow_nan=False),
    margin=st.floats(1e-6, 0.2, allow_nan=False),
)
def test_never_promotes_without_the_margin(champion, challenger, margin):
    rule = PromotionSpec(primary_metric="roc_auc", min_improvement=margin, absolute_floor=0.0)
    d = decide(rule, {"roc_auc": challenger}, {"roc_auc": champion})
    if d.promote:
        assert challenger >= champion + margin
        assert challenger > champion


def test_paired_bootstrap_is_seeded_and_oriented():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2000)
    good = np.clip(y * 0.6 + rng.normal(0.2, 0.2, 2000), 0, 1)
    noise = rng.uniform(size=2000)
    a = paired_bootstrap_ci(y, good, noise, "roc_auc", 100, 0, 0.95)
    assert a == paired_bootstrap_ci(y, good, noise, "roc_auc", 100, 0, 0.95)
    assert a[0] > 0  # the informative model is better
    lo, hi = paired_bootstrap_ci(y, good, good, "roc_auc", 50, 0, 0.95)
    assert lo == hi == 0
    lo, _ = paired_bootstrap_ci(y, good, noise, "log_loss", 50, 0, 0.95)
    assert lo > 0  # lower log loss is better: still positive


@pytest.mark.parametrize("bad", [0.0, -0.1])
def test_margin_must_be_positive(bad):
    with pytest.raises(ValueError):
        PromotionSpec(min_improvement=bad)
