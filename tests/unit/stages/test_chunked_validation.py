"""Validation in chunks gives GX's verdicts and numbers over the whole batch: every expectation's
success, counts, percentages and first unexpected values equal one GX run on the whole frame, on
a real week and on each malformed batch the suite knows (duplicates split across chunks included)."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from include.foundation.storage import PipelinePaths, partition_key
from include.stages import validation
from include.stages.ingest import ingest_batch
from tests.unit.stages.test_validation import _bad

JAN1, JAN8 = datetime(2013, 1, 1, tzinfo=UTC), datetime(2013, 1, 8, tzinfo=UTC)
COMPARED = ("element_count", "unexpected_count", "missing_count", "observed_value", "unexpected_percent",
            "missing_percent", "unexpected_percent_total", "partial_unexpected_list", "partial_unexpected_counts")  # fmt: skip


@pytest.fixture(scope="module")
def week(flights_cfg, tmp_path_factory) -> pd.DataFrame:
    return pd.read_parquet(ingest_batch(flights_cfg, tmp_path_factory.mktemp("week"), JAN1, JAN8)["uri"])


def _results(monkeypatch, run):
    """Run ``run()`` and return its summary and the GX expectation results it was made from."""
    seen = {}
    real = validation.summarize

    def capture(run_results, success):
        seen["results"] = [r for vr in run_results.values() for r in vr.results]
        return real(run_results, success)

    monkeypatch.setattr(validation, "summarize", capture)
    summary, docs = run()
    monkeypatch.setattr(validation, "summarize", real)
    return summary, docs, seen["results"]


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


@pytest.mark.parametrize("kind", [None, "missing_column", "wrong_type", "null", "range", "not_allowed", "duplicates",
                                  "too_few_rows", "nulls_within_mostly", "one_class"])  # fmt: skip
def test_chunked_validation_equals_one_run_over_the_whole_batch(
    flights_cfg, week, tmp_path, monkeypatch, kind
):
    df = _bad(week, kind) if kind not in (None, "nulls_within_mostly", "one_class") else week.copy()
    if kind == "nulls_within_mostly":  # 8% blanks, all in the first chunk (where they are 56%): passes
        df.loc[: int(len(df) * 0.08), "tailnum"] = None
    if kind == "one_class":  # a shared value in half the rows: the carrier's share of a set
        df["carrier"] = df["carrier"].where(df.index % 2 == 0, "ZZ")
    path = tmp_path / "batch.parquet"
    df.to_parquet(path, index=False)
    chunked, whole = _both(flights_cfg, df, tmp_path, monkeypatch)
    assert chunked["success"] == whole["success"] == (kind in (None, "nulls_within_mostly"))


@pytest.mark.parametrize("first_day", ["2013-02-05", "2013-07-02", "2013-12-24"])
def test_chunked_validation_equals_one_run_on_demo_weeks(flights_cfg, tmp_path, monkeypatch, first_day):
    """The blizzard week (cancelled flights: tailnum blanks within their mostly), summer, Christmas."""
    start = datetime.fromisoformat(first_day).replace(tzinfo=UTC)
    df = pd.read_parquet(
        ingest_batch(flights_cfg, tmp_path / "data", start, start + timedelta(days=7))["uri"]
    )
    chunked, whole = _both(flights_cfg, df, tmp_path, monkeypatch)
    assert chunked["success"] and whole["success"]


@pytest.mark.parametrize(("kind", "spoil"), [
    ("multiclass", None), ("multiclass", lambda d: d.assign(team=d["team"].where(d["team"] != "sales", "network"))),
    ("regression", None), ("regression", lambda d: d.assign(minutes=30.0)),
    ("regression", lambda d: d.assign(minutes=(d["minutes"] + 180).clip(upper=399))),
])  # fmt: skip
def test_chunked_validation_of_each_target_kind_equals_one_run(tmp_path, monkeypatch, kind, spoil):
    """Class shares over the whole batch; a regression target's mean and standard deviation from
    the chunks' moments."""
    from tests.factories import kind_cfg
    from tests.unit.stages.test_validation import _kind_week

    week = _kind_week(kind)
    chunked, whole = _both(kind_cfg(kind), spoil(week) if spoil else week, tmp_path, monkeypatch)
    assert chunked["success"] == whole["success"] == (spoil is None)


def _both(cfg, df: pd.DataFrame, tmp_path, monkeypatch) -> tuple[dict, dict]:
    """Validate ``df`` at once and in about seven chunks; assert every result is the same."""
    path = tmp_path / "batch.parquet"
    df.to_parquet(path, index=False)
    chunk = max(3, len(df) // 7)
    part = "inputs" if cfg.outcomes_later else "whole"
    whole, _, whole_results = _results(
        monkeypatch, lambda: validation.validate_frame(cfg, df, tmp_path / "gx_whole", part, "w")
    )
    chunked, docs, chunk_results = _results(
        monkeypatch,
        lambda: validation.validate_parquet_in_chunks(cfg, path, tmp_path / "gx_chunks", part, "w", chunk),
    )
    assert chunked["statistics"] == whole["statistics"]
    assert [(f["expectation"], f["column"]) for f in chunked["failures"]] == [
        (f["expectation"], f["column"]) for f in whole["failures"]
    ]
    assert [f.get("why") for f in chunked["failures"]] == [f.get("why") for f in whole["failures"]]
    assert len(chunk_results) == len(whole_results)
    for got, want in zip(chunk_results, whole_results, strict=True):
        what = (want.expectation_config.type, want.expectation_config.kwargs.get("column"))
        assert got.expectation_config.type == want.expectation_config.type
        assert got.success == want.success, what
        for key in COMPARED:
            g, w = (got.result or {}).get(key), (want.result or {}).get(key)
            assert _same(g, w), (what, key, g, w)
    assert docs.startswith("file://") and chunked["data_docs_page"]  # the combined result has its page
    return chunked, whole


def test_a_batch_larger_than_a_chunk_is_validated_in_chunks_and_quarantined_with_its_report(
    flights_cfg, week, tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="include.stages.validation")
    cfg = flights_cfg.model_copy(
        update={"limits": flights_cfg.limits.model_copy(update={"chunk_rows": 1000})}
    )
    paths = PipelinePaths(tmp_path, cfg.name)
    key = partition_key(JAN1, JAN8)
    paths.raw(key).parent.mkdir(parents=True)
    _bad(week, "duplicates").to_parquet(paths.raw(key), index=False)  # the copies are 5,000 rows apart
    with pytest.raises(validation.DataValidationFailed, match="expect_compound_columns_to_be_unique") as err:
        validation.validate_batch(cfg, tmp_path, key)
    assert "in 6 chunks of at most 1000 rows" in caplog.text
    [failure] = err.value.result["failures"]
    assert failure["unexpected_count"] == 40  # each of the 20 rows and its copy, in different chunks
    assert paths.quarantine_reports(key) and not paths.raw(key).exists()
