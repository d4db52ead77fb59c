"""Test set-up: a throw-away Airflow home, data root and MLflow store per pytest session.

The environment is set before anything imports Airflow (it reads config at import time).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_TMP = Path(tempfile.mkdtemp(prefix="ctloop_tests_"))

os.environ.update(
    {
        "AIRFLOW_HOME": str(_TMP / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_TMP / 'airflow' / 'airflow.db'}",
        "CT_HOME": str(_TMP / "home"),
        "CT_DATA_ROOT": str(_TMP / "home" / "data"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{_TMP / 'home' / 'mlflow' / 'mlflow.db'}",
        "CT_MLFLOW_ARTIFACT_ROOT": str(_TMP / "home" / "mlflow" / "artifacts"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "GX_ANALYTICS_ENABLED": "False",
        "CT_RETRY_DELAY_SECONDS": "1",
    }
)
os.environ.pop("CT_PIPELINES_DIR", None)
(_TMP / "airflow").mkdir(parents=True, exist_ok=True)
for p in (ROOT, ROOT / "dags"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))


@pytest.fixture(scope="session")
def test_root() -> Path:
    return _TMP


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated metadata DB (dag.test() needs one); created once per session."""
    from airflow.utils import db

    db.initdb()
    yield


@pytest.fixture(scope="session")
def flights_cfg():
    from include.foundation.config import load_pipeline

    return load_pipeline(ROOT / "include" / "pipelines" / "flights_delay.yaml")


@pytest.fixture(scope="session")
def data_root() -> Path:
    return Path(os.environ["CT_DATA_ROOT"])


def pytest_sessionfinish(session, exitstatus):
    if exitstatus == 0:
        shutil.rmtree(_TMP, ignore_errors=True)
