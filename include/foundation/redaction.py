"""Secrets never leave in a message: credentials inside URIs are replaced by ``***``.

A tracking URI such as ``http://user:pass@mlflow:5000`` (or a broker or database URL) can end up
in an exception text, a log line, a mail or a tag. Every message the project writes goes
through :func:`redact` (logs through :class:`RedactingFilter`, installed by
``logging_config``; mails, chat and tags where they are built), and inside Airflow tasks the
same values are registered with Airflow's own secrets masker (``task_door``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

# The user-info runs to the LAST "@" of the URI's token: a password may hold "@", "/", "#", ":"
# unencoded, and nothing of it may be left behind (a query's "@" is redacted too: safe side).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s'\"<>]+@")
SECRET_ENV = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "AWS_SECRET_ACCESS_KEY")


def redact(text: str) -> str:
    """``text`` with the user-info part of every URI replaced (``http://***@host/...``), and every
    secret the environment holds (:func:`env_secrets`) replaced wherever it stands: a password
    with a space or a quote, which no URI pattern can delimit, is caught by its value."""
    text = _USERINFO.sub(r"\1***@", text)
    for secret in env_secrets():
        if len(secret) >= MIN_SECRET and secret in text:
            text = text.replace(secret, "***")
    return text


MIN_SECRET = 5  # shorter values would blank ordinary words (Airflow's own masker's limit too)


def without_credentials(uri: str) -> str:
    """``uri`` with its user-info removed (a link a browser can follow: ``http://host:5000``)."""
    return _USERINFO.sub(r"\1", uri)


def redact_value(value):
    """:func:`redact` through strings, lists and dict values (for XCom, tags and facts)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    return value


def env_secrets(env: Mapping[str, str] | None = None) -> list[str]:
    """Secret values in the environment: passwords inside URI values and known secret variables."""
    env = os.environ if env is None else env
    found: list[str] = []
    for name, value in env.items():
        if name in SECRET_ENV and value:
            found.append(value)
            continue
        if "://" in value and "@" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                continue
            if password:
                found.extend({password, unquote(password)})
    return found


class RedactingFilter(logging.Filter):
    """A handler filter: the formatted message of every record, with URI credentials redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is left to logging's own error handling
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            if redact(text) != text:
                record.exc_text = redact(text)
        return True


def write_private(path, text: str) -> None:
    """Write a secret file readable by its owner only: created 0600 (never written, then chmod-ed),
    in full beside its target and renamed into place."""
    import tempfile
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
