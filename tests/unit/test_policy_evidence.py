"""Is a trigger worth it: the paired CI, the firing shares, the cost view, on hand-made outcomes."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from include.policy_evidence import Period, beats_calendar, cost_view, firing, paired_difference, winners
from include.replay import Outcome, Policy

WEEKS = [date(2013, 7, 2) + timedelta(weeks=i) for i in range(8)]


def outcome(name: str, scores: list[float], trainings=(), checks=None) -> Outcome:
    return Outcome(Policy(name, "configured"), WEEKS[: len(scores)], scores, WEEKS[: len(scores)],
                   list(trainings), list(trainings), checks=checks or {})  # fmt: skip


def test_a_policy_better_every_week_has_a_ci_above_zero_and_a_tie_does_not():
    calendar = outcome("calendar", [0.70, 0.68, 0.71, 0.69, 0.70, 0.72, 0.66, 0.70])
    better = outcome("trigger", [s + 0.01 for s in calendar.scores])
    row = paired_difference(better, calendar, Period())
    assert row["weeks"] == 8 and row["difference"] == pytest.approx(0.01)
    assert row["ci"][0] == pytest.approx(0.01) and beats_calendar({**row}, "roc_auc")
    noisy = outcome("noisy", [s + d for s, d in zip(calendar.scores, [0.03, -0.03] * 4, strict=True)])
    row = paired_difference(noisy, calendar, Period())
    assert row["ci"][0] < 0 < row["ci"][1] and not beats_calendar(row, "roc_auc")
    # a lower-is-better metric: beating means a CI below zero
    assert beats_calendar({"ci": (-0.02, -0.01)}, "log_loss") and not beats_calendar(
        {"ci": (0.01, 0.02)}, "log_loss"
    )
    # only the weeks of the period, and only those both scored
    assert paired_difference(better, calendar, Period(WEEKS[6]))["weeks"] == 2
    assert paired_difference(better, outcome("short", [0.7]), Period())["weeks"] == 1


def test_a_rule_that_fires_at_every_check_is_reported_as_a_calendar():
    from include.policy_evidence import format_evidence

    checks = {w: ("calendar", "drift share") if i % 2 else ("calendar",) for i, w in enumerate(WEEKS)}
    shares = firing(outcome("x", [0.7] * 8, checks=checks), Period())
    assert shares == {"calendar": 1.0, "drift share": 0.5}
    row = {"policy": "x", "mean": 0.7, "trainings": 2, "calendar": "periodic", "calendar_trainings": 2,
           "difference": 0.0, "ci": (0.0, 0.0), "regret": 0.01, "gate_pass_share": 0.5, "firing": shares}  # fmt: skip
    text = format_evidence("t", [row], "roc_auc")
    assert "x: calendar fired at every check: a calendar, not evidence." in text
    assert "drift share fired at every check" not in text
    assert "No policy here beats its cost-matched calendar" in text  # a CI of [0, 0] does not
    better = {**row, "policy": "y", "difference": 0.01, "ci": (0.002, 0.02)}
    assert "Beat their cost-matched calendar (the CI excludes zero): y." in format_evidence(
        "t", [row, better], "roc_auc"
    )


def test_the_cost_view_charges_each_training_and_names_the_winner_at_each_cost():
    cheap = outcome("cheap", [0.70] * 4, trainings=[WEEKS[0]])
    busy = outcome("busy", [0.71] * 4, trainings=WEEKS[:4])
    view = cost_view([cheap, busy], Period(), "roc_auc", costs=(0.0, 0.001, 0.01))
    assert view["busy"] == pytest.approx([0.71, 0.706, 0.67]) and view["cheap"] == pytest.approx(
        [0.70, 0.699, 0.69]
    )
    assert winners(view, "roc_auc", costs=(0.0, 0.001, 0.01)) == ["busy", "busy", "cheap"]
    # lower is better: a training adds to the error
    errors = cost_view([cheap], Period(), "log_loss", costs=(0.01,))
    assert errors["cheap"] == pytest.approx([0.71])
