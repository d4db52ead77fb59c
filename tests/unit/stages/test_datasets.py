"""Datasets: curated windows, labels and lineage-checked, write-once training sets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from include.foundation.storage import PipelinePaths, frame_digest, partition_key, write_parquet
from include.foundation.tracking import Tag
from include.stages.datasets import (
    LineageError,
    NotEnoughData,
    curated_end_at_or_before,
    labelled_rows,
    read_training_set,
    recent_window,
)
from tests.factories import frame, tiny_cfg, write_curated_weeks


def _version(tmp_path, df, **tags):
    uri = write_parquet(df, tmp_path / "train.parquet")
    base = {Tag.TRAIN_URI: str(uri), Tag.TRAIN_SHA: frame_digest(df)}
    return SimpleNamespace(version="3", tags={**base, **tags})


def test_training_set_is_read_through_verified_lineage(tmp_path):
    df = frame(datetime(2013, 1, 1, tzinfo=UTC), 7)
    assert read_training_set(_version(tmp_path, df)).equals(df)
    with pytest.raises(LineageError, match="sha256 mismatch"):
        read_training_set(_version(tmp_path, df, **{Tag.TRAIN_SHA: "0" * 64}))
    with pytest.raises(LineageError, match="no longer exists"):
        read_training_set(_version(tmp_path, df, **{Tag.TRAIN_URI: str(tmp_path / "gone.parquet")}))
    with pytest.raises(LineageError, match="has no data.train_uri"):
        read_training_set(SimpleNamespace(version="3", tags={}))


def test_windows_snap_to_whole_partitions(tmp_path):
    cfg = tiny_cfg()
    paths = PipelinePaths(tmp_path, cfg.name)
    start = datetime(2013, 1, 1, tzinfo=UTC)
    with pytest.raises(NotEnoughData, match="no curated partition"):
        curated_end_at_or_before(paths, None)
    for i in range(3):
        s = start + timedelta(weeks=i)
        write_parquet(frame(s, 7, seed=i), paths.curated(partition_key(s, s + timedelta(weeks=1))))
    assert curated_end_at_or_before(paths, None) == start + timedelta(weeks=3)
    assert curated_end_at_or_before(paths, start + timedelta(weeks=2, days=3)) == start + timedelta(weeks=2)
    end, rows = recent_window(cfg, tmp_path, start + timedelta(weeks=2, days=3), days=7)
    assert end == start + timedelta(weeks=2) and len(rows) == 200
    with pytest.raises(NotEnoughData):
        curated_end_at_or_before(paths, start)


def test_labelled_rows_match_how_training_sets_are_built():
    df = frame(datetime(2013, 1, 1, tzinfo=UTC), 7)
    df.loc[:9, "y"] = np.nan  # e.g. cancelled flights: no arrival delay, never in a training set
    assert len(labelled_rows(tiny_cfg(), df)) == len(df) - 10
    unlabelled = df.assign(y=np.nan)  # labels not arrived yet: compare what there is
    assert len(labelled_rows(tiny_cfg(), unlabelled)) == len(df)


def test_training_sets_are_write_once(tmp_path):
    from include.stages.datasets import assemble

    cfg = tiny_cfg()
    start = datetime(2013, 1, 1, tzinfo=UTC)
    weeks = [frame(start + timedelta(weeks=i), 7, seed=i) for i in range(3)]
    keys = write_curated_weeks(PipelinePaths(tmp_path, "tiny"), start, weeks)
    first = assemble(cfg, tmp_path, None, tmp_path / "run")
    again = assemble(cfg, tmp_path, None, tmp_path / "run")  # a retry on the same data
    assert again == first
    # a clear after the data under the window changed: a new file, the old one (and its hash) intact
    write_parquet(weeks[0].assign(x=weeks[0]["x"] + 1), PipelinePaths(tmp_path, "tiny").curated(keys[0]))
    cleared = assemble(cfg, tmp_path, None, tmp_path / "run")
    assert cleared["train"]["uri"] != first["train"]["uri"]
    assert frame_digest(pd.read_parquet(first["train"]["uri"])) == first["train"]["sha256"]


def test_a_capped_training_window_is_sampled_alike_by_assemble_and_the_replay(tmp_path):
    """training.max_train_rows: the set assemble writes is the rows the replay fits, and the
    window's size is recorded beside it."""
    from include.replay import Replay
    from include.stages.datasets import assemble

    cfg = tiny_cfg()
    cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"max_train_rows": 150})})
    start = datetime(2013, 1, 1, tzinfo=UTC)
    weeks = [frame(start + timedelta(weeks=i), 7, seed=i) for i in range(3)]
    write_curated_weeks(PipelinePaths(tmp_path, "tiny"), start, weeks)
    out = assemble(cfg, tmp_path, None, tmp_path / "run")
    written = pd.read_parquet(out["train"]["uri"])
    assert out["train"]["rows"] == len(written) == 150 and out["train_window_rows"] == 400
    data = pd.concat(weeks, ignore_index=True)
    replay = Replay(cfg, data, start, start + timedelta(weeks=3))
    sampled = replay.training_set(datetime.fromisoformat(out["as_of"]))
    assert sampled["ts"].tolist() == written["ts"].tolist() and sampled["x"].tolist() == written["x"].tolist()


