"""`make demo` through Airflow's scheduler, then what a user sees of it.

One demo state for the module: a fast copy of the demo pipeline (2-week training windows, a low
drift threshold, e-mail notifications to a real local SMTP server; outcomes a week late, as
shipped) replayed for six weeks, so it
holds every kind of run: backfilled ingestion and drift checks, a manual bootstrap training and a
training triggered by the drift check. On it: the runs and their logs, the notifications, a real
browser walk through the Airflow and MLflow UIs, a second call that continues, and Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.process_helpers import ctrl_c_enabled
from tests.smtp_inbox import smtp_server

ROOT = Path(__file__).resolve().parents[2]
NAME = "flights_quick"
pytestmark = pytest.mark.e2e


def demo_env(home: Path, pipelines: Path, smtp_uri: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CT_", "MLFLOW"))}
    env.update(CT_HOME=str(home), CT_PIPELINES_DIR=str(pipelines), PYTHONPATH=str(ROOT), MLFLOW_DISABLE_TELEMETRY="true",
               GX_ANALYTICS_ENABLED="False", AIRFLOW_HOME=str(home / "airflow"), AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
               AIRFLOW__CORE__LOAD_EXAMPLES="False", AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
               AIRFLOW_CONN_SMTP_TEST=smtp_uri, MLFLOW_CONFIGURE_LOGGING="false",
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")  # fmt: skip
    return env


def demo(env: dict, weeks: int, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "scripts" / "demo.py"), "--weeks", str(weeks), "--pipeline", NAME],
                            env=env, stdout=out.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=ctrl_c_enabled)  # fmt: skip


def descendants(pid: int):
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.fixture(scope="module")
def demo_state(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    raw = yaml.safe_load((ROOT / "include" / "pipelines" / "flights_delay.yaml").read_text())
    raw["name"] = NAME
    assert raw["labels"]["delay_days"] == 7  # as shipped: a week's outcomes arrive a week after it
    # as shipped: a calendar (every 6 weeks, beyond these weeks) and the accepted challenger refit
    assert raw["drift"]["calendar_intervals"] == 6 and raw["training"]["refit_on_holdout"] is True
    # 2-week training, 1-week holdout: the first champion (data up to Jan 29) waits for the
    # outcomes of its Jan 15-22 holdout, which arrive with the week after it
    raw["training"].update(train_days=14, holdout_days=7, min_train_rows=1000)
    raw["drift"]["share_threshold"] = 0.05  # January's weather drifts week to week: week 4 triggers
    raw["notifications"] = {"email": ["ml-team@example.com"], "smtp_conn_id": "smtp_test"}
    (tmp / "pipelines").mkdir()
    (tmp / "pipelines" / f"{NAME}.yaml").write_text(yaml.safe_dump(raw))
    with smtp_server() as (inbox, uri):
        env = demo_env(tmp / "home", tmp / "pipelines", uri)
        out = tmp / "demo.out"
        proc = demo(env, 6, out)
        try:
            assert proc.wait(900) == 0, out.read_text()[-4000:]
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        yield {"home": tmp / "home", "env": env, "out": out, "inbox": inbox, "tmp": tmp}


def runs(home: Path, dag: str) -> list[tuple]:
    with sqlite3.connect(home / "airflow" / "airflow.db") as db:
        return db.execute("SELECT run_id, run_type, state, start_date FROM dag_run WHERE dag_id = ? "
                          "ORDER BY logical_date, run_id", (f"{NAME}__{dag}",)).fetchall()  # fmt: skip


def task_log(home: Path, dag: str, run_id: str, task: str) -> list[dict]:
    path = (
        home
        / "airflow"
        / "logs"
        / f"dag_id={NAME}__{dag}"
        / f"run_id={run_id}"
        / f"task_id={task}"
        / "attempt=1.log"
    )
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_demo_runs_through_the_scheduler_with_logs_that_explain_themselves(demo_state):
    home, text = demo_state["home"], demo_state["out"].read_text()
    assert "stopped the Airflow processes" in text
    ingest, drift, train = runs(home, "ingest"), runs(home, "drift_check"), runs(home, "train")
    assert [(r[1], r[2]) for r in ingest] == [("backfill", "success")] * 6, ingest
    assert [(r[1], r[2]) for r in drift] == [("backfill", "success")] * 2, drift
    assert {(r[0], r[1], r[2]) for r in train} == {
        ("manual__bootstrap_2013-01-22--2013-01-28", "manual", "success"),
        (f"drift__{drift[0][0]}", "operator_triggered", "success"),  # the run the drift check created
    }
    assert all(r[3] >= "2026" for r in ingest + drift + train), "runs carry real start dates, not 2013"
    # the week after the first champion is scored by it, before its drift check retrains
    score = runs(home, "score")
    assert [(r[0], r[1], r[2]) for r in score] == [
        ("manual__score_2013-01-29--2013-02-04", "manual", "success"),
        ("manual__score_2013-02-05--2013-02-11", "manual", "success")
    ], score  # fmt: skip
    # each week's outcomes are collected with the next week's inputs, by a run of the outcomes DAG
    outcomes = runs(home, "outcomes")
    assert [(r[1], r[2]) for r in outcomes] == [("backfill", "success")] * 5, outcomes
    assert len(list((home / "data" / NAME / "outcomes").glob("*/batch.parquet"))) == 5
    assert "week 2013-01-01--2013-01-07: ingest curated; no champion yet" in text  # nothing due yet
    assert (
        "week 2013-01-29--2013-02-04: ingest curated; outcomes 6061 of 01-22--01-28; scored by v2; drift share"
        in text
    )
    table_row = next(
        line for line in text.splitlines() if line.split("] ")[-1].startswith("2013-01-29--2013-02-04 ")
    )
    assert table_row.split("] ")[-1].split()[2] == "v2", table_row  # "scored by": v1 as it serves, refit (v2)
    # the row says why it retrained; a week later the drift check judges the week v1 served, its
    # outcomes having arrived (one week after it), though v2 is champion by then
    import re

    assert re.search(
        r"week 2013-01-29--2013-02-04: .*retraining triggered \(.*drift share 0\.\d\d >= 0\.05", text
    ), text[-3000:]
    assert re.search(r" 3>v4 .* v4  drift share 0\.\d\d >= 0\.05", table_row), table_row  # why
    assert "realized" not in table_row  # the week before it was published before any champion: nothing served
    said = re.search(r"week 2013-02-05--2013-02-11: .*scored by v4; drift share 0\.\d\d; realized (0\.\d{4}) on "
                     r"2013-01-29--2013-02-04 "
                     r"\(v2\); retraining suppressed \(cooldown", text)  # fmt: skip
    assert said, text[-3000:]
    next_row = next(
        line for line in text.splitlines() if line.split("] ")[-1].startswith("2013-02-05--2013-02-11 ")
    )
    assert f"{said.group(1)} (01-29--02-04)" in next_row, next_row
    log = list((home / "data" / NAME / "predictions").glob("20130129*/v2.parquet"))
    assert len(log) == 1, list((home / "data" / NAME).rglob("*.parquet"))
    # Airflow's generated admin password and the per-home secrets are the owner's alone
    for secret in ("simple_auth_manager_passwords.json.generated", ".jwt_secret", ".api_secret_key"):
        assert (home / "airflow" / secret).stat().st_mode & 0o077 == 0, secret
    with sqlite3.connect(home / "airflow" / "airflow.db") as db:
        paused = db.execute(
            f"SELECT dag_id FROM dag WHERE is_paused = 0 AND dag_id LIKE '{NAME}%'"
        ).fetchall()
    assert not paused, f"the demo left DAGs unpaused: {paused}"

    # each run's note (written by the plugin's listener in the scheduler) says what it decided
    with sqlite3.connect(home / "airflow" / "airflow.db") as db:
        notes = dict(db.execute("SELECT r.run_id, n.content FROM dag_run r JOIN dag_run_note n ON n.dag_run_id = r.id "
                                "WHERE r.dag_id IN (?, ?)", (f"{NAME}__train", f"{NAME}__drift_check")).fetchall())  # fmt: skip
    assert notes["manual__bootstrap_2013-01-22--2013-01-28"].startswith(
        "v1 (serving as v2, refit on its holdout) promoted: no"
    ), notes
    assert notes[f"drift__{drift[0][0]}"].startswith("v3 (serving as v4, refit on its holdout) promoted: "), (
        notes
    )
    assert re.match(
        r"drift 2013-\d\d-\d\d--2013-\d\d-\d\d: RETRAIN \(.*drift share 0\.\d\d >= 0\.05",
        notes[drift[0][0]],
    ), notes
    assert "suppressed" in notes[drift[1][0]] and "cooldown" in notes[drift[1][0]], notes

    # the drift check's log leads with the table and the decision: the first screen shows them
    lines = task_log(home, "drift_check", drift[0][0], "check_drift")
    first_screen = "\n".join(str(e["event"]) for e in lines[:12])
    assert "drift share" in first_screen and "decision: RETRAIN" in first_screen
    # MLflow's and the libraries' INFO lines are INFO, not ERROR; no warning floods
    for dag, run_id in (("train", train[0][0]), ("train", train[1][0]), ("drift_check", drift[0][0])):
        for task in ("train", "evaluate", "promote") if dag == "train" else ("check_drift",):
            events = task_log(home, dag, run_id, task)
            errors = [e["event"] for e in events if e["level"] in ("error", "critical")]
            warnings = [e for e in events if e["level"] == "warning"]
            assert not errors and len(warnings) <= 2 and len(events) < 60, (task, errors, warnings[:3])
    assert any(
        "MLflow: Created version" in str(e["event"]) for e in task_log(home, "train", train[0][0], "train")
    )


def test_promotions_and_drift_triggered_retraining_are_mailed(demo_state):
    inbox = demo_state["inbox"]
    mails = {m["Subject"]: inbox.text(m) for m in inbox.wait(3)}
    promoted = [s for s in mails if "promoted to champion" in s]
    drifted = [s for s in mails if "retraining triggered" in s]
    assert len(promoted) == 2 and len(drifted) == 1, list(mails)
    assert (
        "v1 (serving as its refit v2) promoted to champion (roc_auc 0." in promoted[0] or "v1 " in promoted[1]
    )
    body = mails[drifted[0]]
    assert "Drift report: http://localhost:8080/ct-loop/files/flights_quick__drift_check/drift/" in body
    assert "Drifted columns (" in body and "/dags/flights_quick__train/runs/drift__backfill" in body
    second = mails[next(s for s in promoted if "v3 (serving as its refit v4)" in s)]
    assert "vs " in second and "for v2" in second and "#/models/flights_quick_model/versions/4" in second


def test_a_browser_sees_the_story(demo_state):
    from tests.e2e.browser import ui_walk

    seen = ui_walk(demo_state["home"], demo_state["env"], NAME, demo_state["tmp"])
    print("\n[browser] " + "\n[browser] ".join(seen))


def test_a_second_call_continues_and_ctrl_c_stops_everything(demo_state):
    out = demo_state["tmp"] / "again.out"
    proc = demo(demo_state["env"], 7, out)
    try:
        deadline = time.monotonic() + 300
        while "week 2013-01-29--2013-02-04" not in out.read_text():
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
    text = out.read_text()
    assert (
        "interrupted" in text and "week 2013-01-08--2013-01-14: ingest curated" in text
    )  # earlier weeks reported, not redone
    assert [(r[1], r[2]) for r in runs(demo_state["home"], "ingest")][:6] == [("backfill", "success")] * 6
