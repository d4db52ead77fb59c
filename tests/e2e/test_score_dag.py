"""Scoring through Airflow: the champion scores published weeks into the prediction log.

Its own pipeline (``flights_score``: 1-week training window and holdout) on four real weeks:
nothing to score without a champion; the champion scores a week, row for row; a repeat leaves
the part untouched; a second version scores the same week beside it (a shadow run) without
touching the champion's part; after a promotion the next week is scored by the new champion while
the earlier week keeps the version that scored it; a batch without a column the model needs fails
for good, naming the columns.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from tests.airflow_helpers import run_dag, run_note, task_states
from tests.factories import demo_pipeline_with_weeks

pytestmark = pytest.mark.e2e
NAME = "flights_score"
JAN1 = datetime(2013, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, airflow_db):
    from include.foundation.storage import PipelinePaths

    mp = pytest.MonkeyPatch()
    cfg, settings = demo_pipeline_with_weeks(
        tmp_path_factory.mktemp("score_pipelines"), NAME, 4, mp,
        training={"train_days": 7, "holdout_days": 7, "min_train_rows": 1000},
    )  # fmt: skip
    yield cfg, settings, PipelinePaths(settings.data_root, NAME)
    mp.undo()


def score(interval: str, version: str | None = None):
    dr = run_dag(f"{NAME}__score", run_conf={"interval": interval, "model_version": version})
    ti = next(t for t in dr.get_task_instances() if t.task_id == "score")
    return dr, ti


def test_scoring_through_the_dag(pipeline):
    from mlflow import MlflowClient

    cfg, settings, paths = pipeline
    week3 = paths.curated_partitions()[2]

    dr, ti = score("2013-01-15")  # no champion yet: nothing to score with, not a failure
    assert task_states(dr) == {"score": "skipped"}

    dr = run_dag(f"{NAME}__train", run_conf={"reason": "bootstrap", "as_of": "2013-01-15"})
    assert task_states(dr)["promote"] == "success", task_states(dr)
    client = MlflowClient(settings.mlflow_tracking_uri)
    champion = str(client.get_model_version_by_alias(cfg.registered_model, "champion").version)

    dr, ti = score("2013-01-15")
    assert task_states(dr) == {"score": "success"}
    out = ti.xcom_pull(task_ids="score")
    assert out["model_version"] == champion and out["batches"][0]["partition"] == week3
    log = pd.read_parquet(paths.predictions(week3, champion))
    batch = pd.read_parquet(paths.curated(week3))
    assert len(log) == len(batch)
    # the champion's ROC AUC on the week, estimated before its outcomes: in the note, the part, on its run
    from include.foundation.prediction_log import estimate_of

    estimated = out["batches"][0]["estimated"]
    assert 0.5 < estimated < 1 and estimate_of(paths.predictions(week3, champion))["value"] == estimated
    assert run_note(dr) == (
        f"2013-01-15--2013-01-21: {len(batch):,} rows scored by v{champion}; estimated roc_auc {estimated:.4f}"
    ), run_note(dr)
    run_id = client.get_model_version(cfg.registered_model, champion).run_id
    assert [m.value for m in client.get_metric_history(run_id, "estimated_roc_auc")] == [estimated]
    keys = ["time_hour", "carrier", "flight", "origin"]
    assert log[keys].equals(batch[keys].reset_index(drop=True))  # one row per input row, by key
    assert set(log["model_version"]) == {champion} and set(log["airflow_run_id"]) == {dr.run_id}
    tags = client.get_model_version(cfg.registered_model, champion).tags
    assert tags["predictions.last_interval"] == week3 and tags["predictions.log"].endswith(
        f"*/v{champion}.parquet"
    )

    before = paths.predictions(week3, champion).read_bytes()
    score("2013-01-15")  # a repeat (a cleared run): the part is left as it is
    assert paths.predictions(week3, champion).read_bytes() == before

    dr = run_dag(f"{NAME}__train", run_conf={"reason": "manual", "as_of": "2013-01-29"})  # a second version
    other = str(max(int(v.version) for v in client.search_model_versions(f"name = '{cfg.registered_model}'")))
    dr, ti = score("2013-01-15", version=other)  # a shadow run of the same week
    assert task_states(dr) == {"score": "success"}
    assert (
        paths.predictions(week3, other).exists() and paths.predictions(week3, champion).read_bytes() == before
    )

    # a promotion between two batches: each batch keeps the version that scored it
    if str(client.get_model_version_by_alias(cfg.registered_model, "champion").version) != other:
        from include.stages.registry import champion_state, promote

        record = {"reason": "e2e: promoted between two batches"}
        promote(
            client,
            cfg.registered_model,
            other,
            champion,
            record,
            champion_state(client, cfg.registered_model)[0],
        )
    week4 = paths.curated_partitions()[3]
    dr, ti = score("2013-01-22")
    assert ti.xcom_pull(task_ids="score")["model_version"] == other
    assert set(pd.read_parquet(paths.predictions(week4, other))["model_version"]) == {other}
    assert not paths.predictions(week4, champion).exists()
    assert paths.predictions(week3, champion).read_bytes() == before  # week 3 still says v<first>
    assert client.get_model_version(cfg.registered_model, other).tags["predictions.last_interval"] == week4
    assert client.get_model_version(cfg.registered_model, champion).tags["predictions.last_interval"] == week3


def test_a_batch_without_a_feature_fails_for_good_naming_it(pipeline, caplog):
    from mlflow import MlflowClient

    cfg, settings, paths = pipeline
    if not MlflowClient(settings.mlflow_tracking_uri).search_model_versions(
        f"name = '{cfg.registered_model}'"
    ):
        # run alone: train version 1 first
        dr = run_dag(f"{NAME}__train", run_conf={"reason": "bootstrap", "as_of": "2013-01-15"})
        assert task_states(dr)["promote"] == "success", task_states(dr)
    week2 = paths.curated_partitions()[1]
    batch = pd.read_parquet(paths.curated(week2))
    try:
        batch.drop(columns=["carrier", "temp"]).to_parquet(paths.curated(week2))
        dr, ti = score("2013-01-08", version="1")
        assert task_states(dr) == {"score": "failed"} and ti.try_number == 1  # permanent: not retried
        named = [r.getMessage() for r in caplog.records if "MissingFeatures" in r.getMessage()]
        assert named and "'carrier'" in named[0] and "'temp'" in named[0], caplog.text[-3000:]
        assert not paths.predictions(week2, "1").exists()
    finally:
        batch.to_parquet(paths.curated(week2))


def test_the_batches_a_run_scores(pipeline, tmp_path):
    from include.stages.scoring import UnpublishedBatch, partitions_to_score

    _, _, paths = pipeline
    keys = paths.curated_partitions()
    assert partitions_to_score(paths, [keys[1], keys[0], keys[1]], None) == [
        keys[1],
        keys[0],
    ]  # events, once each
    assert partitions_to_score(paths, [], "2013-01-08") == [keys[1]]
    assert partitions_to_score(paths, [], None) == [keys[-1]]
    with pytest.raises(UnpublishedBatch, match="no published batch starts on 2014-01-01"):
        partitions_to_score(paths, [], "2014-01-01")
