"""A small client of Airflow's REST API: the demo drives Airflow with it, and so do the tests of real servers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry


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
            raise RuntimeError(
                f"cannot {'pause' if paused else 'unpause'} {dag_id}: {r.status_code} {r.text}"
            )

    def trigger(self, dag_id: str, run_id: str, conf: dict, logical_date: str | None = None) -> str:
        body = {"dag_run_id": run_id, "logical_date": logical_date, "conf": conf}
        r = self._post_while_locked(f"/dags/{dag_id}/dagRuns", body)
        if r.status_code == 409 and self.get(f"/dags/{dag_id}/dagRuns/{run_id}").status_code == 200:
            return run_id  # an earlier try went through before its answer was lost
        if r.status_code != 200:
            raise RuntimeError(f"cannot trigger {dag_id} ({run_id}): {r.status_code} {r.text}")
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
            raise RuntimeError(f"cannot backfill {dag_id} {start}..{end}: {r.status_code} {r.text}")
        return r.json()

    def close_backfill(self, backfill_id: int) -> None:
        """Mark a backfill whose runs have all finished as completed (409: it already is)."""
        r = self.s.put(f"{self.base}/api/v2/backfills/{backfill_id}/cancel", timeout=30)
        if r.status_code not in (200, 409):
            raise RuntimeError(f"cannot close backfill {backfill_id}: {r.status_code} {r.text}")

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
        raise TimeoutError(f"{dag_id}/{run_id}/{task_id} never reached {states}: {ti}\n{self.diagnose()}")

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
        raise TimeoutError(f"{dag_id}/{run_id} still running: {self.tis(dag_id, run_id)}\n{self.diagnose()}")
