"""The retrain assessment: drift share, the champion's performance, its realized decay and the
cooldown state -> trigger a training or not, with the reasons.

Pure. The drift check DAG (``include.stages.drift.check_drift``) and the replay both call
:func:`assess_retraining` and :func:`performance_decayed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from include.foundation import metrics
from include.foundation.config import DecaySpec, DriftSpec


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    reasons: list[str]
    suppressed_by: str | None = None


def performance_decayed(
    spec: DecaySpec, realized: list[float | None], holdout_metric: float, metric: str
) -> str | None:
    """Why the champion has decayed, or None: its realized ``metric`` was worse than its own
    holdout metric by more than ``spec.margin`` in at least ``spec.intervals`` of the last
    ``spec.of_last`` labelled intervals (oldest first; None = no measurement, not counted)."""
    measured = [v for v in realized if v is not None][-spec.of_last :]
    worse = [v for v in measured if metrics.orientation(metric) * (holdout_metric - v) > spec.margin]
    if len(worse) < spec.intervals:
        return None
    return (
        f"realized {metric} {'below' if metrics.greater_is_better(metric) else 'above'} the champion's holdout {holdout_metric:.4f} by more than {spec.margin} in "
        f"{len(worse)} of the last {len(measured)} labelled intervals ({', '.join(f'{v:.4f}' for v in measured)})"
    )


def assess_retraining(
    spec: DriftSpec,
    drift_share: float,
    performance: float | None,
    metric: str,
    last_trigger_as_of: datetime | None,
    as_of: datetime,
    active_training_runs: int,
    decayed: str | None = None,
    prediction_drift: dict | None = None,
) -> RetrainDecision:
    """Drift share at or over the threshold, champion performance past the floor, a realized
    decay (:func:`performance_decayed`), or drifted predictions (``prediction_drift``: Evidently's
    verdict on the served scores); then the cooldown. A signal the spec does not configure never
    fires, whatever evidence is passed."""
    reasons = [decayed] if decayed and spec.performance_decay is not None else []
    if prediction_drift and prediction_drift.get("drifted") and spec.prediction_drift is not None:
        pd_ = prediction_drift
        reasons.append(f"prediction drift {pd_['method']} {pd_['score']:.3f} >= {pd_['threshold']} on "
                       f"{pd_['current_rows']} served scores vs {pd_['reference_rows']} holdout scores")  # fmt: skip
    if drift_share >= spec.share_threshold:
        reasons.append(f"drift share {drift_share:.2f} >= {spec.share_threshold}")
    if (
        performance is not None
        and spec.performance_floor is not None
        and metrics.is_worse(metric, performance, spec.performance_floor)
    ):
        reasons.append(f"champion {metric} {performance:.4f} past the floor {spec.performance_floor}")
    if not reasons:
        return RetrainDecision(False, [])
    if active_training_runs:
        return RetrainDecision(
            False, reasons, f"{active_training_runs} training run(s) still queued or running"
        )
    cooldown = timedelta(days=spec.interval_days * spec.cooldown_intervals)
    if last_trigger_as_of is not None and as_of - last_trigger_as_of < cooldown:
        return RetrainDecision(
            False, reasons, f"cooldown: last retraining trigger for data up to {last_trigger_as_of:%Y-%m-%d}, "
            f"less than {spec.cooldown_intervals} interval(s) ago"
        )  # fmt: skip
    return RetrainDecision(True, reasons)
