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

from include.orchestration.dag_support import (
    curated_asset,
    dag_defaults,
    pipelines_to_build,
    predictions_asset,
    stage_call,
)


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
            from airflow.sdk.exceptions import AirflowSkipException

            from include.foundation.storage import PipelinePaths
            from include.stages.scoring import partitions_to_score, score_batch

            ctx = get_current_context()
            events = [e for evs in (ctx.get("triggering_asset_events") or {}).values() for e in evs]
            named = [(e.extra or {}).get("partition") for e in events]
            keys = partitions_to_score(PipelinePaths(settings.data_root, cfg.name), [k for k in named if k],
                                       params["interval"])  # fmt: skip
            scored = [
                score_batch(cfg, settings, k, ctx["run_id"], params["model_version"] or None) for k in keys
            ]
            if any(s is None for s in scored):
                raise AirflowSkipException(
                    f"{cfg.registered_model} has no champion yet: {keys} not scored; run {cfg.name}__train first"
                )
            last = scored[-1]
            outlet_events[predictions].extra = {
                "interval": last["partition"], "rows": last["rows"], "model_version": last["model_version"],
                **({"intervals": [s["partition"] for s in scored]} if len(scored) > 1 else {}),
            }  # fmt: skip
            return {
                "model_name": last["model_name"],
                "model_version": last["model_version"],
                "batches": scored,
                "note": " · ".join(s["note"] for s in scored),  # the run's note
            }

        score()

    return score_dag()


SETTINGS, PIPELINES = pipelines_to_build()
for _cfg in PIPELINES:
    globals()[f"{_cfg.name}__score"] = build_score_dag(_cfg, SETTINGS)
