"""The retrain assessment: the drift check's evidence (:class:`DriftEvidence`) and the cooldown
state (:class:`TriggerState`) -> trigger a training or not, with the reasons.

Pure. The evidence is gathered by one function, :func:`include.stages.evidence.gather_evidence`,
for the drift check DAG and the replay alike; both then call :func:`assess_retraining`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from include.foundation import metrics
from include.foundation.config import DecaySpec, DriftSpec


@dataclass(frozen=True)
class DriftEvidence:
    """What the drift check measured about the champion at one ``as_of``; None = not measured
    (the signal is not configured, or there was nothing to measure it on)."""

    drift_share: float  # Evidently's share of drifted columns, window vs the champion's training set
    performance: float | None = None  # the champion's primary metric on the labelled window
    decayed: str | None = None  # why its realized metric decayed (:func:`performance_decayed`)
    estimated_decay: str | None = None  # why its estimated metric decayed, before the outcomes came
    prediction_drift: dict | None = None  # Evidently's verdict on served vs holdout scores


@dataclass(frozen=True)
class TriggerState:
    """The cooldown's clock and the trainings in flight, read where the decision is taken."""

    last_trigger_as_of: datetime | None = None
    active_training_runs: int = 0


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    reasons: list[str]
    suppressed_by: str | None = None


def performance_decayed(
    spec: DecaySpec, realized: list[float | None], holdout_metric: float, metric: str, what: str = "realized"
) -> str | None:
    """Why the champion has decayed, or None: its realized (or ``what``: estimated) ``metric`` was
    worse than its own holdout metric by more than ``spec.margin`` in at least ``spec.intervals``
    of the last ``spec.of_last`` intervals (oldest first; None = no measurement, not counted)."""
    measured = [v for v in realized if v is not None][-spec.of_last :]
    worse = [v for v in measured if metrics.orientation(metric) * (holdout_metric - v) > spec.margin]
    if len(worse) < spec.intervals:
        return None
    return (
        f"{what} {metric} {'below' if metrics.greater_is_better(metric) else 'above'} the champion's holdout {holdout_metric:.4f} by more than {spec.margin} in "
        f"{len(worse)} of the last {len(measured)} {'labelled' if what == 'realized' else 'scored'} intervals ({', '.join(f'{v:.4f}' for v in measured)})"
    )


def assess_retraining(
    spec: DriftSpec, evidence: DriftEvidence, *, metric: str, as_of: datetime, state: TriggerState
) -> RetrainDecision:
    """Drift share at or over the threshold, champion performance past the floor, a realized
    decay, or drifted predictions (Evidently's verdict on the served scores); then the trainings
    in flight and the cooldown. A signal the spec does not configure never fires, whatever
    evidence is passed."""
    reasons = [evidence.decayed] if evidence.decayed and spec.performance_decay is not None else []
    if evidence.estimated_decay and spec.estimated_decay is not None:
        reasons.append(evidence.estimated_decay)
    said = evidence.prediction_drift
    if said and said.get("drifted") and spec.prediction_drift is not None:
        reasons.append(f"prediction drift {said['method']} {said['score']:.3f} >= {said['threshold']} on "
                       f"{said['current_rows']} served scores vs {said['reference_rows']} holdout scores")  # fmt: skip
    if evidence.drift_share >= spec.share_threshold:
        reasons.append(f"drift share {evidence.drift_share:.2f} >= {spec.share_threshold}")
    performance = evidence.performance
    if (
        performance is not None
        and spec.performance_floor is not None
        and metrics.is_worse(metric, performance, spec.performance_floor)
    ):
        reasons.append(f"champion {metric} {performance:.4f} past the floor {spec.performance_floor}")
    if not reasons:
        return RetrainDecision(False, [])
    if state.active_training_runs:
        return RetrainDecision(
            False, reasons, f"{state.active_training_runs} training run(s) still queued or running"
        )
    cooldown = timedelta(days=spec.interval_days * spec.cooldown_intervals)
    last = state.last_trigger_as_of
    if last is not None and as_of - last < cooldown:
        return RetrainDecision(
            False, reasons, f"cooldown: last retraining trigger for data up to {last:%Y-%m-%d}, "
            f"less than {spec.cooldown_intervals} interval(s) ago"
        )  # fmt: skip
    return RetrainDecision(True, reasons)
