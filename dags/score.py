"""
### Scoring: the champion scores each published batch into the prediction log

One DAG per pipeline (`<pipeline>__score`), run by the data it scores: each `<pipeline>.curated`
event (a batch that ingestion validated and published) starts a run that scores that batch.

**score** resolves the `champion` alias to a version once, loads that model the safe way (skops,
library types only), scores every row of the batch and writes
`predictions/<interval>/v<version>.parquet`: the batch's key columns, the prediction, the
positive-class score, the model name and version, this run's id and the scoring time. The log is
append-only per (interval, version): a retried or cleared run leaves the part as it is. The
`<pipeline>.predictions` Asset event names the interval, the rows and the version; the model
version's `predictions.log` tag names its parts of the log. No champion yet: the run skips and
says so. A batch without a column the model's signature needs fails without retry, naming it.

Manual runs: `interval` is the first day of a published batch (empty: the newest);
`model_version` scores with another version (a backfill or shadow run), beside the champion's part.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, get_current_context, task

from include.orchestration.dag_building import (
    build_for_each_pipeline,
    curated_asset,
    dag_defaults,
    predictions_asset,
)
from include.orchestration.task_door import stage_call


def build_score_dag(cfg, settings):
    curated, predictions = curated_asset(cfg, settings), predictions_asset(cfg, settings)

    @dag(
        dag_id=f"{cfg.name}__score",
        schedule=[curated],
        **dag_defaults(cfg, settings, "score", f"Score each published {cfg.name} batch with the champion"),
        doc_md=__doc__,
        params={
            "interval": Param(
                None,
                type=["null", "string"],
                format="date",
                description="Manual runs: first day of a published batch (YYYY-MM-DD); empty = the newest",
            ),
            "model_version": Param(
                None,
                type=["null", "string"],
                description="Score with this registered version instead of the champion (backfill, shadow)",
            ),
        },  # fmt: skip
    )
    def score_dag():
        @task(outlets=[predictions])
        @stage_call
        def score(params=None, outlet_events=None) -> dict:
            from include.stages.scoring import score_published

            ctx = get_current_context()
            events = [e for evs in (ctx.get("triggering_asset_events") or {}).values() for e in evs]
            named = [k for k in ((e.extra or {}).get("partition") for e in events) if k]
            run = score_published(cfg, settings, ctx["run_id"], named, params["interval"],
                                  params["model_version"] or None)  # fmt: skip
            scored = [b["partition"] for b in run["batches"]]
            outlet_events[predictions].extra = {
                "interval": scored[-1], "rows": run["batches"][-1]["rows"], "model_version": run["model_version"],
                **({"intervals": scored} if len(scored) > 1 else {}),
            }  # fmt: skip
            return run

        score()

    return score_dag()


build_for_each_pipeline(globals(), "score", build_score_dag)
