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
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),  # as deployed: extra links, run notes
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


# `make test` runs the suite on pytest-xdist workers (`-n 2 --dist loadfile`, docs/testing.md). The
# tests that start whole deployments (a scheduler, Celery workers, servers, containers) share one
# worker and run one after another, so two deployments never compete for the two cores; the
# in-process tests run beside them on the other worker(s). A module stays on one worker, so its
# module fixtures are built once. Deployments are queued first and the end-to-end modules next: the
# long units start early and the short unit modules fill in at the end. (xdist's own loadgroup
# cannot be used: with pytest 9.2 it silently stops grouping, pytest-xdist issue #1386.)
DEPLOYMENTS = (
    "tests/scaleout/test_celery_stack.py",
    "tests/container/test_compose_up.py",
    "tests/e2e/test_demo.py",
)


def _module(nodeid: str) -> str:
    return nodeid.split("::")[0]


def _queue_position(item) -> tuple[int, int]:
    module = _module(item.nodeid)
    if module in DEPLOYMENTS:
        return (0, DEPLOYMENTS.index(module))
    return (1, 0) if module.startswith("tests/e2e/") else (2, 0)


def pytest_collection_modifyitems(config, items):
    if hasattr(config, "workerinput"):  # an xdist worker: the controller queues in this order
        items.sort(key=_queue_position)  # stable: collection order within each rank


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile, with the deployments' modules as one unit and the queue in collection order."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ModulesWithTheDeploymentsTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = _module(nodeid)
            return "deployments" if module in DEPLOYMENTS else module

    config.option.loadscopereorder = False  # keep _queue_position's order (not tests per module)
    return ModulesWithTheDeploymentsTogether(config, log)


@pytest.fixture
def caplog(caplog):
    """pytest's caplog, and the project's loggers reach it whatever ran before on this worker.

    Airflow's logging set-up (``dag.test``, the API server) may disable the loggers existing at that
    moment or stop their propagation, and a command line run in-process (``loop_value.main``) raises
    ``include`` to WARNING; a later test on the same xdist worker would then capture nothing and
    fail for the order the tests ran in, not for the code. Restored after the test.
    """
    import logging

    saved = []
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and name.split(".")[0] in ("include", "dags", "plugins"):
            saved.append((logger, logger.disabled, logger.propagate, logger.level))
            logger.disabled, logger.propagate = False, True
            logger.setLevel(logging.NOTSET)
    yield caplog
    for logger, disabled, propagate, level in saved:
        logger.disabled, logger.propagate = disabled, propagate
        logger.setLevel(level)


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
