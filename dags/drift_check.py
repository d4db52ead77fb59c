"""
### Drift check: Evidently vs the champion's training data → trigger retraining

One DAG per pipeline (`<pipeline>__drift_check`), scheduled after ingestion.

1. **check_drift** loads the champion's training set (through its lineage tags) and the most
   recent curated window, samples both to `drift.max_rows`, runs Evidently's `DataDriftPreset`,
   scores the champion on the window's labels, saves the HTML report beside the data and logs it
   to a monitoring run in MLflow. The task log prints a table of the drifted columns.
   Skipped when there is no champion yet.
2. **should_retrain** short-circuits unless drift share ≥ threshold or performance is under the
   floor, and no cooldown applies (a training still running, or a trigger within N intervals).
3. **trigger_training** starts `<pipeline>__train` with the check's retrain request as its conf
   (`reason`, `as_of`, `drift_share`, `report`: the training DAG's params).
"""

from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, get_current_context, task

from include.foundation.payloads import TRIGGERED_RUN_PREFIX, DriftCheck
from include.orchestration.dag_building import build_for_each_pipeline, dag_defaults, timetable
from include.orchestration.notifications import notifiers
from include.orchestration.run_context import log_training_trigger, other_active_training_runs
from include.orchestration.task_door import stage_call


def build_drift_dag(cfg, settings):
    train_dag_id = f"{cfg.name}__train"

    @dag(
        dag_id=f"{cfg.name}__drift_check",
        schedule=timetable(cfg.schedule.drift_check),
        **dag_defaults(
            cfg, settings, "drift", f"Evidently drift check of {cfg.name}; triggers {train_dag_id} on drift"
        ),
        doc_md=__doc__,
        render_template_as_native_obj=True,  # the trigger's conf stays a dict of numbers and strings
        params={
            "as_of": Param(
                None,
                type=["null", "string"],
                description="End of the current window (ISO date); empty = the run's data interval end. "
                "A scheduled run's id and Run After name this end; its logical date is the interval's start.",
            ),
        },
    )
    def drift_dag():
        @task
        @stage_call
        def check_drift(params=None) -> dict:
            from include.stages.datasets import parse_as_of
            from include.stages.drift import check_drift

            ctx = get_current_context()
            as_of = parse_as_of(params["as_of"]) or ctx.get("data_interval_end")
            active = other_active_training_runs(ctx, train_dag_id)
            return check_drift(cfg, settings, as_of, ctx["run_id"], active_training_runs=active)

        @task.short_circuit
        def should_retrain(result: DriftCheck) -> bool:
            return result["retrain"]

        trigger_training = TriggerDagRunOperator(
            task_id="trigger_training",
            trigger_dag_id=train_dag_id,
            trigger_run_id=TRIGGERED_RUN_PREFIX + "{{ run_id }}",
            logical_date="{{ logical_date }}",
            conf="{{ ti.xcom_pull(task_ids='check_drift')['retrain_request'] }}",  # a RetrainRequest
            skip_when_already_exists=True,  # a retried trigger does not start a second training
            wait_for_completion=False,
            on_success_callback=notifiers(cfg, settings, "drift_retraining"),
            on_execute_callback=log_training_trigger(settings, train_dag_id),  # which run, what request
        )
        should_retrain(check_drift()) >> trigger_training

    return drift_dag()


build_for_each_pipeline(globals(), "drift_check", build_drift_dag)
