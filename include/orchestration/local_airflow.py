"""A local Airflow for the demo and the tests of real servers: its processes, its REST API, its stop.

:class:`LocalAirflow` starts an api-server, a scheduler (LocalExecutor) and a dag-processor as
child process groups on the project's local state and stops them again (:func:`stop_groups`);
:class:`AirflowApi` is the small REST client that drives runs and reads back what they did.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from include.foundation.errors import PermanentError
from include.foundation.redaction import write_private

TERMINAL = ("success", "failed")


class LocalAirflowError(PermanentError):
    """The local Airflow did not start, answer or finish a run in time; the message carries the
    processes' log tails (a person reads them: repeating the same call would not help)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def home_secret(airflow_home: Path, name: str) -> str:
    """Per-home secrets shared with ``make up`` (never in git), created once."""
    path = airflow_home / f".{name}"
    if not path.exists() or not path.read_text().strip():
        write_private(path, secrets.token_urlsafe(64) + "\n")
    return path.read_text().strip()


def stop_groups(procs: Iterable[subprocess.Popen], grace: float = 30) -> None:
    """SIGTERM each child's process group, wait up to ``grace`` seconds, then SIGKILL the groups,
    also what a child forked and left behind after it exited itself (e.g. executor workers)."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.1, deadline - time.monotonic()))
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


class AirflowApi:
    """Logged in as ``admin``; ``diagnose()`` adds context (e.g. a scheduler log) to timeouts."""

    def __init__(self, base: str, password: str, diagnose: Callable[[], str] = lambda: ""):
        self.base, self.diagnose = base, diagnose
        r = requests.post(f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=30)
        r.raise_for_status()
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        # the embedded SQLite metadata DB has one writer: a request that waited out its lock
        # answers 500 ("Database error"); idempotent requests are asked again (POSTs: _post_while_locked)
        retry = Retry(total=4, backoff_factor=1, status_forcelist=(500, 502, 503),
                      allowed_methods=frozenset({"GET", "PUT", "PATCH"}), raise_on_status=False)  # fmt: skip
        self.s.mount(base, HTTPAdapter(max_retries=retry))

    def get(self, path: str, **kw):
        return self.s.get(f"{self.base}/api/v2{path}", timeout=30, **kw)

    def unpause(self, dag_id: str) -> None:
        self.pause(dag_id, False)

    def pause(self, dag_id: str, paused: bool = True) -> None:
        r = self.s.patch(f"{self.base}/api/v2/dags/{dag_id}", json={"is_paused": paused}, timeout=30)
        if not r.ok:
            raise LocalAirflowError(
                f"cannot {'pause' if paused else 'unpause'} {dag_id}: {r.status_code} {r.text}"
            )

    def trigger(self, dag_id: str, run_id: str, conf: dict, logical_date: str | None = None) -> str:
        body = {"dag_run_id": run_id, "logical_date": logical_date, "conf": conf}
        r = self._post_while_locked(f"/dags/{dag_id}/dagRuns", body)
        if r.status_code == 409 and self.get(f"/dags/{dag_id}/dagRuns/{run_id}").status_code == 200:
            return run_id  # an earlier try went through before its answer was lost
        if r.status_code != 200:
            raise LocalAirflowError(f"cannot trigger {dag_id} ({run_id}): {r.status_code} {r.text}")
        return run_id

    def _post_while_locked(self, path: str, body: dict, tries: int = 6):
        """POST, asked again while the embedded SQLite metadata DB is locked by another writer
        (503 "Database is locked", or 500 "Database error"): such a request changed nothing."""
        for attempt in range(tries):
            r = self.s.post(f"{self.base}/api/v2{path}", json=body, timeout=60)
            locked = r.status_code == 503 or (r.status_code == 500 and "Database error" in r.text)
            if not locked or attempt == tries - 1:
                return r
            time.sleep(2**attempt)
        return r

    def backfill(self, dag_id: str, start: str, end: str) -> dict:
        """One backfill, run by the scheduler (run type ``backfill``), one run at a time."""
        body = {
            "dag_id": dag_id,
            "from_date": start,
            "to_date": end,
            "max_active_runs": 1,
            "dag_run_conf": {},
        }
        r = self._post_while_locked("/backfills", body)
        if r.status_code != 200:
            raise LocalAirflowError(f"cannot backfill {dag_id} {start}..{end}: {r.status_code} {r.text}")
        return r.json()

    def close_backfill(self, backfill_id: int) -> None:
        """Mark a backfill whose runs have all finished as completed (409: it already is)."""
        r = self.s.put(f"{self.base}/api/v2/backfills/{backfill_id}/cancel", timeout=30)
        if r.status_code not in (200, 409):
            raise LocalAirflowError(f"cannot close backfill {backfill_id}: {r.status_code} {r.text}")

    def run_at(self, dag_id: str, logical_date: str) -> dict | None:
        """The run of ``dag_id`` at ``logical_date`` (ISO), if there is one."""
        r = self.get(
            f"/dags/{dag_id}/dagRuns",
            params={"logical_date_gte": logical_date, "logical_date_lte": logical_date},
        )
        runs = r.json().get("dag_runs", [])
        return runs[0] if runs else None

    def tis(self, dag_id: str, run_id: str) -> dict[str, dict]:
        r = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti for ti in r.json()["task_instances"]}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value"):
        """A task's XCom value (JSON), or None when it pushed none."""
        r = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}")
        if r.status_code == 404:
            return None
        r.raise_for_status()
        value = r.json()["value"]
        return json.loads(value) if isinstance(value, str) else value

    def wait_ti(self, dag_id: str, run_id: str, task_id: str, states: set[str], timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ti = self.tis(dag_id, run_id).get(task_id)
            if ti and ti["state"] in states:
                return ti
            time.sleep(0.5)
        raise LocalAirflowError(
            f"{dag_id}/{run_id}/{task_id} never reached {states}: {ti}\n{self.diagnose()}"
        )

    def log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        r = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
                     headers={"Accept": "application/json"})  # fmt: skip
        return json.dumps(r.json().get("content"))

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 600, poll: float = 3) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(poll)
        raise LocalAirflowError(
            f"{dag_id}/{run_id} still running: {self.tis(dag_id, run_id)}\n{self.diagnose()}"
        )


