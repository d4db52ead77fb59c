"""Airflow plugin: one click from a task to what it produced.

* **Extra links** on the pipeline tasks: the MLflow run (train, evaluate, check_drift), the
  registered model version (train, evaluate, promote, reject), the Evidently drift report
  (check_drift, trigger_training) and the Great Expectations Data Docs page of the batch's
  validation (validate). They are built from the task's own return value (its XCom), so they
  work for every run the scheduler made, whoever triggered it.
* **Run notes**: a listener writes each finished run's outcome as its note ("v7 promoted: …",
  "v8 rejected: …", "drift 2013-04-02: no retraining (…)"), so outcomes show in the run list
  (:mod:`include.orchestration.run_notes`).
* **A read-only report viewer** mounted in the Airflow API server at ``/ct-loop``: it serves
  the drift reports, Data Docs and quarantine reports of a loaded pipeline (nothing else under
  the data root), only to a user logged in to Airflow who may read the DAG's task instances
  (Airflow's own auth manager decides), and sandboxed (``Content-Security-Policy: sandbox``
  without ``allow-same-origin``): a script in a page made from data cannot act with the
  reader's session. GX Data Docs pages
  load jQuery, Bootstrap, Font Awesome and Vega from public CDNs; the viewer points those
  addresses at local copies (``ct_loop_static/``, made by ``scripts/vendor_data_docs_assets.py``),
  so the pages render styled where the browser has no internet.

The MLflow UI address comes from ``CT_MLFLOW_UI_URL`` (``include.foundation.settings``); report links are
relative to the Airflow UI, so they follow whatever host and port it is served on.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
from functools import cache
from pathlib import Path
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink

from include.foundation.links import (
    VIEWER_PREFIX,
    mlflow_model_version_url,
    mlflow_run_url,
    pipeline_dag_ids,
    producing_roles,
    viewable_file,
    viewer_path,
)
from include.foundation.payloads import (
    DriftCheck,
    Evaluation,
    Promotion,
    Rejection,
    TrainedModel,
    ValidationSummary,
)
from include.foundation.settings import Settings
from include.orchestration.run_notes import RunNoteListener
from include.orchestration.task_door import FAILURE_XCOM

log = logging.getLogger(__name__)
TaskResult = TrainedModel | Evaluation | Promotion | Rejection | DriftCheck | ValidationSummary

URL_PREFIX = VIEWER_PREFIX.removesuffix("/files")  # the viewer app's mount point
MLFLOW_RUN, MODEL_VERSION, DRIFT_REPORT, DATA_DOCS, QUARANTINE_REPORT, OVER_TIME = (
    "MLflow run",
    "Model version",
    "Drift report",
    "Validation result (Data Docs)",
    "Quarantine report",
    "Over time",
)
STATIC_DIR = Path(__file__).resolve().parent / "ct_loop_static"
SERVED_SUFFIXES = {".html", ".css", ".js", ".json", ".png", ".svg", ".ico", ".woff", ".woff2", ".ttf", ".map"}


def task_links(dag_id: str, task_id: str, result: TaskResult | Any, settings: Settings) -> dict[str, str]:
    """Link name -> URL for what one task produced (its return value, one of the payloads of
    :mod:`include.foundation.payloads`); pure, so it is unit-tested."""
    if not isinstance(result, dict):
        return {}
    ui = settings.mlflow_ui_url
    links: dict[str, str | None] = {}
    run_id = result.get("mlflow_run_id") or (result.get("run_id") if task_id == "train" else None)
    experiment = result.get("experiment_id")
    if run_id and experiment:
        links[MLFLOW_RUN] = mlflow_run_url(ui, experiment, run_id)
    model = result.get("model_name")
    version = {"evaluate": "challenger_version", "promote": "champion", "reject": "rejected", "reject_by_approver": "rejected",
               "score": "model_version", "check_drift": "champion_version"}.get(task_id, "version")  # fmt: skip
    version = result.get(version)
    if model and version:
        links[MODEL_VERSION] = mlflow_model_version_url(ui, model, version)
    report = result.get("report") or (result.get("retrain_request") or {}).get("report")
    quarantined = bool(report) and Path(report).name == "validation_result.json"  # a failed batch's report
    links[QUARANTINE_REPORT if quarantined else DRIFT_REPORT] = viewer_path(
        settings.data_root, dag_id, report
    )
    links[DATA_DOCS] = viewer_path(settings.data_root, dag_id, result.get("data_docs_page"))
    links[OVER_TIME] = viewer_path(settings.data_root, dag_id, result.get("timeline"))
    return {k: v for k, v in links.items() if v}


def _task_result(ti_key) -> Any:
    """The task's return value, or for a failed task the details it kept (XCom ``failure``, e.g.
    a quarantined batch's validation summary); read from the metadata DB in the API server."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        for key in ("return_value", FAILURE_XCOM):
            row = session.execute(
                XComModel.get_many(
                    key=key,
                    run_id=ti_key.run_id,
                    dag_ids=ti_key.dag_id,
                    task_ids=ti_key.task_id,
                    map_indexes=ti_key.map_index,
                ).with_only_columns(XComModel.value)
            ).first()
            if row is not None:
                value = row.value
                return json.loads(value) if isinstance(value, str | bytes) else value
    return None


