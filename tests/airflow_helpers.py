"""Helpers for tests that run DAGs through Airflow (``dag.test()``)."""

from __future__ import annotations

from pathlib import Path

DAGS = Path(__file__).resolve().parents[1] / "dags"


def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def run_dag(dag_id: str, **kwargs):
    """Parse the dags folder afresh (config env may have changed) and run one DAG to the end."""
    bag = dagbag()
    assert not bag.import_errors, bag.import_errors
    dr = bag.dags[dag_id].test(**kwargs)
    return dr


def task_states(dr) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def run_note(dr) -> str | None:
    """The note the plugin's listener wrote on a finished run (the run list's Note button)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.get(DagRun, dr.id).note


def plugin():
    """The project's Airflow plugin module (plugins/ is not a package on sys.path)."""
    import importlib.util
    import sys

    if "ct_loop_plugin" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "ct_loop_plugin", DAGS.parent / "plugins" / "ct_loop_plugin.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["ct_loop_plugin"] = module
        spec.loader.exec_module(module)
    return sys.modules["ct_loop_plugin"]
