"""The replay engine: a pipeline's year replayed week by week under a retraining policy,
with the decisions the DAGs take.

After each week's batch a policy decides whether to train a challenger and whether to promote
it; the following week is scored with the model that is champion then (so each week is judged
by a model that never saw it). Policies: ``never`` (the first champion all year), ``weekly``
(refit and replace every week), ``weekly, gated`` (refit every week, promoted through the gate)
and ``configured`` (the pipeline's own drift check decides when to train, the gate what is
promoted).

The decisions are the DAGs' own functions, called in one process on the year in memory (no
scheduler, no registry, no GX: the replayed batches all pass it): the window cut, the training
windows and the first champion (:mod:`include.decisions.windows`), the retrain assessment
(:func:`include.decisions.retraining.assess_retraining` on the evidence the drift check gathers,
:func:`include.stages.evidence.gather_evidence`, here from :class:`ReplayEvidence`), and the
promotion judgement
(:func:`include.decisions.promotion.judge`) on metrics defined as ``mlflow.models.evaluate``
defines them; models are :func:`include.stages.training.build_pipeline`. ``scripts/loop_value.py``
is its command line (tables, plot, MLflow).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from include.decisions.estimation import estimate_batch
from include.decisions.promotion import judge
from include.decisions.retraining import SIGNALS as RULES
from include.decisions.retraining import TriggerState, assess_retraining
from include.decisions.windows import (
    capped_training_set,
    cut_window,
    first_champion_as_of,
    labelled_until,
    performance_window,
    sample_positions,
    training_windows,
)
from include.foundation import metrics
from include.foundation.config import DecaySpec, DriftSpec, PipelineConfig, PredictionDriftSpec, StalenessSpec
from include.foundation.errors import PermanentError
from include.foundation.settings import Settings
from include.foundation.storage import PipelinePaths
from include.stages.datasets import add_label, model_inputs, split_xy
from include.stages.evidence import drift_columns, drift_report, drift_window, gather_evidence, judged_drift
from include.stages.sources import fetch
from include.stages.training import build_pipeline

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


class ReplayRefused(PermanentError):
    """The replay cannot start: a variant that changes the data or model, or a first model the gate refuses."""


NEVER, WEEKLY, GATED, PERIODIC, CONFIGURED = "never", "weekly", "weekly, gated", "periodic", "configured"


@dataclass(frozen=True)
class Policy:
    name: str
    kind: str  # NEVER | WEEKLY | GATED | PERIODIC | CONFIGURED
    drift: DriftSpec | None = None
    every: int = 1  # PERIODIC: train every this many intervals (through the gate)


@dataclass
class Outcome:
    """One policy's year: the metric of each scored week and what it did at each step."""

    policy: Policy
    weeks: list[date] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    champions: list[date] = field(default_factory=list)  # the champion's as_of for each scored week
    trainings: list[date] = field(default_factory=list)  # as_of of each training (after the first)
    promotions: list[date] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)  # as_of -> why it trained / promoted / not
    served: dict[datetime, datetime] = field(
        default_factory=dict
    )  # every week's start -> the champion that scored it
    checks: dict[date, tuple[str, ...]] = field(default_factory=dict)  # drift check -> the rules that fired
    refit: bool = False  # whether what served was refit on its holdout (training.refit_on_holdout)


