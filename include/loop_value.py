"""What retraining buys, reported: the tables, verdicts, weekly CSV, plot and MLflow run of
``make loop-value``, and the ``--tune`` search (:data:`TUNING_GRID`) on the weeks before a split.

The replay itself (policies, decisions) is :mod:`include.replay`; ``scripts/loop_value.py`` is the
command line that calls :func:`report` or :func:`tuning_report` and prints what they return.
Deterministic: models, samples and bootstraps are seeded.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from include.foundation.config import ConfigError, PipelineConfig
from include.foundation.metrics import orientation
from include.foundation.settings import Settings
from include.foundation.storage import atomic_write
from include.foundation.tracking import Role, Tag
from include.replay import (
    CONFIGURED,
    GATED,
    NEVER,
    PERIODIC,
    WEEKLY,
    Outcome,
    Policy,
    Replay,
    comparisons,
    hindsight_bound,
    policies,
    refit_twins,
    summarize,
)

log = logging.getLogger(__name__)


REFIT_TWINS = ("staleness debt alone, default setting",)  # besides configured, never, gated and the calendars


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


def verdict(rows: list[dict], metric: str) -> str:
    """Whether the configured policy beats periodic retraining at the same cost, in one sentence."""
    by = {r["policy"]: r for r in rows}
    conf = by[CONFIGURED]
    periodic = next(r for r in rows if r["policy"].startswith(PERIODIC))
    if conf["mean"] is None or periodic["mean"] is None:
        return "configured vs periodic: no scored weeks"
    gap = conf["mean"] - periodic["mean"]
    word = "beats" if orientation(metric) * gap > 0 else "does not beat"
    return (
        f"configured {word} {periodic['policy']}: mean weekly {metric} {conf['mean']:.4f} with "
        f"{conf['trainings']} trainings vs {periodic['mean']:.4f} with {periodic['trainings']} ({gap:+.4f})"
    )


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
    with mlflow.start_run(
        run_name=f"loop value {params['period']}", tags={Tag.PIPELINE: cfg.name, Tag.ROLE: Role.LOOP_VALUE}
    ) as run:
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


def with_overrides(cfg: PipelineConfig, assignments: list[str]) -> PipelineConfig:
    """``drift.share_threshold=0.3``-style overrides, validated like the YAML file itself."""
    import yaml

    if not assignments:
        return cfg
    raw = cfg.model_dump(mode="json", by_alias=True)
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. drift.share_threshold=0.3")
        *parents, leaf = key.split(".")
        node = raw
        for p in parents:
            if not isinstance(node.get(p), dict):
                raise ConfigError(f"--set {item!r}: {p!r} is not a section of the pipeline config")
            node = node[p]
        node[leaf] = yaml.safe_load(value)
    return PipelineConfig.model_validate(raw)


def bound_row(replay: Replay, outcomes: list[Outcome], since: date | None, until: date | None) -> dict:
    """A table row for :func:`hindsight_bound` over ``[since, until)`` with a quarter of the weekly
    policy's trainings there, starting from the champion the configured policy had at ``since``."""
    never, weekly, configured = (
        next(o for o in outcomes if o.policy.name == k) for k in (NEVER, WEEKLY, CONFIGURED)
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
    return summarize([never, ceiling], since, until, replay.cfg.promotion.primary_metric)[1]


_DECAY = {"margin": 0.02, "intervals": 2, "of_last": 3}
TUNING_GRID = {  # the settings --tune searches: each signal's threshold, the cooldown, the promotion rule
    "drift.share_threshold": [0.25, 0.3, 0.35, 0.4, 1.0],  # 1.0: drift alone (practically) never triggers
    "drift.performance_floor": [None, 0.62, 0.66, 0.7],
    "drift.performance_decay": [None, _DECAY, {**_DECAY, "margin": 0.04}],
    "drift.prediction_drift": [None, {"threshold": 0.1}, {"threshold": 0.25}],
    "drift.cooldown_intervals": [2, 4],
    "promotion.min_improvement": [0.002],  # 0.0005-0.005 tied on Jan-Jun before the signals were added
}


def _short(value) -> str:
    """A grid value in a table cell: a decay rule as its margin, a prediction-drift rule as its threshold."""
    if isinstance(value, dict):
        return f"{value.get('margin', value.get('threshold'))}"
    return str(value)


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
    sign = orientation(replay.cfg.promotion.primary_metric)  # best first, in the metric's direction
    found.sort(key=lambda r: (not r["within_budget"], -sign * (r["mean"] or 0), r["trainings"]))
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


def tuning_report(replay: Replay, split: date, out_dir: Path) -> list[str]:
    """``--tune``: rank the settings on the weeks before ``split``; the lines to print (all
    candidates in ``tuning.json``)."""
    t0, metric = time.perf_counter(), replay.cfg.promotion.primary_metric
    ranked = tune(replay, split)
    head, rows = ranked[0], ranked[1:]
    bound = head["hindsight_bound"]
    lines = [
        f"weekly before {split}: mean {head['weekly_mean']:.4f}, {head['weekly_trainings']} trainings; "
        f"budget (a quarter) {head['budget']}",
        f"hindsight bound: the best any policy with at most {head['budget']} training(s) could reach, "
        f"knowing the outcomes: {bound['mean']:.4f} (training {', '.join(bound['trainings']) or 'never'})",
        *(f"weekly through the gate with min_improvement {mi}: mean {mean:.4f}"
          for mi, mean in head["gated_weekly_mean"].items()),
        f"{'share':>6} {'floor':>6} {'decay':>6} {'pred':>6} {'cooldown':>8} {'min_impr':>8} {'mean':>8} "
        f"{'trainings':>9} {'promotions':>10}  in budget",
        *(f"{r['drift.share_threshold']:>6} {_short(r['drift.performance_floor']):>6} "
          f"{_short(r.get('drift.performance_decay')):>6} {_short(r.get('drift.prediction_drift')):>6} "
          f"{r['drift.cooldown_intervals']:>8} {r['promotion.min_improvement']:>8} {r['mean']:>8.4f} "
          f"{r['trainings']:>9} {r['promotions']:>10}  {'yes' if r['within_budget'] else 'no'}" for r in rows[:15]),
    ]  # fmt: skip
    reached = [r for r in rows
               if r["within_budget"] and orientation(metric) * (r["mean"] - head["weekly_mean"]) >= 0]  # fmt: skip
    lines.append(f"settings within budget that reach weekly's mean: {len(reached)} of {len(rows)}")
    atomic_write(out_dir / "tuning.json", lambda tmp: tmp.write_text(json.dumps(ranked, indent=2)))
    lines.append(f"({time.perf_counter() - t0:.0f} s; all candidates in {out_dir / 'tuning.json'})")
    return lines


def policy_choice_report(replay: Replay, split: date, out_dir: Path) -> list[str]:
    """``--choose-policy``: the protocol that picks the shipped policy (:func:`choose_policy`) on
    the weeks before ``split``; the lines to print (all candidates in ``policy_choice.json``)."""
    from include.policy_evidence import choose_policy, format_evidence

    t0, metric = time.perf_counter(), replay.cfg.promotion.primary_metric
    choice = choose_policy(replay, split)
    rows = choice["ranked"]
    lines = [
        f"weeks before {split}; budget (a quarter of weekly's trainings): {choice['budget']}",
        format_evidence("candidates, best first (within budget first)", rows, metric),
        f"best: {choice['best']}; ships: {choice['chosen']}"
        + ("" if choice["best"] == choice["chosen"] else
           " (the best is a trigger policy whose CI against its cost-matched calendar does not exclude zero)"),
    ]  # fmt: skip
    atomic_write(
        out_dir / "policy_choice.json", lambda tmp: tmp.write_text(json.dumps(choice, indent=2, default=str))
    )
    lines.append(f"({time.perf_counter() - t0:.0f} s; all candidates in {out_dir / 'policy_choice.json'})")
    return lines


def report(
    replay: Replay, settings: Settings, split: date, out_dir: Path, to_mlflow: bool = True
) -> list[str]:
    """Every policy over the year, tables before and after ``split``, the files and the MLflow
    run; the lines to print."""
    t0, cfg = time.perf_counter(), replay.cfg
    metric = cfg.promotion.primary_metric
    outcomes = [replay.run(p) for p in policies(cfg)]
    configured = next(o for o in outcomes if o.policy.kind == CONFIGURED)
    outcomes += [variant.run(policy) for variant, policy in comparisons(replay, configured)]
    twins = [
        o for o in outcomes if o.policy.kind != CONFIGURED or o.policy.name in (CONFIGURED, *REFIT_TWINS)
    ]
    outcomes += [variant.run(policy) for variant, policy in refit_twins(replay, twins)]
    weeks = outcomes[0].weeks
    split = split if weeks and weeks[0] < split <= weeks[-1] else None
    periods = {"all": (None, None)}
    if split is not None:
        periods.update(before_split=(None, split), after_split=(split, None))
    tables = {k: [*summarize(outcomes, since, until, metric), bound_row(replay, outcomes, since, until)]
              for k, (since, until) in periods.items()}  # fmt: skip
    period = f"{weeks[0]}..{weeks[-1] + timedelta(days=6)}" if weeks else "no weeks"
    text = "\n\n".join(format_table(_title(k, cfg, period, split), v, metric) + "\n\n" + verdict(v, metric)
                        for k, v in tables.items())  # fmt: skip
    text += "\n\n" + settings_line(cfg)
    error = estimate_error(replay, configured)
    if error is not None:
        text += "\n\n" + error
    text += "".join(f"\n\n{line}" for line in lead_lines(replay, outcomes))
    text += "\n\n" + policy_evidence(replay, outcomes, periods, out_dir)
    for when, why in configured.reasons.items():
        log.info("configured %s: %s", when, why)
    shown = [o for o in outcomes if o.policy.name in (NEVER, WEEKLY, CONFIGURED) or o.policy.kind == PERIODIC]
    files = [
        atomic_write(out_dir / "table.md", lambda tmp: tmp.write_text(text + "\n")),
        write_weekly(outcomes, out_dir / "weekly.csv"),
        out_dir / "cost_view.png",
        plot(
            shown,
            metric,
            split,
            f"{cfg.name}: weekly {metric} by retraining policy",
            out_dir / "loop_value.png",
        ),
    ]
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in replay.timings.items())
    lines = [
        text,
        f"\nwritten: {', '.join(str(f) for f in files)}  ({time.perf_counter() - t0:.0f} s: {timing})",
    ]
    if to_mlflow:
        params = {"period": period, "split": str(split), "config_sha": cfg.digest(), **{
            f"drift.{k}": v for k, v in cfg.drift.model_dump().items() if k != "columns"}}  # fmt: skip
        run_id = log_to_mlflow(settings, cfg, params, tables, files)
        lines.append(
            f"MLflow: experiment {cfg.experiment}-loop-value, run {run_id} ({settings.mlflow_tracking_uri})"
        )
    return lines


