"""The docker-compose topology, run as local processes on real servers (no Docker engine needed).

Reads docker-compose.yaml itself and starts each Airflow service's command with its environment
(service host names mapped to 127.0.0.1, fresh PostgreSQL databases, a spare Redis database),
plus the MLflow server. Through the authenticated REST API it runs the demo pipeline's ingestion
and training DAGs on real flights weeks on two Celery workers, then checks Airflow, Celery and
the MLflow server. Skipped when PostgreSQL or Redis is not reachable on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from include.orchestration.local_airflow import AirflowApi, stop_groups
from tests.factories import demo_yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PIPELINE = "flights_scaleout"
# Faults are found and retried in seconds rather than minutes (the defaults: a 5-minute heartbeat
# timeout, a 60-second retry delay, 7 HTTP retries); the mechanisms are the defaults' own.
FAST_FAULTS = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    "CT_RETRY_DELAY_SECONDS": "15",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}
pytestmark = [pytest.mark.scaleout, pytest.mark.e2e]


def reachable(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unused_redis_db() -> int:
    """A Redis database that holds nothing and that no client has selected: a Celery worker left
    over from another run, listening on a shared database, would take this stack's tasks."""
    import redis

    busy = {int(c.get("db", 0)) for c in redis.Redis(host="127.0.0.1", port=6379).client_list()}
    for db in range(7, 16):
        if db not in busy and not redis.Redis(host="127.0.0.1", port=6379, db=db).dbsize():
            return db
    raise AssertionError(f"no unused Redis database among 7-15 (in use: {sorted(busy)})")


def pg(sql: str, dbname: str = "postgres") -> None:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=dbname)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def pg_exists(sql: str) -> bool:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    with conn, conn.cursor() as cur:
        cur.execute(sql)
        found = cur.fetchone() is not None
    conn.close()
    return found


