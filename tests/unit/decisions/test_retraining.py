"""The retrain assessment: drift share, performance floor, running trainings and the cooldown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.decisions.retraining import DriftEvidence, TriggerState, assess_retraining
from include.foundation.config import DriftSpec

SPEC = DriftSpec(
    column_threshold=0.1,
    share_threshold=0.3,
    max_rows=2_000,
    cooldown_intervals=2,
    interval_days=7,
    performance_floor=0.6,
)
NOW = datetime(2013, 7, 1, tzinfo=UTC)


def assess(spec, share, perf, metric, last, now, active, decayed=None, said=None):
    """The assessment on this evidence and cooldown state, every argument by name."""
    evidence = DriftEvidence(drift_share=share, performance=perf, decayed=decayed, prediction_drift=said)
    return assess_retraining(spec, evidence, metric=metric, as_of=now, state=TriggerState(last, active))


def test_threshold_is_inclusive():
    assert assess(SPEC, 0.3, None, "roc_auc", None, NOW, 0).retrain


@pytest.mark.parametrize(
    "share, perf, last, active, retrain, suppressed",
    [
        (0.1, 0.7, None, 0, False, None),  # no drift, fine performance
        (0.4, 0.7, None, 0, True, None),  # drift
        (0.1, 0.5, None, 0, True, None),  # performance under the floor
        (0.4, 0.7, None, 1, False, "still queued or running"),
        (0.4, 0.7, NOW - timedelta(days=7), 0, False, "cooldown"),
        (0.4, 0.7, NOW - timedelta(days=14), 0, True, None),  # cooldown over
    ],
)
def test_assess_retraining(share, perf, last, active, retrain, suppressed):
    d = assess(SPEC, share, perf, "roc_auc", last, NOW, active)
    assert d.retrain is retrain
    assert (d.suppressed_by is None) if suppressed is None else (suppressed in d.suppressed_by)


def test_a_realized_decay_fires_in_n_of_the_last_m_labelled_intervals():
    from include.decisions.retraining import performance_decayed
    from include.foundation.config import DecaySpec

    rule = DecaySpec(margin=0.02, intervals=2, of_last=3)
    holdout = 0.70
    assert performance_decayed(rule, [0.69, 0.67, 0.66], holdout, "roc_auc") is not None  # 2 of 3 worse
    assert performance_decayed(rule, [0.67, 0.69, 0.69], holdout, "roc_auc") is None  # 1 of 3
    assert (
        performance_decayed(rule, [0.67, 0.66, 0.69, 0.69], holdout, "roc_auc") is None
    )  # older ones age out
    assert (
        performance_decayed(rule, [0.67, None, None, 0.66], holdout, "roc_auc") is not None
    )  # None: no measurement
    why = performance_decayed(rule, [0.60, 0.65], holdout, "roc_auc")
    assert why.startswith(
        "realized roc_auc below the champion's holdout 0.7000 by more than 0.02 in 2 of the last 2"
    )
    # lower is better: a log loss that rises by more than the margin has decayed
    assert performance_decayed(rule, [0.55, 0.56], 0.50, "log_loss") is not None
    assert performance_decayed(rule, [0.45, 0.44], 0.50, "log_loss") is None


def test_a_decay_alone_triggers_and_obeys_the_cooldown():
    from datetime import UTC, datetime, timedelta

    from include.foundation.config import DecaySpec, DriftSpec

    spec, now = (
        DriftSpec(share_threshold=0.5, cooldown_intervals=2, interval_days=7, performance_decay=DecaySpec()),
        datetime(2013, 6, 4, tzinfo=UTC),
    )
    unconfigured = spec.model_copy(update={"performance_decay": None})
    assert not assess(unconfigured, 0.1, 0.7, "roc_auc", None, now, 0, decayed="x").retrain
    fired = assess(spec, 0.1, 0.7, "roc_auc", None, now, 0, decayed="realized roc_auc below ...")
    assert fired.retrain and fired.reasons == ["realized roc_auc below ..."]
    quiet = assess(spec, 0.1, 0.7, "roc_auc", None, now, 0, decayed=None)
    assert not quiet.retrain and quiet.reasons == []
    cooled = assess(spec, 0.1, 0.7, "roc_auc", now - timedelta(days=7), now, 0, decayed="x")
    assert not cooled.retrain and cooled.suppressed_by.startswith("cooldown")


def test_a_decay_rule_that_could_never_fire_is_refused():
    from pydantic import ValidationError

    from include.foundation.config import DecaySpec

    with pytest.raises(ValidationError, match="could never fire"):
        DecaySpec(intervals=4, of_last=3)


def test_drifted_predictions_alone_trigger():
    from include.foundation.config import DriftSpec, PredictionDriftSpec

    spec, now = (
        DriftSpec(share_threshold=0.5, cooldown_intervals=0, interval_days=7,
                  prediction_drift=PredictionDriftSpec()),
        datetime(2013, 6, 4, tzinfo=UTC),
    )  # fmt: skip
    said = {
        "method": "psi",
        "score": 0.31,
        "threshold": 0.1,
        "drifted": True,
        "current_rows": 6000,
        "reference_rows": 4000,
    }
    fired = assess(spec, 0.1, None, "roc_auc", None, now, 0, None, said)
    assert fired.retrain and fired.reasons == [
        "prediction drift psi 0.310 >= 0.1 on 6000 served scores vs 4000 holdout scores"
    ]
    calm = assess(spec, 0.1, None, "roc_auc", None, now, 0, None, {**said, "drifted": False})
    assert not calm.retrain


def test_an_estimated_decay_alone_triggers_before_the_outcomes_arrive():
    from include.decisions.retraining import performance_decayed
    from include.foundation.config import DecaySpec

    rule = DecaySpec(margin=0.02, intervals=2, of_last=3)
    spec = DriftSpec(share_threshold=0.5, cooldown_intervals=0, interval_days=7, estimated_decay=rule)
    why = performance_decayed(rule, [0.69, 0.66, 0.65], 0.70, "roc_auc", "estimated")
    assert why.startswith(
        "estimated roc_auc below the champion's holdout 0.7000 by more than 0.02 in 2 of the last 3 scored"
    )
    fired = assess(spec, 0.1, None, "roc_auc", None, NOW, 0)
    assert not fired.retrain  # no evidence, no trigger
    evidence = DriftEvidence(drift_share=0.1, estimated_decay=why)
    decision = assess_retraining(spec, evidence, metric="roc_auc", as_of=NOW, state=TriggerState())
    assert decision.retrain and decision.reasons == [why]
    unconfigured = spec.model_copy(update={"estimated_decay": None})
    assert not assess_retraining(
        unconfigured, evidence, metric="roc_auc", as_of=NOW, state=TriggerState()
    ).retrain


def test_the_estimated_decay_is_refused_where_nothing_is_estimated():
    from pydantic import ValidationError

    from tests.factories import tiny_cfg

    cfg = tiny_cfg()
    raw = cfg.model_dump(by_alias=True)
    raw["drift"]["estimated_decay"] = {"margin": 0.02}
    raw["promotion"]["primary_metric"] = "precision_recall_auc"
    raw["promotion"]["guardrails"] = {}
    with pytest.raises(ValidationError, match="estimates binary classifiers"):
        type(cfg).model_validate(raw)


def W(values, first=NOW - timedelta(weeks=20)):
    """``(realized, estimated)`` pairs as served weeks from ``first`` on."""
    return [(first + timedelta(weeks=i), real, est) for i, (real, est) in enumerate(values)]


def test_staleness_debt_is_a_running_shortfall_that_better_weeks_pay_back_but_never_bank():
    from include.decisions.retraining import staleness_debt

    holdout = 0.70
    # realized beats estimated where both exist; a week with neither does not count
    assert staleness_debt(
        W([(0.66, 0.99), (None, 0.67), (None, None)]), holdout, "roc_auc"
    ).value == pytest.approx(0.07)
    debt = staleness_debt(W([(0.66, None), (None, 0.67)]), holdout, "roc_auc")
    assert (debt.intervals, debt.realized) == (2, 1)
    # a better week pays back (0.04 - 0.02), but early credit is never banked against a collapse
    assert staleness_debt(W([(0.66, None), (0.72, None)]), holdout, "roc_auc").value == pytest.approx(0.02)
    assert staleness_debt(W([(0.80, None), (0.65, None)]), holdout, "roc_auc").value == pytest.approx(0.05)
    # lower-is-better metrics: a higher error is the shortfall
    assert staleness_debt(
        W([(1.3, None), (1.2, None)]), 1.0, "root_mean_squared_error"
    ).value == pytest.approx(0.5)
    # noise around the holdout keeps the debt near zero, however long the champion serves
    noise = W([(0.70 + d, None) for d in [0.01, -0.01] * 20])
    assert staleness_debt(noise, holdout, "roc_auc").value < 0.011
    # a retraining (promoted or not) is the cost paid: the debt restarts at the last trigger
    weeks = W([(0.60, None)] * 4)
    assert staleness_debt(weeks, holdout, "roc_auc", since=weeks[3][0]).value == pytest.approx(0.10)


@pytest.mark.parametrize(
    "served, retrain",
    [
        ([(0.69, None)] * 4, False),  # 0.04 of debt: not yet worth a retraining
        ([(0.69, None)] * 5, True),  # 0.05 reaches the cost
        ([(None, 0.60)], True),  # one bad estimated week, before its outcomes arrive
        ([(0.60, None), (0.80, None), (0.80, None)], False),  # recovered: paid back
    ],
)
def test_the_staleness_policy_retrains_when_the_debt_reaches_the_cost(served, retrain):
    from include.foundation.config import StalenessSpec

    spec = SPEC.model_copy(update={"staleness": StalenessSpec(cost=0.05), "share_threshold": 1.0,
                                   "performance_floor": None, "cooldown_intervals": 0})  # fmt: skip
    evidence = DriftEvidence(drift_share=0.0, served=tuple(W(served)), holdout_metric=0.70)
    decision = assess_retraining(spec, evidence, metric="roc_auc", as_of=NOW, state=TriggerState())
    assert decision.retrain is retrain and decision.debt.intervals == len(served)
    assert any("staleness debt" in r for r in decision.reasons) is retrain
    assert decision.signals == (("staleness debt",) if retrain else ())
    unconfigured = assess_retraining(spec.model_copy(update={"staleness": None}), evidence, metric="roc_auc",
                                     as_of=NOW, state=TriggerState())  # fmt: skip
    assert not unconfigured.retrain  # evidence of a signal not configured never fires
    # after a trigger (a rejected challenger: the champion still serves) the debt starts again
    after = assess_retraining(
        spec, evidence, metric="roc_auc", as_of=NOW, state=TriggerState(NOW - timedelta(weeks=1))
    )
    assert not after.retrain and after.debt.intervals == 0


def test_the_calendar_retrains_at_least_every_k_intervals_and_earlier_on_a_signal():
    spec = SPEC.model_copy(update={"calendar_intervals": 4, "cooldown_intervals": 1, "share_threshold": 0.3,
                                   "performance_floor": None})  # fmt: skip
    quiet = DriftEvidence(drift_share=0.0)

    def decide(evidence, champion_as_of, last=None):
        state = TriggerState(last, champion_as_of=champion_as_of)
        return assess_retraining(spec, evidence, metric="roc_auc", as_of=NOW, state=state)

    assert not decide(quiet, NOW - timedelta(weeks=3)).retrain
    due = decide(quiet, NOW - timedelta(weeks=4))
    assert due.retrain and due.reasons == [
        "calendar: 4 interval(s) since the last training, for data up to 2013-06-03"
    ]
    # counted from the newer of the champion's data and the last trigger (a rejected challenger)
    assert not decide(quiet, NOW - timedelta(weeks=9), last=NOW - timedelta(weeks=2)).retrain
    assert decide(DriftEvidence(drift_share=0.5), NOW - timedelta(weeks=1)).retrain  # early, on drift
    assert not decide(quiet, None).retrain  # nothing known to count from
