"""`make up` as a user starts it, on ports of its own: every listener on loopback, a task runs and
logs there, everything gone after Ctrl-C (pressed twice, too)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.process_helpers import ctrl_c_enabled

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(pid: int):
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def listeners(procs) -> set[tuple[str, int, str]]:
    import psutil

    found = set()
    for p in procs:
        try:
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN:
                    found.add((c.laddr.ip, c.laddr.port, p.name()))
        except psutil.Error:
            continue
    return found


def both_uis_render(printed: str, api: int, ml: int) -> None:
    """The links `make up` printed open in a browser on its non-default ports: Airflow logs in
    with the printed password; MLflow's printed link (its --allowed-hosts set from the port) opens
    in the model-training mode, and its experiments list renders."""
    import re

    from tests.e2e.browser import CHROMIUM, SHOTS, logged_in

    if not CHROMIUM.exists():
        if os.environ.get("CT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing (CT_REQUIRE_BROWSER=1): sudo apt-get install -y chromium")
        return
    from playwright.sync_api import expect, sync_playwright

    password = re.search(r"password: (\S+)", printed).group(1)
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser, page = logged_in(pw, f"http://localhost:{api}", password)
        expect(page.get_by_role("link", name="Dags").first).to_be_visible()
        page.screenshot(path=SHOTS / "12-make-up-airflow.png")
        printed_mlflow = re.search(r"MLflow UI +(\S+)", printed).group(1)
        assert printed_mlflow.startswith(f"http://localhost:{ml}/"), printed_mlflow
        page.goto(printed_mlflow)  # opens in the model-training mode: the registry is in the side nav
        expect(page.get_by_text("Model registry", exact=True).first).to_be_visible()
        page.screenshot(path=SHOTS / "13-make-up-mlflow.png")
        page.goto(f"http://localhost:{ml}/#/experiments")
        expect(page.get_by_text("Default", exact=True).first).to_be_visible()  # the experiments list
        browser.close()


def a_task_runs_and_logs(printed: str, api: int) -> None:
    """On the non-default port a task runs (its process reaches the Execution API there) and its
    log opens: the rollback DAG, which fails at once saying there is no champion yet."""
    import re

    from include.orchestration.local_airflow import AirflowApi

    password = re.search(r"password: (\S+)", printed).group(1)
    rest = AirflowApi(f"http://127.0.0.1:{api}", password)
    deadline = time.monotonic() + 120
    while rest.get("/dags/flights_delay__rollback").status_code != 200:  # parsed by then
        assert time.monotonic() < deadline, "the DAG processor did not parse the DAGs"
        time.sleep(2)
    rest.unpause("flights_delay__rollback")
    run = rest.trigger("flights_delay__rollback", "manual__up_port_test", {"reason": "make up port test"})
    assert rest.wait_run("flights_delay__rollback", run, timeout=180) == "failed"
    log = rest.log("flights_delay__rollback", run, "rollback", 1)
    assert "has no champion" in log, log[-2000:]
    task_log_in_browser(password, api, run)


def task_log_in_browser(password: str, api: int, run: str) -> None:
    """The task's page on the non-default port shows its log, as a user opens it."""
    from tests.e2e.browser import CHROMIUM, SHOTS, logged_in

    if not CHROMIUM.exists():
        if os.environ.get("CT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing (CT_REQUIRE_BROWSER=1): sudo apt-get install -y chromium")
        return
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser, page = logged_in(pw, f"http://localhost:{api}", password)
        page.goto(f"http://localhost:{api}/dags/flights_delay__rollback/runs/{run}/tasks/rollback")
        expect(page.get_by_text("has no champion").first).to_be_visible(timeout=30_000)
        page.screenshot(path=SHOTS / "14-make-up-task-log.png")
        browser.close()


def test_make_up_listens_on_loopback_only_and_stops_on_ctrl_c(tmp_path):
    import psutil

    api, ml = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CT_", "MLFLOW"))}
    env.update(CT_HOME=str(tmp_path / "home"), AIRFLOW__API__PORT=str(api), CT_MLFLOW_PORT=str(ml))
    out = tmp_path / "up.out"
    with out.open("w") as fh:
        proc = subprocess.Popen(["make", "--no-print-directory", "up"], cwd=ROOT, env=env, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=ctrl_c_enabled)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while "Ctrl-C stops everything" not in out.read_text():
            assert proc.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(1)
        assert f"http://localhost:{api}" in out.read_text() and f"http://localhost:{ml}" in out.read_text()
        deadline = time.monotonic() + 90  # both servers listening (MLflow can bind later, on a busy machine)
        while True:
            time.sleep(5)  # the scheduler's and triggerer's children are up by now
            procs = tree(proc.pid)
            bound = listeners(procs)
            if {port for _, port, _ in bound} >= {api, ml} or time.monotonic() > deadline:
                break
        assert {port for _, port, _ in bound} >= {api, ml}, bound
        assert all(ip == "127.0.0.1" for ip, _, _ in bound), f"listening beyond loopback: {bound}"
        # links are built from the ports actually served, in every component that builds them
        checked = 0
        for p in procs:
            try:  # a short-lived child (a task, a parse) may be gone by now
                cmdline, seen = " ".join(p.cmdline()), p.environ()
            except (psutil.Error, OSError):
                continue
            # (the API server's process title overwrites its environment block: unreadable, {})
            if seen and any(c in cmdline for c in ("scheduler", "dag-processor")):
                checked += 1
                assert seen.get("CT_AIRFLOW_UI_URL") == f"http://localhost:{api}", cmdline
                assert seen.get("CT_MLFLOW_UI_URL") == f"http://localhost:{ml}", cmdline
        assert checked >= 2, f"the scheduler and the DAG processor: {checked} found in {procs}"
        both_uis_render(out.read_text(), api, ml)
        a_task_runs_and_logs(out.read_text(), api)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)  # and, impatient, a second time
        assert proc.wait(120) in (0, 2, -signal.SIGINT), out.read_text()[-3000:]  # make exits as interrupted
        assert "Stopped." in out.read_text()
        time.sleep(1)
        assert not [p for p in procs if p.is_running() and p.status() != "zombie"], "left behind"
    finally:  # after a failed assertion too: nothing of `make up` outlives the test
        if proc.poll() is None:
            left = tree(proc.pid)
            os.killpg(proc.pid, signal.SIGINT)  # up.sh stops what it started
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            for p in left:
                with contextlib.suppress(psutil.Error):
                    p.kill()