@pytest.mark.parametrize(("delay_days", "cap"), [(0, 150), (7, 150), (7, None), (0, 10_000)])
def test_a_streamed_training_window_is_the_one_pass_window_sampled(tmp_path, delay_days, cap):
    """Read twice a chunk at a time (labels, then the sampled rows), the training set is the one
    reading the window whole and sampling it gives, outcomes that arrived later joined or not."""
    from include.decisions.windows import capped_training_set
    from include.stages.datasets import add_label, load_window, sampled_training_window

    cfg = tiny_cfg()
    cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"max_train_rows": cap}),
                                 "labels": cfg.labels.model_copy(update={"delay_days": delay_days}),
                                 "limits": cfg.limits.model_copy(update={"chunk_rows": 37})})  # fmt: skip
    start = datetime(2013, 1, 1, tzinfo=UTC)
    weeks = [frame(start + timedelta(weeks=i), 7, seed=i) for i in range(3)]
    paths = PipelinePaths(tmp_path, "tiny")
    write_curated_weeks(paths, start, weeks)
    if delay_days:  # the first two weeks' outcomes arrived as batches of their own, one repeated key
        for key, week in zip(paths.curated_partitions()[:2], weeks, strict=False):
            inputs = pd.read_parquet(paths.curated(key))
            write_parquet(inputs.drop(columns=cfg.outcome_columns), paths.curated(key))
            outcomes = week[[*cfg.key_columns, *cfg.outcome_columns]]
            write_parquet(pd.concat([outcomes, outcomes.head(1)]), paths.outcomes(key))
    end = start + timedelta(weeks=3)
    whole = add_label(cfg, load_window(cfg, paths, start, end))
    streamed, rows = sampled_training_window(cfg, paths, start, end)
    assert rows == len(whole) == (598 if delay_days else 600)  # a repeated key's outcome is never used
    pd.testing.assert_frame_equal(streamed, capped_training_set(cfg, whole).reset_index(drop=True))


@pytest.mark.parametrize("delay_days", [0, 7, 14])
def test_a_training_uses_only_outcomes_that_arrived(tmp_path, delay_days):
    """The holdout and the training window end where the arrived outcomes end, moving with the
    delay; no row of a week whose outcomes arrive after ``as_of`` is in either set."""
    from include.stages.datasets import assemble

    cfg = tiny_cfg().model_copy(
        update={"labels": tiny_cfg().labels.model_copy(update={"delay_days": delay_days})}
    )
    start = datetime(2013, 1, 1, tzinfo=UTC)
    weeks = [frame(start + timedelta(weeks=i), 7, seed=i) for i in range(6)]
    write_curated_weeks(PipelinePaths(tmp_path, "tiny"), start, weeks)
    as_of = start + timedelta(weeks=6)
    out = assemble(cfg, tmp_path, as_of, tmp_path / "run")
    labelled_end = as_of - timedelta(days=delay_days)
    assert out["as_of"] == as_of.isoformat()
    assert out["holdout_window"] == [(labelled_end - timedelta(days=7)).isoformat(), labelled_end.isoformat()]
    assert out["train_window"][0] == (labelled_end - timedelta(days=21)).isoformat()
    both = pd.concat(pd.read_parquet(out[k]["uri"]) for k in ("train", "holdout"))
    assert both["ts"].max() < pd.Timestamp(labelled_end.replace(tzinfo=None))
    assert len(both) == 3 * 200


def test_a_multiclass_window_must_hold_every_class_and_a_regression_one_more_than_one_value():
    from include.stages.datasets import _enough, add_label
    from tests.factories import kind_cfg, kind_table

    cfg = kind_cfg("multiclass")
    rows = add_label(cfg, kind_table("multiclass", 2))
    train, holdout = rows.iloc[:400], rows.iloc[400:]
    _enough(cfg, train, holdout, "train", "holdout")  # every class on both sides: a decision can rest on it
    with pytest.raises(NotEnoughData, match=r"hold no row of classes \['sales'\]"):
        _enough(cfg, train[train["team"] != "sales"], holdout, "train", "holdout")
    with pytest.raises(NotEnoughData, match=r"too few rows of classes \{'sales': 0\}"):
        _enough(cfg, train, holdout[holdout["team"] != "sales"], "train", "holdout")
    reg = kind_cfg("regression")
    rows = add_label(reg, kind_table("regression", 2))
    with pytest.raises(NotEnoughData, match="holds a single target value"):
        _enough(reg, rows.iloc[:400], rows.iloc[400:].assign(label=1.0), "train", "holdout")
