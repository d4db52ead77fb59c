"""
### Ingestion: ingest → validate → publish

One DAG per pipeline file in `include/pipelines/` (`<pipeline>__ingest`).

1. **ingest** pulls the rows of the run's data interval from the source and writes them to
   `raw/<interval>/batch.parquet` (atomic; re-running gives the same file and hash).
2. **validate** runs the Great Expectations suite built from the config's schema through a
   checkpoint and updates GX Data Docs. A failing batch is moved to `quarantine/<interval>/`
   beside `validation_result.json`; the task fails without retrying and names what was wrong.
3. **publish** copies the batch into `curated/` and emits the pipeline's *curated* Asset event.

Manual runs: set `batch_start` (e.g. `2013-03-05`) to ingest a specific interval. Left empty,
a run without a data interval ingests the next replayed interval (replay sources) or the latest
complete interval of the schedule (live sources); the task log says which.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from include.config import scan_pipelines
from include.dag_support import curated_asset, dag_defaults, fail_fast, timetable
from include.settings import Settings


def build_ingest_dag(cfg, settings):
    curated = curated_asset(cfg, settings)

    @dag(
        dag_id=f"{cfg.name}__ingest",
        description=f"Ingest, validate and publish one batch of {cfg.name}",
        schedule=timetable(cfg.schedule.ingest),
        **dag_defaults(cfg, settings, "ingest"),
        doc_md=__doc__,
        params={
            "batch_start": Param(
                None,
                type=["null", "string"],
                format="date",
                description="Manual runs: first day of the batch (YYYY-MM-DD); empty = the run's data interval",
            ),
            "batch_days": Param(
                7, type="integer", minimum=1, maximum=366, description="Length of a manual batch in days"
            ),
        },
    )
    def ingest_dag():
        @task
        @fail_fast
        def ingest(params=None) -> dict:
            from datetime import UTC, datetime

            from include.ingest import ingest_batch, interval_for_run

            ctx = get_current_context()
            start, end = interval_for_run(
                cfg, settings.data_root, ctx.get("data_interval_start"), ctx.get("data_interval_end"),
                params["batch_start"], params["batch_days"], datetime.now(UTC),
            )  # fmt: skip
            return ingest_batch(cfg, settings.data_root, start, end)

        @task
        @fail_fast  # a failed batch is quarantined; retrying cannot fix data
        def validate(batch: dict) -> dict:
            from include.validation import validate_batch

            return validate_batch(cfg, settings.data_root, batch["partition"])

        @task(outlets=[curated])
        @fail_fast
        def publish(summary: dict, outlet_events=None) -> dict:
            from include.validation import publish_batch

            out = publish_batch(cfg, settings.data_root, summary["partition"])
            outlet_events[curated].extra = {"partition": out["partition"], "rows": summary["rows"]}
            return out

        publish(validate(ingest()))

    return ingest_dag()


SETTINGS = Settings.from_env()
for _cfg in scan_pipelines(SETTINGS.pipelines_dir)[0]:  # bad files: see pipeline_config.py
    globals()[f"{_cfg.name}__ingest"] = build_ingest_dag(_cfg, SETTINGS)
