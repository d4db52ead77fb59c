"""Users' own data, added with one YAML file: a churn table with Yes/No labels and categorical features.

Not flights: a seeded synthetic subscription table dropped into a landing folder, ingested week by
week through the ingest DAG and trained through the training DAG.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import yaml

from include.foundation.settings import Settings
from tests.airflow_helpers import run_dag, task_states

pytestmark = pytest.mark.e2e
START = datetime(2024, 1, 2, tzinfo=UTC)  # a Tuesday, like the schedule below
WEEKS = 5

PIPELINE = {
    "name": "churn",
    "description": "Will a subscriber cancel? (synthetic, seeded)",
    "source": {"kind": "landing_folder", "path": "landing", "pattern": "*.csv"},
    "schedule": {"ingest": "0 0 * * 2", "drift_check": None, "train": None, "start_date": "2024-01-02"},
    "schema": {
        "timestamp_column": "event_time",
        "row_count": {"min": 100},
        "unique_together": [["customer_id"]],
        "columns": [
            {"name": "event_time", "dtype": "datetime", "nullable": False},
            {"name": "customer_id", "dtype": "int", "nullable": False},
            {"name": "plan", "dtype": "str", "allowed": ["basic", "pro", "team"]},
            {"name": "region", "dtype": "str"},
            {"name": "monthly_fee", "dtype": "float", "min": 0, "max": 500},
            {"name": "support_calls", "dtype": "int", "min": 0},
            {"name": "cancel_reason", "dtype": "str", "known_at_prediction": False},
            {"name": "churned", "dtype": "str", "allowed": ["Yes", "No"], "nullable": False},
        ],
    },
    "target": {"column": "churned", "positive_class": "Yes"},
    "model": {
        "estimator": "sklearn.linear_model.LogisticRegression",
        "params": {"max_iter": 500},
        "numeric_features": ["monthly_fee", "support_calls"],
        "categorical_features": ["plan", "region"],
    },
    "training": {
        "train_days": 21,
        "holdout_days": 7,
        "min_train_rows": 300,
        "min_holdout_rows": 100,
        "min_holdout_class_rows": 10,
    },  # fmt: skip
    "promotion": {"primary_metric": "roc_auc", "absolute_floor": 0.6},
}


def churn_table(seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 400 * WEEKS
    plan = rng.choice(["basic", "pro", "team"], n, p=[0.5, 0.3, 0.2])
    region = rng.choice(["north", "south", "east", "west"], n)
    fee = np.round(rng.gamma(2, 20, n) + (plan == "team") * 40, 2)
    calls = rng.poisson(1 + (plan == "basic") * 1.5, n)
    logit = -2.2 + 0.6 * calls + 0.8 * (plan == "basic") + 0.5 * (region == "south") - 0.01 * fee
    churned = rng.uniform(size=n) < 1 / (1 + np.exp(-logit))
    seconds = rng.uniform(0, WEEKS * 7 * 86400, n)
    return pd.DataFrame(
        {
            "event_time": [
                (START + timedelta(seconds=float(s))).strftime("%Y-%m-%dT%H:%M:%SZ") for s in seconds
            ],
            "customer_id": np.arange(n) + 1000,
            "plan": plan,
            "region": region,
            "monthly_fee": fee,
            "support_calls": calls,
            "cancel_reason": np.where(churned, rng.choice(["price", "service"], n), None),
            "churned": np.where(churned, "Yes", "No"),
        }
    )


@pytest.fixture(scope="module")
def churn_pipeline(tmp_path_factory, airflow_db):
    folder = tmp_path_factory.mktemp("own_pipelines")
    (folder / "churn.yaml").write_text(yaml.safe_dump(PIPELINE))  # the only thing a user adds
    mp = pytest.MonkeyPatch()
    mp.setenv("CT_PIPELINES_DIR", str(folder))
    landing = Settings.from_env().data_root / "churn" / "landing"
    landing.mkdir(parents=True)
    table = churn_table()
    table.to_csv(landing / "export.csv", index=False)
    yield table
    mp.undo()


def test_yes_no_target_with_categorical_features_end_to_end(churn_pipeline):
    import mlflow
    from mlflow import MlflowClient

    for week in range(1, WEEKS + 1):
        dr = run_dag("churn__ingest", logical_date=START + timedelta(weeks=week), run_conf={})
        assert str(dr.state) == "success", task_states(dr)

    as_of = (START + timedelta(weeks=WEEKS)).date().isoformat()
    dr = run_dag("churn__train", run_conf={"reason": "first model", "as_of": as_of})
    states = task_states(dr)
    assert str(dr.state) == "success" and states["promote"] == "success", states

    mlflow.set_tracking_uri(Settings.from_env().mlflow_tracking_uri)
    client = MlflowClient()
    mv = client.get_model_version_by_alias("churn_model", "champion")
    assert mv.tags["decision.outcome"] == "promoted"
    run = client.get_run(mv.run_id)
    assert run.data.metrics["roc_auc"] > 0.6
    inputs = {
        c.name for c in mlflow.models.get_model_info(f"models:/churn_model/{mv.version}").signature.inputs
    }
    assert inputs == {"monthly_fee", "support_calls", "plan", "region"}  # cancel_reason never a feature
    train = pd.read_parquet(run.data.tags["data.train_uri"])  # lineage lives on the run
    assert set(train["label"].unique()) == {0, 1}
    assert train["label"].mean() == pytest.approx((train["churned"] == "Yes").mean())
