"""
### Outcomes that arrive later: collect → validate → publish

Built for pipelines whose outcomes arrive after their inputs (`labels.delay_days`), as
`<pipeline>__outcomes`, on `schedule.outcomes` (default: the ingest schedule).

1. **collect** takes the outcomes due now — those of the inputs' interval that ended
   `labels.delay_days` before this run's interval end — from `labels.source` (default: the
   pipeline's own source): the key columns and the outcome columns (the target's and every
   `known_at_prediction: false` one), into `raw/<interval>/outcomes.parquet`.
2. **validate** runs the outcome batch's own GX suite (keys present and unique, the outcome
   columns' types and ranges, the class shares) through its checkpoint, which updates Data Docs.
   A failing batch is moved to `quarantine/<interval>/outcomes-<sha>/` beside
   `validation_result.json`; the task fails without retrying, naming what was wrong.
3. **publish** writes it to `outcomes/<interval>/`, reports how it joins the interval's inputs by
   key (outcomes for rows never published, repeated keys: counted with examples, never used) and
   emits the pipeline's *outcomes* Asset event.

Every step that reads outcomes joins them to the inputs by key and only where they arrived by its
`as_of` (`labelled_until`); until then the rows are unlabelled. Manual runs: `interval` is the
first day of the inputs' interval whose outcomes to collect (its length: `interval_days`);
`replace` collects published outcomes again (validated before they replace them).
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from include.foundation.payloads import IngestedBatch, ValidationSummary
from include.orchestration.dag_building import (
    build_for_each_pipeline,
    dag_defaults,
    outcomes_asset,
    timetable,
)
from include.orchestration.task_door import stage_call


def build_outcomes_dag(cfg, settings):
    if not cfg.outcomes_later:  # outcomes arrive with the inputs: nothing to collect later
        return None
    published = outcomes_asset(cfg, settings)
    what = f"Collect, validate and publish the outcomes of {cfg.name}, {cfg.labels.delay_days} day(s) late"

    @dag(
        dag_id=f"{cfg.name}__outcomes",
        schedule=timetable(cfg.schedule.outcomes or cfg.schedule.ingest),
        **dag_defaults(cfg, settings, "outcomes", what),
        doc_md=__doc__,
        params={
            "interval": Param(
                None,
                type=["null", "string"],
                format="date",
                description="Manual runs: first day of the inputs' interval whose outcomes to collect "
                "(YYYY-MM-DD); empty = those due at the run's data interval end",
            ),
            "interval_days": Param(
                7, type="integer", minimum=1, maximum=366, description="Length of that interval in days"
            ),
            "replace": Param(
                False,
                type="boolean",
                description="The outcomes are already published: collect them again and, if they pass "
                "validation, replace them. Off: such a run does nothing and says so.",
            ),
        },
    )
    def outcomes_dag():
        @task
        @stage_call
        def collect(params=None) -> dict:
            from include.orchestration.connections import read_sql
            from include.stages.ingest import due_interval_for_run, ingest_outcomes

            ctx = get_current_context()
            start, end = due_interval_for_run(
                cfg, ctx.get("data_interval_start"), ctx.get("data_interval_end"),
                params["interval"], params["interval_days"],
            )  # fmt: skip
            return ingest_outcomes(
                cfg, settings.data_root, start, end, replace=params["replace"], read_sql=read_sql
            )

        @task
        @stage_call  # a failed batch is quarantined; retrying cannot fix data
        def validate(batch: IngestedBatch) -> dict:
            from include.stages.validation import validate_batch

            return validate_batch(cfg, settings.data_root, batch["partition"], part="outcomes")

        @task(outlets=[published])
        @stage_call
        def publish(summary: ValidationSummary, outlet_events=None) -> dict:
            from include.stages.ingest import publish_outcomes

            out = publish_outcomes(cfg, settings.data_root, summary["partition"])
            outlet_events[published].extra = {k: out[k] for k in ("partition", "rows", "joined", "unknown")}
            return out

        publish(validate(collect()))

    return outcomes_dag()


build_for_each_pipeline(globals(), "outcomes", build_outcomes_dag)
