"""Helpers for tests that start the project's commands as child processes."""

from __future__ import annotations

import signal


def ctrl_c_enabled() -> None:
    """``preexec_fn``: SIGINT acts as a terminal's Ctrl-C in the child. A shell that runs pytest in
    the background starts it with SIGINT ignored, and children inherit that, so a test of Ctrl-C
    would otherwise test nothing (or hang)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
