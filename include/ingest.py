"""Ingestion stage: pull one data interval from the source into its raw partition."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from include import sources
from include.config import PipelineConfig
from include.errors import PermanentError
from include.storage import PipelinePaths, frame_digest, parse_partition_key, partition_key, write_parquet

log = logging.getLogger(__name__)


class OverlappingBatch(PermanentError):
    """The interval overlaps published partitions other than its own: its rows would count twice."""


def overlapping_partitions(paths: PipelinePaths, start: datetime, end: datetime) -> list[str]:
    """Curated partitions, other than ``[start, end)``'s own, that share time with it."""
    key = partition_key(start, end)
    out = []
    for k in paths.curated_partitions():
        s, e = parse_partition_key(k)
        if k != key and s < end and e > start:
            out.append(k)
    return out


def ingest_batch(cfg: PipelineConfig, data_root: Path, start: datetime, end: datetime) -> dict:
    """Write the interval's rows to ``raw/<partition>/batch.parquet`` atomically.

    Idempotent: the same interval gives the same file and the same content hash, and a
    re-run replaces the file instead of adding a second one. An interval that overlaps other
    published partitions is refused (:class:`OverlappingBatch`).
    """
    paths = PipelinePaths(data_root, cfg.name)
    key = partition_key(start, end)
    overlap = overlapping_partitions(paths, start, end)
    if overlap:
        raise OverlappingBatch(
            f"batch {key} of {cfg.name} overlaps published partitions {overlap}: its rows would be counted "
            "twice. Ingest whole intervals that do not overlap (or delete those partitions first)."
        )
    df = sources.fetch(cfg, start, end, paths.base)
    out = write_parquet(df, paths.raw(key))
    digest = frame_digest(df)
    log.info("ingested %d rows for %s into %s (sha256 %s)", len(df), key, out, digest[:12])
    return {"partition": key, "uri": str(out), "rows": len(df), "sha256": digest}


def resolve_interval(
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    batch_start: str | None = None,
    batch_days: int | None = None,
) -> tuple[datetime, datetime]:
    """The interval a run ingests: the run's data interval, or an explicit manual override."""
    from datetime import UTC, timedelta

    if batch_start:
        start = datetime.fromisoformat(batch_start)
        start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
        return start, start + timedelta(days=batch_days or 7)
    if data_interval_start is None or data_interval_end is None:
        raise ValueError("run has no data interval: pass batch_start in the run's params")
    if data_interval_end <= data_interval_start:
        raise ValueError(f"empty data interval {data_interval_start}..{data_interval_end}: pass batch_start")
    return data_interval_start, data_interval_end
