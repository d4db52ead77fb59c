"""Dataset assembly: training and holdout windows cut from *curated* partitions only.

Nothing but published (validated) batches can reach training: this module never reads
``raw/`` or ``quarantine/``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from include.config import PipelineConfig
from include.storage import PipelinePaths, frame_digest, parse_partition_key, write_parquet

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


class NotEnoughData(RuntimeError):
    """The curated dataset does not cover the requested window yet."""


def load_window(paths: PipelinePaths, ts_col: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Rows of curated partitions with ``start <= timestamp < end`` (timestamps are naive UTC)."""
    import pandas as pd

    keys = [
        k
        for k in paths.curated_partitions()
        if parse_partition_key(k)[0] < end and parse_partition_key(k)[1] > start
    ]
    if not keys:
        return pd.DataFrame()
    df = pd.concat([pd.read_parquet(paths.curated(k)) for k in keys], ignore_index=True)
    lo, hi = (pd.Timestamp(t).tz_convert("UTC").tz_localize(None) for t in (start, end))
    return df[(df[ts_col] >= lo) & (df[ts_col] < hi)].reset_index(drop=True)


def add_label(cfg: PipelineConfig, df: pd.DataFrame) -> pd.DataFrame:
    """Add the target column ``cfg.target.name``; rows without a target value are dropped."""
    tgt = cfg.target
    df = df[df[tgt.column].notna()].copy()
    if tgt.positive_above is not None:
        df[tgt.name] = (df[tgt.column] > tgt.positive_above).astype("int64")
    elif tgt.name != tgt.column:
        df[tgt.name] = df[tgt.column]
    return df


def parse_as_of(text: str | None) -> datetime | None:
    """An ISO date/datetime from a run's params; naive means UTC."""
    if not text:
        return None
    ts = datetime.fromisoformat(text)
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def latest_curated_end(paths: PipelinePaths) -> datetime | None:
    keys = paths.curated_partitions()
    return max(parse_partition_key(k)[1] for k in keys) if keys else None


def assemble(
    cfg: PipelineConfig, data_root: Path, as_of: datetime | None, out_dir: Path, train_days: int | None = None
) -> dict:
    """Write ``train.parquet`` and ``holdout.parquet`` for the windows ending at ``as_of``.

    holdout = the most recent ``holdout_days`` before ``as_of``; train = the ``train_days`` before
    that (``train_days`` overrides the config). ``as_of`` defaults to (and is capped at) the end
    of the latest curated partition.
    """
    paths = PipelinePaths(data_root, cfg.name)
    latest = latest_curated_end(paths)
    if latest is None:
        raise NotEnoughData(f"no curated data for pipeline {cfg.name} yet: run {cfg.name}__ingest first")
    if as_of is None or as_of > latest:
        if as_of is not None:
            log.info("as_of %s is past the curated data; using its end %s", as_of, latest)
        as_of = latest
    as_of = as_of.astimezone(UTC)
    t = cfg.training
    holdout_start = as_of - timedelta(days=t.holdout_days)
    train_start = holdout_start - timedelta(days=train_days or t.train_days)
    ts = cfg.schema_.timestamp_column
    cols = [ts, *cfg.model.features, cfg.target.name]
    train = add_label(cfg, load_window(paths, ts, train_start, holdout_start))
    holdout = add_label(cfg, load_window(paths, ts, holdout_start, as_of))
    if len(train) < t.min_train_rows or holdout.empty or train[cfg.target.name].nunique() < 2:
        raise NotEnoughData(
            f"{cfg.name}: {len(train)} training rows in {train_start:%Y-%m-%d}..{holdout_start:%Y-%m-%d} "
            f"(need {t.min_train_rows}) and {len(holdout)} holdout rows up to {as_of:%Y-%m-%d}; "
            f"curated partitions: {len(paths.curated_partitions())}"
        )
    out: dict = {
        "as_of": as_of.isoformat(),
        "train_window": [train_start.isoformat(), holdout_start.isoformat()],
        "holdout_window": [holdout_start.isoformat(), as_of.isoformat()],
    }
    for name, df in (("train", train[cols]), ("holdout", holdout[cols])):
        uri = write_parquet(df, out_dir / f"{name}.parquet")
        out[name] = {
            "uri": str(uri),
            "rows": len(df),
            "sha256": frame_digest(df),
            "positive_rate": round(float(df[cfg.target.name].mean()), 4),
        }
    log.info(
        "assembled %s: train %d rows %s..%s, holdout %d rows ..%s",
        cfg.name, out["train"]["rows"], train_start.date(), holdout_start.date(),
        out["holdout"]["rows"], as_of.date(),
    )  # fmt: skip
    return out
