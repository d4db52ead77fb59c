"""The thin layer between pipeline configs and Airflow DAG objects.

The one module in ``include/`` that speaks Airflow's vocabulary (default_args, Assets, Params,
callbacks, task context); an import-linter contract keeps it that way. It imports Airflow
lazily, so stage modules and their tests stay Airflow-free.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from include.foundation.config import PipelineConfig, scan_pipelines_once
from include.foundation.errors import PermanentError
from include.foundation.links import airflow_run_url
from include.foundation.logging_config import configure_library_logging
from include.foundation.payloads import TRIGGERED_RUN_PREFIX, Evaluation, Promotion, RetrainRequest
from include.foundation.redaction import env_secrets, redact, redact_value
from include.foundation.settings import Settings
from include.foundation.timeutil import utc_midnight
from include.foundation.tracking import Tag, TrackingServerUnavailable, server_outage

log = logging.getLogger(__name__)


def pipelines_to_build() -> tuple[Settings, list[PipelineConfig]]:
    """What every DAG file builds: the deployment settings and the valid pipelines, scanned once
    per parse and shared by all DAG files (bad files: ``dags/pipeline_config.py`` reports them)."""
    settings = Settings.from_env()
    return settings, scan_pipelines_once(settings.pipelines_dir)[0]


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


def stage_call(fn: Callable) -> Callable:
    """Task decorator (under ``@task``): the one door from an Airflow task into stage code.

    On the way in, library logging is set up once and the environment's secrets are registered
    with Airflow's masker. On the way out, the error policy meets Airflow: a
    :class:`PermanentError` (bad data, bad config, not enough data, broken lineage, a stale
    decision) becomes ``AirflowFailException`` (no retries); anything else keeps the task's
    retries (transient I/O, a tracking server that is down), and a tracking server that does not
    answer is named as such (:class:`TrackingServerUnavailable`) instead of a bare connection
    traceback. The return value (the XCom) has URI credentials redacted; the log gets its gist
    in one line (:func:`gist`), not the whole value.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        configure_library_logging()
        mask_environment_secrets()
        try:
            value = redact_value(fn(*args, **kwargs))  # the return value is the task's XCom
            log.info("result: %s (the whole value: this task's XCom tab)", gist(value))
            if isinstance(value, dict) and value.get("note"):
                keep_run_note(value["note"])
            return value
        except PermanentError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            keep_failure_details(exc)
            keep_run_note(f"failed: {redact(str(exc))}"[:300])
            raise AirflowFailException(redact(f"{type(exc).__name__}: {exc}")) from exc
        except Exception as exc:
            outage = server_outage(exc)
            if outage is None:
                raise
            server, cause = outage
            raise TrackingServerUnavailable(
                redact(
                    f"the MLflow tracking server {server or tracking_uri()} did not answer ({cause}). Every step "
                    "of this task is safe to repeat, so it is retried with backoff; if it keeps failing, check "
                    "that server."
                )
            ) from exc

    return wrapper


