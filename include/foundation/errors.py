"""Permanent errors: bad data, bad config, not enough data, broken lineage, a refused decision.

Retrying cannot fix any of these, so every one derives from :class:`PermanentError` and the
DAG tasks turn that family into a failure without retries in one place
(:func:`include.orchestration.task_door.stage_call`). Anything else (I/O, a tracking server that is down)
is retried with backoff.
"""

from __future__ import annotations


class PermanentError(Exception):
    """An error that a retry cannot fix; the message says what was wrong and what to do."""


class NothingToDo(Exception):
    """Not a failure: the run has nothing to do (its batch is already published, there is no
    champion yet, no outcomes are due). The task door marks the task skipped with this message;
    a direct caller finds what the stage saw in ``result``."""

    def __init__(self, message: str, result: dict | None = None):
        super().__init__(message)
        self.result = result or {}


class BadRunParam(PermanentError, ValueError):
    """A run's params (a date, an interval) cannot be understood: fix the form and run again."""
