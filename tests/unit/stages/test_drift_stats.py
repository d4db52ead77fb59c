"""Drift over every row of a window streamed a chunk at a time: Evidently's statistics from
histograms on the reference's bin edges, against Evidently itself on every row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from include.foundation.config import DriftSpec
from include.stages.drift_stats import overrule, stream_window_drift
from include.stages.evidence import drift_report
from tests.unit.stages.test_drift import frames

NUMERIC, CATEGORICAL = ["a", "b", "c", "d", "h"], ["cat"]
EVERY_ROW = DriftSpec(column_threshold=0.1, share_threshold=0.3, max_rows=1_000_000)


def _frames(n: int, shift: float):
    ref, cur = frames(n, shift, seed=3)
    rng = np.random.default_rng(4)
    ref["h"] = rng.integers(0, 24, len(ref)).astype(float)  # few distinct values, like an hour
    cur["h"] = rng.integers(int(shift * 3), 24, len(cur)).astype(float)
    return ref, cur


def _chunks(df: pd.DataFrame, size: int):
    return (df.iloc[i : i + size] for i in range(0, len(df), size))


@pytest.mark.parametrize(
    ("num", "cat"), [("wasserstein", "jensenshannon"), ("psi", "psi"), ("jensenshannon", "jensenshannon")]
)
def test_streamed_statistics_agree_with_evidently_over_every_row(num, cat):
    ref, cur = _frames(20_000, 1.0)
    spec = EVERY_ROW.model_copy(update={"num_method": num, "cat_method": cat, "max_rows": 2_000})
    drift = stream_window_drift(_chunks(cur, 3_000), ref, NUMERIC, CATEGORICAL, spec, len(cur))
    verdicts = drift.verdicts(spec.column_threshold)
    _, every_row = drift_report(ref, cur, NUMERIC, CATEGORICAL, EVERY_ROW.model_copy(update={"num_method": num,
                                                                                         "cat_method": cat}))  # fmt: skip
    evidently = every_row["columns"]
    assert sorted(c for c, v in verdicts.items() if v["drifted"]) == every_row["drifted_columns"]
    assert abs(verdicts["cat"]["score"] - evidently["cat"]["score"]) < 1e-9  # counts: exact
    if num == "wasserstein":
        assert abs(verdicts["h"]["score"] - evidently["h"]["score"]) < 1e-9  # every value an edge: exact
        for col in "abcd":
            assert abs(verdicts[col]["score"] - evidently[col]["score"]) < 2e-3, col
    assert all(v["over"] == "all 20,000 rows" for v in verdicts.values())


def test_chunks_do_not_change_the_statistics():
    ref, cur = _frames(5_000, 0.5)
    spec = EVERY_ROW.model_copy(update={"max_rows": 500})
    whole = stream_window_drift([cur], ref, NUMERIC, CATEGORICAL, spec, len(cur)).verdicts(0.1)
    small = stream_window_drift(_chunks(cur, 7), ref, NUMERIC, CATEGORICAL, spec, len(cur)).verdicts(0.1)
    for col in whole:
        assert abs(whole[col]["score"] - small[col]["score"]) < 1e-12, col


def test_the_sample_is_seeded_uniform_and_of_drift_max_rows():
    ref, cur = _frames(10_000, 0.0)
    cur["row"] = np.arange(len(cur))
    spec = EVERY_ROW.model_copy(update={"max_rows": 1_000, "seed": 7})
    one = stream_window_drift(_chunks(cur, 333), ref, NUMERIC, CATEGORICAL, spec, len(cur)).sampled()
    two = stream_window_drift(_chunks(cur, 5_000), ref, NUMERIC, CATEGORICAL, spec, len(cur)).sampled()
    assert len(one) == 1_000 and one["row"].is_unique
    assert one["row"].tolist() == two["row"].tolist()  # the same rows however the window is cut
    assert one["row"].min() < 1_000 and one["row"].max() > 9_000  # picked over all of it


def test_a_method_without_an_all_row_form_keeps_the_samples_verdict():
    ref, cur = _frames(5_000, 1.0)
    spec = EVERY_ROW.model_copy(update={"num_method": "ks", "max_rows": 1_000})
    drift = stream_window_drift(_chunks(cur, 1_000), ref, NUMERIC, CATEGORICAL, spec, len(cur))
    _, sampled = drift_report(ref, drift.sampled(), NUMERIC, CATEGORICAL, spec)
    summary = overrule(sampled, drift.verdicts(spec.column_threshold), spec.share_threshold)
    assert summary["columns"]["a"]["over"] == "the sample" and summary["columns"]["cat"]["over"].startswith(
        "all"
    )
    assert summary["judged_on"] == "all rows for 1 of 6 columns, the sample for the rest"
    drifted = [c for c, v in summary["columns"].items() if v.get("drifted")]
    assert (
        summary["drift_share"] == len(drifted) / 6 and summary["sample_drift_share"] == sampled["drift_share"]
    )


def test_a_window_past_max_rows_is_streamed_from_the_curated_partitions(tmp_path):
    """The drift check's path: the window's partitions read a chunk at a time, judged on all rows."""
    from include.foundation.storage import PipelinePaths
    from include.stages.datasets import recent_window
    from include.stages.evidence import streamed_drift
    from tests.factories import landing_cfg, write_curated_weeks

    cfg = landing_cfg(limits={"chunk_rows": 500}, drift={"max_rows": 1_000})
    start = datetime(2013, 1, 7, tzinfo=UTC)
    rng = np.random.default_rng(0)
    weeks = []
    for i, shift in enumerate((0.0, 2.0)):
        ts = [start + timedelta(weeks=i, seconds=int(s)) for s in np.sort(rng.integers(0, 7 * 86400, 3_000))]
        weeks.append(pd.DataFrame({"ts": pd.to_datetime(ts).tz_localize(None), "x": rng.normal(shift, 1, 3_000),
                                   "y": rng.integers(0, 2, 3_000)}))  # fmt: skip
    paths = PipelinePaths(tmp_path, cfg.name)
    write_curated_weeks(paths, start, weeks)
    end, rows = recent_window(cfg, tmp_path, None, 7, cfg.drift.max_rows)
    assert rows is None  # 3,000 rows in the window: streamed
    _, summary, sample = streamed_drift(cfg, paths, weeks[0], end - timedelta(days=7), end)
    assert summary["judged_on"] == "all rows" and summary["columns"]["x"]["over"] == "all 3,000 rows"
    assert summary["drifted_columns"] == ["x"] and summary["current_rows"] == 3_000 and len(sample) == 1_000
    # the replay (make loop-value) judges the same window from its frame: the same numbers and sample
    from include.stages.datasets import load_window
    from include.stages.evidence import judged_drift

    window = load_window(cfg, paths, end - timedelta(days=7), end)
    _, replayed, replay_sample = judged_drift(cfg, cfg.drift, weeks[0], [window], len(window))
    assert replayed["columns"] == summary["columns"] and replayed["drift_share"] == summary["drift_share"]
    pd.testing.assert_frame_equal(replay_sample, sample)
