"""The one place that decides which library log lines and warnings reach a task log.

Airflow captures a task's own ``logging`` records at their level, but anything a library
writes to stderr with a handler of its own shows as ERROR, and each distinct warning prints
once per location, so a library that warns per scanned module floods the log. Called once
per process, before the stage code runs (``task_door.stage_call`` and the preloading
scheduler call it); calling it again does nothing.

What it does:

* MLflow, alembic and sqlalchemy lose the stderr handler MLflow installs on import and hand
  their records to the root logger, so MLflow's INFO stays INFO (the same as
  ``MLFLOW_CONFIGURE_LOGGING=false``, which the deployment also sets);
* Great Expectations, Evidently and MLflow's SQL migrations log at WARNING and above;
* credentials inside URIs are redacted from every record (``include.foundation.redaction``);
* known-harmless warnings are ignored: the deprecation notices skops triggers while scanning
  loaded modules (hundreds per model load), MLflow's integer-column schema hint (numeric
  features are float64; only the 0/1 label is an integer) and its ambiguous-dataset-source
  notice. Other warnings still show, once each.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings

from include.foundation.redaction import RedactingFilter

# logger name -> minimum level shown in task logs
LIBRARY_LEVELS = {
    "mlflow": logging.INFO,
    "alembic": logging.WARNING,
    "sqlalchemy.engine": logging.WARNING,
    "great_expectations": logging.WARNING,
    "evidently": logging.WARNING,
    "huey": logging.WARNING,
}
IGNORED_WARNINGS: list[dict] = [
    {"category": FutureWarning, "module": r"skops(\.|$)"},
    {"category": DeprecationWarning, "module": r"skops(\.|$)"},
    {"message": r".*Inferred schema contains integer column"},
    {"message": r".*dataset source can be interpreted in multiple ways"},
    {
        "message": r"Using `httpx` with `starlette.testclient` is deprecated"
    },  # Airflow's task runner imports it
]

# logger name -> start of a message that is known noise (dropped)
IGNORED_LOG_MESSAGES = {
    # MLflow cannot tell a 0/1 integer label from a count and says so on every evaluation
    "mlflow.models.evaluation.evaluators.classifier": "According to the evaluation dataset label values",
}

_configured = False


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def configure_library_logging() -> None:
    """Route library loggers to the root logger at sane levels and ignore known-noisy warnings."""
    global _configured
    if _configured:
        return
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # for MLflow imported after this
    for name, level in LIBRARY_LEVELS.items():
        logger = logging.getLogger(name)
        logger.handlers = [h for h in logger.handlers if not isinstance(h, logging.StreamHandler)]
        logger.propagate = True
        logger.setLevel(level)
    for name, prefix in IGNORED_LOG_MESSAGES.items():
        logging.getLogger(name).addFilter(_DropMessage(prefix))
    for spec in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", **spec)
    install_redaction()
    _configured = True


def install_redaction() -> None:
    """Credentials inside URIs are redacted in every record the root logger's handlers write."""
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


@contextlib.contextmanager
def quieted(*loggers: str, level: int = logging.WARNING):
    """Raise these loggers to ``level`` for the block: a library's per-call INFO chatter (MLflow's
    evaluation prints nine lines per model) would bury the one line a person reads."""
    saved = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for name, old in saved.items():
            logging.getLogger(name).setLevel(old)
