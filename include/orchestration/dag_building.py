"""DAG building: what every pipeline DAG shares (defaults, schedule, tags, assets, params forms).

Imports Airflow lazily, so a DAG file parses fast and stage modules stay Airflow-free.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from include.foundation.config import PipelineConfig, scan_pipelines_once
from include.foundation.payloads import RetrainRequest
from include.foundation.settings import Settings
from include.foundation.timeutil import utc_midnight
from include.orchestration.task_door import log_task_failure


def pipelines_to_build() -> tuple[Settings, list[PipelineConfig]]:
    """What every DAG file builds: the deployment settings and the valid pipelines, scanned once
    per parse and shared by all DAG files (bad files: ``dags/pipeline_config.py`` reports them)."""
    settings = Settings.from_env()
    return settings, scan_pipelines_once(settings.pipelines_dir)[0]


def build_for_each_pipeline(namespace: dict[str, Any], role: str, build: Callable) -> list:
    """The tail of every DAG file: ``build(cfg, settings)`` for each valid pipeline, bound in the
    file's ``namespace`` as ``<pipeline>__<role>`` (where Airflow's DAG processor finds it); a
    pipeline ``build`` returns None for has no such DAG."""
    settings, pipelines = pipelines_to_build()
    built = []
    for cfg in pipelines:
        dag = build(cfg, settings)
        if dag is not None:
            namespace[f"{cfg.name}__{role}"] = dag
            built.append(dag)
    return built


def timetable(expr: str | None):
    """A cron schedule whose runs cover ``[previous tick, this tick)``.

    Airflow 3 turns a plain cron string into a trigger timetable with zero-length data
    intervals; batches here are keyed by their interval, so ask for real intervals.
    """
    if expr is None:
        return None
    from airflow.sdk import CronDataIntervalTimetable

    return CronDataIntervalTimetable(expr, timezone="UTC")


def default_args(cfg: PipelineConfig, settings: Settings) -> dict[str, Any]:
    """Retries with delay: tasks here fail on transient I/O; data errors bypass retries.
    A task that fails for good is logged and, where the pipeline configures channels, notified."""
    from include.orchestration.notifications import notifiers

    return {
        "owner": cfg.owner,
        "retries": settings.task_retries,
        "retry_delay": timedelta(seconds=settings.retry_delay_seconds),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(minutes=30),
        "on_failure_callback": [log_task_failure, *notifiers(cfg, settings, "failure")],
        # the XCom tab holds the whole value; the log gets stage_call's one-line gist instead
        "show_return_value_in_logs": False,
    }


LOOP_STEPS = ("ingest", "outcomes", "score", "drift", "train", "rollback")
"""The loop's order: a DAG's step number in its description and tags (the DAG list is alphabetical)."""


def dag_defaults(cfg: PipelineConfig, settings: Settings, role: str, what: str = "") -> dict[str, Any]:
    """Arguments every pipeline DAG shares. One run at a time: batches are published in order,
    and a challenger is evaluated and promoted against one champion. ``what`` the DAG does leads
    its description, after its step in the pipeline's loop."""
    return {
        "description": f"{cfg.name} step {LOOP_STEPS.index(role) + 1}/{len(LOOP_STEPS)}: {what}",
        "start_date": utc_midnight(cfg.schedule.start_date),
        "end_date": utc_midnight(cfg.schedule.end_date) if role in ("ingest", "outcomes") else None,
        "catchup": cfg.schedule.catchup if role in ("ingest", "outcomes") else False,
        "max_active_runs": 1,
        "default_args": default_args(cfg, settings),
        "tags": dag_tags(cfg, role),
    }


def dag_tags(cfg: PipelineConfig, role: str) -> list[str]:
    """The project, the pipeline, the role and its step in the loop (``step 1 ingest``), and the config's own."""
    return sorted({"ct-loop", cfg.name, role, f"step {LOOP_STEPS.index(role) + 1} {role}", *cfg.tags})


def curated_asset(cfg: PipelineConfig, settings: Settings):
    """The pipeline's curated (validated) data; ingestion emits an event per published batch."""
    from airflow.sdk import Asset

    return Asset(name=f"{cfg.name}.curated", uri=f"file://{settings.data_root / cfg.name / 'curated'}")


def outcomes_asset(cfg: PipelineConfig, settings: Settings):
    """The pipeline's outcomes that arrive later; collection emits an event per published batch."""
    from airflow.sdk import Asset

    return Asset(name=f"{cfg.name}.outcomes", uri=f"file://{settings.data_root / cfg.name / 'outcomes'}")


def predictions_asset(cfg: PipelineConfig, settings: Settings):
    """The pipeline's prediction log; scoring emits an event per scored batch."""
    from airflow.sdk import Asset

    return Asset(
        name=f"{cfg.name}.predictions", uri=f"file://{settings.data_root / cfg.name / 'predictions'}"
    )


def champion_asset(cfg: PipelineConfig):
    """The pipeline's champion model; training emits an event whenever it changes."""
    from airflow.sdk import Asset

    return Asset(name=f"{cfg.name}.champion", uri=f"mlflow://models/{cfg.registered_model}/champion")


def ingest_params() -> dict:
    """The ingest DAG's params form: a manual batch, replacing a published one, re-admitting a
    quarantined one."""
    from airflow.sdk import Param

    return {
        "batch_start": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Manual runs: first day of the batch (YYYY-MM-DD); empty = the run's data interval",
        ),
        "batch_days": Param(
            7, type="integer", minimum=1, maximum=366, description="Length of a manual batch in days"
        ),
        "replace": Param(
            False,
            type="boolean",
            description="The interval is already published: ingest it again from the source as it is now "
            "and, if it passes validation, replace the published batch (the log records rows before "
            "and after). Off: such a run does nothing and says so.",
        ),
        "readmit": Param(
            False,
            type="boolean",
            description="The interval was quarantined and its producer has fixed the data: read it again "
            "from the source, validate it and publish it if it passes. Who asked, why and which report "
            "it replaces are recorded beside the quarantine report.",
        ),
        "reason": Param(
            None,
            type=["null", "string"],
            description="Re-admission: why the batch may come back (required with readmit)",
        ),
    }


def train_params(cfg: PipelineConfig) -> dict:
    """The training DAG's params form: the fields of a RetrainRequest plus the DAG's own options."""
    from airflow.sdk import Param

    defaults = RetrainRequest().to_conf()
    params = {
        name: Param(defaults[name], type=kind, description=text)
        for name, (kind, text) in RetrainRequest.FORM.items()
    }
    params["train_days"] = Param(
        None,
        type=["null", "integer"],
        minimum=1,
        description=f"Override the training window (default {cfg.training.train_days} days)",
    )
    return params
