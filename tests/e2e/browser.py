"""A real browser (Playwright driving Debian's Chromium) walking the UIs on a finished demo state.

Skipped with the reason when Chromium is absent (``sudo apt-get install -y chromium``), unless
``CT_REQUIRE_BROWSER=1`` (CI), where that is a failure. Screenshots: ``.local/screenshots/``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from include.orchestration.local_airflow import stop_groups

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / ".local" / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=5).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} did not answer in {timeout:.0f}s")


def logged_in(pw, base: str, password: str):
    """Debian's Chromium, headless, logged in to the Airflow UI at ``base`` as admin."""
    browser = pw.chromium.launch(executable_path=str(CHROMIUM),
                                 args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])  # fmt: skip
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(base)
    page.locator("input[name=username]").fill("admin")
    page.locator("input[name=password]").fill(password)
    page.locator("button[type=submit]").click()
    page.wait_for_url(lambda u: "/auth/login" not in u and "login" not in u)
    return browser, page


def data_docs_walk(page, base: str, dag_id: str) -> str:
    """From the latest ingest run's validate task to its GX Data Docs page, which must render
    styled and scripted with every asset served by the viewer: no request leaves the machine."""
    from playwright.sync_api import expect

    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    run_id = requests.get(f"{base}/api/v2/dags/{dag_id}/dagRuns?order_by=-logical_date&limit=1",
                          cookies=cookies, timeout=30).json()["dag_runs"][0]["dag_run_id"]  # fmt: skip
    page.goto(f"{base}/dags/{dag_id}/runs/{run_id}/tasks/validate")
    page.get_by_role("tab", name="Details").or_(page.get_by_role("link", name="Details")).first.click()
    link = page.get_by_role("link", name="Validation result (Data Docs)")
    expect(link).to_be_visible()
    elsewhere: list[str] = []
    assets: dict[str, int] = {}
    page.on("request", lambda r: None if r.url.startswith(base) else elsewhere.append(r.url))
    page.on(
        "response", lambda r: assets.__setitem__(r.url, r.status) if "/ct-loop/static/" in r.url else None
    )
    link.click()
    page.wait_for_url("**/ct-loop/files/**")
    page.wait_for_load_state("networkidle")
    expect(page.get_by_text("Overview").first).to_be_visible()
    # the validation is named by its week (the batch's interval), not GX's "__none__"
    expect(page.get_by_text(re.compile(r"20\d\d-\d\d-\d\d--20\d\d-\d\d-\d\d")).first).to_be_visible()
    # the page is sandboxed (an opaque origin), so its style sheets are read through their effect
    styled = page.evaluate(
        """() => [[...document.styleSheets].filter(s => s.href && s.href.includes('/ct-loop/static/')).length,
                  getComputedStyle(document.querySelector('.btn') || document.body).borderRadius]"""
    )
    scripts = page.evaluate("() => [typeof window.jQuery, typeof window.vega, typeof $.fn.bootstrapTable]")
    page.screenshot(path=SHOTS / "06-data-docs.png")
    assert elsewhere == [], f"the Data Docs page loaded from outside the machine: {elsewhere}"
    assert len(assets) >= 10 and set(assets.values()) == {200}, assets  # every vendored asset served
    assert styled[0] >= 5 and styled[1] not in ("", "0px"), styled  # Bootstrap's rules applied
    assert scripts == ["function", "object", "function"], scripts
    return (
        f"Data Docs page rendered at {page.url.replace(base, '')}: {styled[0]} local style sheets applied, "
        f"{len(assets)} vendored assets, jQuery/Vega/bootstrap-table loaded, no request outside the machine"
    )


