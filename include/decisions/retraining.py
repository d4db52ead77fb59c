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
    # each interval the champion served, oldest first: (its start, realized, estimated metric)
    served: tuple[tuple[datetime, float | None, float | None], ...] | None = None
    holdout_metric: float | None = None  # the champion's metric on its own holdout


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


def staleness_debt(served, holdout_metric: float, metric: str, since: datetime | None = None) -> Debt:
    """What staying stale has cost: over the intervals the champion served from ``since`` (the
    last retraining trigger: a retraining, promoted or not, is the cost paid), oldest first, each
    ``(start, realized, estimated)`` (None: not measured), the shortfall against its own holdout
    metric (realized where the outcomes arrived, else the estimate; in the metric's better
    direction), summed as a running debt floored at zero (Page's CUSUM with no allowance).

    Why this rule: it is CARA's cumulative policy (retrain when the accumulated loss of staying
    stale exceeds the cost of a retraining) with the champion's holdout metric as what a fresh
    model is expected to score, since no fresh model exists before training one. A plain sum of
    positive shortfalls grows from noise alone, so an unchanged world would be retrained on a
    schedule; a signed sum would let a good month bank credit against a later collapse. Floored
    at zero, a better interval pays back debt, but credit is never banked."""
    debt, measured, realized = 0.0, 0, 0
    for start, real, est in served:
        if since is not None and start < since:
            continue
        value = real if real is not None else est
        if value is None:
            continue
        measured += 1
        realized += real is not None
        debt = max(0.0, debt + metrics.orientation(metric) * (holdout_metric - value))
    return Debt(debt, measured, realized, holdout_metric)


def staleness_of(evidence: DriftEvidence, metric: str, state: TriggerState) -> Debt | None:
    """The champion's debt since the last trigger, or None where nothing was gathered for it."""
    if evidence.served is None or evidence.holdout_metric is None:
        return None
    return staleness_debt(evidence.served, evidence.holdout_metric, metric, state.last_trigger_as_of)


def stale_reason(spec: StalenessSpec, debt: Debt, metric: str) -> str | None:
    """Why staying stale now costs more than a retraining, or None."""
    if debt.value < spec.cost:
        return None
    return (f"staleness debt {debt.value:.4f} >= retraining cost {spec.cost} ({metric} short of the champion's "
            f"holdout {debt.holdout_metric:.4f}, summed over {debt.intervals} served intervals since the last trigger, "
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
    debt: Debt | None = None  # the staleness debt judged (:func:`staleness_of`), shown beside the decision


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
    debt = staleness_of(evidence, metric, state)
    fired = {
        "performance decay": evidence.decayed if spec.performance_decay is not None else None,
        "staleness debt": stale_reason(spec.staleness, debt, metric) if spec.staleness and debt else None,
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
        fired["performance floor"] = (
            f"champion {metric} {performance:.4f} past the floor {spec.performance_floor}"
        )
    return {name: why for name, why in fired.items() if why}


def assess_retraining(
    spec: DriftSpec, evidence: DriftEvidence, *, metric: str, as_of: datetime, state: TriggerState
) -> RetrainDecision:
    """The rules that fire (:func:`fired_signals`: drift share, performance floor, realized or
    estimated decay, prediction drift, staleness debt, calendar); then the trainings in flight and
    the cooldown."""
    fired = fired_signals(spec, evidence, metric=metric, as_of=as_of, state=state)
    reasons, names = list(fired.values()), tuple(fired)
    debt = staleness_of(evidence, metric, state) if spec.staleness else None
    if not reasons:
        return RetrainDecision(False, [], debt=debt)
    if state.active_training_runs:
        why = f"{state.active_training_runs} training run(s) still queued or running"
        return RetrainDecision(False, reasons, why, names, debt)
    cooldown = timedelta(days=spec.interval_days * spec.cooldown_intervals)
    last = state.last_trigger_as_of
    if last is not None and as_of - last < cooldown:
        why = (f"cooldown: last retraining trigger for data up to {last:%Y-%m-%d}, less than "
               f"{spec.cooldown_intervals} interval(s) ago")  # fmt: skip
        return RetrainDecision(False, reasons, why, names, debt)
    return RetrainDecision(True, reasons, None, names, debt)
