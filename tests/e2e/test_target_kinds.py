"""Regression and multiclass targets, each added with one YAML file and nothing else.

For each kind a seeded synthetic table (minutes to deliver an order; the team a support ticket
goes to) lands in a landing folder, and the loop runs through Airflow: five weeks ingested and
validated, a first champion trained and promoted (no floor outside binary), the next week scored
into the prediction log by it, a challenger judged against it with the kind's metric in its
direction, a drift check that judges the champion and realizes what it served, and then
``make loop-value`` replaying the kind's table without touching what the DAGs ingested.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
import yaml

from include.foundation.settings import Settings
from tests.airflow_helpers import run_dag, task_states
from tests.factories import KIND_START, kind_table, kind_yaml

pytestmark = pytest.mark.e2e
WEEKS = 5  # ingested through the DAGs; the landing file holds REPLAYED weeks for make loop-value
REPLAYED = 8


@pytest.fixture(params=["regression", "multiclass"])
def kind_pipeline(request, tmp_path_factory, airflow_db):
    kind = request.param
    raw = kind_yaml(kind)
    folder = tmp_path_factory.mktemp(f"{kind}_pipelines")
    (folder / f"{raw['name']}.yaml").write_text(yaml.safe_dump(raw))  # the only thing a user adds
    mp = pytest.MonkeyPatch()
    mp.setenv("CT_PIPELINES_DIR", str(folder))
    settings = Settings.from_env()
    landing = settings.data_root / raw["name"] / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    if not (landing / "export.csv").exists():  # a producer's export, written once
        kind_table(kind, REPLAYED).to_csv(landing / "export.csv", index=False)
    from include.foundation.config import load_pipeline

    yield load_pipeline(folder / f"{raw['name']}.yaml"), settings
    mp.undo()


def day(week: int) -> str:
    return (KIND_START + timedelta(weeks=week)).date().isoformat()


def test_a_target_kind_runs_the_loop(kind_pipeline):
    from mlflow import MlflowClient

    from include.foundation import metrics
    from include.foundation.storage import PipelinePaths

    cfg, settings = kind_pipeline
    name, kind, metric = cfg.name, cfg.target_kind, cfg.promotion.primary_metric
    for week in range(1, WEEKS + 1):
        when = pd.Timestamp(day(week), tz="UTC").to_pydatetime()
        dr = run_dag(f"{name}__ingest", logical_date=when, run_conf={})
        assert str(dr.state) == "success", task_states(dr)

    dr = run_dag(f"{name}__train", run_conf={"reason": "first model", "as_of": day(4)})
    assert task_states(dr)["promote"] == "success", task_states(dr)
    client = MlflowClient(settings.mlflow_tracking_uri)
    v1 = client.get_model_version_by_alias(cfg.registered_model, "champion")
    run = client.get_run(v1.run_id)
    assert run.data.params["target_kind"] == kind and metric in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(v1.run_id)}
    if kind == "regression":  # MLflow logs no regressor plots: the evaluation stage does
        assert {"residuals.png", "error_by_slice.json"} <= artifacts, artifacts
    else:  # MLflow's classifier evaluation: per-class metrics and the confusion matrix
        assert any("per_class_metrics" in a for a in artifacts) and any(
            "confusion_matrix" in a for a in artifacts
        )
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    signature = mlflow.models.get_model_info(f"models:/{cfg.registered_model}/{v1.version}").signature
    [output] = signature.outputs.inputs  # what predict returns, named: the value or the class
    assert (output.name, output.type.name) == (
        cfg.target.name,
        "double" if kind == "regression" else "string",
    )

    dr = run_dag(f"{name}__score", run_conf={"interval": day(4), "model_version": None})
    assert task_states(dr) == {"score": "success"}
    paths = PipelinePaths(settings.data_root, name)
    [part] = paths.predictions(paths.curated_partitions()[4], v1.version).parent.glob("v*.parquet")
    log = pd.read_parquet(part)
    if kind == "regression":
        assert log["prediction"].dtype == "float64" and (log["score"] == log["prediction"]).all()
    else:
        probas = log[[f"proba_{c}" for c in cfg.classes]]
        assert set(log["prediction"]) <= set(cfg.classes)
        assert ((probas.sum(axis=1) - 1).abs() < 1e-9).all() and (log["score"] == probas.max(axis=1)).all()

    dr = run_dag(f"{name}__train", run_conf={"reason": "next week", "as_of": day(5)})
    states = task_states(dr)
    assert states["evaluate"] == "success", states
    decision = client.get_run(client.get_model_version(cfg.registered_model, "2").run_id)
    challenger, champion = decision.data.metrics[metric], decision.data.metrics[f"champion_{metric}"]
    oriented = metrics.orientation(metric) * (challenger - champion)
    assert decision.data.metrics[f"delta_{metric}"] == pytest.approx(oriented)
    promoted = decision.data.tags["decision"] == "promote"
    assert promoted == (states["promote"] == "success")
    assert not promoted or oriented >= cfg.promotion.min_improvement  # never a worse model

    dr = run_dag(f"{name}__drift_check", run_conf={"as_of": day(5)})
    assert str(dr.state) == "success", task_states(dr)
    result = dr.get_task_instances()[0].xcom_pull(task_ids="check_drift")
    summary = pd.read_json(result["report"].replace("report.html", "summary.json"), typ="series")
    assert summary["performance_metric"] == metric and summary["performance"] is not None
    [realized] = [r for r in summary["realized"] if r["model_version"] == str(v1.version)]
    assert realized["value"] is not None and realized["ci"] is not None  # what v1 served, judged
    assert summary["drift_share"] > 0  # the inputs shift from the fourth week on
    loop_value_replays(kind_pipeline)  # after the DAGs published weeks: the replay must leave them be


def loop_value_replays(kind_pipeline):
    """``make loop-value`` on the kind's own table: every policy runs on the kind's metric, and
    "better" follows its direction (the hindsight bound is never worse than never retraining)."""
    from include.foundation import metrics
    from scripts import loop_value

    cfg, settings = kind_pipeline
    landing = settings.data_root / cfg.name / "landing"
    before = {str(p): p.stat().st_mtime_ns for p in landing.parent.rglob("*") if p.is_file()}
    argv = ["--pipeline", cfg.name, "--first-day", day(0), "--last-day", day(REPLAYED - 1),
            "--split", day(6), "--no-mlflow"]  # fmt: skip
    assert loop_value.main(argv) == 0
    out = settings.home / "loop-value" / cfg.name
    table = (out / "table.md").read_text().split("\n\n")[0]
    rows = {c[0]: c[1:] for c in (ln.strip("| ").split(" | ") for ln in table.splitlines()[3:])}
    metric = cfg.promotion.primary_metric
    assert metric in (out / "table.md").read_text()
    never = float(rows["never"][1])
    [bound] = [float(r[1]) for p, r in rows.items() if p.startswith("hindsight bound")]
    assert not metrics.is_worse(metric, bound, never), (bound, never)
    assert {"never", "weekly", "configured"} <= set(rows)
    after = {str(p): p.stat().st_mtime_ns for p in landing.parent.rglob("*") if p.is_file()}
    assert after == before  # a replay reads the landing folder; it moves, indexes and quarantines nothing
