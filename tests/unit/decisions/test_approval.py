"""The human gate's two pure parts: the request a person reads, and how their answer is read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from include.decisions.approval import approval_request, read_answer

AT = datetime(2026, 12, 4, 10, 30, tzinfo=UTC)


def payload(chosen, user="admin", comment=""):
    return {"chosen_options": chosen, "params_input": {"comment": comment}, "responded_at": AT,
            "responded_by_user": None if user is None else {"id": user, "name": user}}  # fmt: skip


def test_an_approval_by_a_named_person_approves():
    answer = read_answer(payload(["Approve"], comment="checked the slices"), 72)
    assert answer.approved and answer.by == "admin" and answer.at == "2026-12-04T10:30:00+00:00"
    assert answer.summary == "approved by admin: 'checked the slices'"


def test_a_rejection_records_who_and_why():
    answer = read_answer(payload(["Reject"], "ml-lead", "  holdout too small  "), 72)
    assert not answer.approved and answer.by == "ml-lead" and answer.comment == "holdout too small"
    assert answer.summary == "rejected by ml-lead: 'holdout too small'"
    assert answer.record()["by"] == "ml-lead"


def test_no_answer_in_time_is_a_rejection_by_default():
    """The scheduler applies the request's default (Reject) with nobody as the responder."""
    answer = read_answer(payload(["Reject"], user=None), 6)
    assert not answer.approved and answer.by is None
    assert answer.summary == "rejected by default: no answer within 6 h"


@pytest.mark.parametrize(
    "odd",
    [
        None,
        {},
        payload(["Approve"], user=None),
        payload(["Approve", "Reject"]),
        payload([]),
        payload(["approve"]),
        {"chosen_options": ["Approve"], "responded_by_user": {}},
    ],  # fmt: skip
    ids=["missing", "empty", "approve-by-nobody", "both", "none-chosen", "wrong-case", "empty-user"],
)
def test_anything_but_one_clear_approval_by_a_person_rejects(odd):
    assert read_answer(odd, 72).approved is False


def evaluation(**over):
    base = {
        "model_name": "flights_model", "challenger_version": "7", "champion_version": "6",
        "primary_metric": "roc_auc", "challenger": 0.71234, "champion": 0.70011, "difference": 0.01223,
        "ci_low": 0.0031, "ci_high": 0.0207, "reason": "roc_auc 0.7123 vs champion 0.7001 (+0.0122 >= 0.001)",
        "challenger_metrics": {"roc_auc": 0.71234, "log_loss": 0.55}, "champion_metrics": {"roc_auc": 0.70011, "log_loss": 0.56},
        "holdout_rows": 6061, "holdout_window": ["2013-01-22T00:00:00", "2013-01-29T00:00:00"],
        "slices": [{"column": "origin", "value": "JFK", "rows": 2000, "challenger": 0.70, "champion": 0.69, "change": 0.01},
                   {"column": "origin", "value": "LGA", "rows": 1900, "challenger": 0.68, "champion": 0.685, "change": -0.005}],
    }  # fmt: skip
    return {**base, **over}


def test_the_request_shows_the_evidence_and_the_default():
    links = {"MLflow run": "http://mlflow:5000/#/experiments/1/runs/abc", "drift report": None}
    req = approval_request(evaluation(), {"log_loss": 0.01}, 72, links, "drift (drift share 0.27 >= 0.05)")
    body = req["body"]
    assert req["subject"] == "Promote flights_model v7?"
    assert "| **roc_auc** (higher is better) | 0.7123 | 0.7001 |" in body
    assert "| log_loss (guardrail, may be worse by 0.01) | 0.5500 | 0.5600 |" in body
    assert "Gain +0.0122, 95% CI [+0.0031, +0.0207]" in body
    assert "6,061 rows, 2013-01-22 to 2013-01-29" in body
    assert body.index("origin=LGA") < body.index("origin=JFK")  # worst slice first
    assert "Why this training ran: drift (drift share 0.27 >= 0.05)" in body
    assert "[MLflow run](http://mlflow:5000/#/experiments/1/runs/abc)" in body and "drift report" not in body
    assert "No answer within 72 h rejects it" in body


def test_a_first_model_and_a_lower_is_better_metric_read_right():
    req = approval_request(
        evaluation(primary_metric="root_mean_squared_error", champion=None, champion_version=None,
                   ci_low=None, ci_high=None, difference=None, champion_metrics=None, slices=[]),
        {}, 24, {}, "manual",
    )  # fmt: skip
    body = req["body"]
    assert "(lower is better)" in body and "champion (none yet)" in body and "keep no champion" in body
    assert "CI" not in body and "Slices" not in body