class Replay:
    """The year's data in memory, and every model, prediction and drift report computed once."""

    def __init__(self, cfg: PipelineConfig, data: pd.DataFrame, first_step: datetime, last_day: datetime):
        self.cfg, self.ts = cfg, cfg.timestamp_column
        self.data = data
        self.interval = timedelta(days=cfg.drift.interval_days)
        self.bootstrap_at = first_champion_as_of(cfg, first_step, self.interval)
        self.steps: list[datetime] = []
        s = self.bootstrap_at
        while s + self.interval <= last_day:
            self.steps.append(s)
            s += self.interval
        self._models: dict[datetime, Any] = {}
        self._preds: dict[tuple[datetime, datetime, int], tuple] = {}
        self._drift: dict[tuple[datetime, datetime], dict] = {}
        self._gate: dict[tuple[datetime, datetime], Any] = {}
        self.timings = {"training": 0.0, "drift": 0.0, "gate": 0.0}

    def variant(self, cfg: PipelineConfig) -> Replay:
        """The same replay under other drift or promotion settings, sharing every model,
        prediction, report and decision computed so far (their keys hold what they depend on)."""

        def fixed(c: PipelineConfig) -> tuple:  # what every cached model depends on
            return c.model, c.training.model_copy(update={"refit_on_holdout": False}), c.target, c.labels

        if fixed(cfg) != fixed(self.cfg):
            raise ReplayRefused(
                "a variant may change drift, promotion and refit settings only, not the model or data"
            )
        other = object.__new__(Replay)
        other.__dict__.update(self.__dict__)
        other.cfg = cfg
        return other

    def window(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Labelled rows of ``[start, end)``, cut as the DAGs cut curated data (:func:`cut_window`)."""
        return add_label(
            self.cfg, cut_window(self.data, self.ts, start, end, self.cfg.schema_.unique_together)
        )

    def training_window(self, as_of: datetime) -> tuple[datetime, datetime]:
        """``(train_start, holdout_start)``: the windows the assemble task cuts."""
        return training_windows(self.cfg, as_of)[:2]

    def training_set(self, as_of: datetime) -> pd.DataFrame:
        """The rows model ``as_of`` is fit on: its training window, sampled as the assemble task
        samples it (:func:`capped_training_set`)."""
        return capped_training_set(self.cfg, self.window(*self.training_window(as_of)))

    def labelled_end(self, as_of: datetime) -> datetime:
        """The end of the rows whose outcomes have arrived by ``as_of`` (the DAGs' own cut)."""
        return labelled_until(self.cfg.labels, as_of, self.interval)

    def model(self, as_of: datetime):
        """The model the training DAG would fit for data up to ``as_of`` (include.stages.training.build_pipeline)."""
        if as_of not in self._models:
            t0 = time.perf_counter()
            X, y = split_xy(self.cfg, self.training_set(as_of))
            self._models[as_of] = build_pipeline(self.cfg).fit(X, y)
            self.timings["training"] += time.perf_counter() - t0
            log.debug("fitted the model of %s on %d rows", as_of.date(), len(X))
        return self._models[as_of]

    @property
    def refit(self) -> bool:
        return self.cfg.training.refit_on_holdout

    def served_model(self, as_of: datetime):
        """The model that serves once ``as_of``'s challenger is accepted: the judged one, or (with
        ``training.refit_on_holdout``) the same estimator refit on its training window plus its
        labelled holdout, as the training DAG registers it (:func:`include.stages.training.refit_window`)."""
        if not self.refit:
            return self.model(as_of)
        key = ("refit", as_of)
        if key not in self._models:
            t0 = time.perf_counter()
            import pandas as pd

            holdout = self.window(self.training_window(as_of)[1], self.labelled_end(as_of))
            X, y = split_xy(self.cfg, pd.concat([self.training_set(as_of), holdout], ignore_index=True))
            self._models[key] = build_pipeline(self.cfg).fit(X, y)
            self.timings["training"] += time.perf_counter() - t0
        return self._models[key]

    def predictions(self, as_of: datetime, start: datetime, days: int, served: bool = False) -> tuple:
        """``(y, (p, d))`` of model ``as_of`` on ``[start, start + days)`` (:meth:`Scorer.predictions`):
        the judged model (the gate's), or ``served``: the one that serves."""
        served = served and self.refit
        key = (as_of, start, days, "refit") if served else (as_of, start, days)
        if key not in self._preds:
            X, y = split_xy(self.cfg, self.window(start, start + timedelta(days=days)))
            model = self.served_model(as_of) if served else self.model(as_of)
            self._preds[key] = (y.to_numpy(), self.cfg.scorer.predictions(model, X))
        return self._preds[key]

    def score(
        self, as_of: datetime, start: datetime, days: int, judged: bool = False, cap: int | None = None, seed: int = 0
    ) -> float | None:  # fmt: skip
        """Model ``as_of``'s primary metric on ``[start, start + days)``: as it served (refit or
        not), or ``judged``: the model the gate judged. ``cap``: on at most that many rows, the
        seeded sample the drift check takes of a window that large (``sample_positions``)."""
        y, (p, d) = self.predictions(as_of, start, days, served=not judged)
        positions = sample_positions(y, cap, seed, self.cfg.target_kind != "regression")
        if positions is not None:
            y, p, d = y[positions], p[positions], d[positions]
        if not self.cfg.scorer.measurable(y):
            return None
        return float(self.cfg.scorer.metric_fn(self.cfg.promotion.primary_metric)(y, p, d))

    def drift_share(self, champion: datetime, as_of: datetime, spec: DriftSpec) -> float:
        """The drift check's share (include.stages.evidence.drift_report): champion's training set vs the window."""
        key = (champion, as_of, spec.column_threshold, spec.num_method, spec.cat_method, spec.window_days,
               self.refit)  # fmt: skip
        if key not in self._drift:
            t0 = time.perf_counter()
            reference = self.window(*self.reference_window(champion))
            start = as_of - timedelta(days=spec.window_days)
            rows = cut_window(self.data, self.ts, start, as_of, self.cfg.schema_.unique_together)
            if len(rows) > spec.max_rows:  # judged on all rows, as the drift check does for such a window
                _, summary, _ = judged_drift(self.cfg, spec, reference, [rows], len(rows))
            else:
                current = drift_window(
                    self.cfg, rows if self.cfg.outcomes_later else add_label(self.cfg, rows)
                )
                _, summary = drift_report(reference, current, *drift_columns(self.cfg, reference), spec)
            self._drift[key] = summary
            self.timings["drift"] += time.perf_counter() - t0
        return self._drift[key]["drift_share"]

    def reference_window(self, champion: datetime) -> tuple[datetime, datetime]:
        """The data the serving champion was trained on: its training window, and its holdout
        too when refit (the drift check's reference, read through the version's lineage)."""
        start, holdout_start = self.training_window(champion)
        return (start, self.labelled_end(champion)) if self.refit else (start, holdout_start)

    def served_scores(self, champion: datetime, start: datetime, end: datetime):
        """The scores model ``champion`` gives every row of ``[start, end)`` (labelled or not), as
        the scoring DAG logs them."""
        key = ("served", champion, start, end, self.refit)
        if key not in self._preds:
            rows = cut_window(self.data, self.ts, start, end, self.cfg.schema_.unique_together)
            self._preds[key] = self._served_score(champion, rows, served=True)
        return self._preds[key]

    def _served_score(self, champion: datetime, rows: pd.DataFrame, served: bool = False):
        """What the log's ``score`` holds for ``rows`` (:meth:`Scorer.served_score`), from the
        judged model or the ``served`` one."""
        scorer = self.cfg.scorer
        X = model_inputs(rows, self.cfg.model.features, self.cfg.model.numeric_features)
        model = self.served_model(champion) if served else self.model(champion)
        return scorer.served_score(*scorer.predictions(model, X))

    def estimated(self, champion: datetime, week: datetime) -> float | None:
        """Model ``champion``'s primary metric on week ``week`` estimated before its outcomes
        (:func:`include.stages.scoring.estimate_served`'s computation: calibrated on its holdout)."""
        key = ("estimated", champion, week, self.refit)
        if key not in self._preds:
            metric = self.cfg.promotion.primary_metric
            held = self._held_out(champion)
            rows = cut_window(
                self.data, self.ts, week, week + self.interval, self.cfg.schema_.unique_together
            )
            X = model_inputs(rows, self.cfg.model.features, self.cfg.model.numeric_features)
            p, d = self.cfg.scorer.predictions(self.served_model(champion), X)
            self._preds[key] = estimate_batch(metric, *held, p, d)  # calibrated on the judged model's holdout
        return self._preds[key]

    def _held_out(self, champion: datetime) -> tuple:
        """``(p, y)`` of model ``champion`` on its own holdout, as assembled (labelled rows)."""
        key = ("held out", champion)
        if key not in self._preds:
            holdout = self.window(self.training_window(champion)[1], self.labelled_end(champion))
            X, y = split_xy(self.cfg, holdout)
            self._preds[key] = (self.cfg.scorer.predictions(self.model(champion), X)[0], y.to_numpy())
        return self._preds[key]

    def gate(self, challenger: datetime, champion: datetime | None):
        """The promotion judgement (:func:`include.decisions.promotion.judge`) on the challenger's holdout."""
        key = (challenger, champion, self.cfg.promotion.model_dump_json())
        if key not in self._gate:
            t0 = time.perf_counter()
            t = self.cfg.training
            hold_start = self.training_window(challenger)[1]
            y, ch = self.predictions(challenger, hold_start, t.holdout_days)
            trained_until = {"challenger": hold_start}  # the challenger trained up to its holdout
            cp = champ_metrics = None
            if champion is not None:
                _, cp = self.predictions(champion, hold_start, t.holdout_days)
                champ_metrics = self._metrics(y, cp)
                trained_until["champion"] = self.training_window(champion)[1]
            holdout = self.window(hold_start, self.labelled_end(challenger))
            self._gate[key] = judge(self.cfg.promotion, y, ch, cp, self._metrics(y, ch), champ_metrics, holdout,
                                    hold_start, trained_until, with_ci=False, scorer=self.cfg.scorer).decision  # fmt: skip
            self.timings["gate"] += time.perf_counter() - t0
        return self._gate[key]

    def _metrics(self, y, predictions: tuple) -> dict[str, float]:
        rule = self.cfg.promotion
        p, d = predictions
        return {
            m: float(self.cfg.scorer.metric_fn(m)(y, p, d)) for m in (rule.primary_metric, *rule.guardrails)
        }

    def run(self, policy: Policy, until: date | None = None) -> Outcome:
        """Step through the weeks (those starting before ``until``): decide at each batch end,
        then score the next week."""
        out = Outcome(policy, refit=self.refit)
        first = self.gate(self.bootstrap_at, None)
        if not first.promote:
            raise ReplayRefused(
                f"the first model ({self.bootstrap_at:%Y-%m-%d}) is not promoted: {first.reason}"
            )
        champion, last_trigger = self.bootstrap_at, None
        for step in self.steps:
            if until is not None and step.date() >= until:
                break
            if step > self.bootstrap_at:
                champion, last_trigger = self._step(policy, out, step, champion, last_trigger)
            out.served[step] = champion
            value = self.score(champion, step, self.interval.days)
            if value is not None:
                out.weeks.append(step.date())
                out.scores.append(value)
                out.champions.append(champion.date())
        return out

    def _step(self, policy: Policy, out: Outcome, step: datetime, champion: datetime, last_trigger):
        key = step.date().isoformat()
        if policy.kind == NEVER:
            return champion, last_trigger
        if policy.kind == PERIODIC and ((step - self.bootstrap_at) // self.interval) % policy.every:
            return champion, last_trigger
        if policy.kind == CONFIGURED:
            spec, metric = policy.drift, self.cfg.promotion.primary_metric
            evidence = gather_evidence(
                spec, metric, ReplayEvidence(self, out, champion, step, spec), self._drift
            )
            state = TriggerState(last_trigger, champion_as_of=champion)
            wanted = assess_retraining(spec, evidence, metric=metric, as_of=step, state=state)
            out.checks[step.date()] = wanted.signals  # fired, whether or not the cooldown held it
            if not wanted.retrain:
                return champion, last_trigger
            last_trigger = step
            out.reasons[key] = "; ".join(wanted.reasons)
        out.trainings.append(step.date())
        if policy.kind == WEEKLY:
            out.promotions.append(step.date())
            return step, last_trigger
        decision = self.gate(step, champion)
        out.reasons[key] = f"{out.reasons.get(key, policy.kind)} -> {decision.reason}"
        if decision.promote:
            out.promotions.append(step.date())
            return step, last_trigger
        return champion, last_trigger


class ReplayEvidence:
    """The replay's :class:`~include.stages.evidence.EvidenceSource`: champion ``champion`` at
    ``step``, the weeks it served so far in ``out``, every number from the year in memory and cut
    as the DAGs cut it."""

    def __init__(self, replay: Replay, out: Outcome, champion: datetime, step: datetime, spec: DriftSpec):
        self.replay, self.out, self.champion, self.step, self.spec = replay, out, champion, step, spec
        start = step - timedelta(days=spec.window_days)
        self.weeks = [w for w, by in out.served.items()
                      if by == champion and w >= start and w + replay.interval <= step]  # fmt: skip

    def drift_share(self) -> float:
        return self.replay.drift_share(self.champion, self.step, self.spec)

    def performance(self) -> float | None:
        start = performance_window(self.replay.cfg.labels, self.spec, self.step)[0]
        return self.replay.score(
            self.champion, start, self.spec.window_days, cap=self.spec.max_rows, seed=self.spec.seed
        )

    def holdout_metric(self) -> float | None:
        r = self.replay
        return r.score(
            self.champion, r.training_window(self.champion)[1], r.cfg.training.holdout_days, judged=True
        )

    def realized(self, last: int) -> list[float | None]:
        """The weeks this champion scored whose outcomes arrived by ``step`` (the drift check's cut)."""
        r, out = self.replay, self.out
        end = r.labelled_end(self.step).date()
        return [value for week, value, served_by in zip(out.weeks, out.scores, out.champions, strict=True)
                if served_by == self.champion.date() and week + r.interval <= end][-last:]  # fmt: skip

    def estimated(self, last: int) -> list[float | None]:
        """The estimate the scoring DAG logs with each week this champion served up to ``step``."""
        r, served = self.replay, self.out.served
        weeks = [w for w in sorted(served) if served[w] == self.champion and w + r.interval <= self.step]
        return [r.estimated(self.champion, w) for w in weeks[-last:]]

    def served_metrics(self) -> list[tuple[datetime, float | None, float | None]]:
        """Each week this champion served up to ``step``: its realized metric once the outcomes
        arrived (the drift check's cut), and the estimate the scoring DAG logged with it."""
        r, out, champion = self.replay, self.out, self.champion
        end = r.labelled_end(self.step).date()
        realized = {week: value for week, value, served_by in zip(out.weeks, out.scores, out.champions, strict=True)
                    if served_by == champion.date() and week + r.interval <= end}  # fmt: skip
        weeks = [w for w in sorted(out.served) if out.served[w] == champion and w + r.interval <= self.step]
        estimable = r.cfg.performance_estimable
        return [(w, realized.get(w.date()), r.estimated(champion, w) if estimable else None) for w in weeks]

    def served_scores(self):
        import numpy as np

        r, interval = self.replay, self.replay.interval
        parts = [r.served_scores(self.champion, w, w + interval) for w in self.weeks]
        return np.concatenate(parts) if parts else np.array([])

    def holdout_scores(self):
        r = self.replay
        holdout = r.window(r.training_window(self.champion)[1], r.labelled_end(self.champion))  # as assembled
        return r._served_score(self.champion, holdout)

    def served_key(self):
        return (self.champion, tuple(self.weeks))


def summarize(
    outcomes: list[Outcome], since: date | None = None, until: date | None = None, metric: str = "roc_auc"
) -> list[dict]:
    """Mean weekly metric, trainings, promotions and weeks worse than ``never`` (``below_never``,
    in ``metric``'s direction) within ``[since, until)``."""
    import numpy as np

    def inside(d: date) -> bool:
        return (since is None or d >= since) and (until is None or d < until)

    def worse(value: float, than: float) -> bool:
        return metric is not None and metrics.is_worse(metric, value, than) and abs(value - than) > 1e-12

    never = next((o for o in outcomes if o.policy.kind == NEVER), None)
    base = {w: s for w, s in zip(never.weeks, never.scores, strict=True)} if never else {}
    rows = []
    for o in outcomes:
        pairs = [(w, s) for w, s in zip(o.weeks, o.scores, strict=True) if inside(w)]
        rows.append(
            {
                "policy": o.policy.name,
                "weeks": len(pairs),
                "mean": round(float(np.mean([s for _, s in pairs])), 4) if pairs else None,
                "trainings": sum(1 for d in o.trainings if inside(d)),
                "promotions": sum(1 for d in o.promotions if inside(d)),
                "below_never": sum(1 for w, s in pairs if w in base and worse(s, base[w])),
            }
        )
    return rows


def policies(cfg: PipelineConfig) -> list[Policy]:
    return [
        Policy(NEVER, NEVER),
        Policy(WEEKLY, WEEKLY),
        Policy(GATED, GATED),
        Policy(CONFIGURED, CONFIGURED, cfg.drift),
    ]


SIGNALS = tuple(s for s in RULES if s != "calendar")  # each alone: the calendar alone is the periodic policy


def signal_alone(drift: DriftSpec, signal: str) -> DriftSpec:
    """``drift`` with only ``signal`` able to fire: its configured setting, or the default one
    where it is not configured (the others off; the cooldown as configured). A replay-only spec:
    an infinite share threshold, which no config accepts, is how drift share is switched off."""
    off = {"share_threshold": float("inf"), "performance_floor": None, "performance_decay": None,
           "estimated_decay": None, "prediction_drift": None, "staleness": None,
           "calendar_intervals": None}  # fmt: skip
    own = {
        "drift share": {"share_threshold": drift.share_threshold},
        "performance floor": {"performance_floor": drift.performance_floor},
        "performance decay": {"performance_decay": drift.performance_decay or DecaySpec()},
        "estimated decay": {"estimated_decay": drift.estimated_decay or DecaySpec()},
        "prediction drift": {"prediction_drift": drift.prediction_drift or PredictionDriftSpec()},
        "staleness debt": {"staleness": drift.staleness or StalenessSpec()},
    }[signal]
    return drift.model_copy(update={**off, **own})


def is_configured(drift: DriftSpec, signal: str) -> bool:
    return {"drift share": drift.share_threshold <= 1, "performance floor": drift.performance_floor is not None,
            "performance decay": drift.performance_decay is not None,
            "estimated decay": drift.estimated_decay is not None,
            "prediction drift": drift.prediction_drift is not None,
            "staleness debt": drift.staleness is not None}[signal]  # fmt: skip


def cost_matched_every(replay: Replay, trainings: int) -> int:
    """The period (in intervals) at which a periodic policy trains about ``trainings`` times over
    the replay's steps after the first champion: the cost-matched baseline of a trigger policy."""
    steps = sum(1 for s in replay.steps if s > replay.bootstrap_at)
    return max(1, round(steps / trainings)) if trainings else steps + 1


def comparisons(replay: Replay, configured: Outcome) -> list[tuple[Replay, Policy]]:
    """What the configured policy is judged against besides never and weekly: periodic retraining
    as often as it trained (cost-matched), each of its signals alone, that calendar with the
    configured signals as early triggers, and its promotion rule the other way round on the
    bootstrap CI's lower bound (the rule as shipped vs requiring > 0)."""
    cfg = replay.cfg
    every = cost_matched_every(replay, len(configured.trainings))
    found = [(replay, Policy(f"periodic, every {every} weeks (cost-matched)", PERIODIC, every=every))]
    for signal in SIGNALS:
        if signal == "performance floor" and cfg.drift.performance_floor is None:
            continue  # no default floor: it is the pipeline's own bar
        if signal == "estimated decay" and not cfg.performance_estimable:
            continue  # estimated for binary classifiers only (include/decisions/estimation.py)
        spec = signal_alone(cfg.drift, signal)
        note = "" if is_configured(cfg.drift, signal) else ", default setting"
        found.append((replay, Policy(f"{signal} alone{note}", CONFIGURED, spec)))
    if cfg.drift.calendar_intervals is None:  # a calendar with early triggers, as often in name
        hybrid = cfg.drift.model_copy(update={"calendar_intervals": every})
        found.append((replay, Policy(f"calendar every {every} weeks, earlier on the configured signals",
                                     CONFIGURED, hybrid)))  # fmt: skip
    bootstrap = cfg.promotion.bootstrap
    flipped = not bootstrap.require_lower_bound_above_zero
    other = cfg.model_copy(update={"promotion": cfg.promotion.model_copy(update={
        "bootstrap": bootstrap.model_copy(update={"require_lower_bound_above_zero": flipped})})})  # fmt: skip
    rule = "requiring the CI lower bound > 0" if flipped else "without the CI lower bound rule"
    found.append((replay.variant(other), Policy(f"configured, promotion {rule}", CONFIGURED, cfg.drift)))
    return found


def with_refit(replay: Replay, refit: bool) -> Replay:
    """``replay``, or its variant with ``training.refit_on_holdout`` set to ``refit``."""
    cfg = replay.cfg
    if cfg.training.refit_on_holdout == refit:
        return replay
    return replay.variant(cfg.model_copy(update={"training": cfg.training.model_copy(
        update={"refit_on_holdout": refit})}))  # fmt: skip


def refit_twins(replay: Replay, outcomes: list[Outcome]) -> list[tuple[Replay, Policy]]:
    """Each of ``outcomes``' policies with ``training.refit_on_holdout`` the other way round (what
    serves is refit, or not; the gate judges the models as trained either way)."""
    flipped = not replay.cfg.training.refit_on_holdout
    other = with_refit(replay, flipped)
    suffix = ", refit on holdout" if flipped else ", not refit"
    return [(other, Policy(o.policy.name + suffix, o.policy.kind, o.policy.drift, o.policy.every))
            for o in outcomes]  # fmt: skip


def hindsight_bound(replay: Replay, start: datetime, weeks: list[datetime], budget: int) -> dict:
    """The best mean (the metric's better direction) any retraining policy could reach over ``weeks`` with at most ``budget``
    trainings, knowing every week's outcome in advance (no gate, no drift check): a ceiling, not
    a policy. ``start`` is the champion before the first week; a model trained at a week's start
    serves from that week on, as in :meth:`Replay.run`. Dynamic programming over (week, last
    training, trainings left) on the replay's cached models."""
    days, n = replay.interval.days, len(weeks)
    models = [start, *weeks]  # row 0: the starting champion; row i + 1: the model trained at weeks[i]
    score = [[0.0] * n for _ in models]
    valid = 0
    for j, week in enumerate(weeks):
        if replay.score(start, week, days) is None:  # one class that week: scored by no policy
            continue
        valid += 1
        for m in range(j + 2):
            score[m][j] = replay.score(models[m], week, days)

    sign = metrics.orientation(replay.cfg.promotion.primary_metric)  # lower-is-better metrics: minimized

    def run_of(m: int, lo: int, hi: int) -> float:  # model m serving weeks lo..hi-1, oriented
        return sign * sum(score[m][lo:hi])

    # best[i][k]: (sum over weeks i.., trainings) when weeks[i] trains and k more trainings may follow
    best: list[list[tuple[float, list[int]]]] = [[(0.0, [])] * (budget + 1) for _ in range(n)]
    for i in reversed(range(n)):
        for k in range(budget + 1):
            options = [(run_of(i + 1, i, n), [i])]
            if k:
                options += [(run_of(i + 1, i, j) + best[j][k - 1][0], [i, *best[j][k - 1][1]])
                            for j in range(i + 1, n)]  # fmt: skip
            best[i][k] = max(options, key=lambda o: o[0])
    options = [(run_of(0, 0, n), [])]
    if budget:
        options += [(run_of(0, 0, i) + best[i][budget - 1][0], best[i][budget - 1][1])
                    for i in range(n) if weeks[i] != start]  # fmt: skip
    total, chosen = max(options, key=lambda o: o[0])
    serving = [max((i + 1 for i in chosen if i <= j), default=0) for j in range(n)]  # model of each week
    return {
        "mean": round(sign * total / valid, 4) if valid else None,
        "trainings": [weeks[i].date().isoformat() for i in chosen],
        "scores": [score[m][j] for j, m in enumerate(serving)],  # 0.0 for a week no policy scores
    }


def load_year(
    cfg: PipelineConfig, settings: Settings, first: datetime, last: datetime, read_sql=None
) -> pd.DataFrame:
    """Every row the ingest DAG would have curated between ``first`` and ``last``, read without
    touching the source's state (a landing folder's index and files stay as they are; ``read_sql``:
    how a ``sql`` source reaches its database, :data:`include.stages.sources.SqlReader`)."""
    base = PipelinePaths(settings.data_root, cfg.name).base
    return fetch(cfg, first, last, base, read_sql=read_sql, read_only=True)  # a replay moves no file