class LocalAirflow:
    """api-server, scheduler (LocalExecutor) and dag-processor as child process groups."""

    def __init__(self, dag_ids: list[str], say: Callable[[str], None], logs: Path, scheduler: list[str],
                 paused: tuple[str, ...] = ()):  # fmt: skip
        self.paused = paused  # unpaused only while the demo runs them
        self.home = Path(os.environ["AIRFLOW_HOME"])
        self.logs, self.scheduler = logs, scheduler  # the scheduler's command line
        self.dag_ids, self.say = dag_ids, say
        self.port = free_port()
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = {
            **os.environ,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            # runs are made by this script (backfills, triggers), not by the clock: the demo's
            # 2013 schedules would otherwise start runs for the weeks before today
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
        }

    def __enter__(self) -> AirflowApi:
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env["AIRFLOW__API_AUTH__JWT_SECRET"] = home_secret(self.home, "jwt_secret")
        self.env["AIRFLOW__API__SECRET_KEY"] = home_secret(self.home, "api_secret_key")
        self.say(f"Airflow home {self.home}; migrating the metadata DB ...")
        migrate = subprocess.run(["airflow", "db", "migrate"], env=self.env, capture_output=True, text=True)
        if migrate.returncode != 0:
            raise LocalAirflowError(
                f"airflow db migrate failed:\n{migrate.stdout[-2000:]}{migrate.stderr[-2000:]}"
            )
        self.start("api-server", ["airflow", "api-server"])
        self.start("dag-processor", ["airflow", "dag-processor"])
        self.start("scheduler", self.scheduler)
        self.say(
            f"started api-server (127.0.0.1:{self.port}), scheduler (LocalExecutor), dag-processor; logs in {self.logs}"
        )
        self.api = self.connect()
        for dag_id in self.dag_ids:
            self.api.pause(dag_id, dag_id in self.paused)
        return self.api

    def start(self, name: str, cmd: list[str]) -> None:
        log = open(self.logs / f"{name}.log", "a")  # noqa: SIM115 (closed with the process)
        self.procs[name] = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip

    def alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text()[-3000:]
                raise LocalAirflowError(f"the {name} exited ({proc.returncode}):\n{tail}")

    def connect(self, timeout: float = 300) -> AirflowApi:
        import requests

        base, deadline = f"http://127.0.0.1:{self.port}", time.monotonic() + timeout
        passwords = self.home / "simple_auth_manager_passwords.json.generated"
        api = None
        while time.monotonic() < deadline:
            self.alive()
            try:
                health = requests.get(f"{base}/api/v2/monitor/health", timeout=5).json()
                if health["scheduler"]["status"] == "healthy" and passwords.exists():
                    api = api or AirflowApi(base, json.loads(passwords.read_text())["admin"], self.diagnose)
                    if all(api.get(f"/dags/{d}").status_code == 200 for d in self.dag_ids):
                        return api
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(2)
        raise LocalAirflowError(f"Airflow did not come up in {timeout:.0f}s:\n{self.diagnose()}")

    def diagnose(self) -> str:
        return "\n".join(f"--- {n}\n" + (self.logs / f"{n}.log").read_text()[-1500:] for n in self.procs)

    def __exit__(self, *exc) -> None:
        try:
            if getattr(self, "api", None) is not None:
                for dag_id in self.dag_ids:  # as make up expects them: nothing runs on its own
                    self.api.pause(dag_id)
        except Exception as e:  # stopping must go on
            self.say(f"could not pause the DAGs again: {e}")
        stop_groups(self.procs.values())
        self.say("stopped the Airflow processes")
