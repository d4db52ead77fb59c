"""The notification texts: pure functions of a few facts, each naming what a reader acts on."""

from __future__ import annotations

from include.orchestration.notifications import drift_message, failure_message, notifiers, promotion_message
from tests.factories import landing_cfg

WHERE = {"dag_id": "p__train", "task_id": "promote", "run_id": "manual__1", "try_number": 3,
         "log_url": "http://af/dags/p__train/runs/manual__1/tasks/promote?try_number=3"}  # fmt: skip


def test_a_failure_names_the_task_the_run_the_cause_and_the_log():
    event, subject, body = failure_message("p", {**WHERE, "exception": "PromotionConflict: champion is v2"})
    assert event == "failure"
    assert subject == "[ct-loop] p: promote failed in manual__1"
    assert "Cause: PromotionConflict: champion is v2" in body
    assert "DAG p__train, task promote, run manual__1 (try 3)" in body and WHERE["log_url"] in body


def test_a_failed_validation_is_a_quarantine_naming_the_batch():
    cause = "DataValidationFailed: batch 20130115T0000Z_20130122T0000Z of pipeline p failed validation\n  - expect_x"
    event, subject, body = failure_message("p", {**WHERE, "task_id": "validate", "exception": cause})
    assert event == "quarantine"
    assert subject.startswith("[ct-loop] p: batch quarantined (batch 20130115T0000Z_20130122T0000Z")
    assert "nothing was published and the champion is untouched" in body and "expect_x" in body


def test_a_promotion_says_what_changed_and_how_to_undo_it():
    facts = {
        "evaluation": {"primary_metric": "roc_auc", "challenger": 0.71234, "champion": 0.70011, "reason": "gain"},
        "promotion": {"model_name": "p_model", "champion": "4", "previous_champion": "3"},
        "model_url": "http://ml/#/models/p_model/versions/4", "run_url": "http://af/run",
    }  # fmt: skip
    event, subject, body = promotion_message("p", facts)
    assert (event, subject) == (
        "promotion",
        "[ct-loop] p: v4 promoted to champion (roc_auc 0.7123 vs 0.7001 for v3)",
    )
    assert "Why: gain" in body and facts["model_url"] in body and "trigger p__rollback" in body
    facts["evaluation"]["champion"] = None
    assert "vs no previous champion" in promotion_message("p", facts)[1]


def test_a_drift_trigger_names_the_share_the_columns_and_the_training():
    facts = {
        "check": {"drift_share": 0.4, "as_of": "2013-06-04T00:00:00+00:00", "reasons": ["drift share 0.40 >= 0.3"],
                  "drifted_columns": ["temp", "wind_speed"], "n_columns": 5, "champion_version": "2"},
        "report_url": "http://af/ct-loop/files/p__drift_check/drift/r/report.html",
        "training_url": "http://af/dags/p__train/runs/drift__r", "run_url": "http://af/dags/p__drift_check/runs/r",
    }  # fmt: skip
    event, subject, body = drift_message("p", facts)
    assert (event, subject) == (
        "drift_retraining",
        "[ct-loop] p: retraining triggered (drift share 0.40, week 2013-05-28--2013-06-03)",
    )
    assert "Drifted columns (2/5): temp, wind_speed" in body and "Champion: v2" in body
    assert facts["report_url"] in body and facts["training_url"] in body


def test_no_channel_no_notifier():
    from include.foundation.settings import Settings

    assert notifiers(landing_cfg(), Settings.from_env(), "failure") == []
    mailed = landing_cfg(notifications={"email": ["ml@example.com"]})
    assert len(notifiers(mailed, Settings.from_env(), "promotion")) == 1


def test_an_approval_request_says_where_to_answer_and_what_happens_without_an_answer():
    from include.orchestration.notifications import approval_message

    facts = {"subject": "Promote p_model v7?", "body": "| metric | challenger |", "timeout_hours": 72,
             "answer_url": "http://af/dags/p__train/runs/r/tasks/approval/required_actions",
             "run_url": "http://af/dags/p__train/runs/r"}  # fmt: skip
    event, subject, body = approval_message("p", facts)
    assert (event, subject) == ("approval", "[ct-loop] p: approval needed: Promote p_model v7?")
    assert facts["answer_url"] in body and "within 72 h it is rejected by default" in body
    assert "| metric | challenger |" in body and facts["run_url"] in body
