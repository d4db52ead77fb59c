"""The retrain assessment: the drift check's evidence (:class:`DriftEvidence`) and the cooldown
state (:class:`TriggerState`) -> trigger a training or not, with the reasons.

Pure. The evidence is gathered by one function, :func:`include.stages.evidence.gather_evidence`,
for the drift check DAG and the replay alike; both then call :func:`assess_retraining`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from include.foundation import metrics
from include.foundation.config import DecaySpec, DriftSpec, StalenessSpec


@dataclass(frozen=True)
class DriftEvidence:
    """What the drift check measured about the champion at one ``as_of``; None = not measured
    (the signal is not configured, or there was nothing to measure it on)."""

    drift_share: float  # Evidently's share of drifted columns, window vs the champion's training set
    performance: float | None = None  # the champion's primary metric on the labelled window
    decayed: str | None = None  # why its realized metric decayed (:func:`performance_decayed`)
    estimated_decay: str | None = None  # why its estimated metric decayed, before the outcomes came
    prediction_drift: dict | None = None  # Evidently's verdict on served vs holdout scores
    debt: Debt | None = None  # what staying stale has cost so far (:func:`staleness_debt`)


@dataclass(frozen=True)
class TriggerState:
    """The cooldown's clock, the calendar's and the trainings in flight, read where the decision
    is taken."""

    last_trigger_as_of: datetime | None = None
    active_training_runs: int = 0
    champion_as_of: datetime | None = None  # the end of the data the champion was trained for


@dataclass(frozen=True)
class Debt:
    """The champion's running shortfall against its holdout metric, in metric x intervals."""

    value: float
    intervals: int  # intervals measured (realized or estimated)
    realized: int  # of which judged by their outcomes
    holdout_metric: float


def staleness_debt(served: list[tuple[float | None, float | None]], holdout_metric: float, metric: str) -> Debt:
    """What staying stale has cost: over the intervals the champion served, oldest first, each
    ``(realized, estimated)`` (None: not measured), the shortfall against its own holdout metric
    (realized where the outcomes arrived, else the estimate; in the metric's better direction),
    summed as a running debt floored at zero (Page's CUSUM with no allowance).

    Why this rule: it is CARA's cumulative policy (retrain when the accumulated loss of staying
    stale exceeds the cost of a retraining) with the champion's holdout metric as what a fresh
    model is expected to score, since no fresh model exists before training one. A plain sum of
    positive shortfalls grows from noise alone, so an unchanged world would be retrained on a
    schedule; a signed sum would let a good month bank credit against a later collapse. Floored
    at zero, a better interval pays back debt, but credit is never banked."""
    debt, measured, realized = 0.0, 0, 0
    for real, est in served:
        value = real if real is not None else est
        if value is None:
            continue
        measured += 1
        realized += real is not None
        debt = max(0.0, debt + metrics.orientation(metric) * (holdout_metric - value))
    return Debt(debt, measured, realized, holdout_metric)


def stale_reason(spec: StalenessSpec, debt: Debt, metric: str) -> str | None:
    """Why staying stale now costs more than a retraining, or None."""
    if debt.value < spec.cost:
        return None
    return (f"staleness debt {debt.value:.4f} >= retraining cost {spec.cost} ({metric} below the champion's "
            f"holdout {debt.holdout_metric:.4f}, summed over {debt.intervals} served intervals, "
            f"{debt.realized} realized, {debt.intervals - debt.realized} estimated)")  # fmt: skip


def calendar_due(spec: DriftSpec, state: TriggerState, as_of: datetime) -> str | None:
    """Why the calendar asks for a training (``calendar_intervals`` since the newer of the champion's
    data and the last trigger), or None (no calendar, or nothing known to count from)."""
    if spec.calendar_intervals is None:
        return None
    known = [d for d in (state.champion_as_of, state.last_trigger_as_of) if d is not None]
    if not known:
        return None
    since = max(known)
    if as_of - since < timedelta(days=spec.interval_days * spec.calendar_intervals):
        return None
    return f"calendar: {spec.calendar_intervals} interval(s) since the last training, for data up to {since:%Y-%m-%d}"


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    reasons: list[str]
    suppressed_by: str | None = None
    signals: tuple[str, ...] = ()  # the names of the rules that fired (:data:`SIGNALS`), as ``reasons``


SIGNALS = ("drift share", "performance floor", "performance decay", "estimated decay", "prediction drift",
           "staleness debt", "calendar")  # fmt: skip


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


def fired_signals(
    spec: DriftSpec, evidence: DriftEvidence, *, metric: str, as_of: datetime, state: TriggerState
) -> dict[str, str]:
    """Each configured rule that fires on this evidence, by name (:data:`SIGNALS`), with why.
    A signal the spec does not configure never fires, whatever evidence is passed."""
    fired = {
        "performance decay": evidence.decayed if spec.performance_decay is not None else None,
        "staleness debt": stale_reason(spec.staleness, evidence.debt, metric)
        if spec.staleness and evidence.debt else None,
        "calendar": calendar_due(spec, state, as_of),
        "estimated decay": evidence.estimated_decay if spec.estimated_decay is not None else None,
    }  # fmt: skip
    said = evidence.prediction_drift
    if said and said.get("drifted") and spec.prediction_drift is not None:
        fired["prediction drift"] = (f"prediction drift {said['method']} {said['score']:.3f} >= {said['threshold']} "
                                     f"on {said['current_rows']} served scores vs {said['reference_rows']} holdout "
                                     "scores")  # fmt: skip
    if evidence.drift_share >= spec.share_threshold:
        fired["drift share"] = f"drift share {evidence.drift_share:.2f} >= {spec.share_threshold}"
    performance = evidence.performance
    if (
        performance is not None
        and spec.performance_floor is not None
        and metrics.is_worse(metric, performance, spec.performance_floor)
    ):
        fired["performance floor"] = f"champion {metric} {performance:.4f} past the floor {spec.performance_floor}"
    return {name: why for name, why in fired.items() if why}


def assess_retraining(
    spec: DriftSpec, evidence: DriftEvidence, *, metric: str, as_of: datetime, state: TriggerState
) -> RetrainDecision:
    """The rules that fire (:func:`fired_signals`: drift share, performance floor, realized or
    estimated decay, prediction drift, staleness debt, calendar); then the trainings in flight and
    the cooldown."""
    fired = fired_signals(spec, evidence, metric=metric, as_of=as_of, state=state)
    reasons, names = list(fired.values()), tuple(fired)
    if not reasons:
        return RetrainDecision(False, [])
    if state.active_training_runs:
        return RetrainDecision(
            False, reasons, f"{state.active_training_runs} training run(s) still queued or running", names
        )
    cooldown = timedelta(days=spec.interval_days * spec.cooldown_intervals)
    last = state.last_trigger_as_of
    if last is not None and as_of - last < cooldown:
        return RetrainDecision(
            False, reasons, f"cooldown: last retraining trigger for data up to {last:%Y-%m-%d}, "
            f"less than {spec.cooldown_intervals} interval(s) ago", names
        )  # fmt: skip
    return RetrainDecision(True, reasons, None, names)