def mlflow_links_walk(page, base: str, mlflow: str, dag_id: str) -> list[str]:
    """The evaluate task's *MLflow run* and *Model version* buttons point at the MLflow UI being
    served (here on a free port, not 5000) and land on rendered pages of that run and version."""
    from playwright.sync_api import expect

    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    run_id = requests.get(f"{base}/api/v2/dags/{dag_id}/dagRuns?order_by=-logical_date&limit=1",
                          cookies=cookies, timeout=30).json()["dag_runs"][0]["dag_run_id"]  # fmt: skip
    seen = []
    for button, shot, landed in (
        ("MLflow run", "10-mlflow-run-link.png", "train v"),  # the run's name: train v<N> for <week>
        ("Model version", "11-model-version-link.png", "Why: "),  # the decision in full, its description
    ):
        page.goto(f"{base}/dags/{dag_id}/runs/{run_id}/tasks/evaluate")
        page.get_by_role("tab", name="Details").or_(page.get_by_role("link", name="Details")).first.click()
        link = page.get_by_role("link", name=button)
        expect(link).to_be_visible()
        href = link.get_attribute("href")
        assert href and href.startswith(mlflow + "/#/"), f"{button} points at {href}, not {mlflow}"
        page.goto(href)
        expect(page.get_by_text(landed).first).to_be_visible()
        # MLflow opens in its model-training mode (GenAI mode hides the registry from the side nav)
        expect(page.get_by_text("Model registry", exact=True).first).to_be_visible()
        page.screenshot(path=SHOTS / shot)
        seen.append(
            f"evaluate's {button!r} button -> {href.replace(mlflow, '<mlflow>')}: rendered ({landed!r} visible, "
            "model-training mode)"
        )
    return seen


# A script in a value from data: it says it ran, then tries the reader's Airflow session.
PROBE = (
    "document.title='RAN';fetch('/api/v2/dags',{credentials:'include'}).then(r=>r.text())"
    ".then(t=>{document.title='LEAKED '+t.slice(0,40)}).catch(e=>{document.title='BLOCKED '+e.name})"
)


def hostile_pages(home: Path, env: dict, name: str) -> dict[str, Path]:
    """A GX Data Docs page and an Evidently report made by the project's own code from a week
    whose ``carrier`` values are scripts (an ``<img onerror>`` and a ``</script>`` break-out)."""
    import pandas as pd

    from include.foundation.config import load_pipeline
    from include.foundation.storage import PipelinePaths
    from include.stages.evidence import drift_report
    from include.stages.validation import validate_frame

    cfg = load_pipeline(Path(env["CT_PIPELINES_DIR"]) / f"{name}.yaml")
    paths = PipelinePaths(home / "data", name)
    week = pd.read_parquet(paths.curated(paths.curated_partitions()[0]))
    docs = week.copy()
    docs.loc[:20, "carrier"] = f'<img src=x onerror="{PROBE}">'
    summary, _ = validate_frame(cfg, docs, paths.gx_project)
    current = week.copy()
    current.loc[:2000, "carrier"] = f"</script><script>{PROBE}</script>"
    snapshot, _ = drift_report(week, current, ["distance", "temp"], ["carrier", "origin"], cfg.drift)
    report = paths.drift_dir("hostile-values") / "report.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(report))
    return {"Data Docs": Path(summary["data_docs_page"]), "drift report": report}


def hostile_walk(page, base: str, home: Path, env: dict, name: str) -> list[str]:
    """Open each hostile page through the viewer while logged in: its script runs, sandboxed,
    and its attempt to read ``/api/v2`` with the reader's session is refused."""
    from include.foundation.links import viewer_path

    seen = []
    for i, (what, file) in enumerate(hostile_pages(home, env, name).items()):
        dag = f"{name}__ingest" if what == "Data Docs" else f"{name}__drift_check"
        api_calls: list[str] = []
        page.on("request", lambda r, calls=api_calls: calls.append(r.url) if "/api/v2" in r.url else None)
        page.goto(base + viewer_path(home / "data", dag, str(file)))
        page.wait_for_function("() => document.title.startsWith('BLOCKED') || document.title.startsWith('LEAKED')",
                               timeout=30_000)  # fmt: skip
        title = page.title()
        page.screenshot(path=SHOTS / f"{8 + i:02d}-hostile-{what.replace(' ', '-').lower()}.png")
        assert title.startswith("BLOCKED") and api_calls == [], (what, title, api_calls)
        seen.append(f"hostile {what}: the injected script ran and its /api/v2 call was refused ({title!r})")
    return seen