def gist(value: Any, limit: int = 300) -> str:
    """A return value in one short line: a dict's scalar entries, and for nested ones their size."""
    if not isinstance(value, dict):
        text = repr(value)
    else:
        parts = []
        for k, v in value.items():
            if isinstance(v, dict | list | tuple):
                parts.append(f"{k}=<{len(v)} item{'s' if len(v) != 1 else ''}>")
            elif isinstance(v, float):
                parts.append(f"{k}={v:.4g}")
            else:
                parts.append(f"{k}={v}")
        text = ", ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mask_environment_secrets() -> None:
    """Register the secrets in the task's environment (passwords inside URIs such as
    ``MLFLOW_TRACKING_URI``, ``MLFLOW_TRACKING_PASSWORD``) with Airflow's secrets masker, which
    then replaces them by ``***`` wherever they would reach the task log, tracebacks included."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - Airflow always has it; redaction still applies
        return
    for secret in env_secrets():
        mask_secret(secret)


FAILURE_XCOM = "failure"  # a failed task's JSON-able details (e.g. a validation summary)
RUN_NOTE_XCOM = "run_note"  # a task's one-line outcome: its run's note (include.orchestration.run_notes)


def keep_failure_details(exc: BaseException) -> None:
    """Push a permanent error's details (``exc.result``, e.g. the failed expectations and the
    Data Docs page) as XCom ``failure``: the extra links and notifications of a failed task
    read them from there."""
    details = getattr(exc, "result", None)
    if not isinstance(details, dict):
        return
    try:
        from airflow.sdk import get_current_context

        get_current_context()["ti"].xcom_push(key=FAILURE_XCOM, value=redact_value(details))
    except Exception:  # outside a task (unit tests) or XCom unavailable: the error still stands
        log.debug("could not keep the failure details", exc_info=True)


def keep_run_note(outcome: str) -> None:
    """Leave the task's one-line outcome for its run's note (XCom ``run_note``; the plugin's
    listener writes the note when the run finishes: :mod:`include.orchestration.run_notes`)."""
    try:
        from airflow.sdk import get_current_context

        get_current_context()["ti"].xcom_push(key=RUN_NOTE_XCOM, value=redact(outcome))
    except Exception:  # outside a task (unit tests) or XCom unavailable: only the note is missing
        log.debug("could not keep the run's note", exc_info=True)


def tracking_uri() -> str:
    """The tracking URI the task used (the MLflow client's, else the environment's)."""
    import os
    import sys

    mlflow = sys.modules.get("mlflow")
    return mlflow.get_tracking_uri() if mlflow else os.environ.get("MLFLOW_TRACKING_URI", "(default)")


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


def log_task_failure(context: dict) -> None:
    """on_failure_callback: one greppable line naming the task, run and cause."""
    ti = context.get("ti") or context.get("task_instance")
    exc = context.get("exception")
    log.error(
        "CT-LOOP FAILURE dag=%s task=%s run=%s try=%s: %s",
        getattr(ti, "dag_id", "?"),
        getattr(ti, "task_id", "?"),
        getattr(ti, "run_id", "?"),
        getattr(ti, "try_number", "?"),
        str(exc).splitlines()[0] if exc else "unknown",
    )


def other_active_training_runs(context: dict, train_dag_id: str) -> int:
    """Training runs queued or running, not counting the one this drift run triggered itself
    (a cleared drift check must keep its own trigger, not be suppressed by it)."""
    ti, states = context["ti"], ["queued", "running"]
    own = f"{TRIGGERED_RUN_PREFIX}{context['run_id']}"
    return ti.get_dr_count(dag_id=train_dag_id, states=states) - ti.get_dr_count(
        dag_id=train_dag_id, run_ids=[own], states=states
    )


def log_training_trigger(settings: Settings, train_dag_id: str) -> Callable[[dict], None]:
    """``on_execute_callback`` of ``trigger_training``: the task log says which training run it
    starts (id and link) and the request that run carries, before the operator starts it."""

    def log_trigger(context: dict) -> None:
        request = context["ti"].xcom_pull(task_ids="check_drift")["retrain_request"]
        run_id = f"{TRIGGERED_RUN_PREFIX}{context['run_id']}"
        log.info("starting %s run %s (%s) with the retrain request:\n%s", train_dag_id, run_id,
                 airflow_run_url(settings.airflow_ui_url, train_dag_id, run_id),
                 "\n".join(f"  {k}: {v}" for k, v in request.items()))  # fmt: skip

    return log_trigger


def run_link(settings: Settings, context: dict) -> str:
    """The Airflow UI page of the running DAG run (for registry tags and notifications)."""
    dag_id = getattr(context.get("ti"), "dag_id", "") or context["dag"].dag_id
    return airflow_run_url(settings.airflow_ui_url, dag_id, context["run_id"])


def champion_event_extra(promotion: Promotion, evaluation: Evaluation) -> dict:
    """The champion asset event's extra: which version is champion now and its primary metric."""
    metric = evaluation["primary_metric"]
    return {
        "model": promotion["model_name"],
        "version": promotion["champion"],
        "previous_version": promotion["previous_champion"],
        metric: round(evaluation["challenger"], 4),
        f"previous_{metric}": None if evaluation["champion"] is None else round(evaluation["champion"], 4),
    }


def airflow_tags(context: dict) -> dict[str, str]:
    """Tags that tie an MLflow run to the Airflow task that produced it, and why it ran."""
    ti = context.get("ti")
    dag_run = context.get("dag_run")
    return {
        Tag.AIRFLOW_DAG_ID: getattr(ti, "dag_id", ""),
        Tag.AIRFLOW_RUN_ID: context.get("run_id", ""),
        Tag.AIRFLOW_TASK_ID: getattr(ti, "task_id", ""),
        Tag.AIRFLOW_TRY: str(getattr(ti, "try_number", "")),
        Tag.AIRFLOW_RUN_TYPE: str(getattr(dag_run, "run_type", "")),
        **retrain_request(context).tags(),
    }


def retrain_request(context: dict) -> RetrainRequest:
    """The training run's request, read from its params (which a triggering run's conf fills)."""
    return RetrainRequest.from_conf(context.get("params") or {})


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
