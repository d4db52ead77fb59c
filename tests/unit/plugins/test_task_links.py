"""The buttons on a task page, from the task's return value (a pure function)."""

from __future__ import annotations

from include.foundation.settings import Settings
from tests.airflow_helpers import plugin


def test_a_drift_check_links_its_run_its_report_and_the_champion_it_judged(tmp_path, monkeypatch):
    monkeypatch.setenv("CT_DATA_ROOT", str(tmp_path))
    report = tmp_path / "flights_delay" / "drift" / "r1" / "report.html"
    report.parent.mkdir(parents=True)
    report.write_text("<html></html>")
    result = {"champion_version": "3", "model_name": "flights_delay_model", "mlflow_run_id": "abc",
              "experiment_id": "7", "report": str(report)}  # fmt: skip
    links = plugin().task_links("flights_delay__drift_check", "check_drift", result, Settings.from_env())
    assert links["Model version"].endswith(
        "#/models/flights_delay_model/versions/3?workflowType=machine_learning"
    )  # realized chart: its run
    assert links["MLflow run"].endswith("#/experiments/7/runs/abc?workflowType=machine_learning")
    assert links["Drift report"].endswith("flights_delay__drift_check/drift/r1/report.html")


def test_evaluate_and_a_persons_rejection_link_the_run_and_version_on_the_ui_being_served(monkeypatch):
    """The links follow CT_MLFLOW_UI_URL (what `make up` serves), not a default port."""
    monkeypatch.setenv("CT_MLFLOW_UI_URL", "http://localhost:5001")
    evaluation = {"model_name": "m", "challenger_version": "7", "mlflow_run_id": "r7", "experiment_id": "2",
                  "promote": True}  # fmt: skip
    links = plugin().task_links("p__train", "evaluate", evaluation, Settings.from_env())
    assert links == {
        "MLflow run": "http://localhost:5001/#/experiments/2/runs/r7?workflowType=machine_learning",
        "Model version": "http://localhost:5001/#/models/m/versions/7?workflowType=machine_learning",
    }
    rejected = {"model_name": "m", "rejected": "7", "champion": "6"}
    links = plugin().task_links("p__train", "reject_by_approver", rejected, Settings.from_env())
    assert links == {
        "Model version": "http://localhost:5001/#/models/m/versions/7?workflowType=machine_learning"
    }
