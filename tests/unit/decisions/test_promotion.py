"""The promotion judgement: floor, margin, guardrails, CI, slices, out-of-sample holdouts, and a property test."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from include.decisions.promotion import decide, paired_bootstrap_ci, slice_scores
from include.foundation import metrics
from include.foundation.config import PromotionSpec

RULE = PromotionSpec(
    primary_metric="roc_auc", min_improvement=0.002, absolute_floor=0.6, guardrails={"log_loss": 0.02}
)
T0 = datetime(2013, 3, 1, tzinfo=UTC)
METRICS = ["roc_auc", "precision_recall_auc", "accuracy_score", "f1_score", "log_loss"]


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
    ok = decide(RULE, m(0.75, ll=0.51), m(0.7, ll=0.5))  # within tolerance
    assert ok.promote and "log_loss 0.5100 vs 0.5000" in ok.reason


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


def test_guardrail_cannot_be_the_primary_metric():
    """Once the guardrail entry silently replaced the primary rule: 0.66 was promoted over 0.70."""
    with pytest.raises(ValueError, match="is the primary metric"):
        PromotionSpec(primary_metric="roc_auc", min_improvement=0.002, guardrails={"roc_auc": 0.05})


@pytest.mark.parametrize(
    "challenger, champion, what",
    [
        ({"roc_auc": math.nan, "log_loss": 0.5}, m(0.7), "challenger roc_auc is nan"),
        (m(0.75), {"roc_auc": 0.7, "log_loss": math.nan}, "champion log_loss is nan"),
        ({"log_loss": 0.5}, m(0.7), "challenger roc_auc is None"),
        ({"roc_auc": math.inf, "log_loss": 0.5}, None, "challenger roc_auc is inf"),
    ],
)
def test_a_metric_that_is_not_a_number_rejects_with_that_reason(challenger, champion, what):
    d = decide(RULE, challenger, champion)
    assert not d.promote and what in d.reason


def test_holdout_inside_a_training_window_rejects():
    ends = {"challenger": T0, "champion": T0 + timedelta(days=7)}
    d = decide(RULE, m(0.9), m(0.7), holdout_start=T0, trained_until=ends)
    assert not d.promote and "champion was trained on data up to 2013-03-08" in d.reason
    assert decide(RULE, m(0.9), m(0.7), holdout_start=T0 + timedelta(days=7), trained_until=ends).promote


@st.composite
def cases(draw):
    primary = draw(st.sampled_from(METRICS))
    others = [x for x in METRICS if x != primary]
    guardrails = draw(st.dictionaries(st.sampled_from(others), st.floats(0, 0.1), max_size=3))
    rule = PromotionSpec(
        primary_metric=primary,
        min_improvement=draw(st.floats(1e-6, 0.05)),
        absolute_floor=draw(st.floats(0, 1)),
        guardrails=guardrails,
    )
    # values near each other, so that promotions, rejections and edge cases all occur
    base = {k: draw(st.floats(0.05, 0.95)) for k in METRICS}
    delta = st.one_of(
        st.floats(-0.02, 0.05), st.sampled_from([0.0, rule.min_improvement, -rule.min_improvement])
    )
    challenger = {k: base[k] + draw(delta) * metrics.orientation(k) for k in METRICS}
    champion = draw(st.one_of(st.none(), st.just(dict(base))))
    nan_at = draw(
        st.one_of(st.none(), st.tuples(st.sampled_from([challenger, champion]), st.sampled_from(METRICS)))
    )
    if nan_at is not None and nan_at[0] is not None:
        nan_at[0][nan_at[1]] = math.nan
    holdout_start = T0 + timedelta(days=draw(st.integers(-3, 10)))
    ends = {"challenger": T0, "champion": T0 + timedelta(days=draw(st.integers(-10, 3)))}
    changes = draw(st.lists(st.floats(-0.05, 0.05), max_size=4))
    slices = [{"column": "c", "value": str(i), "rows": 500, "challenger": 0.7 + x, "champion": 0.7, "change": x}
              for i, x in enumerate(changes)]  # fmt: skip
    return rule, challenger, champion, holdout_start, ends, slices


@settings(max_examples=500, deadline=None)
@given(cases())
def test_promote_implies_the_rule_holds(case):
    """promote => primary beats champion + min_improvement, every guardrail and slice within
    tolerance, the holdout out-of-sample for both models, and a reason that agrees with the decision."""
    rule, ch, champ, holdout_start, ends, slices = case
    d = decide(rule, ch, champ, holdout_start=holdout_start, trained_until=ends, slices=slices)
    assert d.reason.startswith("rejected") != d.promote
    p = rule.primary_metric
    assert d.challenger == ch[p] or (math.isnan(d.challenger) and math.isnan(ch[p]))
    if not d.promote:
        return
    assert all(end <= holdout_start for end in ends.values())
    higher = metrics.greater_is_better(p)
    if champ is None:
        assert ch[p] >= rule.absolute_floor if higher else ch[p] <= rule.absolute_floor
        return
    assert ch[p] >= champ[p] + rule.min_improvement if higher else ch[p] <= champ[p] - rule.min_improvement
    assert all(x["change"] >= -rule.slices.tolerance for x in slices)
    assert d.difference == metrics.orientation(p) * (ch[p] - champ[p])
    assert f"{ch[p]:.4f} vs champion {champ[p]:.4f}" in d.reason
    for g, tol in rule.guardrails.items():
        if metrics.greater_is_better(g):
            assert ch[g] >= champ[g] - tol
        else:
            assert ch[g] <= champ[g] + tol


@settings(max_examples=100, deadline=None)
@given(
    primary=st.sampled_from(METRICS),
    others=st.dictionaries(st.sampled_from(METRICS), st.floats(0, 0.1), max_size=4),
    tolerance=st.floats(0, 1),
)
def test_any_rule_with_the_primary_metric_as_guardrail_is_refused(primary, others, tolerance):
    with pytest.raises(ValueError, match="is the primary metric"):
        PromotionSpec(primary_metric=primary, guardrails={**others, primary: tolerance})


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


def _scores(rng, y, informative: bool):
    p = np.clip(y * 0.6 + rng.normal(0.2, 0.2, len(y)), 0, 1) if informative else rng.uniform(size=len(y))
    return p, (p >= 0.5).astype(int)


def test_paired_bootstrap_is_seeded_and_oriented():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2000)
    good, noise = _scores(rng, y, True), _scores(rng, y, False)
    a = paired_bootstrap_ci(y, good, noise, "roc_auc", 100, 0, 0.95)
    assert a == paired_bootstrap_ci(y, good, noise, "roc_auc", 100, 0, 0.95)
    assert a[0] > 0  # the informative model is better
    lo, hi = paired_bootstrap_ci(y, good, good, "roc_auc", 50, 0, 0.95)
    assert lo == hi == 0
    lo, _ = paired_bootstrap_ci(y, good, noise, "log_loss", 50, 0, 0.95)
    assert lo > 0  # lower log loss is better: still positive


def test_bootstrap_uses_mlflows_metric_definitions():
    """precision_recall_auc is average precision; accuracy uses the model's own predictions."""
    from sklearn.metrics import accuracy_score, average_precision_score

    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 500)
    p = rng.uniform(size=500)
    pred = 1 - (p >= 0.5)  # a model whose predict() disagrees with a 0.5 cut of its probability
    assert metrics.metric_fn("precision_recall_auc")(y, p, pred) == average_precision_score(y, p)
    assert metrics.metric_fn("accuracy_score")(y, p, pred) == accuracy_score(y, pred)