def lead_lines(replay: Replay, outcomes: list[Outcome]) -> list[str]:
    """How much earlier the estimate triggered than the realized decay would have, per policy
    that uses the estimated decay (:func:`include.policy_evidence.estimate_lead`)."""
    from include.policy_evidence import estimate_lead

    lines = []
    for o in outcomes:
        if o.policy.drift is None or o.policy.drift.estimated_decay is None:
            continue
        leads = estimate_lead(replay, o)
        if not leads:
            lines.append(f"{o.policy.name}: the estimated decay triggered no training")
            continue
        said = ", ".join("never within the year" if k is None else f"{k}" for k in leads)
        lines.append(f"{o.policy.name}: the estimated decay triggered {len(leads)} training(s); the realized-decay "
                     f"rule on the same champion would have fired this many weeks later: {said}")  # fmt: skip
    return lines


def policy_evidence(replay: Replay, outcomes: list[Outcome], periods: dict, out_dir: Path) -> str:
    """Is each trigger worth it (:mod:`include.policy_evidence`): its evidence table for the
    reported weeks (after the split, else all), and the cost view (``cost_view.png``)."""
    from include.policy_evidence import (
        COSTS,
        Period,
        cost_view,
        evidence_row,
        format_evidence,
        plot_cost_view,
        winners,
    )

    metric, key = replay.cfg.promotion.primary_metric, "after_split" if "after_split" in periods else "all"
    period = Period(*periods[key])
    calendars: dict = {}
    judged = [o for o in outcomes if o.policy.kind not in (NEVER, WEEKLY, PERIODIC)]
    rows = [evidence_row(replay, o, period, calendars) for o in judged]
    when = "from the split" if key == "after_split" else "every scored week"
    text = format_evidence(f"Is the trigger worth it? ({when}; each policy against the calendar that trains "
                           "as often, and the best schedule in hindsight with its budget)", rows, metric)  # fmt: skip
    view = cost_view([o for o in outcomes if o.policy.kind != NEVER], period, metric)
    plot_cost_view(view, metric, f"{replay.cfg.name}: what each policy is worth at a retraining cost ({when})",
                   out_dir / "cost_view.png")  # fmt: skip
    best = winners(view, metric)
    text += "\n\nwinner at a retraining cost of " + "; ".join(
        f"{c}: {w}" for c, w in zip(COSTS, best, strict=True)
    )
    return text