def _trigger_result(ti_key) -> Any:
    """trigger_training returns nothing: its report is the drift check's."""
    from airflow.models.taskinstancekey import TaskInstanceKey

    return _task_result(TaskInstanceKey(ti_key.dag_id, "check_drift", ti_key.run_id, ti_key.try_number))


class _ResultLink(BaseOperatorLink):
    """A link computed from the task's return value; tasks without one show no button."""

    name = ""

    def get_link(self, operator, *, ti_key) -> str:
        try:
            result = _trigger_result(ti_key) if ti_key.task_id == "trigger_training" else _task_result(ti_key)
            return task_links(ti_key.dag_id, ti_key.task_id, result, Settings.from_env()).get(self.name, "")
        except Exception:  # a link must never break the task page
            log.exception("could not build the %r link of %s", self.name, ti_key)
            return ""


class MlflowRunLink(_ResultLink):
    name = MLFLOW_RUN


class ModelVersionLink(_ResultLink):
    name = MODEL_VERSION


class DriftReportLink(_ResultLink):
    name = DRIFT_REPORT


class DataDocsLink(_ResultLink):
    name = DATA_DOCS


class QuarantineReportLink(_ResultLink):
    name = QUARANTINE_REPORT


class OverTimeLink(_ResultLink):
    name = OVER_TIME


def quarantine_page(report: dict) -> str:
    """A quarantined batch's validation result as a page a person reads: the verdict, then each
    failed expectation with its column, bounds, what was observed and why. Every value is
    escaped (it comes from the data), and the viewer serves it sandboxed."""
    from html import escape

    stats = report.get("statistics") or {}
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in (
            f.get("expectation"), f.get("column") or "table",
            ", ".join(f"{k}={str(v)[:80]}" for k, v in (f.get("kwargs") or {}).items()),
            f.get("observed_value"), f.get("unexpected_count"), f.get("partial_unexpected_list"), f.get("why", ""),
        )) + "</tr>"
        for f in report.get("failures") or []
    )  # fmt: skip
    title = f"Quarantined batch {report.get('partition', '')} ({report.get('part', 'inputs')})"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}</style></head><body>"
        f"<h1>{escape(title)}</h1><p>{escape(str(report.get('rows', '?')))} rows; "
        f"{escape(str(stats.get('unsuccessful_expectations', '?')))} of "
        f"{escape(str(stats.get('evaluated_expectations', '?')))} expectations failed. "
        "Nothing of this batch was published; re-admit it with a reason once its producer fixed it.</p>"
        "<table><tr><th>expectation</th><th>column</th><th>bounds</th><th>observed</th><th>unexpected rows</th>"
        f"<th>examples</th><th>why</th></tr>{rows}</table></body></html>"
    )


@cache
def cdn_copies() -> dict[str, str]:
    """CDN address -> file under ``ct_loop_static/`` (its ``manifest.json``)."""
    manifest = json.loads((STATIC_DIR / "manifest.json").read_text())
    return {url: entry["file"] for url, entry in manifest.items()}


@cache
def _cdn_address() -> re.Pattern:
    """A quoted CDN address of the manifest, with any query string (GX tags its logo's URL)."""
    urls = sorted(cdn_copies(), key=len, reverse=True)
    return re.compile('"(' + "|".join(map(re.escape, urls)) + ')(?:\\?[^"]*)?"')


def offline_html(html: str, static_url: str) -> str:
    """``html`` with every quoted CDN address GX Data Docs use replaced by its local copy."""
    return _cdn_address().sub(lambda m: f'"{static_url}/{cdn_copies()[m.group(1)]}"', html)


