"""
### Ingestion: ingest → validate → publish

One DAG per pipeline file in `include/pipelines/` (`<pipeline>__ingest`).

1. **ingest** pulls the rows of the run's data interval from the source and writes them to
   `raw/<interval>/batch.parquet` (atomic; re-running gives the same file and hash).
2. **validate** runs the Great Expectations suite built from the config's schema through a
   checkpoint and updates GX Data Docs. A failing batch is moved to `quarantine/<interval>/<sha>/`
   beside `validation_result.json`; the task fails without retrying and names what was wrong.
3. **publish** copies the batch into `curated/` and emits the pipeline's *curated* Asset event.

An interval that is already published is not ingested again: the run says so and skips,
unless it is triggered with `replace` (the new batch is validated before it replaces the old
one; the log records the rows before and after). Landing files: a copy of a file already
ingested is skipped with a warning; a file with unplaceable timestamps or with rows of a
published interval is quarantined under `quarantine/landing/` with a report, and the run fails
naming the intervals and row counts.

A quarantined interval comes back only by a decision: after its producer fixed the data,
trigger with `batch_start`, `readmit` and a `reason` (or `make readmit`): it is read again,
validated, and published if it passes; `readmission-<run>.json` beside the quarantine report
records who, why, when and the outcome.

Manual runs: set `batch_start` (e.g. `2013-03-05`) to ingest a specific interval. Left empty,
a run without a data interval ingests the next replayed interval (replay sources) or the latest
complete interval of the schedule (live sources); the task log says which.
"""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task

from include.foundation.payloads import IngestedBatch, ValidationSummary
from include.orchestration.dag_building import (
    build_for_each_pipeline,
    curated_asset,
    dag_defaults,
    ingest_params,
    timetable,
)
from include.orchestration.task_door import stage_call


def build_ingest_dag(cfg, settings):
    curated = curated_asset(cfg, settings)

    @dag(
        dag_id=f"{cfg.name}__ingest",
        schedule=timetable(cfg.schedule.ingest),
        **dag_defaults(cfg, settings, "ingest", f"Ingest, validate and publish one batch of {cfg.name}"),
        doc_md=__doc__,
        params=ingest_params(),
    )
    def ingest_dag():
        @task
        @stage_call
        def ingest(params=None) -> dict:
            from datetime import UTC, datetime

            from include.orchestration.connections import read_sql
            from include.stages.ingest import ingest_batch, interval_for_run

            ctx = get_current_context()
            run = ctx["dag_run"]
            start, end = interval_for_run(
                cfg, settings.data_root, ctx.get("data_interval_start"), ctx.get("data_interval_end"),
                params["batch_start"], params["batch_days"], datetime.now(UTC), str(run.run_type),
            )  # fmt: skip
            readmit = params["readmit"] and {
                "by": getattr(run, "triggering_user_name", None), "reason": params["reason"], "run_id": run.run_id
            }  # fmt: skip
            return ingest_batch(
                cfg, settings.data_root, start, end, params["replace"], read_sql, readmit or None
            )

        @task
        @stage_call  # a failed batch is quarantined; retrying cannot fix data
        def validate(batch: IngestedBatch) -> dict:
            from include.stages.validation import validate_batch

            return validate_batch(
                cfg, settings.data_root, batch["partition"], readmission=batch.get("readmission")
            )

        @task(outlets=[curated])
        @stage_call
        def publish(summary: ValidationSummary, outlet_events=None) -> dict:
            from include.stages.ingest import publish_batch

            out = publish_batch(cfg, settings.data_root, summary["partition"], summary.get("readmission"))
            outlet_events[curated].extra = {
                "partition": out["partition"],
                "rows": summary["rows"],
                **({"replaced_rows": out["replaced_rows"]} if out["replaced_rows"] is not None else {}),
            }
            return out

        publish(validate(ingest()))

    return ingest_dag()


build_for_each_pipeline(globals(), "ingest", build_ingest_dag)
