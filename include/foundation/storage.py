"""Where data lives and how it is written: partitions keyed by data interval, atomic writes.

Layout under ``<data_root>/<pipeline>/``::

    raw/<partition>/batch.parquet            as ingested, before validation
    curated/<partition>/batch.parquet        validated; the only input training may read
    quarantine/<partition>/<sha>/batch.parquet   failed validation, beside validation_result.json
    raw/<partition>/outcomes.parquet         outcomes that arrive later (labels.delay_days), as collected
    outcomes/<partition>/batch.parquet       validated outcomes: key and outcome columns, joined by key
    quarantine/<partition>/outcomes-<sha>/outcomes.parquet   outcomes that failed validation
    gx/                                      Great Expectations project (Data Docs inside)
    training/<run>/{train,holdout}-<sha>.parquet   assembled training sets (write-once, content-keyed)
    predictions/<partition>/v<version>.parquet      the prediction log: one part per (interval, model version)
    predictions/<partition>/superseded/v<version>-<sha>.parquet   parts scored from a batch since replaced
    drift/<run>/report.html                  Evidently reports
    quarantine/<partition>/<sha>/readmission-<run>.json   a re-admission of that batch: who, why, when, outcome
    quarantine/landing/<file>-<sha>          landing files that could not be placed, beside <...>.error.json

Only drift reports, Data Docs and quarantine validation results are served over HTTP
(:func:`include.foundation.links.viewable_file`); everything else stays on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.foundation.errors import PermanentError
from include.foundation.timeutil import utc

if TYPE_CHECKING:
    import pandas as pd

BATCH_FILE = "batch.parquet"
OUTCOMES_PREFIX = "outcomes-"  # a quarantined outcome batch's folder: quarantine/<partition>/outcomes-<sha>/
_KEY_FMT = "%Y%m%dT%H%MZ"


def partition_key(start: datetime, end: datetime) -> str:
    """Sortable, filesystem-safe name for a data interval, e.g. ``20130101T0000Z_20130108T0000Z``."""
    return f"{utc(start).strftime(_KEY_FMT)}_{utc(end).strftime(_KEY_FMT)}"


def interval_name(key: str) -> str:
    """An interval as people name it: its first and last day (``2013-01-01--2013-01-07``)."""
    from datetime import timedelta

    start, end = parse_partition_key(key)
    last = end - timedelta(microseconds=1)
    return f"{start:%Y-%m-%d}" if last.date() == start.date() else f"{start:%Y-%m-%d}--{last:%Y-%m-%d}"


def week_ending(end: datetime | str, days: int = 7) -> str:
    """The name of the interval of ``days`` that ends (exclusive) at ``end``, as
    :func:`interval_name` names it: a drift check or a training "as of" the 9th is about the
    week 2013-04-02--2013-04-08, the name every run, note, report and log gives that week."""
    from datetime import timedelta

    end = datetime.fromisoformat(end) if isinstance(end, str) else end
    end = end.replace(tzinfo=UTC) if end.tzinfo is None else end
    return interval_name(partition_key(end - timedelta(days=days), end))


def parse_partition_key(key: str) -> tuple[datetime, datetime]:
    start, end = key.split("_")
    return (
        datetime.strptime(start, _KEY_FMT).replace(tzinfo=UTC),
        datetime.strptime(end, _KEY_FMT).replace(tzinfo=UTC),
    )


def safe_name(text: str) -> str:
    """A run id made into one folder name: never a path, never shared by two different ids.

    Characters other than letters, digits, ``.``, ``_``, ``-`` become ``_``; when anything had to
    change (or the name was cut to 120 characters), a hash of the original keeps ids apart
    (``retrain:1`` vs ``retrain+1``), and ``.``/``..`` can never come out.
    """
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:120] or "run"
    if clean != text:
        clean = f"{clean}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    return clean


@dataclass(frozen=True)
class PipelinePaths:
    data_root: Path
    pipeline: str

    @property
    def base(self) -> Path:
        return self.data_root / self.pipeline

    def raw(self, key: str) -> Path:
        return self.base / "raw" / key / BATCH_FILE

    def curated(self, key: str) -> Path:
        return self.base / "curated" / key / BATCH_FILE

    def quarantine_dir(self, key: str, digest: str, part: str = "inputs") -> Path:
        """Where a batch that failed validation is kept, by its content: a second failure of the
        same interval (after a re-ingest) gets its own folder and report."""
        return (
            self.base / "quarantine" / key / f"{OUTCOMES_PREFIX if part == 'outcomes' else ''}{digest[:12]}"
        )

    def quarantine_reports(self, key: str, part: str = "inputs") -> list[Path]:
        """The validation reports of the interval's quarantined batches (``part``: ``inputs`` or
        ``outcomes``), oldest first."""
        found = (self.base / "quarantine" / key).glob("*/validation_result.json")
        mine = [p for p in found if p.parent.name.startswith(OUTCOMES_PREFIX) == (part == "outcomes")]
        return sorted(mine, key=lambda p: p.stat().st_mtime_ns)

    @staticmethod
    def validation_pass(raw: Path) -> Path:
        """The record that ``raw`` passed its suite (its content hash): what publication checks."""
        return raw.with_name(raw.name + ".passed.json")

    def raw_outcomes(self, key: str) -> Path:
        return self.base / "raw" / key / "outcomes.parquet"

    def outcomes(self, key: str) -> Path:
        """The interval's validated outcomes (labels that arrive after the inputs)."""
        return self.base / "outcomes" / key / BATCH_FILE

    def outcome_partitions(self) -> list[str]:
        """Keys of published outcome batches, oldest first."""
        root = self.base / "outcomes"
        return sorted(p.parent.name for p in root.glob(f"*/{BATCH_FILE}")) if root.exists() else []

    @property
    def curated_root(self) -> Path:
        return self.base / "curated"

    @property
    def gx_project(self) -> Path:
        """GX project root: GX keeps its files in ``gx/`` below it (Data Docs included)."""
        return self.base

    def predictions(self, key: str, version: str | int) -> Path:
        """The prediction log's part for one interval scored by one model version (append-only:
        a second scoring of the same interval by the same version is the same part)."""
        return self.base / "predictions" / key / f"v{version}.parquet"

    def training_dir(self, run: str) -> Path:
        return self.base / "training" / safe_name(run)

    def drift_dir(self, run: str) -> Path:
        return self.base / "drift" / safe_name(run)

    def timeline(self) -> Path:
        """The pipeline's "over time" page (include.stages.timeline), rewritten by every drift check."""
        return self.base / "timeline" / "index.html"

    def curated_partitions(self) -> list[str]:
        """Keys of published partitions, oldest first."""
        root = self.curated_root
        if not root.exists():
            return []
        return sorted(p.parent.name for p in root.glob(f"*/{BATCH_FILE}"))


