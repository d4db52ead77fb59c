"""The task door: the one way an Airflow task enters stage code and comes back out.

:func:`stage_call` wraps every task body: library logging and secret masking on the way in; on the
way out the error policy meets Airflow (a :class:`PermanentError` fails without retries, a
:class:`NothingToDo` skips with its reason, an unreachable tracking server is named), the return
value is redacted, its gist logged and its ``note`` kept for the run's note.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from include.foundation.errors import NothingToDo, PermanentError
from include.foundation.logging_config import configure_library_logging
from include.foundation.redaction import env_secrets, redact, redact_value
from include.foundation.tracking import TrackingServerUnavailable, server_outage

log = logging.getLogger(__name__)


FAILURE_XCOM = "failure"  # a failed task's JSON-able details (e.g. a validation summary)
RUN_NOTE_XCOM = "run_note"  # a task's one-line outcome: its run's note (include.orchestration.run_notes)


def stage_call(fn: Callable) -> Callable:
    """Task decorator (under ``@task``): the one door from an Airflow task into stage code.

    On the way in, library logging is set up once and the environment's secrets are registered
    with Airflow's masker. On the way out, the error policy meets Airflow: a
    :class:`PermanentError` (bad data, bad config, not enough data, broken lineage, a stale
    decision) becomes ``AirflowFailException`` (no retries); a :class:`NothingToDo` (already
    published, no champion yet) becomes ``AirflowSkipException`` with its reason, which is also
    the run's note; anything else keeps the task's
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
        except NothingToDo as exc:
            from airflow.sdk.exceptions import AirflowSkipException

            keep_run_note(f"skipped: {redact(str(exc))}"[:300])
            raise AirflowSkipException(redact(str(exc))) from exc
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
            elif k == "partition" and _week(v):
                parts.append(f"week={_week(v)}")  # the week's one name, not its storage key
            else:
                parts.append(f"{k}={v}")
        text = ", ".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _week(key: Any) -> str | None:
    from include.foundation.storage import interval_name

    try:
        return interval_name(key)
    except (AttributeError, ValueError):
        return None


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
