"""Drift check through Airflow on real flights: no drift, seasonal drift, cooldown.

Uses its own pipeline (``flights_drift``: the demo config under another name) so its champion
and registry are independent of the training tests.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from include.foundation.config import load_pipeline
from include.foundation.settings import Settings
from include.stages.ingest import ingest_batch, publish_batch
from tests.airflow_helpers import run_dag, run_note, task_states
from tests.factories import as_validated, demo_yaml

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
NAME = "flights_drift"


@pytest.fixture(scope="module")
def drift_pipeline(tmp_path_factory, airflow_db):
    raw = demo_yaml()
    raw["name"] = NAME
    folder = tmp_path_factory.mktemp("drift_pipelines")
    (folder / f"{NAME}.yaml").write_text(yaml.safe_dump(raw))
    mp = pytest.MonkeyPatch()
    mp.setenv("CT_PIPELINES_DIR", str(folder))
    cfg = load_pipeline(folder / f"{NAME}.yaml")
    root = Settings.from_env().data_root
    start = datetime(2013, 1, 1, tzinfo=UTC)
    # Jan 1 - Mar 12 (training + holdout) and Jun 25 - Jul 9 (summer). Batches are published
    # without GX here: validation has its own tests; this module is about drift.
    for week in [*range(10), 25, 26]:
        batch = ingest_batch(cfg, root, start + timedelta(weeks=week), start + timedelta(weeks=week + 1))
        publish_batch(cfg, root, as_validated(cfg, root, batch["partition"]))
    yield cfg
    mp.undo()


def triggered_runs():
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(
            DagRun.dag_id == f"{NAME}__train", DagRun.run_type == "operator_triggered"
        )
        return [(r.run_id, dict(r.conf), str(r.state)) for r in runs]


@pytest.fixture(scope="module")
def champion(drift_pipeline):
    """The first champion (data up to Mar 12), trained once for the module whichever test asks first."""
    from mlflow import MlflowClient

    client = MlflowClient(Settings.from_env().mlflow_tracking_uri)
    try:
        client.get_model_version_by_alias(drift_pipeline.registered_model, "champion")
    except Exception:  # no champion yet
        dr = run_dag(f"{NAME}__train", run_conf={"reason": "bootstrap", "as_of": "2013-03-12"})
        assert task_states(dr)["promote"] == "success", task_states(dr)
    return drift_pipeline


@pytest.fixture(scope="module")
def summer_trigger(champion):
    """The summer check that triggers a training, run once for the module, with its log lines."""
    import logging

    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger, keep = logging.getLogger("include.orchestration.run_context"), Keep(logging.INFO)
    logger.addHandler(keep)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        dr, states, result = _check_via_files("2013-07-09")
    finally:
        logger.removeHandler(keep)
        logger.setLevel(old_level)
    return dr, states, result, records


def test_no_champion_skips(drift_pipeline):
    dr = run_dag(f"{NAME}__drift_check", run_conf={"as_of": "2013-03-12"})
    assert str(dr.state) == "success"
    assert task_states(dr) == {
        "check_drift": "skipped",
        "should_retrain": "skipped",
        "trigger_training": "skipped",
    }


def test_champion_data_window_shows_no_drift(drift_pipeline, champion):
    # the current window (Feb 12-26) lies inside the champion's training window (Jan 1 - Feb 26)
    dr, states, result = _check_via_files("2013-02-26")
    assert states == {"check_drift": "success", "should_retrain": "success", "trigger_training": "skipped"}
    assert result["drift_share"] < drift_pipeline.drift.share_threshold and result["retrain"] is False
    from include.stages.drift import format_summary

    threshold = drift_pipeline.drift.share_threshold  # the quiet verdict says why, in the threshold's words
    assert (
        f"decision: no retraining (drift share {result['drift_share']:.2f} < {threshold})"
        in format_summary(result)
    )
    assert (
        run_note(dr)
        == f"drift 2013-02-19--2013-02-25: no retraining (drift share {result['drift_share']:.2f} < {threshold})"
    )
    assert Path(result["report"]).exists()
    assert triggered_runs() == []


def test_summer_drift_triggers_training_and_is_logged(drift_pipeline, summer_trigger):
    import mlflow
    from mlflow import MlflowClient

    dr, states, result, said = summer_trigger
    said = [m for m in said if m.startswith(f"starting {NAME}__train run")]  # trigger_training's log
    assert said and f"drift__{dr.run_id}" in said[0] and "reason: drift" in said[0], said
    assert states == {"check_drift": "success", "should_retrain": "success", "trigger_training": "success"}
    assert result["drift_share"] >= drift_pipeline.drift.share_threshold and result["retrain"] is True
    assert run_note(dr).startswith("drift 2013-07-02--2013-07-08: RETRAIN (drift share "), run_note(dr)
    # the "over time" page beside the reports (pipeline/timeline/) shows this week's retraining
    over_time = (Path(result["report"]).parents[2] / "timeline" / "index.html").read_text()
    assert "2013-07-02--2013-07-08" in over_time and "RETRAIN: " in over_time and "#e67e00" in over_time
    assert {"temp", "dewp"} <= set(result["drifted_columns"])
    runs = triggered_runs()
    assert len(runs) == 1
    _, conf, _ = runs[0]
    assert conf["reason"] == "drift" and conf["drift_share"] == pytest.approx(result["drift_share"])
    assert conf["report"] == result["report"] and Path(conf["report"]).stat().st_size > 100_000
    assert conf["as_of"].startswith("2013-07-09")
    html = Path(result["report"]).read_text()
    assert (
        "Drift check of 2013-07-02--2013-07-08: RETRAIN" in html and "champion judged" in html
    )  # the verdict leads the page
    assert re.search(
        r"<body[^>]*><section[^>]*><h2[^>]*>Drift check of 2013-07-02--2013-07-08", html
    )  # atop the page

    mlflow.set_tracking_uri(Settings.from_env().mlflow_tracking_uri)
    client = MlflowClient()
    run = client.get_run(result["mlflow_run_id"])
    assert run.data.tags["ct.role"] == "monitoring" and run.data.tags["drift.retrain"] == "true"
    assert run.data.metrics["drift_share"] == pytest.approx(result["drift_share"])
    assert "drift_score.temp" in run.data.metrics and "champion_current_roc_auc" in run.data.metrics
    assert [a.path for a in client.list_artifacts(run.info.run_id, "drift")] == [
        "drift/report.html",
        "drift/summary.json",
    ]


def test_a_retried_check_keeps_its_own_trigger(drift_pipeline, summer_trigger):
    """Try 2 of the check that triggered must not be suppressed by try 1's mark (cooldown)."""
    from include.foundation.settings import Settings
    from include.stages.drift import check_drift

    ((run_id, _, _),) = triggered_runs()
    own_run = run_id.removeprefix("drift__")
    as_of = datetime(2013, 7, 9, tzinfo=UTC)
    retried = check_drift(drift_pipeline, Settings.from_env(), as_of, own_run)
    assert retried["retrain"] is True and retried["suppressed_by"] is None
    other = check_drift(drift_pipeline, Settings.from_env(), as_of, "manual__another_check")
    assert other["retrain"] is False and "cooldown" in other["suppressed_by"]


