"""Permanent errors: bad data, bad config, not enough data, broken lineage, a refused decision.

Retrying cannot fix any of these, so every one derives from :class:`PermanentError` and the
DAG tasks turn that family into a failure without retries in one place
(:func:`include.orchestration.dag_support.stage_call`). Anything else (I/O, a tracking server that is down)
is retried with backoff.
"""

from __future__ import annotations


class PermanentError(Exception):
    """An error that a retry cannot fix; the message says what was wrong and what to do."""


class BadRunParam(PermanentError, ValueError):
    """A run's params (a date, an interval) cannot be understood: fix the form and run again."""
