"""
### Training: assemble → train → evaluate → promote | reject

One DAG per pipeline (`<pipeline>__train`). Runs on the config's schedule, by hand (params form),
or when the drift check triggers it (`reason=drift` in the run conf).

1. **assemble** cuts a training window and a later holdout window from *curated* data only.
2. **train** fits the configured scikit-learn pipeline, logs it to MLflow (params, metrics,
   datasets, signature, plots) and registers a new version with alias `challenger`.
3. **evaluate** scores challenger and champion on the same holdout (`mlflow.models.evaluate`),
   applies the promotion rule (MLflow `MetricThreshold`s + paired bootstrap CI) and logs it all.
4. **promote** moves alias `champion` with a compare-and-set and writes the decision record to
   the version's tags; **reject** records why. Rollback: the `<pipeline>__rollback` DAG.

With `promotion.approval: required`, a passing evaluation first asks a person (**approval**, in
*Required Actions*): approve → **promote**; reject or no answer → **reject_by_approver** (who, why).
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task

from include.foundation.payloads import AssembledData, Evaluation, TrainedModel
from include.orchestration.approval import approval_answer, approval_gate
from include.orchestration.dag_building import (
    build_for_each_pipeline,
    champion_asset,
    dag_defaults,
    timetable,
    train_params,
)
from include.orchestration.notifications import notifiers
from include.orchestration.promotion import promote_challenger, reject_challenger
from include.orchestration.run_context import airflow_tags, champion_event_extra
from include.orchestration.task_door import stage_call


def build_train_dag(cfg, settings):
    champion = champion_asset(cfg)
    gated = cfg.promotion.approval == "required"

    @dag(
        dag_id=f"{cfg.name}__train",
        schedule=timetable(cfg.schedule.train),
        **dag_defaults(cfg, settings, "train", f"Train, evaluate and maybe promote a {cfg.name} model"),
        doc_md=__doc__,
        params=train_params(cfg),
    )
    def train_dag():
        @task
        @stage_call
        def assemble(params=None) -> dict:
            from include.foundation.storage import PipelinePaths
            from include.stages.datasets import parse_as_of
            from include.stages.training import assemble_training_data

            ctx = get_current_context()
            as_of = parse_as_of(params["as_of"]) or ctx.get("data_interval_end")
            out_dir = PipelinePaths(settings.data_root, cfg.name).training_dir(ctx["run_id"])
            return assemble_training_data(cfg, settings, as_of, out_dir, train_days=params["train_days"])

        @task
        @stage_call
        def train(assembled: AssembledData) -> dict:
            from include.stages.training import train_and_register

            return train_and_register(cfg, settings, assembled, airflow_tags(get_current_context()))

        @task
        @stage_call
        def evaluate(challenger: TrainedModel, assembled: AssembledData) -> dict:
            from include.stages.evaluation import evaluate_challenger

            return evaluate_challenger(cfg, settings, challenger, assembled)

        @task.branch
        def promote_or_reject(evaluation: Evaluation) -> str:  # the decision was taken by evaluate
            return ("approval" if gated else "promote") if evaluation["promote"] else "reject"

        @task.branch
        def act_on_approval(answer: dict) -> str:
            return "promote" if approval_answer(cfg, answer).approved else "reject_by_approver"

        @task(outlets=[champion], on_success_callback=notifiers(cfg, settings, "promotion"))
        @stage_call
        def promote(evaluation: Evaluation, answer: dict | None = None) -> dict:
            ctx = get_current_context()
            promoted = promote_challenger(cfg, settings, ctx, evaluation)  # re-checks the recorded evidence
            ctx["outlet_events"][champion].extra = champion_event_extra(promoted, evaluation)
            return promoted

        @task
        @stage_call
        def reject(evaluation: Evaluation, answer: dict | None = None) -> dict:
            return reject_challenger(cfg, settings, get_current_context(), evaluation)

        data = assemble()
        evaluation = evaluate(train(data), data)
        if not gated:
            promote_or_reject(evaluation) >> [promote(evaluation), reject(evaluation)]
            return
        gate = approval_gate(cfg, settings)
        promote_or_reject(evaluation) >> [gate, reject(evaluation)]
        act_on_approval(gate.output) >> [
            promote(evaluation, gate.output),
            reject.override(task_id="reject_by_approver")(evaluation, gate.output),
        ]

    return train_dag()


build_for_each_pipeline(globals(), "train", build_train_dag)