def test_bootstrap_without_a_valid_resample_gives_no_interval():
    y = np.array([1] * 30)  # a single class: no resample can be scored
    p = np.linspace(0, 1, 30)
    scores = (p, (p >= 0.5).astype(int))
    assert paired_bootstrap_ci(y, scores, scores, "roc_auc", 50, 0, 0.95) is None
    rule = RULE.model_copy(
        update={"bootstrap": RULE.bootstrap.model_copy(update={"require_lower_bound_above_zero": True})}
    )
    d = decide(rule, m(0.75), m(0.7), ci=None)
    assert not d.promote and "no valid resample" in d.reason


@pytest.mark.parametrize("bad", [0.0, -0.1])
def test_margin_must_be_positive(bad):
    with pytest.raises(ValueError):
        PromotionSpec(min_improvement=bad)


def test_a_regressed_slice_blocks_promotion_and_is_named():
    import pandas as pd

    rng = np.random.default_rng(3)
    n = 3000
    holdout = pd.DataFrame({"origin": rng.choice(["EWR", "JFK", "LGA"], n)})
    y = rng.integers(0, 2, n)
    good = np.clip(y * 0.5 + rng.normal(0.25, 0.2, n), 0, 1)
    worse_at_jfk = np.where(holdout["origin"] == "JFK", rng.uniform(size=n), good + rng.normal(0, 0.01, n))
    rule = RULE.model_copy(
        update={"slices": RULE.slices.model_copy(update={"columns": ["origin"], "min_rows": 100})}
    )
    slices = slice_scores(rule, holdout, y, (worse_at_jfk, worse_at_jfk > 0.5), (good, good > 0.5))
    assert {x["value"] for x in slices} == {"EWR", "JFK", "LGA"}
    jfk = next(x for x in slices if x["value"] == "JFK")
    assert jfk["change"] < -0.2 and jfk["rows"] > 900
    d = decide(rule, m(0.75), m(0.70), slices=slices)  # better overall, much worse at one airport
    assert not d.promote and "origin=JFK" in d.reason
    assert decide(rule, m(0.75), m(0.70), slices=[x for x in slices if x["value"] != "JFK"]).promote
    tiny = rule.model_copy(update={"slices": rule.slices.model_copy(update={"min_rows": 5000})})
    assert slice_scores(tiny, holdout, y, (good, good > 0.5), (good, good > 0.5)) == []


