"""Is a trigger worth it? The evidence ``make loop-value`` gives for each retraining policy.

Against the calendar that trains as often (its *cost-matched* periodic policy): the paired
bootstrap CI of the difference in mean weekly metric, over the weeks both scored; against the
hindsight schedule with the same budget: the regret; and what the policy did: the share of its
trainings whose challenger passed the gate, and how often each rule fired in the weeks it was
checked (a rule that fires at every check is a calendar in disguise). The cost view subtracts
``trainings x cost`` from each policy's mean over a grid of retraining costs.

Pure over the replay's outcomes; deterministic (seeded bootstrap).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from include.foundation.metrics import orientation
from include.replay import PERIODIC, Outcome, Policy, Replay, hindsight_bound, with_refit

BOOTSTRAP_SAMPLES = 2000
COSTS = (0.0, 0.0005, 0.001, 0.0015, 0.002, 0.003)  # per training, in the mean weekly metric's units


@dataclass(frozen=True)
class Period:
    since: date | None = None
    until: date | None = None

    def holds(self, d: date) -> bool:
        return (self.since is None or d >= self.since) and (self.until is None or d < self.until)


def weekly_scores(outcome: Outcome, period: Period) -> dict[date, float]:
    return {w: s for w, s in zip(outcome.weeks, outcome.scores, strict=True) if period.holds(w)}


def trainings_in(outcome: Outcome, period: Period) -> int:
    return sum(1 for d in outcome.trainings if period.holds(d))


def paired_difference(outcome: Outcome, baseline: Outcome, period: Period, seed: int = 0) -> dict:
    """Mean weekly difference ``outcome - baseline`` over the weeks both scored, with the 95 %
    paired bootstrap CI (weeks resampled with replacement)."""
    import numpy as np

    mine, theirs = weekly_scores(outcome, period), weekly_scores(baseline, period)
    weeks = sorted(set(mine) & set(theirs))
    if not weeks:
        return {"weeks": 0, "difference": None, "ci": None}
    d = np.array([mine[w] - theirs[w] for w in weeks])
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(BOOTSTRAP_SAMPLES, len(d)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"weeks": len(weeks), "difference": float(d.mean()), "ci": (float(lo), float(hi))}


def calendar_for(replay: Replay, trainings: int, period: Period, cache: dict) -> Outcome:
    """The periodic policy (through the gate) whose trainings in ``period`` come closest to
    ``trainings`` (a tie: the one that trains more, so the calendar is never the cheaper side)."""
    steps = sum(1 for s in replay.steps if s > replay.bootstrap_at and period.holds(s.date()))
    guess = max(1, round(steps / trainings)) if trainings else steps + 1
    found = [
        _calendar(replay, every, period, cache) for every in sorted({max(1, guess - 1), guess, guess + 1})
    ]
    return min(found, key=lambda o: (abs(trainings_in(o, period) - trainings), -trainings_in(o, period)))


def _calendar(replay: Replay, every: int, period: Period, cache: dict) -> Outcome:
    key = (every, period.until, replay.refit)
    if key not in cache:
        refit = ", refit on holdout" if replay.refit else ""
        policy = Policy(f"periodic, every {every} weeks{refit}", PERIODIC, every=every)
        cache[key] = replay.run(policy, until=period.until)
    return cache[key]


def regret(replay: Replay, outcome: Outcome, period: Period) -> dict:
    """The hindsight bound with as many trainings as ``outcome`` made in ``period``, from the
    champion it had there, and how far below it the policy ended (in the metric's direction)."""
    at = {s.date(): s for s in replay.steps}
    inside = [i for i, w in enumerate(outcome.weeks) if period.holds(w)]
    if not inside:
        return {"bound": None, "regret": None}
    start = at[outcome.champions[inside[0]]]
    weeks = [at[outcome.weeks[i]] for i in inside]
    bound = hindsight_bound(replay, start, weeks, trainings_in(outcome, period))
    mean = sum(outcome.scores[i] for i in inside) / len(inside)
    sign = orientation(replay.cfg.promotion.primary_metric)
    return {
        "bound": bound["mean"],
        "regret": None if bound["mean"] is None else sign * (bound["mean"] - mean),
    }


def firing(outcome: Outcome, period: Period) -> dict[str, float]:
    """For each rule that fired at least once: the share of the drift checks in ``period`` at which
    it fired (cooldown or not)."""
    checks = [signals for d, signals in outcome.checks.items() if period.holds(d)]
    names = sorted({n for signals in checks for n in signals})
    return {n: sum(n in signals for signals in checks) / len(checks) for n in names}


def gate_pass_share(outcome: Outcome, period: Period) -> float | None:
    trained = trainings_in(outcome, period)
    return None if not trained else sum(1 for d in outcome.promotions if period.holds(d)) / trained


def evidence_row(replay: Replay, outcome: Outcome, period: Period, calendars: dict[int, Outcome]) -> dict:
    """One policy's evidence over ``period`` against its cost-matched calendar and the hindsight bound."""
    replay, trained = with_refit(replay, outcome.refit), trainings_in(outcome, period)  # as it served
    calendar = calendar_for(replay, trained, period, calendars)
    scores = weekly_scores(outcome, period)
    return {
        "policy": outcome.policy.name,
        "mean": sum(scores.values()) / len(scores) if scores else None,
        "trainings": trained,
        "calendar": calendar.policy.name,
        "calendar_trainings": trainings_in(calendar, period),
        **paired_difference(outcome, calendar, period),
        **regret(replay, outcome, period),
        "gate_pass_share": gate_pass_share(outcome, period),
        "firing": firing(outcome, period),
    }


def format_evidence(title: str, rows: list[dict], metric: str) -> str:
    """The evidence table, the policies that beat their calendar (or a line saying none did), and
    one line per policy whose rule fired at every check."""
    lines = [title, f"| policy | mean {metric} | trainings | vs cost-matched calendar (trainings) | "
             "difference [95 % CI] | regret vs hindsight | passed the gate | rules fired (share of checks) |",
             "|---|---:|---:|---|---:|---:|---:|---|"]  # fmt: skip
    for r in rows:
        ci = "n/a" if r["ci"] is None else f"{r['difference']:+.4f} [{r['ci'][0]:+.4f}, {r['ci'][1]:+.4f}]"
        fired = ", ".join(f"{n} {v:.0%}" for n, v in r["firing"].items()) or "—"
        passed = "—" if r["gate_pass_share"] is None else f"{r['gate_pass_share']:.0%}"
        mean = "n/a" if r["mean"] is None else f"{r['mean']:.4f}"
        reg = "n/a" if r["regret"] is None else f"{round(r['regret'], 4) + 0.0:.4f}"  # no -0.0000
        lines.append(f"| {r['policy']} | {mean} | {r['trainings']} | {r['calendar']} ({r['calendar_trainings']}) | "
                     f"{ci} | {reg} | {passed} | {fired} |")  # fmt: skip
    winners_ = [r["policy"] for r in rows if beats_calendar(r, metric)]
    lines.append("\n" + (f"Beat their cost-matched calendar (the CI excludes zero): {', '.join(winners_)}." if winners_ else
                         "No policy here beats its cost-matched calendar with the CI excluding zero: a calendar that "
                         "trains as often does as well."))  # fmt: skip
    for r in rows:
        always = [n for n, v in r["firing"].items() if v == 1.0]
        if always:
            lines.append(
                f"\n{r['policy']}: {', '.join(always)} fired at every check: a calendar, not evidence."
            )
    return "\n".join(lines)


def beats_calendar(row: dict, metric: str) -> bool:
    """Whether the policy beat its cost-matched calendar with the CI's lower bound above zero."""
    if row["ci"] is None:
        return False
    lo, hi = row["ci"]
    return (lo > 0) if orientation(metric) > 0 else (hi < 0)


def cost_view(
    outcomes: list[Outcome], period: Period, metric: str, costs=COSTS
) -> dict[str, list[float | None]]:
    """Each policy's mean weekly metric charged ``trainings x cost`` (in the metric's worse
    direction), for each cost of ``costs``."""
    view, sign = {}, orientation(metric)
    for o in outcomes:
        scores = weekly_scores(o, period)
        mean = sum(scores.values()) / len(scores) if scores else None
        n = trainings_in(o, period)
        view[o.policy.name] = [None if mean is None else mean - sign * n * c for c in costs]
    return view


def winners(view: dict[str, list[float | None]], metric: str, costs=COSTS) -> list[str]:
    """Which policy wins at each cost of the view."""
    sign = orientation(metric)
    return [max((p for p in view if view[p][i] is not None), key=lambda p: sign * view[p][i])
            for i in range(len(costs))]  # fmt: skip


def plot_cost_view(view: dict[str, list[float | None]], metric: str, title: str, path, costs=COSTS):
    """The cost view as a plot: a line per policy, its charged mean against the cost of one training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from include.foundation.storage import atomic_write

    fig, ax = plt.subplots(figsize=(10, 5))
    for name, values in view.items():
        ax.plot(costs, values, marker="o", markersize=3, linewidth=1.2, label=name)
    ax.set_xlabel(f"cost of one retraining, in mean weekly {metric}")
    ax.set_ylabel(f"mean weekly {metric} - trainings x cost")
    ax.set_title(title + "\n(read off the highest line at your cost)", fontsize=10)
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


CALENDARS = (2, 3, 4, 5, 6, 8)  # weeks between trainings
STALENESS_COSTS = (0.02, 0.03, 0.05, 0.08, 0.12)
HYBRIDS = ((4, 0.05), (4, 0.08), (6, 0.05), (6, 0.08), (8, 0.05), (8, 0.08))  # (calendar, staleness cost)


def candidate_policies(replay: Replay) -> list[tuple[Replay, Policy]]:
    """The families the protocol chooses from: calendars, the staleness debt alone, calendars
    with the debt as an early trigger, the pipeline's configured signals and each signal alone
    (cooldown 1 for the debt: it paces itself, restarting at each trigger); each with and
    without the refit on the holdout."""
    from include.foundation.config import StalenessSpec
    from include.replay import CONFIGURED, SIGNALS, signal_alone

    cfg = replay.cfg
    found = [(replay, Policy(f"calendar every {k} weeks", PERIODIC, every=k)) for k in CALENDARS]
    debt_only = signal_alone(cfg.drift, "staleness debt").model_copy(update={"cooldown_intervals": 1})
    for cost in STALENESS_COSTS:
        spec = debt_only.model_copy(update={"staleness": StalenessSpec(cost=cost)})
        found.append((replay, Policy(f"staleness debt {cost}", CONFIGURED, spec)))
    for every, cost in HYBRIDS:
        spec = debt_only.model_copy(
            update={"staleness": StalenessSpec(cost=cost), "calendar_intervals": every}
        )
        found.append((replay, Policy(f"calendar every {every} weeks, earlier on staleness debt {cost}", CONFIGURED,
                                     spec)))  # fmt: skip
    found.append((replay, Policy("configured", CONFIGURED, cfg.drift)))
    for signal in SIGNALS:  # each signal alone, at its configured setting or the default
        if (signal == "performance floor" and cfg.drift.performance_floor is None) or (
            signal == "estimated decay" and not cfg.performance_estimable
        ):
            continue
        found.append((replay, Policy(f"{signal} alone", CONFIGURED, signal_alone(cfg.drift, signal))))
    twins = with_refit(replay, not cfg.training.refit_on_holdout)
    suffix = ", refit on holdout" if twins.refit else ", not refit"
    return found + [(twins, Policy(p.name + suffix, p.kind, p.drift, p.every)) for _, p in found]


def choose_policy(replay: Replay, split: date) -> dict:
    """The protocol, on the weeks before ``split`` only: every candidate within the budget (a
    quarter of the weekly policy's trainings), ranked by mean weekly metric. The best ships if it
    is a calendar; a trigger policy ships only if it beats its cost-matched calendar there with
    the paired CI's lower bound above zero, else the best calendar ships."""
    from include.replay import WEEKLY

    metric, before = replay.cfg.promotion.primary_metric, Period(None, split)
    weekly = replay.run(Policy(WEEKLY, WEEKLY), until=split)
    budget = trainings_in(weekly, before) // 4
    calendars: dict = {}
    rows = []
    for variant, policy in candidate_policies(replay):
        outcome = variant.run(policy, until=split)
        rows.append({**evidence_row(replay, outcome, before, calendars), "kind": policy.kind, "refit": outcome.refit,
                     "within_budget": trainings_in(outcome, before) <= budget})  # fmt: skip
    sign = orientation(metric)
    ranked = sorted(rows, key=lambda r: (not r["within_budget"], -sign * (r["mean"] or 0), r["trainings"]))
    best = ranked[0]
    best_calendar = next(r for r in ranked if r["kind"] == PERIODIC and r["refit"] == best["refit"])
    chosen = best if best["kind"] == PERIODIC or beats_calendar(best, metric) else best_calendar
    return {"budget": budget, "ranked": ranked, "chosen": chosen["policy"], "best": best["policy"],
            "refit": chosen["refit"]}  # fmt: skip


def estimate_lead(replay: Replay, outcome: Outcome) -> list[int | None]:
    """For each training the estimated decay triggered in ``outcome``: how many weeks later the
    realized-decay rule (the policy's, or the default) would have fired on the same champion,
    had it kept serving (None: not within the replay). The estimate's worth is this lead."""
    from datetime import timedelta

    from include.decisions.retraining import performance_decayed
    from include.foundation.config import DecaySpec

    spec, metric, interval = outcome.policy.drift, replay.cfg.promotion.primary_metric, replay.interval
    decay = (spec.performance_decay if spec is not None else None) or DecaySpec()
    at = {s.date(): s for s in replay.steps}
    leads = []
    for day, signals in outcome.checks.items():
        if "estimated decay" not in signals or day not in outcome.trainings:
            continue
        champion = outcome.served[at[day] - interval]  # the one judged at that check
        first = min(w for w, c in outcome.served.items() if c == champion)
        holdout = replay.score(champion, replay.training_window(champion)[1], replay.cfg.training.holdout_days,
                               judged=True)  # fmt: skip
        lead = None
        for k, step in enumerate(s for s in replay.steps if s >= at[day]):
            end, weeks, w = replay.labelled_end(step), [], first
            while w + interval <= end:
                weeks.append(w)
                w += timedelta(days=interval.days)
            realized = [replay.score(champion, w, interval.days) for w in weeks]
            if holdout is not None and performance_decayed(decay, realized, holdout, metric):
                lead = k
                break
        leads.append(lead)
    return leads