def notes_in_run_list(page, base: str, dag_id: str, shot: str, marked: str) -> list[str]:
    """Each run's outcome, read from the DAG's run list (its row's Note button), without opening
    the run: what tells a rejected run from a promoted one, or a retraining from a quiet week.
    The first note containing ``marked`` (else the last) is the screenshot ``shot``."""
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1800, "height": 900})  # the row's buttons sit at its right end
    page.goto(f"{base}/dags/{dag_id}/runs")
    rows = page.locator("tbody tr").filter(has=page.locator(f"a[href*='/dags/{dag_id}/runs/']"))
    expect(rows.first).to_be_visible()
    notes, shot_taken = [], False
    for i in range(rows.count()):
        row = rows.nth(i)
        if row.get_by_role("button", name="Note", exact=True).count() == 0:
            notes.append(f"(no note: {row.inner_text()[:80]!r})")
            continue
        row.get_by_role("button", name="Note", exact=True).click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_text("Dag Run Note")).to_be_visible()
        notes.append(dialog.inner_text().replace("Dag Run Note", "").replace("Edit", "").strip())
        if not shot_taken and (marked in notes[-1] or i == rows.count() - 1):
            page.wait_for_timeout(700)  # the dialog's fade-in
            page.screenshot(path=SHOTS / shot)
            shot_taken = True
        page.keyboard.press("Escape")
        expect(dialog).to_have_count(0)
    page.set_viewport_size({"width": 1400, "height": 1000})
    return notes


def one_week_walk(page, base: str, mlflow: str, name: str) -> list[str]:
    """The run lists tell a retraining from a quiet week without opening a run, and the week that
    retrained has one name on its drift run, its score run, its outcomes run and its MLflow run."""
    from playwright.sync_api import expect

    drift = notes_in_run_list(page, base, f"{name}__drift_check", "24-drift-run-list-note.png", "RETRAIN")
    retrained = [n for n in drift if re.match(r"drift \S+: RETRAIN \(", n)]
    quiet = [n for n in drift if re.match(r"drift \S+: no retraining \(", n)]
    assert retrained and quiet, drift
    week = re.match(r"drift (\d{4}-\d\d-\d\d--\d{4}-\d\d-\d\d): ", retrained[0]).group(1)
    score = notes_in_run_list(page, base, f"{name}__score", "25-score-run-list-note.png", week)
    assert any(n.startswith(f"{week}: ") and " rows scored by v" in n for n in score), score
    expect(page.get_by_text(f"manual__score_{week}").first).to_be_visible()  # the run id, in the list
    outcomes = notes_in_run_list(page, base, f"{name}__outcomes", "26-outcomes-run-list-note.png", week)
    assert any(n.startswith(f"outcomes of {week}: ") and "rows labelled" in n for n in outcomes), outcomes
    experiments = requests.post(f"{mlflow}/api/2.0/mlflow/experiments/search", json={"max_results": 100},
                                timeout=30).json()["experiments"]  # fmt: skip
    found = requests.post(f"{mlflow}/api/2.0/mlflow/runs/search", timeout=30,
                          json={"experiment_ids": [e["experiment_id"] for e in experiments],
                                "filter": f"attributes.run_name = 'drift check of {week}'"}).json()["runs"]  # fmt: skip
    assert len(found) == 1, found
    info = found[0]["info"]
    page.goto(
        f"{mlflow}/#/experiments/{info['experiment_id']}/runs/{info['run_id']}?workflowType=machine_learning"
    )
    expect(page.get_by_text(f"drift check of {week}").first).to_be_visible()
    page.screenshot(path=SHOTS / "27-mlflow-drift-run-week.png")
    return [
        f"drift run list: {len(retrained)} retraining, {len(quiet)} quiet, read from the Note buttons",
        f"week {week}: the same name on its drift, score and outcomes runs and MLflow's 'drift check of {week}'",
    ]


