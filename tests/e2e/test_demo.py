"""`make demo` through Airflow's scheduler: real runs with logs, continued on a second call, and
nothing left running after it ends or is interrupted (two weeks here; the README states the
figures of the whole demo)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def demo(home: Path, weeks: int, out: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CT_", "MLFLOW"))}
    env.update(CT_HOME=str(home), PYTHONPATH=str(ROOT), MLFLOW_DISABLE_TELEMETRY="true", GX_ANALYTICS_ENABLED="False",
               AIRFLOW_HOME=str(home / "airflow"), AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
               AIRFLOW__CORE__LOAD_EXAMPLES="False", AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")  # fmt: skip
    return subprocess.Popen([sys.executable, str(ROOT / "scripts" / "demo.py"), "--weeks", str(weeks)], env=env,
                            stdout=out.open("w"), stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def descendants(pid: int):
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_demo_runs_through_the_scheduler_continues_and_stops_cleanly(tmp_path):
    home, out = tmp_path / "home", tmp_path / "demo.out"
    proc = demo(home, 2, out)
    try:
        assert proc.wait(600) == 0, out.read_text()[-4000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = out.read_text()
    assert "week 2013-01-08: ingest curated" in text and "stopped the Airflow processes" in text

    with sqlite3.connect(home / "airflow" / "airflow.db") as db:
        runs = db.execute("SELECT run_id, run_type, state, start_date, end_date FROM dag_run "
                          "WHERE dag_id = 'flights_delay__ingest' ORDER BY logical_date").fetchall()  # fmt: skip
        paused = db.execute(
            "SELECT dag_id FROM dag WHERE is_paused = 0 AND dag_id LIKE 'flights_delay%'"
        ).fetchall()
    assert [(r[1], r[2]) for r in runs] == [("backfill", "success")] * 2, runs
    assert all(r[3] and r[3] >= "2026" for r in runs), (
        "runs carry real start dates, not 2013"
    )  # real durations
    assert not paused, f"the demo left DAGs unpaused: {paused}"
    logs = home / "airflow" / "logs" / "dag_id=flights_delay__ingest" / f"run_id={runs[0][0]}"
    validate_log = next(logs.glob("task_id=validate/attempt=1.log")).read_text()
    assert "expectations passed" in validate_log  # the task's own log, as the UI shows it

    # a second call continues on the same state, and Ctrl-C stops everything it started
    proc = demo(home, 3, out)
    try:
        deadline = time.monotonic() + 300
        while "week 2013-01-08" not in out.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, out.read_text()[-4000:]
            time.sleep(1)
        started = descendants(proc.pid)
        assert any("scheduler" in " ".join(p.cmdline()) for p in started)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(120) == 130, out.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    time.sleep(1)
    assert not [p for p in started if p.is_running() and p.status() != "zombie"], "processes left behind"
    assert "interrupted" in out.read_text()
