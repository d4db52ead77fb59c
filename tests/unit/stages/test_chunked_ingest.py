"""Ingest in chunks (``limits.chunk_rows``): the same raw batch, hash and quarantine verdicts as
reading everything at once, with no more than a chunk of a file in memory."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pandas as pd
import pytest

from include.foundation.storage import PipelinePaths, partition_key
from include.stages import sources
from include.stages.ingest import ingest_batch
from tests.factories import landing_cfg

JAN1, JAN8 = datetime(2013, 1, 1, tzinfo=UTC), datetime(2013, 1, 8, tzinfo=UTC)


def _land(root, files: dict[str, pd.DataFrame]):
    landing = root / "shop" / "landing"
    landing.mkdir(parents=True)
    for name, df in files.items():
        df.to_csv(landing / name, index=False)
    return landing


def _week_files():
    days = [f"2013-01-0{d}" for d in range(1, 8)]
    a = pd.DataFrame({"ts": days[:5], "x": [0.5, 1.0, 1.5, 2.0, 2.5], "y": [0, 1, 0, None, 1]})
    b = pd.DataFrame({"ts": [*days[5:], "2013-01-09"], "x": [3.0, 3.5, 4.0], "y": [1, 0, 1]})
    return {"a.csv": a, "b.csv": b}


def test_a_chunked_ingest_writes_the_batch_and_hash_of_a_whole_read(tmp_path, monkeypatch):
    """A blank in one chunk only makes that chunk's ``y`` float; the batch is still one nullable
    integer column, and the content hash is the one reading everything at once gives."""
    whole, chunked = tmp_path / "whole", tmp_path / "chunked"
    _land(whole, _week_files()), _land(chunked, _week_files())
    sizes = []
    real = sources.read_landing_file

    def spy(source, path, base, chunk_rows):
        for chunk in real(source, path, base, chunk_rows):
            sizes.append(len(chunk))
            yield chunk

    at_once = ingest_batch(landing_cfg(), whole, JAN1, JAN8)
    monkeypatch.setattr(sources, "read_landing_file", spy)
    in_chunks = ingest_batch(landing_cfg(limits={"chunk_rows": 2}), chunked, JAN1, JAN8)
    assert max(sizes) == 2 and sum(sizes) == 8  # every row read, never more than two at a time
    assert in_chunks["rows"] == at_once["rows"] == 7
    assert in_chunks["sha256"] == at_once["sha256"]
    key = partition_key(JAN1, JAN8)
    got = pd.read_parquet(PipelinePaths(chunked, "shop").raw(key))
    want = pd.read_parquet(PipelinePaths(whole, "shop").raw(key))
    pd.testing.assert_frame_equal(got, want)
    assert str(got["y"].dtype) == "Int64" and got["y"].isna().sum() == 1
    assert not list((chunked / "shop").rglob(".*.chunks.*"))  # the scratch pieces are gone


def test_text_in_a_later_chunk_of_a_numeric_column_is_the_whole_reads_text(tmp_path):
    """``x`` reads as numbers in the first chunk and as text in the second: the batch holds the text
    a whole read gives (same hash), and validation names the column, instead of Parquet failing."""
    from include.stages.validation import DataValidationFailed, validate_batch

    frame = pd.DataFrame({"ts": ["2013-01-02", "2013-01-03", "2013-01-04", "2013-01-05"],
                          "x": ["1", "2", "oops", "4"], "y": [0, 1, 0, 1]})  # fmt: skip
    outs = []
    for root, cfg in (
        (tmp_path / "whole", landing_cfg()),
        (tmp_path / "chunked", landing_cfg(limits={"chunk_rows": 2})),
    ):
        _land(root, {"a.csv": frame})
        outs.append(ingest_batch(cfg, root, JAN1, JAN8))
        with pytest.raises(DataValidationFailed, match="column=x.*some values are text, not numbers"):
            validate_batch(cfg, root, outs[-1]["partition"])
    assert outs[0]["sha256"] == outs[1]["sha256"] and outs[0]["rows"] == 4


def test_a_bad_timestamp_in_a_files_last_chunk_quarantines_it_with_whole_file_counts(tmp_path):
    files = _week_files()
    files["a.csv"].loc[4, "ts"] = "soon"
    landing = _land(tmp_path, files)
    cfg = landing_cfg(limits={"chunk_rows": 2})
    with pytest.raises(sources.SourceError, match=re.escape("has 1 rows whose 'ts' cannot be parsed (e.g. ['soon']) "
                                                            "and 0 rows without one, of 5")):  # fmt: skip
        ingest_batch(cfg, tmp_path, JAN1, JAN8)
    assert not PipelinePaths(tmp_path, "shop").raw(partition_key(JAN1, JAN8)).exists()  # nothing half-written
    assert not (landing / "a.csv").exists()
    [report] = (tmp_path / "shop" / "quarantine" / "landing").glob("a-*.csv.error.json")
    assert json.loads(report.read_text())["unparseable_rows"] == 1
    assert ingest_batch(cfg, tmp_path, JAN1, JAN8)["rows"] == 2  # the next run goes on with b.csv


def test_late_rows_spread_over_chunks_are_counted_together(tmp_path):
    cfg = landing_cfg(limits={"chunk_rows": 1})
    _land(
        tmp_path, {"w1.csv": pd.DataFrame({"ts": ["2013-01-02", "2013-01-03"], "x": [1.0, 2.0], "y": [0, 1]})}
    )
    ingest_batch(cfg, tmp_path, JAN1, JAN8)
    from include.stages.ingest import publish_batch
    from include.stages.validation import validate_batch

    key = partition_key(JAN1, JAN8)
    validate_batch(cfg, tmp_path, key)
    publish_batch(cfg, tmp_path, key)
    late = pd.DataFrame(
        {"ts": ["2013-01-04", "2013-01-09", "2013-01-05"], "x": [1.0, 2.0, 3.0], "y": [0, 1, 0]}
    )
    late.to_csv(tmp_path / "shop" / "landing" / "late.csv", index=False)
    with pytest.raises(sources.LateRows, match="holds 2 rows of intervals already published"):
        ingest_batch(cfg, tmp_path, JAN8, JAN8.replace(day=15))


def test_reading_a_file_in_chunks_holds_one_chunk_not_the_file(tmp_path):
    """Arrow's pre-buffering keeps every row group a reader has read until it is closed: reading
    a file in chunks would then hold all of it (make bench P7 saw 1.9 GB after 15M rows)."""
    import gc

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from include.foundation.chunked import iter_frames

    table = pa.table({f"x{i}": np.random.default_rng(i).normal(size=50_000) for i in range(4)})
    with pq.ParquetWriter(tmp_path / "big.parquet", table.schema) as writer:
        for _ in range(8):  # 8 row groups of 1.6 MB
            writer.write_table(table)
    gc.collect()
    before, held = pa.total_allocated_bytes(), []
    for frame in iter_frames(tmp_path / "big.parquet", 50_000):
        del frame
        held.append(pa.total_allocated_bytes() - before)  # what the reader holds between chunks
    assert len(held) == 8 and max(held) < 12_000_000, held  # pre-buffered: the whole file, 21 MB


def test_pass_one_keeps_no_chunk_alive(tmp_path):
    """What pass one notes of a chunk (its first row, its types) is a copy: a view would keep the
    whole chunk, and every chunk of the batch, in memory."""
    import gc
    import weakref

    from include.foundation.chunked import ChunkStats

    stats, refs = ChunkStats(), []
    for i in range(3):
        chunk = pd.DataFrame({"x": [float(i)] * 1000, "s": ["a"] * 1000})
        stats.observe(chunk)
        refs.append(weakref.ref(chunk))
        del chunk
    gc.collect()
    assert all(r() is None for r in refs) and len(stats.dtypes()) == 2


def test_a_replays_read_of_a_landing_folder_leaves_it_as_it_is(tmp_path):
    """make loop-value reads the landing files whole and read-only: no index, nothing moved."""
    landing = _land(tmp_path, _week_files())
    rows = sources.fetch(landing_cfg(), JAN1, JAN8, tmp_path / "shop", read_only=True)
    assert len(rows) == 7 and str(rows["y"].dtype) == "Int64"
    assert sorted(p.name for p in landing.iterdir()) == ["a.csv", "b.csv"]
    assert not (tmp_path / "shop" / sources.LANDING_INDEX).exists()