# Served pages are made from data (a category value, a failing value in Data Docs) and may come
# from anyone who can write a report folder: they run sandboxed, in an opaque origin, so no
# script in them acts with the reader's Airflow session; they may not fetch, post or be framed.
SANDBOX_CSP = "; ".join(
    [
        "sandbox allow-scripts allow-popups",
        "default-src 'none'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",  # Evidently and Data Docs inline their charts
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'none'",
        "form-action 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
SANDBOX_HEADERS = {
    "Content-Security-Policy": SANDBOX_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def known_dag_ids(pipelines_dir: Path) -> dict[str, str]:
    """``dag_id -> pipeline`` of the valid pipeline files now in ``pipelines_dir`` (re-read when one changes)."""
    from include.foundation.config import scan_pipelines_once

    return pipeline_dag_ids([cfg.name for cfg in scan_pipelines_once(pipelines_dir)[0]])


def create_app(settings_factory=Settings.from_env, authorize=None):
    """The read-only viewer: ``GET /ct-loop/files/<dag_id>/<path>`` of what a pipeline produced
    for people (:func:`include.foundation.links.viewable_file`), and ``GET /ct-loop/static/<path>`` for the
    vendored Data Docs assets.

    A file is answered only when Airflow's auth manager lets the user read (the task instances
    of) a DAG that produced it (:func:`include.foundation.links.producing_roles`), and the URL
    names a DAG of its loaded pipeline; anything else, absent or forbidden alike, is 404. Without a
    login the answer is 401 (Airflow's own ``get_user``). ``authorize(user, dag_id)`` replaces
    the auth manager in tests.
    """
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import FileResponse, HTMLResponse

    app = FastAPI(title="CT loop reports", docs_url=None, redoc_url=None, openapi_url=None)
    authorize = authorize or _may_read_task_instances

    @app.get("/files/{dag_id}/{path:path}")
    def serve(dag_id: str, path: str, raw: bool = False, user=Depends(get_user)):  # noqa: B008 (401 without a login)
        settings = settings_factory()
        pipeline = known_dag_ids(settings.pipelines_dir).get(dag_id)
        target = None
        # authorized by the DAG that produced the file, not by the DAG id the URL names
        producers = [f"{pipeline}__{role}" for role in producing_roles(pipeline, path)] if pipeline else []
        if any(authorize(user, producer) for producer in producers):
            target = viewable_file(settings.data_root, pipeline, path)
        if target is None:
            raise HTTPException(404, "Not Found")
        if target.name == "validation_result.json" and not raw:  # a readable page (?raw=1: the JSON)
            page = quarantine_page(json.loads(target.read_text(encoding="utf-8", errors="replace")))
            return HTMLResponse(page, headers=SANDBOX_HEADERS)
        if target.suffix.lower() == ".html":  # relative, so it holds behind any proxy path
            static_url = "../" * (2 + path.count("/")) + "static"
            html = offline_html(target.read_text(encoding="utf-8", errors="replace"), static_url)
            return HTMLResponse(html, headers=SANDBOX_HEADERS)
        media = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return FileResponse(target, media_type=media, headers=SANDBOX_HEADERS)

    # Public on purpose: these are the open-source files the CDNs serve (jQuery, Bootstrap, ...,
    # manifest.json names each), nothing the project or its data produced. A sandboxed page has
    # an opaque origin, so the browser sends it no login cookie (SameSite=Lax) to load them with.
    @app.get("/static/{path:path}")
    def static(path: str):
        target = (STATIC_DIR / path).resolve()
        if (
            not target.is_relative_to(STATIC_DIR)
            or not target.is_file()
            or target.suffix not in SERVED_SUFFIXES
        ):
            raise HTTPException(404, "Not Found")
        media = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        # CORS for everyone: a sandboxed page's origin is "null", and the copies with SRI hashes
        # (and every font) are fetched in CORS mode.
        headers = {
            "Cache-Control": "max-age=86400",
            "X-Content-Type-Options": "nosniff",
            "Access-Control-Allow-Origin": "*",
            "Cross-Origin-Resource-Policy": "cross-origin",
        }
        return FileResponse(target, media_type=media, headers=headers)

    return app


def _may_read_task_instances(user, dag_id: str) -> bool:
    """Airflow's auth manager: may ``user`` read the task instances (and so the logs) of ``dag_id``?"""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.models.dag import DagModel

    details = DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id))
    return bool(
        get_auth_manager().is_authorized_dag(
            method="GET", access_entity=DagAccessEntity.TASK_INSTANCE, details=details, user=user
        )
    )


class LazyApp:
    """An ASGI app built on its first request: every Airflow process loads plugins (task
    processes too), and only the API server should pay for importing its security layer."""

    def __init__(self, factory):
        self.factory, self.app = factory, None

    async def __call__(self, scope, receive, send):
        if self.app is None:
            self.app = self.factory()
        await self.app(scope, receive, send)


class CtLoopPlugin(AirflowPlugin):
    name = "ct_loop"
    global_operator_extra_links = [MlflowRunLink(), ModelVersionLink(), DriftReportLink(), DataDocsLink(),
                                   QuarantineReportLink(), OverTimeLink()]  # fmt: skip
    fastapi_apps = [{"app": LazyApp(create_app), "url_prefix": URL_PREFIX, "name": "CT loop reports"}]
    listeners = [RunNoteListener()]  # a finished run's note says what it decided (run_notes)
