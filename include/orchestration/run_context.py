"""Reading a running task's Airflow context: the run's link, its tags for MLflow, the training
request it carries, the trainings in flight and the champion asset's event."""

from __future__ import annotations

import logging
from collections.abc import Callable

from include.foundation.links import airflow_run_url
from include.foundation.payloads import TRIGGERED_RUN_PREFIX, Evaluation, Promotion, RetrainRequest
from include.foundation.settings import Settings
from include.foundation.tracking import Tag

log = logging.getLogger(__name__)


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
