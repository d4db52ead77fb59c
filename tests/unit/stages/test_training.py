"""The training stage: the scikit-learn pipeline, the estimator check and write-once training sets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from include.foundation.storage import PipelinePaths, partition_key
from include.stages.datasets import NotEnoughData, assemble
from include.stages.training import build_pipeline, load_estimator
from tests.factories import frame, tiny_cfg, write_curated_weeks


def test_pipeline_fits_with_missing_values_and_unknown_categories():
    cfg = tiny_cfg()
    df = frame(datetime(2013, 1, 1, tzinfo=UTC), 7)
    df.loc[:5, "x"] = np.nan
    model = build_pipeline(cfg).fit(df[["x", "c"]], df["y"] > 0.5)
    new = pd.DataFrame({"x": [0.1, np.nan], "c": ["zzz", None]})
    assert model.predict_proba(new).shape == (2, 2)


@pytest.mark.parametrize(
    "model, message",
    [
        ({"estimator": "sklearn.linear_model.LinearRegression"}, "not a scikit-learn classifier"),
        ({"params": {"no_such_param": 1}}, "model.params do not fit"),
    ],
)
def test_bad_estimator_config_is_explained(model, message):
    with pytest.raises(ValueError, match=message):
        load_estimator(tiny_cfg(**model))


def test_assemble_reads_only_curated_partitions(tmp_path):
    cfg = tiny_cfg()
    paths = PipelinePaths(tmp_path, "tiny")
    start = datetime(2013, 1, 1, tzinfo=UTC)
    for i in range(3):
        s = start + timedelta(weeks=i)
        key = partition_key(s, s + timedelta(weeks=1))
        df = frame(s, 7, seed=i)
        paths.curated(key).parent.mkdir(parents=True)
        df.to_parquet(paths.curated(key), index=False)
    # a quarantined and a raw batch in the same weeks must never be read
    bad = frame(start, 7, n=10_000, seed=9).assign(x=1e9)
    for p in (
        paths.quarantine_dir("x", "abc") / "batch.parquet",
        paths.raw(partition_key(start, start + timedelta(weeks=1))),
    ):
        p.parent.mkdir(parents=True)
        bad.to_parquet(p, index=False)

    out = assemble(cfg, tmp_path, None, tmp_path / "out")
    train, holdout = pd.read_parquet(out["train"]["uri"]), pd.read_parquet(out["holdout"]["uri"])
    assert out["train"]["rows"] == len(train) == 400 and out["holdout"]["rows"] == len(holdout) == 200
    assert train["x"].max() < 1e6
    assert train["ts"].max() < holdout["ts"].min()  # holdout is strictly later
    assert set(train["label"].unique()) == {0, 1}
    again = assemble(cfg, tmp_path, None, tmp_path / "out")
    assert again == out  # same data, same hashes


def test_assemble_without_enough_data(tmp_path):
    with pytest.raises(NotEnoughData, match="no curated data"):
        assemble(tiny_cfg(), tmp_path, None, tmp_path / "out")


def test_seed_is_the_estimators_random_state_unless_params_set_one():
    assert load_estimator(tiny_cfg()).random_state == 42
    assert load_estimator(tiny_cfg(params={"random_state": 7})).random_state == 7


@pytest.mark.parametrize(
    "make_holdout, message",
    [
        (lambda df: df.assign(y=0.0), "0 positives"),  # a single-class holdout
        (lambda df: df.head(30), "holdout rows"),  # a tiny one
    ],
)
def test_degenerate_holdout_stops_before_training(tmp_path, make_holdout, message):
    cfg = tiny_cfg()
    start = datetime(2013, 1, 1, tzinfo=UTC)
    weeks = [frame(start + timedelta(weeks=i), 7, seed=i) for i in range(3)]
    write_curated_weeks(PipelinePaths(tmp_path, "tiny"), start, [*weeks[:2], make_holdout(weeks[2])])
    with pytest.raises(NotEnoughData, match=message):
        assemble(cfg, tmp_path, None, tmp_path / "out")


def test_holdout_inside_the_champions_training_data_is_refused(tmp_path):
    from include.stages.datasets import HoldoutOverlap

    cfg = tiny_cfg()
    start = datetime(2013, 1, 1, tzinfo=UTC)
    write_curated_weeks(
        PipelinePaths(tmp_path, "tiny"),
        start,
        [frame(start + timedelta(weeks=i), 7, seed=i) for i in range(4)],
    )
    champion_trained_until = start + timedelta(weeks=3)
    with pytest.raises(HoldoutOverlap, match="in-sample"):
        assemble(
            cfg,
            tmp_path,
            start + timedelta(weeks=3),
            tmp_path / "a",
            holdout_not_before=champion_trained_until,
        )
    out = assemble(cfg, tmp_path, None, tmp_path / "b", holdout_not_before=champion_trained_until)
    assert out["holdout_window"][0] == champion_trained_until.isoformat()