def _title(period_key: str, cfg: PipelineConfig, period: str, split: date | None) -> str:
    return {
        "all": f"{cfg.name}: every scored week ({period})",
        "before_split": f"weeks before {split} (where settings are tuned)",
        "after_split": f"weeks from {split} (the honest report)",
    }[period_key]


def settings_line(cfg: PipelineConfig) -> str:
    """The configured policy's settings in one line, under the tables."""
    spec, metric = cfg.drift, cfg.promotion.primary_metric
    return (
        f"configured: drift share >= {spec.share_threshold} (column distance >= {spec.column_threshold}, "
        f"{spec.window_days}-day window), performance floor {spec.performance_floor}, cooldown "
        f"{spec.cooldown_intervals} interval(s); promotion: {metric} +{cfg.promotion.min_improvement}, "
        f"guardrails {cfg.promotion.guardrails}, slices {cfg.promotion.slices.columns}"
    )


def estimate_error(replay: Replay, outcome: Outcome) -> str | None:
    """How far the estimate before the outcomes (:meth:`Replay.estimated`, the scoring DAG's
    computation) was from the realized metric, over the weeks ``outcome``'s champions served;
    None where nothing is estimated (regression, multiclass, a metric not estimated)."""
    cfg = replay.cfg
    metric = cfg.promotion.primary_metric
    if not cfg.performance_estimable:
        return None
    champion_of = {w.date(): c for w, c in outcome.served.items()}
    pairs = []
    for week, realized in zip(outcome.weeks, outcome.scores, strict=True):
        start = datetime(week.year, week.month, week.day, tzinfo=UTC)
        estimated = replay.estimated(champion_of[week], start)
        if estimated is not None:
            pairs.append((estimated, realized))
    if not pairs:
        return None
    errors = [abs(e - r) for e, r in pairs]
    worst = max(range(len(errors)), key=errors.__getitem__)
    return (f"estimate before the outcomes ({metric}, calibrated on each champion's holdout), policy "
            f"{outcome.policy.name}: mean absolute error {sum(errors) / len(errors):.4f} over {len(pairs)} weeks "
            f"(largest {errors[worst]:.4f}: estimated {pairs[worst][0]:.4f}, realized {pairs[worst][1]:.4f})")  # fmt: skip
