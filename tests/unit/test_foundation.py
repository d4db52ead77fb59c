"""Foundation pieces the stages share: metrics, lineage-checked training sets, windows, the handoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from include.foundation import metrics
from include.foundation.payloads import RetrainRequest
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
from tests.factories import write_curated_weeks
from tests.unit.test_training import frame, tiny_cfg


def test_metric_directions():
    assert metrics.greater_is_better("roc_auc") and not metrics.greater_is_better("log_loss")
    assert metrics.orientation("log_loss") == -1
    assert metrics.is_worse("roc_auc", 0.59, 0.6) and not metrics.is_worse("roc_auc", 0.61, 0.6)
    assert metrics.is_worse("log_loss", 0.7, 0.6) and not metrics.is_worse("log_loss", 0.5, 0.6)


def test_score_uses_the_positive_class_and_unwraps_pyfunc():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=500)})
    y = (X["x"] + rng.normal(0, 0.3, 500) > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    auc = metrics.score(model, X, y, "roc_auc")
    assert auc > 0.9
    wrapped = SimpleNamespace(get_raw_model=lambda: model)  # what an MLflow pyfunc model offers
    assert metrics.score(wrapped, X, y, "roc_auc") == auc
    assert metrics.score(model, X, 1 - y, "roc_auc") == pytest.approx(1 - auc)


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


def test_retrain_request_round_trip_and_tags():
    req = RetrainRequest(reason="drift", as_of="2013-07-09T00:00:00+00:00", drift_share=0.4, report="/r.html")
    conf = req.to_conf()
    assert RetrainRequest.from_conf({**conf, "train_days": 28}) == req  # DAG options are not part of it
    assert RetrainRequest.from_conf({**conf, "drift_share": "0.4"}).drift_share == 0.4  # templated text
    assert req.tags() == {"run.reason": "drift", "run.drift_share": "0.4", "run.report": "/r.html"}
    manual = RetrainRequest.from_conf({"reason": "manual", "as_of": None, "drift_share": None})
    assert manual == RetrainRequest() and manual.tags() == {"run.reason": "manual"}
    assert set(RetrainRequest.FORM) == set(conf)  # the params form covers every field


def test_run_ids_map_to_distinct_folders_inside_the_pipeline(tmp_path):
    from include.foundation.storage import safe_name

    names = {safe_name(r) for r in ("retrain:1", "retrain+1", "retrain_1", "..", ".", "../../etc", "")}
    assert len(names) == 7  # no two ids share a folder
    assert all("/" not in n and n not in (".", "..") and not n.startswith(".") for n in names)
    assert safe_name("manual__2013-01-01") == "manual__2013-01-01"  # already safe: unchanged
    paths = PipelinePaths(tmp_path, "p")
    for run in ("..", "../../x", "/abs/path"):
        assert paths.training_dir(run).resolve().parent == (tmp_path / "p" / "training").resolve()


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
