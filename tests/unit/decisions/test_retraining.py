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
