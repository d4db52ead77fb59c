"""A DAG run's note says what the run decided ("v7 promoted: …", "v8 rejected: …", "drift
2013-04-02: no retraining (drift share 0.27 < 0.3)"), so a rejected training is told apart from
a promoted one in the run list and on the run's page without opening its tasks.

The Task SDK gives a task no way to write its run's note (Airflow 3.3: a note can be read in the
context and set only when a run is triggered). So the tasks leave their one-line ``outcome`` as
XCom ``run_note`` (:func:`include.orchestration.task_door.stage_call`), and a listener (Airflow's
plugin hook for DAG-run state changes, :class:`RunNoteListener`, registered by the project's
plugin) writes the note when the run finishes, in the scheduler's own transaction, the same row
the UI's *Add a note* writes. A note a person wrote is never overwritten; a cleared and re-run
run gets the note of its new outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from airflow.listeners import hookimpl

from include.orchestration.task_door import RUN_NOTE_XCOM

log = logging.getLogger(__name__)

NOTE_LIMIT = 1000  # the dag_run_note.content column


def note_text(outcomes: Iterable[Any]) -> str | None:
    """The run's note from its tasks' outcomes, in the order they were written (duplicates and
    non-text left out), cut to what the note column holds."""
    parts = [" ".join(o.split()) for o in outcomes if isinstance(o, str) and o.strip()]
    if not parts:
        return None
    text = " · ".join(dict.fromkeys(parts))
    return text if len(text) <= NOTE_LIMIT else text[: NOTE_LIMIT - 1] + "…"


def written_by_person(note_row: Any) -> bool:
    """A note with an author came from the UI or the REST API: a person's, left alone."""
    return note_row is not None and note_row.user_id is not None


def write_run_note(dag_run: Any) -> str | None:
    """Set ``dag_run``'s note from its tasks' ``run_note`` XComs. In the scheduler the run is
    attached to the scheduler's session and the note commits with the state change; a detached
    run (``dag.test()`` hands listeners one) gets its own short transaction. Returns the note
    written, or None when there was nothing to write."""
    from sqlalchemy.orm import object_session

    session = object_session(dag_run)
    if session is not None:  # no savepoint: the scheduler forbids commits inside its loop (HA locks)
        return _note_in(session, dag_run)
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as own:
        attached = own.get(DagRun, dag_run.id)
        return None if attached is None else _note_in(own, attached)


def _note_in(session: Any, dag_run: Any) -> str | None:
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    if written_by_person(dag_run.dag_run_note):
        return None
    rows = session.scalars(
        select(XComModel)
        .where(XComModel.dag_run_id == dag_run.id, XComModel.key == RUN_NOTE_XCOM)
        .order_by(XComModel.timestamp)
    )
    text = note_text(XComModel.deserialize_value(row) for row in rows)
    if text is None:
        return None
    dag_run.note = text
    return text


class RunNoteListener:
    """Airflow listener: a finished run of a pipeline DAG gets its outcome as its note."""

    @hookimpl
    def on_dag_run_success(self, dag_run, msg):
        self._note(dag_run)

    @hookimpl
    def on_dag_run_failed(self, dag_run, msg):
        self._note(dag_run)

    @staticmethod
    def _note(dag_run) -> None:
        try:
            text = write_run_note(dag_run)
        except Exception:  # a note must never break the scheduler's state change
            log.warning("could not write the note of %s", dag_run, exc_info=True)
            return
        if text:
            log.info("note of %s %s: %s", dag_run.dag_id, dag_run.run_id, text)
