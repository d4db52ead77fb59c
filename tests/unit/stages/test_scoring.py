"""The scoring stage: the champion scores a published batch into an append-only prediction log."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from include.foundation.settings import Settings
from include.foundation.storage import PipelinePaths, partition_key
from tests.factories import frame, tiny_cfg

JAN1 = datetime(2013, 1, 1, tzinfo=UTC)
WEEK = partition_key(JAN1, JAN1 + timedelta(days=7))


@pytest.fixture
def setup(tmp_path):
    """A tiny pipeline with one published week and a registered model that is not champion yet."""
    import mlflow

    from include.foundation import tracking
    from include.stages.training import _log_model, build_pipeline

    cfg = tiny_cfg()
    settings = replace(Settings.from_env(), data_root=tmp_path / "data",
                       mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                       mlflow_artifact_root=tmp_path / "artifacts")  # fmt: skip
    client = tracking.client(settings, cfg.experiment)
    train = frame(JAN1 - timedelta(days=14), 14, n=300)
    model = build_pipeline(cfg).fit(train[["x", "c"]], train["y"] > 0.5)
    with mlflow.start_run():
        info = _log_model(model, train[["x", "c"]], "label")
    mv = mlflow.register_model(info.model_uri, cfg.registered_model)
    paths = PipelinePaths(settings.data_root, cfg.name)
    batch = frame(JAN1, 7, n=120, seed=1)
    paths.curated(WEEK).parent.mkdir(parents=True)
    batch.to_parquet(paths.curated(WEEK), index=False)
    return cfg, settings, client, str(mv.version), batch, paths


def test_no_champion_is_nothing_to_score(setup):
    from include.stages.scoring import score_batch

    cfg, settings, *_ = setup
    assert score_batch(cfg, settings, WEEK, "manual__1") is None


def test_the_champion_scores_every_row_once(setup):
    from include.stages.scoring import score_batch

    cfg, settings, client, version, batch, paths = setup
    client.set_registered_model_alias(cfg.registered_model, "champion", version)
    out = score_batch(cfg, settings, WEEK, "manual__1")
    log = pd.read_parquet(out["uri"])
    assert out["rows"] == len(batch) == len(log) and out["model_version"] == version
    assert log["ts"].tolist() == batch["ts"].tolist()  # the batch's keys, row for row
    assert set(log["model_version"]) == {version} and set(log["airflow_run_id"]) == {"manual__1"}
    assert log["champion"].all()  # what was served, not a shadow's
    assert log["score"].between(0, 1).all() and set(log["prediction"]) <= {0, 1}
    before = paths.predictions(WEEK, version).read_bytes()
    again = score_batch(cfg, settings, WEEK, "manual__1")  # a retry or a clear: the same part, untouched
    assert again["already_scored"] and paths.predictions(WEEK, version).read_bytes() == before


def test_missing_feature_columns_are_named_and_permanent(setup):
    from include.foundation.errors import PermanentError
    from include.stages.scoring import score_batch

    cfg, settings, client, version, batch, paths = setup
    batch.drop(columns=["c"]).to_parquet(paths.curated(WEEK), index=False)
    with pytest.raises(PermanentError, match=r"lacks \['c'\]"):
        score_batch(cfg, settings, WEEK, "manual__1", version=version)
    assert not paths.predictions(WEEK, version).exists()


def test_a_shadow_version_is_logged_as_not_served(setup):
    from include.stages.scoring import score_batch

    cfg, settings, client, version, batch, paths = setup
    out = score_batch(cfg, settings, WEEK, "manual__shadow", version=version)  # not the champion
    assert not pd.read_parquet(out["uri"])["champion"].any()


def test_scoring_in_chunks_gives_the_values_of_one_call(setup):
    from include.foundation import metrics
    from include.stages.datasets import model_inputs
    from include.stages.registry import load_model, model_uri
    from include.stages.scoring import score_in_chunks

    cfg, settings, client, version, batch, paths = setup
    model = load_model(model_uri(cfg.registered_model, version))
    whole = metrics.predictions(model, model_inputs(batch, ["x", "c"], ["x"]))
    chunked = score_in_chunks(model, batch, ["x", "c"], ["x"], chunk=7)  # 120 rows: 18 chunks, the last short
    assert len(chunked[0]) == len(batch) and (chunked[1] == whole[1]).all()
    assert np.allclose(
        chunked[0], whole[0], rtol=1e-12, atol=0
    )  # BLAS may block a matrix product differently


def test_a_replaced_batch_is_scored_again_and_the_superseded_part_is_kept(setup):
    """After replace: true the log judges the rows that are published now, not the old ones."""
    from include.foundation.prediction_log import served_part
    from include.stages.scoring import score_batch

    cfg, settings, client, version, batch, paths = setup
    client.set_registered_model_alias(cfg.registered_model, "champion", version)
    first = score_batch(cfg, settings, WEEK, "manual__1")
    replacement = frame(JAN1, 7, n=80, seed=2)  # what a replace: true run published
    replacement.to_parquet(paths.curated(WEEK), index=False)
    again = score_batch(cfg, settings, WEEK, "manual__2")
    assert not again["already_scored"] and again["rows"] == 80
    current = served_part(paths, WEEK)
    assert len(current) == 80 and current["ts"].tolist() == replacement["ts"].tolist()
    [kept] = (paths.base / "predictions" / WEEK / "superseded").glob(f"v{version}-*.parquet")
    assert len(pd.read_parquet(kept)) == first["rows"] == 120  # nothing lost, marked as superseded
    assert score_batch(cfg, settings, WEEK, "manual__2")["already_scored"]  # a retry: unchanged


def test_a_batch_streams_through_the_model_in_chunks_with_the_log_of_one_pass(setup):
    """``limits.chunk_rows`` 7: the part is written 7 rows at a time (a row group each), row for
    row the log one pass writes, with the same estimate in its footer."""
    import pyarrow.parquet as pq

    from include.foundation import prediction_log
    from include.foundation.storage import frame_digest
    from include.foundation.tracking import Tag
    from include.stages.datasets import add_label
    from include.stages.scoring import score_batch

    cfg, settings, client, version, batch, paths = setup
    holdout = add_label(cfg, frame(JAN1 - timedelta(days=7), 7, n=200, seed=3))  # the champion's lineage
    holdout.to_parquet(paths.base / "holdout.parquet", index=False)
    client.set_model_version_tag(
        cfg.registered_model, version, Tag.HOLDOUT_URI, str(paths.base / "holdout.parquet")
    )
    client.set_model_version_tag(cfg.registered_model, version, Tag.HOLDOUT_SHA, frame_digest(holdout))
    client.set_registered_model_alias(cfg.registered_model, "champion", version)
    whole = score_batch(cfg, settings, WEEK, "manual__1")
    assert whole.get("estimated") is not None  # estimated from the holdout, so the comparison below can fail
    one_pass = pd.read_parquet(whole["uri"])
    assert pq.ParquetFile(whole["uri"]).metadata.num_row_groups == 1
    paths.predictions(WEEK, version).unlink()
    chunked_cfg = cfg.model_copy(update={"limits": cfg.limits.model_copy(update={"chunk_rows": 7})})
    chunked = score_batch(chunked_cfg, settings, WEEK, "manual__1")
    log = pd.read_parquet(chunked["uri"])
    assert (
        pq.ParquetFile(chunked["uri"]).metadata.num_row_groups == -(-len(batch) // 7)
        and chunked["rows"] == 120
    )
    pd.testing.assert_frame_equal(log.drop(columns="scored_at"), one_pass.drop(columns="scored_at"))
    assert prediction_log.estimate_of(paths.predictions(WEEK, version))["value"] == chunked["estimated"]
    assert chunked["estimated"] == whole["estimated"]  # from the scores of every chunk, not the last


def test_a_key_empty_in_the_first_chunk_keeps_its_type(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from include.foundation.prediction_log import BATCH_SHA, write_part

    chunks = [
        pd.DataFrame({"k": [None, None], "score": [0.1, 0.2]}),
        pd.DataFrame({"k": ["a", "b"], "score": [0.3, 0.4]}),
    ]
    part = tmp_path / "v1.parquet"
    assert write_part(iter(chunks), part, "sha", lambda: None, pa.schema([pa.field("k", pa.string())])) == 4
    assert pd.read_parquet(part)["k"].tolist() == [None, None, "a", "b"]
    assert pq.read_metadata(part).metadata[BATCH_SHA.encode()] == b"sha"
    with pytest.raises(Exception):  # noqa: B017 - without the type, the first chunk's nulls would refuse "a"
        write_part(iter(chunks), tmp_path / "v2.parquet", "sha", lambda: None)
    assert not (tmp_path / "v2.parquet").exists()  # nothing half-written


def test_an_empty_batch_is_logged_as_an_empty_part_with_its_columns(setup):
    from include.stages.scoring import score_batch

    cfg, settings, client, version, batch, paths = setup
    batch.iloc[:0].to_parquet(paths.curated(WEEK), index=False)
    out = score_batch(cfg, settings, WEEK, "manual__empty", version=version)
    log = pd.read_parquet(out["uri"])
    assert out["rows"] == 0 and len(log) == 0
    assert {"ts", "prediction", "score", "model_version", "champion"} <= set(log.columns)