def raw_status(port: int, path: str, token: str | None = None) -> int:
    """GET with the path exactly as written (no client normalises its dot segments or escapes)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        return conn.getresponse().status
    finally:
        conn.close()


def traversal_matrix(port: int, base: str, home: Path, name: str, viewer_password: str) -> str:
    """Every way out of the viewer's folders is 404 for a logged-in viewer and 401 without login."""
    token = requests.post(f"{base}/auth/token", json={"username": "viewer", "password": viewer_password},
                          timeout=30).json()["access_token"]  # fmt: skip
    secret = "airflow%2Fsimple_auth_manager_passwords.json.generated"
    drift = home / "data" / name / "drift"
    escape = drift / "escape.html"
    escape.unlink(missing_ok=True)
    escape.symlink_to(home / "airflow" / "simple_auth_manager_passwords.json.generated")
    dag = f"{name}__drift_check"
    key = sorted((home / "data" / name / "curated").iterdir())[0].name
    paths = [
        f"/ct-loop/files/..__x/{secret}", f"/ct-loop/files/%2e%2e__x/{secret}",
        f"/ct-loop/files/{dag}/..%2F..%2F{secret}", f"/ct-loop/files/{dag}/%2e%2e/%2e%2e/{secret}",
        f"/ct-loop/files/{dag}/..%252F..%252F{secret}", f"/ct-loop/files/{dag}/%2Fetc%2Fpasswd",
        f"/ct-loop/files/{dag}//etc/passwd", f"/ct-loop/files/{dag}/drift/escape.html",
        f"/ct-loop/files/{dag}/curated/{key}/batch.parquet", f"/ct-loop/files/{dag}/landing_index.json",
        "/ct-loop/files/unknown__drift_check/drift/x/report.html",
        f"/ct-loop/files/{name}__nope/drift/x/report.html",
    ]  # fmt: skip
    got = {p: (raw_status(port, p), raw_status(port, p, token)) for p in paths}
    escape.unlink()
    assert all(v == (401, 404) for v in got.values()), got
    report = next(drift.glob("*/report.html")).relative_to(home / "data" / name)
    assert raw_status(port, f"/ct-loop/files/{dag}/{report}", token) == 200  # the viewer may read reports
    return f"traversal matrix: {len(paths)} paths, each 401 without login and 404 for a logged-in viewer"


