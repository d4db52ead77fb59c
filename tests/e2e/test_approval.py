"""A person as the last gate before promotion (``promotion.approval: required``), end to end.

A synthetic churn pipeline with the gate on, five curated weeks. Each test runs the training DAG
(``dag.test()`` in a child process, as a worker would) against the metadata DB an Airflow API
server serves, finds the request Airflow made, and answers it the way a user would: through the
REST API (reject, with a reason), in a real browser under *Required Actions* (approve), or not at
all (the scheduler's timeout sweep applies the default: reject). Then it reads what the registry
recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import yaml

from include.foundation.settings import Settings
from include.orchestration.local_airflow import stop_groups
from tests.airflow_helpers import plugin
from tests.e2e.browser import CHROMIUM, SHOTS, free_port, logged_in, notes_in_run_list, wait_http
from tests.e2e.test_own_data import PIPELINE, START, WEEKS, churn_table
from tests.smtp_inbox import smtp_server

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
NAME = "churn_gated"
DAG_ID = f"{NAME}__train"
MODEL = f"{NAME}_model"


def gated_yaml(folder: Path, timeout_hours: float = 24) -> None:
    raw = json.loads(json.dumps(PIPELINE))
    raw["name"] = NAME
    raw["promotion"].update(approval="required", approval_timeout_hours=timeout_hours)
    raw["notifications"] = {
        "email": ["approvers@example.com"],
        "smtp_conn_id": "smtp_test",
        "events": ["approval"],
    }
    (folder / f"{NAME}.yaml").write_text(yaml.safe_dump(raw))


@pytest.fixture(scope="module")
def gate(tmp_path_factory, airflow_db):
    """The gated pipeline with five curated weeks, and an API server on the tests' metadata DB."""
    from include.foundation.config import load_pipeline
    from include.stages.ingest import ingest_batch, publish_batch
    from include.stages.validation import validate_batch

    tmp = tmp_path_factory.mktemp("approval")
    folder = tmp / "pipelines"
    folder.mkdir()
    gated_yaml(folder)
    mp = pytest.MonkeyPatch()
    mp.setenv("CT_PIPELINES_DIR", str(folder))
    mail = contextlib.ExitStack()
    inbox, smtp_uri = mail.enter_context(smtp_server())  # a real SMTP server: the approval request's mail
    mp.setenv("AIRFLOW_CONN_SMTP_TEST", smtp_uri)
    settings = Settings.from_env()
    landing = settings.data_root / NAME / "landing"
    landing.mkdir(parents=True)
    churn_table().to_csv(landing / "export.csv", index=False)
    cfg = load_pipeline(folder / f"{NAME}.yaml")
    for week in range(WEEKS):
        start = START + timedelta(weeks=week)
        batch = ingest_batch(cfg, settings.data_root, start, start + timedelta(weeks=1))
        validate_batch(cfg, settings.data_root, batch["partition"])
        publish_batch(cfg, settings.data_root, batch["partition"])

    port = free_port()
    home = Path(os.environ["AIRFLOW_HOME"])
    env = {**os.environ, "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__HOST": "127.0.0.1",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin", "PYTHONPATH": str(ROOT),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # fmt: skip
    log = (tmp / "api-server.log").open("w")
    server = subprocess.Popen(["airflow", "api-server"], env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/api/v2/monitor/health")
        password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
        token = requests.post(f"{base}/auth/token", json={"username": "admin", "password": password},
                              timeout=30).json()["access_token"]  # fmt: skip
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {token}"
        yield {"base": base, "api": api, "password": password, "folder": folder, "tmp": tmp, "env": env,
               "as_of": (START + timedelta(weeks=WEEKS)).date().isoformat(), "inbox": inbox}  # fmt: skip
    finally:
        stop_groups([server])
        mail.close()
        mp.undo()


def start_training(gate, reason: str) -> subprocess.Popen:
    """The training DAG in a child process (dag.test waits there while the request is open)."""
    code = (
        "import json, sys; from tests.airflow_helpers import run_dag, task_states; "
        "dr = run_dag(sys.argv[1], run_conf=json.loads(sys.argv[2])); "
        "print('STATES ' + json.dumps(task_states(dr)))"
    )
    conf = json.dumps({"reason": reason, "as_of": gate["as_of"]})
    path = gate["tmp"] / f"{reason.replace(' ', '_')}.out"
    proc = subprocess.Popen([sys.executable, "-c", code, DAG_ID, conf], env=gate["env"], cwd=ROOT,
                            stdout=path.open("w"), stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    proc.out_path = path
    return proc


def pending_request(gate, proc: subprocess.Popen, timeout: float = 300) -> dict:
    """The open approval request of ``DAG_ID`` (Airflow's HITL detail, as the REST API lists it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the training ended before asking: {output(proc)}"
        r = gate["api"].get(f"{gate['base']}/api/v2/dags/~/dagRuns/~/hitlDetails",
                            params={"dag_id": DAG_ID, "response_received": False}, timeout=30)  # fmt: skip
        r.raise_for_status()
        found = r.json()["hitl_details"]
        if found:
            return found[0]
        time.sleep(2)
    raise AssertionError(f"no approval request within {timeout}s: {output(proc)}")


def output(proc) -> str:
    return proc.out_path.read_text()[-3000:]


def finished(proc: subprocess.Popen) -> dict[str, str]:
    """The task states of the run once the child process ends."""
    assert proc.wait(300) == 0, output(proc)
    text = proc.out_path.read_text()
    return json.loads([line for line in text.splitlines() if line.startswith("STATES ")][-1][7:])


def version_tags(version: str) -> dict[str, str]:
    from mlflow import MlflowClient

    client = MlflowClient(Settings.from_env().mlflow_tracking_uri)
    return client.get_model_version(MODEL, version).tags


def champion() -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(Settings.from_env().mlflow_tracking_uri)
    try:
        return str(client.get_model_version_by_alias(MODEL, "champion").version)
    except MlflowException:
        return None


def run_note(gate, request: dict) -> str | None:
    """The note of the request's training run, as the REST API (and the UI) read it."""
    ti = request["task_instance"]
    r = gate["api"].get(f"{gate['base']}/api/v2/dags/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}", timeout=30)
    r.raise_for_status()
    return r.json()["note"]


def answer(gate, request: dict, option: str, comment: str) -> requests.Response:
    ti = request["task_instance"]
    url = (f"{gate['base']}/api/v2/dags/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}/taskInstances/"
           f"{ti['task_id']}/{ti['map_index']}/hitlDetails")  # fmt: skip
    return gate["api"].patch(url, json={"chosen_options": [option], "params_input": {"comment": comment}},
                             timeout=30)  # fmt: skip


def test_a_rejection_through_the_rest_api_is_recorded_with_who_and_why(gate):
    before = champion()
    proc = start_training(gate, "gate rest reject")
    try:
        request = pending_request(gate, proc)
        version = request["subject"].split(" v")[-1].rstrip("?")
        assert request["subject"] == f"Promote {MODEL} v{version}?"
        assert request["options"] == ["Approve", "Reject"] and request["defaults"] == ["Reject"]
        body = request["body"]
        for evidence in ("**roc_auc** (higher is better)", "Holdout:", "Rule: ", "Why this training ran: gate rest reject",
                         "[challenger's MLflow run](http", "[model version](http", "No answer within 24 h rejects it"):  # fmt: skip
            assert evidence in body, body
        assert champion() == before  # nothing moves while the request is open
        mails = [m for m in gate["inbox"].wait(1) if request["subject"] in m["Subject"]]
        assert mails, [m["Subject"] for m in gate["inbox"].messages]  # the approvers hear of it
        assert mails[0]["Subject"] == f"[ct-loop] {NAME}: approval needed: {request['subject']}"
        text = gate["inbox"].text(mails[0])
        assert "/tasks/approval/required_actions" in text and "rejected by default" in text, text
        assert "**roc_auc** (higher is better)" in text, text  # the evidence travels with it
        r = answer(gate, request, "Reject", "not before the audit")
        assert r.status_code == 200, r.text
        states = finished(proc)
    finally:
        stop_groups([proc])
    assert states["approval"] == "success" and states["reject_by_approver"] == "success", states
    assert states["promote"] == "skipped", states
    tags = version_tags(version)
    assert tags["decision.outcome"] == "rejected by approver", tags
    assert tags["decision.approval"] == "rejected by admin: 'not before the audit'", tags
    assert champion() == before
    assert run_note(gate, request).startswith(f"v{version} rejected by admin: 'not before the audit' (the rule "
                                              "had allowed it: "), run_note(gate, request)  # fmt: skip
    # evaluate's page links the MLflow run its evaluation is logged to, and the version it judged
    run = request["task_instance"]["dag_run_id"]
    entry = gate["api"].get(f"{gate['base']}/api/v2/dags/{DAG_ID}/dagRuns/{run}/taskInstances/evaluate/"
                            "xcomEntries/return_value", params={"deserialize": True}, timeout=30)  # fmt: skip
    evaluation = entry.json()["value"]
    evaluation = json.loads(evaluation) if isinstance(evaluation, str) else evaluation
    links = plugin().task_links(DAG_ID, "evaluate", evaluation, Settings.from_env())
    assert set(links) == {"MLflow run", "Model version"}, links
    # promote reached anyway (act_on_approval marked success, a clear, a retry): the recorded answer refuses it
    from types import SimpleNamespace

    from include.foundation.config import load_pipeline
    from include.orchestration.promotion import promote_challenger
    from include.stages.registry import PromotionRefused

    cfg = load_pipeline(gate["folder"] / f"{NAME}.yaml")
    ctx = {"run_id": run, "params": {}, "ti": SimpleNamespace(task_id="promote")}
    with pytest.raises(PromotionRefused, match="not approved .rejected by admin: 'not before the audit'"):
        promote_challenger(cfg, Settings.from_env(), ctx, evaluation)
    assert champion() == before
    assert "rejected by admin" in version_tags(version)["decision.promotion_refused"]


def test_no_answer_in_time_rejects_by_default(gate):
    """The scheduler's sweep applies the request's default when its time is up."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    before = champion()
    gated_yaml(gate["folder"], timeout_hours=0.001)  # 3.6 s
    proc = start_training(gate, "gate timeout")
    try:
        request = pending_request(gate, proc)
        version = request["subject"].split(" v")[-1].rstrip("?")
        time.sleep(5)
        SchedulerJobRunner(job=Job()).check_awaiting_input_timeouts()  # what each scheduler loop does
        states = finished(proc)
    finally:
        stop_groups([proc])
        gated_yaml(gate["folder"])
    assert states["reject_by_approver"] == "success" and states["promote"] == "skipped", states
    tags = version_tags(version)
    assert tags["decision.outcome"] == "rejected by approver", tags
    assert tags["decision.approval"] == "rejected by default: no answer within 0.001 h", tags
    assert champion() == before
    assert run_note(gate, request).startswith(f"v{version} rejected by default: no answer within 0.001 h")


def test_an_approval_in_the_browser_promotes(gate):
    proc = start_training(gate, "gate browser approve")
    try:
        request = pending_request(gate, proc)
        version = request["subject"].split(" v")[-1].rstrip("?")
        seen = approve_in_browser(gate, request, "checked the slices")
        states = finished(proc)
    finally:
        stop_groups([proc])
    print("\n[browser] " + "\n[browser] ".join(seen))
    assert states["approval"] == "success" and states["promote"] == "success", states
    assert states["reject_by_approver"] == "skipped", states
    assert champion() == version
    tags = version_tags(version)
    assert tags["decision.outcome"] == "promoted", tags
    assert tags["decision.approval"] == "approved by admin: 'checked the slices'", tags
    assert run_note(gate, request).startswith(
        f"v{version} promoted (approved by admin: 'checked the slices'): "
    )


def approve_in_browser(gate, request: dict, comment: str) -> list[str]:
    """Required Actions lists the request; its form shows the evidence and takes the answer."""
    if not CHROMIUM.exists():
        if os.environ.get("CT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing (CT_REQUIRE_BROWSER=1): sudo apt-get install -y chromium")
        assert answer(gate, request, "Approve", comment).status_code == 200
        return ["no Chromium: approved through the REST API instead"]
    from playwright.sync_api import expect, sync_playwright

    base, seen = gate["base"], []
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser, page = logged_in(pw, base, gate["password"])
        page.goto(f"{base}/required_actions")
        expect(page.get_by_text(request["subject"]).first).to_be_visible()
        page.screenshot(path=SHOTS / "20-required-actions.png")
        seen.append(f"Required Actions lists {request['subject']!r}")
        page.get_by_text(request["subject"]).first.click()
        expect(page.get_by_text("higher is better").first).to_be_visible()
        page.get_by_role("textbox").first.fill(comment)
        page.screenshot(path=SHOTS / "21-approval-form.png")
        seen.append("the request's form shows the evidence (metric table, CI, links) and a comment box")
        page.get_by_role("button", name="Approve").click()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            r = gate["api"].get(f"{base}/api/v2/dags/~/dagRuns/~/hitlDetails",
                                params={"dag_id": DAG_ID, "response_received": True}, timeout=30)  # fmt: skip
            done = [d for d in r.json()["hitl_details"] if d["subject"] == request["subject"]]
            if done:
                break
            time.sleep(1)
        assert done and done[0]["chosen_options"] == ["Approve"], done
        page.screenshot(path=SHOTS / "22-approved.png")
        seen.append(f"answered Approve in the browser as {done[0]['responded_by_user']}")
        ti = request["task_instance"]
        deadline = time.monotonic() + 180  # the note is written when the run has finished (promote ran)
        while gate["api"].get(f"{base}/api/v2/dags/{DAG_ID}/dagRuns/{ti['dag_run_id']}",
                              timeout=30).json()["state"] != "success":  # fmt: skip
            assert time.monotonic() < deadline, "the approved run did not finish"
            time.sleep(2)
        notes = notes_in_run_list(page, base, DAG_ID, "23-run-list-rejected-note.png", "rejected by")
        assert any(n.startswith(f"v{request['subject'].split(' v')[-1].rstrip('?')} promoted (approved by admin")
                   for n in notes), notes  # fmt: skip
        seen.append(f"the run list's Note buttons read: {notes}")
        browser.close()
    return seen
