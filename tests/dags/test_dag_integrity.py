"""DAG integrity (after Astronomer's test_dag_example): import errors, tags, owners, retries, structure."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from include.foundation.links import DAG_ROLES
from include.foundation.payloads import RetrainRequest
from tests.airflow_helpers import dagbag
from tests.factories import demo_yaml

ROOT = Path(__file__).resolve().parents[2]
# A retried rollback would roll back twice: it runs once, by hand.
NOT_RETRIED = {"rollback"}


DAG_IDS = [f"flights_delay__{role}" for role in DAG_ROLES]


@pytest.fixture(scope="module")
def bag():
    return dagbag()


def test_no_import_errors_and_every_dag_of_the_demo_pipeline(bag):
    assert bag.import_errors == {}
    assert sorted(bag.dags) == sorted(DAG_IDS)


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_the_dag_is_documented_tagged_and_owned(bag, dag_id):
    dag = bag.dags[dag_id]
    assert dag.tags and "ct-loop" in dag.tags
    assert dag.doc_md and len(dag.doc_md) > 100
    assert dag.max_active_runs == 1


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_every_task_is_owned_retried_and_reports_its_failure(bag, dag_id):
    for task in bag.dags[dag_id].tasks:
        assert task.owner and task.owner != "airflow", task.task_id
        if task.task_id not in NOT_RETRIED:
            assert task.retries >= 1, f"{task.task_id} has no retries"
        assert task.on_failure_callback, task.task_id
        # a task's log ends with stage_call's one-line gist, not a dump of its return value
        assert getattr(task, "show_return_value_in_logs", False) is False, task.task_id


def _edges(dag) -> set[tuple[str, str]]:
    return {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids}


def test_outcomes_structure(bag):
    """The demo's outcomes arrive a week late: collected on the ingest schedule, a suite of their own."""
    dag = bag.dags["flights_delay__outcomes"]
    assert _edges(dag) == {("collect", "validate"), ("validate", "publish")}
    assert [a.name for a in dag.get_task("publish").outlets] == ["flights_delay.outcomes"]
    assert set(dag.params.keys()) == {"interval", "interval_days", "replace"}
    assert dag.timetable.expression == "0 0 * * 2"


def test_ingest_structure(bag):
    dag = bag.dags["flights_delay__ingest"]
    assert _edges(dag) == {("ingest", "validate"), ("validate", "publish")}
    assert [a.name for a in dag.get_task("publish").outlets] == ["flights_delay.curated"]
    assert set(dag.params.keys()) >= {"batch_start", "batch_days"}
    assert dag.timetable.expression == "0 0 * * 2"


def test_train_structure(bag):
    dag = bag.dags["flights_delay__train"]
    assert _edges(dag) == {
        ("assemble", "train"),
        ("assemble", "evaluate"),
        ("train", "evaluate"),
        ("evaluate", "promote_or_reject"),
        ("evaluate", "promote"),
        ("evaluate", "reject"),
        ("promote_or_reject", "promote"),
        ("promote_or_reject", "reject"),
    }
    assert [a.name for a in dag.get_task("promote").outlets] == ["flights_delay.champion"]
    assert set(dag.params.keys()) >= {"reason", "as_of", "train_days", "drift_share", "report"}


def test_drift_check_structure(bag):
    dag = bag.dags["flights_delay__drift_check"]
    assert _edges(dag) == {("check_drift", "should_retrain"), ("should_retrain", "trigger_training")}
    trigger = dag.get_task("trigger_training")
    assert trigger.trigger_dag_id == "flights_delay__train"
    # the handoff is one typed payload: one XCom pull, rendered natively into the training run's conf,
    # whose every field is a param of the training DAG
    assert trigger.conf.count("xcom_pull") == 1 and "retrain_request" in trigger.conf
    assert dag.render_template_as_native_obj
    train_params = set(bag.dags["flights_delay__train"].params.keys())
    assert set(RetrainRequest().to_conf()) <= train_params


def test_score_structure(bag):
    dag = bag.dags["flights_delay__score"]
    assert [t.task_id for t in dag.tasks] == ["score"]
    assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"  # run by each published batch
    assert [a.name for a in dag.timetable.asset_condition.objects] == ["flights_delay.curated"]
    assert [a.name for a in dag.get_task("score").outlets] == ["flights_delay.predictions"]
    assert set(dag.params.keys()) == {"interval", "model_version"}