def ui_walk(home: Path, env: dict, name: str, tmp: Path) -> list[str]:
    """Log in, open the drift check's latest run and its log, follow the report link, then see
    the champion alias in MLflow. Returns what was seen, one line per screen."""
    if not CHROMIUM.exists():
        if os.environ.get("CT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing (CT_REQUIRE_BROWSER=1): sudo apt-get install -y chromium")
        pytest.skip(f"no Chromium at {CHROMIUM}: sudo apt-get install -y chromium")
    from playwright.sync_api import expect, sync_playwright

    airflow_home = home / "airflow"
    port, mlflow_port = free_port(), free_port()
    env = {**env, "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__HOST": "127.0.0.1",
           "AIRFLOW__API_AUTH__JWT_SECRET": (airflow_home / ".jwt_secret").read_text().strip(),
           "AIRFLOW__API__SECRET_KEY": (airflow_home / ".api_secret_key").read_text().strip(),
           "CT_MLFLOW_UI_URL": f"http://127.0.0.1:{mlflow_port}", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer"}  # fmt: skip
    logs = tmp / "ui-logs"
    logs.mkdir(exist_ok=True)
    procs = [
        subprocess.Popen(
            cmd,
            env=env,
            stdout=(logs / f"{n}.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        for n, cmd in (
            ("api-server", ["airflow", "api-server"]),
            (
                "mlflow",
                [
                    "mlflow",
                    "server",
                    "--backend-store-uri",
                    f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
                    "--artifacts-destination",
                    str(home / "mlflow" / "artifacts"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(mlflow_port),
                    "--workers",
                    "1",
                ],
            ),  # fmt: skip
        )
    ]
    seen: list[str] = []
    SHOTS.mkdir(parents=True, exist_ok=True)
    base, mlflow = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{mlflow_port}"
    try:
        wait_http(f"{base}/api/v2/monitor/health")
        wait_http(f"{mlflow}/health")
        passwords = json.loads((airflow_home / "simple_auth_manager_passwords.json.generated").read_text())
        password = passwords["admin"]
        dag_id = f"{name}__drift_check"
        assert (
            requests.get(f"{base}/ct-loop/files/{dag_id}/drift/x/report.html").status_code == 401
        )  # login first
        # the vendored open-source assets are public, like the CDNs they replace
        assert requests.get(f"{base}/ct-loop/static/jquery-3.7.1/jquery.min.js").status_code == 200
        seen.append(traversal_matrix(port, base, home, name, passwords["viewer"]))
        with sync_playwright() as pw:
            browser, page = logged_in(pw, base, password)
            page.screenshot(path=SHOTS / "01-home.png")
            seen.append(f"logged in as admin at {page.url}")

            token = page.context.cookies()
            # the first drift check is the one that retrained (the next is held back by the cooldown)
            run_id = requests.get(f"{base}/api/v2/dags/{dag_id}/dagRuns?order_by=logical_date&limit=1",
                                  cookies={c["name"]: c["value"] for c in token}, timeout=30).json()["dag_runs"][0]["dag_run_id"]  # fmt: skip
            page.goto(f"{base}/dags/{dag_id}/runs/{run_id}")
            expect(page.get_by_text("check_drift").first).to_be_visible()
            page.screenshot(path=SHOTS / "02-drift-run.png")
            seen.append(f"drift check run {run_id}: tasks listed")

            page.goto(f"{base}/dags/{dag_id}/runs/{run_id}/tasks/check_drift")
            expect(page.get_by_text("decision: RETRAIN").first).to_be_visible()
            expect(page.get_by_text("drift share").first).to_be_visible()
            page.screenshot(path=SHOTS / "03-check-drift-log.png")
            seen.append("check_drift log: drift table and 'decision: RETRAIN' visible")

            page.get_by_role("tab", name="Details").or_(
                page.get_by_role("link", name="Details")
            ).first.click()
            link = page.get_by_role("link", name="Drift report")
            expect(link).to_be_visible()
            links = page.locator("a[href*='ct-loop'], a[href*='#/experiments'], a[href*='#/models']")
            seen.append(f"extra links shown: {links.all_inner_texts()}")
            page.screenshot(path=SHOTS / "04-extra-links.png")
            link.click()
            page.wait_for_url("**/ct-loop/files/**")
            expect(page.get_by_text("Dataset Drift").first).to_be_visible()
            page.screenshot(path=SHOTS / "05-drift-report.png", full_page=False)
            seen.append(f"drift report rendered at {page.url.replace(base, '')} ({page.title()!r})")

            page.goto(f"{base}/dags/{dag_id}/runs/{run_id}/tasks/check_drift")
            page.get_by_role("tab", name="Details").or_(
                page.get_by_role("link", name="Details")
            ).first.click()
            page.get_by_role("link", name="Over time").click()
            page.wait_for_url("**/ct-loop/files/**/timeline/index.html")
            expect(page.get_by_role("heading", name=f"{name} over time")).to_be_visible()
            expect(page.get_by_text("RETRAIN").first).to_be_visible()  # the week that retrained, in the table
            expect(page.locator("svg line[stroke='#e67e00']").first).to_be_attached()  # and its marker
            page.screenshot(path=SHOTS / "05b-over-time.png", full_page=True)
            seen.append(f"'over time' page: {page.locator('svg').count()} charts, retraining marked")

            seen.extend(one_week_walk(page, base, mlflow, name))
            seen.append(data_docs_walk(page, base, f"{name}__ingest"))
            seen.extend(hostile_walk(page, base, home, env, name))

            page.goto(f"{mlflow}/#/models/{name}_model")
            expect(page.get_by_text("champion").first).to_be_visible()
            page.screenshot(path=SHOTS / "07-mlflow-model.png")
            seen.append("MLflow registered model page: 'champion' alias visible")
            seen.extend(mlflow_links_walk(page, base, mlflow, f"{name}__train"))
            browser.close()
    except Exception:
        for n in ("api-server", "mlflow"):
            print(f"--- {n}\n" + (logs / f"{n}.log").read_text()[-2000:])
        raise
    finally:
        stop_groups(procs)
    return seen