# ---------------------------------------------------------------- the gate for each target kind


def _kind_case(kind: str, n: int = 900, seed: int = 4):
    """Labels, a good model's and a worse model's ``(p, d)`` and a slice column, for ``kind``."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    region = rng.choice(["a", "b", "c"], n)
    if kind == "regression":
        y = rng.normal(50, 10, n)
        good, bad = y + rng.normal(0, 3, n), y + rng.normal(0, 6, n)
        return y, (good, good), (bad, bad), pd.DataFrame({"region": region})
    classes = np.array(["x", "y", "z"])
    y = classes[rng.integers(0, 3, n)]
    onehot = (y[:, None] == classes).astype(float)

    def model(noise):
        p = np.exp(2.5 * onehot + rng.normal(0, noise, (n, 3)))
        p /= p.sum(axis=1, keepdims=True)
        return p, classes[p.argmax(axis=1)]

    return y, model(1.0), model(2.5), pd.DataFrame({"region": region})


@pytest.mark.parametrize(
    "kind, metric, guardrail",
    [("regression", "root_mean_squared_error", "r2_score"), ("regression", "r2_score", "mean_absolute_error"),
     ("multiclass", "f1_score", "log_loss"), ("multiclass", "roc_auc", "accuracy_score")],
)  # fmt: skip
def test_each_kind_refuses_a_worse_challenger_and_promotes_a_better_one(kind, metric, guardrail):
    """The improvement, the guardrail, the paired bootstrap CI and the slices keep their meaning
    for each kind, lower-is-better primary metrics (RMSE) included."""
    from include.decisions.promotion import judge

    scorer = metrics.Scorer(kind, ("x", "y", "z") if kind == "multiclass" else ())
    y, good, bad, holdout = _kind_case(kind)
    rule = PromotionSpec(primary_metric=metric, min_improvement=0.01, absolute_floor=None,
                         guardrails={guardrail: 0.01}, slices={"columns": ["region"], "min_rows": 50},
                         bootstrap={"require_lower_bound_above_zero": True})  # fmt: skip

    def scores(pd_):
        return {m: scorer.metric_fn(m)(y, *pd_) for m in (metric, guardrail)}

    better = judge(rule, y, good, bad, scores(good), scores(bad), holdout, None, {}, scorer=scorer)
    assert better.decision.promote, better.decision.reason
    assert better.decision.difference > 0.01 and better.ci[0] > 0  # oriented: positive = challenger better
    assert metrics.is_worse(metric, scores(bad)[metric], scores(good)[metric])
    assert len(better.slices) == 3 and all(s["change"] > 0 for s in better.slices)

    worse = judge(rule, y, bad, good, scores(bad), scores(good), holdout, None, {}, scorer=scorer)
    assert not worse.decision.promote and worse.decision.difference < 0
    assert worse.ci[1] < 0 and all(s["change"] < 0 for s in worse.slices)

    first = judge(rule, y, good, None, scores(good), None, holdout, None, {}, scorer=scorer).decision
    assert first.promote and "no absolute_floor is set" in first.reason


def test_regression_floor_is_an_upper_bound_for_rmse():
    rule = PromotionSpec(primary_metric="root_mean_squared_error", absolute_floor=5.0)
    assert decide(rule, {"root_mean_squared_error": 4.0}, None).promote
    refused = decide(rule, {"root_mean_squared_error": 6.0}, None)
    assert not refused.promote and "root_mean_squared_error" in refused.reason