def test_rollback_structure(bag):
    dag = bag.dags["flights_delay__rollback"]
    assert [t.task_id for t in dag.tasks] == ["rollback"]
    assert type(dag.timetable).__name__ == "NullTimetable"  # manual only
    assert "reason" in dag.params


def test_second_pipeline_is_a_second_yaml_file(tmp_path, monkeypatch):
    shutil.copy(ROOT / "include" / "pipelines" / "flights_delay.yaml", tmp_path)
    raw = demo_yaml()
    raw["name"] = "flights_small"
    raw["schedule"]["ingest"] = "@daily"
    raw["schedule"]["train"] = "0 12 * * 2"  # retrain on a clock as well as on drift
    (tmp_path / "flights_small.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("CT_PIPELINES_DIR", str(tmp_path))
    bag = dagbag()
    assert bag.import_errors == {}
    assert {"flights_delay__ingest", "flights_small__ingest"} <= set(bag.dags)
    assert bag.dags["flights_small__ingest"].timetable.expression == "0 0 * * *"
    assert bag.dags["flights_small__train"].timetable.expression == "0 12 * * 2"
    assert type(bag.dags["flights_delay__train"].timetable).__name__ == "NullTimetable"  # demo: drift-driven


def test_a_pipeline_that_requires_approval_puts_a_person_before_promote(tmp_path, monkeypatch):
    """promotion.approval: required adds Airflow's HITL operator between the rule and promote:
    Approve/Reject, Reject by default when the configured time runs out."""
    raw = demo_yaml()
    raw["name"] = "flights_gated"
    raw["promotion"].update(approval="required", approval_timeout_hours=6, approvers=["ml-lead"])
    (tmp_path / "flights_gated.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("CT_PIPELINES_DIR", str(tmp_path))
    bag = dagbag()
    assert bag.import_errors == {}
    dag = bag.dags["flights_gated__train"]
    assert {
        ("promote_or_reject", "approval"),
        ("promote_or_reject", "reject"),
        ("approval", "act_on_approval"),
        ("act_on_approval", "promote"),
        ("act_on_approval", "reject_by_approver"),
    } <= _edges(dag)
    assert ("promote_or_reject", "promote") not in _edges(dag)  # no way round the person
    gate = dag.get_task("approval")
    assert type(gate).__name__ == "PromotionApproval"
    assert (gate.options, gate.defaults, gate.multiple) == (["Approve", "Reject"], ["Reject"], False)
    assert gate.response_timeout.total_seconds() == 6 * 3600
    assert gate.assigned_users == [{"id": "ml-lead", "name": "ml-lead"}]
    assert "comment" in gate.params and gate.retries >= 1 and gate.on_failure_callback


def test_bad_pipeline_file_is_an_import_error_naming_the_key(tmp_path, monkeypatch):
    """One bad file breaks only itself: its error names the file and key, the others still load."""
    shutil.copy(ROOT / "include" / "pipelines" / "flights_delay.yaml", tmp_path)
    raw = demo_yaml()
    raw["name"] = "flights_broken"
    raw["model"]["estimator_typo"] = "x"
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("CT_PIPELINES_DIR", str(tmp_path))
    bag = dagbag()
    assert [Path(f).name for f in bag.import_errors] == ["pipeline_config.py"]
    error = next(iter(bag.import_errors.values()))
    assert "broken.yaml" in error and "model.estimator_typo" in error
    assert {"flights_delay__ingest", "flights_delay__train", "flights_delay__drift_check"} <= set(bag.dags)
    assert not any(d.startswith("flights_broken") for d in bag.dags)


def test_the_dag_list_shows_the_loops_order_and_pipeline(bag):
    """The DAG list is alphabetical; each DAG's description and tags say its step in the loop."""
    order = ["ingest", "outcomes", "score", "drift_check", "train", "rollback"]
    for n, role in enumerate(order, start=1):
        dag = bag.dags[f"flights_delay__{role}"]
        assert dag.description.startswith(f"flights_delay step {n}/6: "), dag.description
        assert f"step {n} {role.replace('drift_check', 'drift')}" in dag.tags and "flights_delay" in dag.tags