class Stack:
    def __init__(self, tmp: Path):
        sys.path.insert(0, str(ROOT / "scripts"))
        from gen_env import generate

        self.tmp = tmp
        self.compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
        self.api, self.ml, self.scheduler_health = free_port(), free_port(), free_port()
        # the published ports (compose's AIRFLOW_PORT/MLFLOW_PORT): every link is built from them
        self.secrets = {**generate(), "PUBLIC_HOST": "127.0.0.1", "AIRFLOW_PORT": str(self.api),
                        "MLFLOW_PORT": str(self.ml)}  # fmt: skip
        suffix = uuid.uuid4().hex[:8]
        self.dbs = {"airflow": f"ct_test_airflow_{suffix}", "mlflow": f"ct_test_mlflow_{suffix}"}
        self.redis_db = unused_redis_db()
        self.procs: dict[str, subprocess.Popen] = {}
        self.started: dict[str, tuple[str, list[str] | None, list[str] | None]] = {}
        self.created_roles: list[str] = []

    # -- compose -> local processes ------------------------------------------------------
    def resolve(self, text: str) -> str:
        def var(m: re.Match) -> str:
            name, op, arg = m.group(1), m.group(2) or "", m.group(3) or ""
            if name in self.secrets:
                return self.secrets[name]
            if op == ":-":
                return arg
            raise KeyError(f"{name} is required by docker-compose.yaml")

        text = re.sub(r"(?<!\$)\$\{([A-Z0-9_]+)(:[?-])?([^}]*)\}", var, text).replace("$$", "$")
        mapping = {
            "@postgres:5432/airflow": f"@127.0.0.1:5432/{self.dbs['airflow']}",
            "@postgres:5432/mlflow": f"@127.0.0.1:5432/{self.dbs['mlflow']}",
            "redis://redis:6379/0": f"redis://127.0.0.1:6379/{self.redis_db}",
            "http://airflow-apiserver:8080": f"http://127.0.0.1:{self.api}",
            "http://mlflow:5000": f"http://127.0.0.1:{self.ml}",
            "/opt/airflow/data": str(self.tmp / "data"),
            "/opt/airflow/logs": str(self.tmp / "logs"),
            "/opt/airflow/config": str(self.tmp / "config"),
            "/opt/airflow/ct-home": str(self.tmp / "ct-home"),
            "/mlflow/artifacts": str(self.tmp / "mlflow-artifacts"),
            "/opt/airflow/mlflow_basic_auth.ini": str(self.tmp / "mlflow_basic_auth.ini"),
        }
        for old, new in mapping.items():
            text = text.replace(old, new)
        return text

    def env(self, service: str) -> dict[str, str]:
        svc = self.compose["services"][service]
        base = {
            k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CT_", "MLFLOW", "PYTEST"))
        }
        env = {**base, **{k: self.resolve(str(v)) for k, v in (svc.get("environment") or {}).items()}}
        env.update(
            AIRFLOW_HOME=str(self.tmp / "airflow"),  # the image's /opt/airflow
            AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
            AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
            PYTHONPATH=str(ROOT),
            PATH=f"{BIN}:{os.environ['PATH']}",
            AIRFLOW__API__HOST="127.0.0.1",  # a published port on loopback
            AIRFLOW__API__PORT=str(self.api),
            AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST="127.0.0.1",
            AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT=str(self.scheduler_health),
            CT_PIPELINES_DIR=str(self.tmp / "pipelines"),  # a small copy of the demo pipeline
            **FAST_FAULTS,
        )
        return env

    def command(self, service: str) -> list[str]:
        svc = self.compose["services"][service]
        cmd = svc["command"]
        cmd = [self.resolve(c) for c in cmd] if isinstance(cmd, list) else shlex.split(self.resolve(cmd))
        entry = svc.get("entrypoint")
        if entry == []:
            return cmd
        if entry:
            return [entry if isinstance(entry, str) else entry[0], *cmd]
        return ["airflow", *cmd]  # the image's entrypoint

    def start(self, name: str, service: str, extra: list[str] | None = None, cmd: list[str] | None = None):
        self.started[name] = (service, extra, cmd)
        log = open(self.tmp / f"{name}.log", "a")  # noqa: SIM115 (closed with the process)
        self.procs[name] = subprocess.Popen(
            [*(cmd or self.command(service)), *(extra or [])], env=self.env(service), stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, cwd=self.tmp,
        )  # fmt: skip

    def up(self) -> None:
        for d in (
            "data",
            "logs",
            "config",
            "ct-home",
            "mlflow-artifacts",
            "mlflow-auth",
            "airflow",
            "pipelines",
        ):
            (self.tmp / d).mkdir()
        ini = (ROOT / "docker" / "mlflow_basic_auth.ini").read_text()  # the mounted file, its store here
        (self.tmp / "mlflow_basic_auth.ini").write_text(
            ini.replace("/mlflow/auth", str(self.tmp / "mlflow-auth"))
        )
        raw = demo_yaml()
        raw["name"] = PIPELINE
        raw["schedule"].update(ingest=None, drift_check=None, train=None)
        raw["training"].update(train_days=14, holdout_days=7, min_train_rows=1000)
        (self.tmp / "pipelines" / f"{PIPELINE}.yaml").write_text(yaml.safe_dump(raw))
        for role, db in self.dbs.items():
            if not pg_exists(f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'"):
                pg(f"CREATE ROLE {role} LOGIN")
                self.created_roles.append(role)
            pg(f"CREATE DATABASE {db} OWNER {role}")
        init = subprocess.run(self.command("airflow-init"), env=self.env("airflow-init"), cwd=self.tmp,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert init.returncode == 0, init.stdout[-3000:] + init.stderr[-3000:]
        ml = [
            c.replace("0.0.0.0", "127.0.0.1").replace(":5000", f":{self.ml}") for c in self.command("mlflow")
        ]
        ml[ml.index("--port") + 1] = str(self.ml)
        self.start("mlflow", "mlflow", cmd=ml)
        self.start("apiserver", "airflow-apiserver")
        self.start("scheduler", "airflow-scheduler")
        self.start("dag-processor", "airflow-dag-processor")
        self.start("triggerer", "airflow-triggerer")
        for i in (1, 2):  # two Celery workers on one machine, told apart by their Celery hostname
            self.start(f"worker{i}", "airflow-worker", extra=["--celery-hostname", f"worker{i}@%h"])
        self.wait(f"http://127.0.0.1:{self.api}/api/v2/monitor/health", "apiserver")
        self.wait(f"http://127.0.0.1:{self.ml}/health", "mlflow")
        self.wait(
            f"http://127.0.0.1:{self.scheduler_health}/health", "scheduler"
        )  # what compose's healthcheck calls

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal the component's whole process group (a container or machine going away)."""
        proc = self.procs[name]
        os.killpg(proc.pid, sig)
        proc.wait(60)

    def restart(self, name: str) -> None:
        self.start(name, *self.started[name])

    def wait(self, url: str, name: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.procs[name].poll() is None, f"{name} exited:\n{self.tail(name)}"
            try:
                if requests.get(url, timeout=3).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(2)
        raise AssertionError(f"{name} not healthy after {timeout}s:\n{self.tail(name)}")

    def secrets_on_command_lines(self, secrets: list[str]) -> list[str]:
        """Command lines (of every process started and its children) that contain a secret."""
        import psutil

        found = []
        for p in self.procs.values():
            try:
                procs = [psutil.Process(p.pid), *psutil.Process(p.pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for proc in procs:
                try:
                    line = " ".join(proc.cmdline())
                except psutil.Error:
                    continue
                found += [line for s in secrets if s in line]
        return found

    def tail(self, name: str, n: int = 4000) -> str:
        return (self.tmp / f"{name}.log").read_text()[-n:]

    def down(self) -> None:
        stop_groups(self.procs.values())
        for db in self.dbs.values():
            pg(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        for role in self.created_roles:
            pg(f"DROP ROLE IF EXISTS {role}")
        import redis

        redis.Redis(host="127.0.0.1", port=6379, db=self.redis_db).flushdb()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if not (reachable(5432) and reachable(6379)):
        pytest.skip("needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (see docs/operations.md)")
    s = Stack(tmp_path_factory.mktemp("stack"))
    try:
        s.up()
        yield s
    finally:
        s.down()
    leftovers = [n for n, p in s.procs.items() if p.poll() is None]
    assert not leftovers, f"processes still running: {leftovers}"


def Api(stack: Stack) -> AirflowApi:
    return AirflowApi(f"http://127.0.0.1:{stack.api}", stack.secrets["AIRFLOW_ADMIN_PASSWORD"],
                      diagnose=lambda: stack.tail("scheduler"))  # fmt: skip


def test_compose_stack_runs_the_pipeline_on_celery(stack):
    api = Api(stack)
    assert requests.get(f"{api.base}/api/v2/dags", timeout=10).status_code == 401  # auth is on
    ingest, train = f"{PIPELINE}__ingest", f"{PIPELINE}__train"
    deadline = time.monotonic() + 180
    # each DAG file is parsed on its own, in the dag-processor's order (by mtime: the same for every
    # file of a fresh clone): wait for every DAG the test unpauses, not only one of them
    while any(api.get(f"/dags/{dag_id}").status_code != 200 for dag_id in (ingest, train)):
        assert time.monotonic() < deadline, stack.tail("dag-processor")
        time.sleep(2)
    for dag_id in (ingest, train):
        api.unpause(dag_id)

    runs = [api.trigger(ingest, f"week_{d}", {"batch_start": f"2013-01-{d}"}) for d in ("01", "08", "15")]
    for run in runs:
        assert api.wait_run(ingest, run) == "success", stack.tail("worker1") + stack.tail("worker2")
    run = api.trigger(train, "scaleout_train", {"reason": "scale-out test"})
    assert api.wait_run(train, run) == "success", stack.tail("worker1") + stack.tail("worker2")
    scored_week = score_by_publication(stack, api, ingest)

    executed = []
    for dag_id, run_ids in ((ingest, runs), (train, [run])):
        for rid in run_ids:
            for ti in api.get(f"/dags/{dag_id}/dagRuns/{rid}/taskInstances").json()["task_instances"]:
                if ti["state"] == "success":
                    executed.append(ti)
    assert len(executed) == 3 * 3 + 5
    assert {ti["queue"] for ti in executed} == {"default"}

    import psycopg2

    def celery_successes() -> int:
        conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname=stack.dbs["airflow"])
        with conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM celery_taskmeta WHERE status = 'SUCCESS'")
            count = cur.fetchone()[0]
        conn.close()
        return count

    deadline = time.monotonic() + 60  # a Celery task reports a few seconds after its Airflow task
    while celery_successes() < len(executed) and time.monotonic() < deadline:
        time.sleep(2)
    assert celery_successes() >= len(executed)  # every task went through Celery
    worker_logs = {w: stack.tail(w, 10**7) for w in ("worker1", "worker2")}
    assert all(" ready." in log for log in worker_logs.values()), "a Celery worker never became ready"
    received = sum(
        len(re.findall(r"Task execute_workload\[[0-9a-f-]+\] received", log)) for log in worker_logs.values()
    )
    assert received >= len(executed), (
        f"Celery workers received {received} tasks for {len(executed)} task instances"
    )

    ml = f"http://127.0.0.1:{stack.ml}/api/2.0/mlflow"
    login = ("admin", stack.secrets["MLFLOW_ADMIN_PASSWORD"])
    model = requests.get(
        f"{ml}/registered-models/get", params={"name": f"{PIPELINE}_model"}, auth=login, timeout=30
    ).json()
    aliases = {a["alias"]: a["version"] for a in model["registered_model"].get("aliases", [])}
    assert "champion" in aliases
    mv = requests.get(f"{ml}/model-versions/get", params={"name": f"{PIPELINE}_model", "version": aliases["champion"]},
                      auth=login, timeout=30).json()["model_version"]  # fmt: skip
    # links come from the ports compose publishes (AIRFLOW_PORT/MLFLOW_PORT), not 8080/5000
    tags = {t["key"]: t["value"] for t in mv.get("tags", [])}
    assert tags["decision.run"].startswith(f"http://127.0.0.1:{stack.api}/dags/{train}/runs/"), tags
    links = api.get(f"/dags/{train}/dagRuns/{run}/taskInstances/evaluate/links").json()["extra_links"]
    assert links["MLflow run"].startswith(f"http://127.0.0.1:{stack.ml}/#/experiments/"), links
    assert links["Model version"].startswith(f"http://127.0.0.1:{stack.ml}/#/models/{PIPELINE}_model/"), links
    # the scheduler's listener wrote the run's outcome as its note (the run list's Note button)
    note = api.get(f"/dags/{train}/dagRuns/{run}").json()["note"]
    assert note and note.startswith(f"v{aliases['champion']} promoted: "), note
    # the registry is closed to anyone without the login: nobody else can move the champion
    move = {"name": f"{PIPELINE}_model", "alias": "champion", "version": "1"}
    for creds in (None, ("admin", "wrong-password")):
        r = requests.post(f"{ml}/registered-models/alias", json=move, auth=creds, timeout=30)
        assert r.status_code == 401, r.text
    assert (
        requests.get(
            f"{ml}/registered-models/get", params={"name": f"{PIPELINE}_model"}, timeout=30
        ).status_code
        == 401
    )
    again = requests.get(
        f"{ml}/registered-models/get", params={"name": f"{PIPELINE}_model"}, auth=login, timeout=30
    )
    assert {a["alias"]: a["version"] for a in again.json()["registered_model"]["aliases"]} == aliases
    files = (
        requests.get(f"{ml}/artifacts/list", params={"run_id": mv["run_id"]}, auth=login, timeout=30)
        .json()
        .get("files", [])
    )
    assert {"decision.json", "feature_importance.png"} <= {f["path"] for f in files}
    stored = list((stack.tmp / "mlflow-artifacts").rglob("*"))
    assert any(p.name == "decision.json" for p in stored)  # proxied into the server's artifact store

    assert not list((stack.tmp / "ct-home").rglob("*.db")), "something used the embedded MLflow SQLite store"
    assert not (stack.tmp / "airflow" / "airflow.db").exists(), (
        "something used the embedded Airflow SQLite DB"
    )
    secrets = [
        v for k, v in stack.secrets.items() if k.endswith(("PASSWORD", "SECRET", "KEY")) and len(v) > 8
    ]
    assert not stack.secrets_on_command_lines(secrets), "a secret is visible in a process command line (ps)"
    curated = list((stack.tmp / "data" / PIPELINE / "curated").glob("*/batch.parquet"))
    assert len(curated) == 4
    assert scored_week["model_version"] == aliases["champion"], scored_week
    json.dumps(executed)  # REST payloads are plain JSON


def score_by_publication(stack: Stack, api: AirflowApi, ingest: str) -> dict:
    """Data-aware scoring on the real scheduler: a week published after the first champion
    starts an asset-triggered run of the scoring DAG (no trigger by hand), which scores it with
    the champion into the prediction log."""
    import pandas as pd

    score = f"{PIPELINE}__score"
    api.unpause(score)
    try:
        run = api.trigger(ingest, "week_22", {"batch_start": "2013-01-22"})
        assert api.wait_run(ingest, run) == "success", stack.tail("worker1") + stack.tail("worker2")
        deadline, found = time.monotonic() + 180, None
        while found is None:
            assert time.monotonic() < deadline, stack.tail("scheduler")
            runs = api.get(f"/dags/{score}/dagRuns", params={"run_type": "asset_triggered"}).json()[
                "dag_runs"
            ]
            for r in runs:
                if api.wait_run(score, r["dag_run_id"]) == "success":
                    out = api.xcom(score, r["dag_run_id"], "score")
                    if any(b["partition"].startswith("20130122") for b in out["batches"]):
                        found = out
            time.sleep(2)
    finally:
        api.pause(score)
    batch = next(b for b in found["batches"] if b["partition"].startswith("20130122"))
    log = pd.read_parquet(batch["uri"])
    curated = pd.read_parquet(
        stack.tmp / "data" / PIPELINE / "curated" / batch["partition"] / "batch.parquet"
    )
    assert len(log) == len(curated) and set(log["model_version"]) == {found["model_version"]}, batch
    return found


# -- faults, on the same stack (after the run above: four curated weeks and a champion) --------------


class Registry:
    """The MLflow server's REST API, logged in as the workers are."""

    def __init__(self, stack: Stack):
        self.base = f"http://127.0.0.1:{stack.ml}/api/2.0/mlflow"
        self.auth = ("admin", stack.secrets["MLFLOW_ADMIN_PASSWORD"])

    def champion(self) -> str:
        r = requests.get(f"{self.base}/registered-models/get", params={"name": f"{PIPELINE}_model"},
                         auth=self.auth, timeout=30)  # fmt: skip
        return {a["alias"]: a["version"] for a in r.json()["registered_model"]["aliases"]}["champion"]

    def versions_of_run(self, airflow_run_id: str) -> list[str]:
        r = requests.get(f"{self.base}/model-versions/search", params={"filter": f"name = '{PIPELINE}_model'"},
                         auth=self.auth, timeout=30)  # fmt: skip
        return [
            v["version"] for v in r.json()["model_versions"]
            if {t["key"]: t["value"] for t in v.get("tags", [])}.get("airflow.run_id") == airflow_run_id
        ]  # fmt: skip


def task_process(stack: Stack, ti_id: str) -> tuple[str, int] | None:
    """(worker name, pid) of the process running task instance ``ti_id``: 'airflow worker -- <id>'."""
    import psutil

    for name in ("worker1", "worker2"):
        proc = stack.procs[name]
        if proc.poll() is not None:
            continue
        for child in psutil.Process(proc.pid).children(recursive=True):
            try:
                if ti_id in " ".join(child.cmdline()):
                    return name, child.pid
            except psutil.Error:
                continue
    return None


@pytest.fixture
def report(capsys):
    """Timings and outcomes go to the test output (also when the test passes)."""

    def out(line: str) -> None:
        with capsys.disabled():
            print(f"\n[fault] {line}", flush=True)

    return out


TRAIN = f"{PIPELINE}__train"


def test_worker_killed_mid_train_is_retried_on_the_other_worker(stack, report):
    api, registry = Api(stack), Registry(stack)
    t0 = time.monotonic()
    run = api.trigger(TRAIN, "fault_worker_killed", {"reason": "fault test: worker killed"})
    ti = api.wait_ti(TRAIN, run, "train", {"running"})
    deadline = time.monotonic() + 60
    while (found := task_process(stack, ti["id"])) is None:
        assert time.monotonic() < deadline, "no worker process runs the train task"
        time.sleep(0.2)
    victim, pid = found
    stack.kill(victim)  # the worker, its pool and the task process: a machine gone
    killed_at = time.monotonic() - t0
    assert api.wait_run(TRAIN, run) == "success", stack.tail("scheduler")
    done_at = time.monotonic() - t0
    train = api.tis(TRAIN, run)["train"]
    survivor = "worker2" if victim == "worker1" else "worker1"
    assert train["try_number"] >= 2, train  # try 1 died with its worker
    assert ti["id"] in stack.tail(survivor, 10**7) or train["try_number"] >= 2
    versions = registry.versions_of_run(run)
    assert len(versions) == 1, f"model versions registered by {run}: {versions}"
    report(
        f"worker killed mid-train: {victim} (task pid {pid}) SIGKILLed {killed_at:.0f}s after the trigger; "
        f"train succeeded on try {train['try_number']} on {survivor}; run done {done_at:.0f}s after the trigger; "
        f"model versions for the run: {versions}"
    )
    stack.restart(victim)


def test_tracking_server_stopped_during_evaluate_then_back(stack, report):
    api, registry = Api(stack), Registry(stack)
    before = registry.champion()
    t0 = time.monotonic()
    run = api.trigger(TRAIN, "fault_mlflow_down", {"reason": "fault test: tracking server stopped"})
    api.wait_ti(TRAIN, run, "train", {"success"})
    stack.kill("mlflow", signal.SIGTERM)  # evaluate is next: it finds no tracking server
    stopped_at = time.monotonic() - t0
    failed = api.wait_ti(TRAIN, run, "evaluate", {"up_for_retry", "failed"})
    log = api.log(TRAIN, run, "evaluate", 1)
    assert f"MLflow tracking server http://127.0.0.1:{stack.ml} did not answer" in log, log[-3000:]
    stack.restart("mlflow")
    stack.wait(f"http://127.0.0.1:{stack.ml}/health", "mlflow")
    back_at = time.monotonic() - t0
    assert registry.champion() == before  # untouched while the server was gone
    assert failed["state"] == "up_for_retry"  # transient: retried, not failed
    assert api.wait_run(TRAIN, run) == "success", stack.tail("worker1") + stack.tail("worker2")
    tis = api.tis(TRAIN, run)
    outcome = "promote" if tis["promote"]["state"] == "success" else "reject"
    assert len(registry.versions_of_run(run)) == 1
    report(
        f"tracking server stopped {stopped_at:.0f}s after the trigger, before evaluate; evaluate try 1 failed naming "
        f"the server; server back at {back_at:.0f}s; evaluate succeeded on try {tis['evaluate']['try_number']}; "
        f"decision: {outcome}; champion before {before}, after {registry.champion()}; run done "
        f"{time.monotonic() - t0:.0f}s after the trigger"
    )


def test_scheduler_killed_mid_run_and_restarted(stack, report):
    api, registry = Api(stack), Registry(stack)
    t0 = time.monotonic()
    run = api.trigger(TRAIN, "fault_scheduler_killed", {"reason": "fault test: scheduler killed"})
    api.wait_ti(TRAIN, run, "train", {"running"})
    stack.kill("scheduler")
    killed_at = time.monotonic() - t0
    time.sleep(5)
    stack.restart("scheduler")
    stack.wait(f"http://127.0.0.1:{stack.scheduler_health}/health", "scheduler")
    assert api.wait_run(TRAIN, run) == "success", stack.tail("scheduler")
    tis = api.tis(TRAIN, run)
    tries = {t: ti["try_number"] for t, ti in tis.items() if ti["state"] == "success"}
    assert all(n == 1 for n in tries.values()), f"a task ran again after the scheduler restart: {tries}"
    assert len(registry.versions_of_run(run)) == 1
    report(
        f"scheduler SIGKILLed {killed_at:.0f}s after the trigger while train ran, restarted 5 s later; "
        f"run done {time.monotonic() - t0:.0f}s after the trigger; tries per task: {tries}"
    )
