"""A small client of Airflow's REST API for the tests that run real Airflow servers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import requests


class AirflowApi:
    """Logged in as ``admin``; ``diagnose()`` adds context (e.g. a scheduler log) to timeouts."""

    def __init__(self, base: str, password: str, diagnose: Callable[[], str] = lambda: ""):
        self.base, self.diagnose = base, diagnose
        r = requests.post(f"{base}/auth/token", json={"username": "admin", "password": password}, timeout=30)
        r.raise_for_status()
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Bearer {r.json()['access_token']}"

    def get(self, path: str, **kw):
        return self.s.get(f"{self.base}/api/v2{path}", timeout=30, **kw)

    def unpause(self, dag_id: str) -> None:
        assert self.s.patch(f"{self.base}/api/v2/dags/{dag_id}", json={"is_paused": False}, timeout=30).ok

    def trigger(self, dag_id: str, run_id: str, conf: dict) -> str:
        r = self.s.post(f"{self.base}/api/v2/dags/{dag_id}/dagRuns", timeout=30,
                        json={"dag_run_id": run_id, "logical_date": None, "conf": conf})  # fmt: skip
        assert r.status_code == 200, r.text
        return run_id

    def tis(self, dag_id: str, run_id: str) -> dict[str, dict]:
        r = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti for ti in r.json()["task_instances"]}

    def wait_ti(self, dag_id: str, run_id: str, task_id: str, states: set[str], timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ti = self.tis(dag_id, run_id).get(task_id)
            if ti and ti["state"] in states:
                return ti
            time.sleep(0.5)
        raise AssertionError(f"{dag_id}/{run_id}/{task_id} never reached {states}: {ti}\n{self.diagnose()}")

    def log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        r = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
                     headers={"Accept": "application/json"})  # fmt: skip
        return json.dumps(r.json().get("content"))

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(3)
        raise AssertionError(
            f"{dag_id}/{run_id} still running: {self.tis(dag_id, run_id)}\n{self.diagnose()}"
        )