class LockTimeout(TimeoutError):
    """Another process held the lock too long (retried: it is usually a long validation)."""


@contextmanager
def exclusive(lock_file: Path, timeout: float = 600.0, poll: float = 0.2):
    """Hold an exclusive ``flock`` on ``lock_file`` across processes (and hosts sharing the
    folder over a filesystem with POSIX locks, such as NFSv4), waiting up to ``timeout`` seconds.
    The kernel drops the lock when its holder dies, so a killed worker never leaves it held."""
    import fcntl
    import time

    lock_file.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with open(lock_file, "a+") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockTimeout(f"{lock_file} stayed locked for over {timeout:.0f}s") from None
                time.sleep(poll)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def atomic_write(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path``, then rename it into place.

    Readers see the old file or the new one, never a half-written one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_parquet(df: pd.DataFrame, path: Path, metadata: dict[str, str] | None = None) -> Path:
    """``df`` to Parquet atomically; ``metadata`` goes into the file's key-value metadata."""
    if not metadata:
        return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           **{k.encode(): v.encode() for k, v in metadata.items()}})  # fmt: skip
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def parquet_metadata(path: Path, key: str) -> str | None:
    """One key of a Parquet file's key-value metadata (None when absent): the footer's, which holds
    a schema's metadata and what a writer added when it closed."""
    import pyarrow.parquet as pq

    value = (pq.read_metadata(path).metadata or {}).get(key.encode())
    return value.decode() if value is not None else None


def write_json(obj: Any, path: Path) -> Path:
    return atomic_write(
        path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
    )


def record_readmission(request: dict[str, Any], outcome: str, **details: Any) -> Path:
    """Record a re-admission decision beside the quarantine report it replaces
    (``readmission-<airflow run>.json``): who asked, why, when, the report, and what came of it
    (``published`` or ``quarantined again``). One file per run: nothing earlier is rewritten, and
    a retried task writes its own record again with the same outcome."""
    report = Path(request["replaces_report"])
    slug = safe_name(str(request["airflow_run_id"]))  # one file per run id: two ids never share a name
    record = {**request, "outcome": outcome, "decided_at": datetime.now(UTC).isoformat(), **details}
    return write_json(record, report.parent / f"readmission-{slug}.json")


class UnvalidatedBatch(PermanentError):
    """Publication was reached for a batch whose content never passed validation."""


def record_validation_pass(raw: Path, partition: str, part: str, statistics: dict | None = None) -> Path:
    """Record that ``raw``'s content passed its suite (what validation writes on a pass)."""
    return write_json({"sha256": file_digest(raw), "partition": partition, "part": part,
                       "statistics": statistics or {}}, PipelinePaths.validation_pass(raw))  # fmt: skip


def require_validated(raw: Path, what: str) -> None:
    """Publication's own precondition, from durable evidence: the raw batch's content is the
    content that passed its suite (a validate task marked success by hand, or a batch rewritten
    after it passed, is refused)."""
    record = PipelinePaths.validation_pass(raw)
    passed = json.loads(record.read_text()).get("sha256") if record.exists() else None
    if not raw.exists() or passed != file_digest(raw):
        raise UnvalidatedBatch(
            f"{what} {raw.parent.name} is not published: {'it' if raw.exists() else 'its raw batch'} "
            f"{'has not passed validation' if raw.exists() else 'is gone (quarantined?)'} "
            "(was validate marked success by hand?). Run validate on it; only a batch that passed is published."
        )


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def frame_digest(df: pd.DataFrame) -> str:
    """Content hash of a frame (values, column names and dtypes; row order matters)."""
    import pandas as pd

    h = hashlib.sha256()
    h.update(json.dumps([[c, str(t)] for c, t in df.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()
