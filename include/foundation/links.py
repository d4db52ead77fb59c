"""Every address a person follows, built in one place: the Airflow UI (runs, task logs), the
MLflow UI (runs, model versions) and the plugin's report viewer (``/ct-loop/files``), with the
rule for what that viewer may serve. Pure string and path functions."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote


def airflow_run_url(
    ui: str, dag_id: str, run_id: str, task_id: str | None = None, try_number: int | None = None
) -> str:
    """A DAG run's page in the Airflow UI, or one task's log in it."""
    url = f"{ui.rstrip('/')}/dags/{dag_id}/runs/{quote(run_id, safe='')}"
    if task_id:
        url += f"/tasks/{task_id}" + (f"?try_number={try_number}" if try_number else "")
    return url


# MLflow 3.17's UI opens in its GenAI mode (traces, judges; the registry hidden from the side
# nav) unless the page's URL asks otherwise; the choice is kept per browser, so every link asks.
MLFLOW_ML_MODE = "workflowType=machine_learning"


def mlflow_run_url(ui: str, experiment_id: str, run_id: str) -> str:
    """A run's page in the MLflow UI, in its model-training mode."""
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?{MLFLOW_ML_MODE}"


def mlflow_model_version_url(ui: str, model: str, version: str | int) -> str:
    """A registered model version's page in the MLflow UI, in its model-training mode."""
    return f"{ui.rstrip('/')}/#/models/{quote(model)}/versions/{version}?{MLFLOW_ML_MODE}"


def pipeline_of(dag_id: str) -> str:
    """``flights_delay__train`` -> ``flights_delay`` (DAG ids are ``<pipeline>__<role>``)."""
    return dag_id.rsplit("__", 1)[0]


DAG_ROLES = ("ingest", "outcomes", "train", "drift_check", "rollback", "score")
"""The DAGs a pipeline gets, ``<pipeline>__<role>`` (one DAG file per role in ``dags/``;
``outcomes`` only where they arrive later, ``labels.delay_days``)."""


def pipeline_dag_ids(pipelines: list[str]) -> dict[str, str]:
    """``dag_id -> pipeline`` for the DAGs of these pipelines: the only DAG ids the viewer knows."""
    return {f"{name}__{role}": name for name in pipelines for role in DAG_ROLES}


VIEWER_PREFIX = "/ct-loop/files"  # the report viewer the Airflow plugin mounts (plugins/ct_loop_plugin.py)
VIEWABLE_SUFFIXES = frozenset(
    {".html", ".json", ".css", ".js", ".png", ".svg", ".ico", ".woff", ".woff2", ".ttf"}
)
# What the project writes for people to read, below ``<data_root>/<pipeline>/``; never the
# landing folder, raw, curated or training data, the GX project's config or the landing index.
VIEWABLE_ROOTS = ("drift", "timeline", "gx/uncommitted/data_docs")


def viewable_file(data_root: Path, pipeline: str, rel: str) -> Path | None:
    """The file the viewer may serve for ``<pipeline>/<rel>``, or None.

    Only what the project produced for people: Evidently reports (``drift/``), the "over time"
    page (``timeline/``), GX Data Docs and a quarantined batch's ``validation_result.json``. ``rel`` is resolved (symlinks included) and
    must stay inside one of those folders, which must themselves lie inside the pipeline's folder;
    absolute paths, ``..``, NUL bytes and anything else answer None, like a file that is absent.
    """
    if not rel or "\x00" in rel or "\\" in rel or rel.startswith("/") or Path(rel).is_absolute():
        return None
    if any(part in ("", ".", "..") for part in rel.split("/")):
        return None
    try:
        base = (data_root / pipeline).resolve(strict=True)
        target = (base / rel).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not target.is_file() or target.suffix.lower() not in VIEWABLE_SUFFIXES:
        return None
    roots = [(base / r).resolve() for r in VIEWABLE_ROOTS]
    inside = any(root.is_relative_to(base) and target.is_relative_to(root) for root in roots)
    quarantine = (base / "quarantine").resolve()
    report = (
        quarantine.is_relative_to(base)
        and target.name == "validation_result.json"
        and target.parent.parent.parent == quarantine
        and target.parent.parent.name != "landing"
    )
    return target if inside or report else None


def producing_roles(pipeline: str, rel: str) -> tuple[str, ...]:
    """The roles of ``pipeline``'s DAGs that produce the file ``rel`` (below its data folder):
    whoever may read one of them may read the file, whatever DAG id the URL names. Drift reports
    and the timeline page: the drift check; a quarantined batch's report: ingest (an ``outcomes-`` batch: outcomes); a
    Data Docs page of the outcomes suite: outcomes, of the inputs suite: ingest; the Data Docs
    index and assets, which both write: either."""
    parts = rel.split("/")
    if parts[0] in ("drift", "timeline"):
        return ("drift_check",)
    if parts[0] == "quarantine" and len(parts) > 2:
        return ("outcomes",) if parts[2].startswith("outcomes-") else ("ingest",)
    if parts[0] == "gx":
        if any(p.startswith(f"{pipeline}_outcomes_suite") for p in parts):
            return ("outcomes",)
        if any(p.startswith(f"{pipeline}_suite") for p in parts):
            return ("ingest",)
        return ("ingest", "outcomes")
    return ()


def viewer_path(data_root: Path, dag_id: str, file: str | None) -> str | None:
    """Path (below the Airflow UI) at which the plugin's viewer serves ``file``, a file under the
    pipeline's data folder; None for anything outside it. DAG ids are ``<pipeline>__<role>``."""
    if not file:
        return None
    base = (data_root / pipeline_of(dag_id)).resolve()
    try:
        rel = Path(file).resolve().relative_to(base)
    except ValueError:
        return None
    return f"{VIEWER_PREFIX}/{quote(dag_id)}/{quote(rel.as_posix())}"