def test_cooldown_suppresses_a_second_trigger(drift_pipeline, summer_trigger):
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    # the triggered training is still queued (no scheduler under dag.test): no second trigger
    _, states, result = _check_via_files("2013-07-09")
    assert states["trigger_training"] == "skipped"
    assert "still queued or running" in result["suppressed_by"]
    # once it has finished, the interval cooldown still holds (last trigger: same week)
    with create_session() as session:
        for r in session.query(DagRun).filter(DagRun.dag_id == f"{NAME}__train", DagRun.state == "queued"):
            r.state = "failed"
    _, states, result = _check_via_files("2013-07-09")
    assert states["trigger_training"] == "skipped" and "cooldown" in result["suppressed_by"]
    assert len(triggered_runs()) == 1


def _check_via_files(as_of: str):
    """Run the drift DAG and read its result from the summary the task wrote next to the report."""
    import json

    dr = run_dag(f"{NAME}__drift_check", run_conf={"as_of": as_of})
    states = task_states(dr)
    assert states["check_drift"] == "success", states
    folder = Settings.from_env().data_root / NAME / "drift"
    newest = max(folder.glob("*/summary.json"), key=lambda p: p.stat().st_mtime)
    result = json.loads(newest.read_text())
    run_id = [r for r in _mlflow_monitoring_runs() if r.data.tags.get("airflow.run_id") == dr.run_id]
    result["mlflow_run_id"] = run_id[0].info.run_id if run_id else None
    return dr, states, result


def _mlflow_monitoring_runs():
    import mlflow

    mlflow.set_tracking_uri(Settings.from_env().mlflow_tracking_uri)
    exp = mlflow.get_experiment_by_name(NAME)
    return mlflow.MlflowClient().search_runs([exp.experiment_id], "tags.`ct.role` = 'monitoring'")
