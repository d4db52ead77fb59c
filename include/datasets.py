"""Datasets: windows of *curated* data, labels, model frames and lineage-checked training sets.

What every stage reads goes through here, so training, evaluation and the drift check frame
the same rows the same way. Nothing but published (validated) batches is ever read: this
module never touches ``raw/`` or ``quarantine/``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from include.config import PipelineConfig
from include.storage import PipelinePaths, frame_digest, parse_partition_key, write_parquet
from include.tracking import Tag

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


class NotEnoughData(RuntimeError):
    """The curated dataset does not cover the requested window yet."""


class LineageError(RuntimeError):
    """A model's training data cannot be found or no longer matches its recorded hash."""


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


def model_frame(cfg: PipelineConfig, df: pd.DataFrame) -> pd.DataFrame:
    """Feature columns (numeric as float64, so missing values fit the signature) plus the label."""
    out = df[[*cfg.model.features, cfg.target.name]].copy()
    out[cfg.model.numeric_features] = out[cfg.model.numeric_features].astype("float64")
    return out


def split_xy(cfg: PipelineConfig, df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """``(X, y)`` of labelled rows, framed as the model sees them."""
    df = model_frame(cfg, df)
    return df[cfg.model.features], df[cfg.target.name]


def labelled_xy(cfg: PipelineConfig, df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series] | None:
    """``(X, y)`` of the rows that have a target, or None when they do not hold both classes."""
    if cfg.target.column not in df:
        return None
    labelled = add_label(cfg, df)
    if labelled.empty or labelled[cfg.target.name].nunique() != 2:
        return None
    return split_xy(cfg, labelled)


def read_training_set(version) -> pd.DataFrame:
    """The training set a registered model version was fitted on, verified by its lineage tags.

    ``version`` is an MLflow ModelVersion (anything with ``.version`` and ``.tags``).
    """
    import pandas as pd

    uri, sha = version.tags.get(Tag.TRAIN_URI), version.tags.get(Tag.TRAIN_SHA)
    if not uri or not sha:
        raise LineageError(f"v{version.version} has no {Tag.TRAIN_URI}/{Tag.TRAIN_SHA} tags")
    if not Path(uri).exists():
        raise LineageError(f"v{version.version} was trained on {uri}, which no longer exists")
    df = pd.read_parquet(uri)
    if frame_digest(df) != sha:
        raise LineageError(f"{uri} changed since v{version.version} was trained on it (sha256 mismatch)")
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


def curated_end_at_or_before(paths: PipelinePaths, as_of: datetime | None) -> datetime:
    """The end of the newest curated partition at or before ``as_of`` (None: the newest of all).

    Snapping to a partition boundary makes a window hold whole batches.
    """
    ends = [e for _, e in map(parse_partition_key, paths.curated_partitions()) if as_of is None or e <= as_of]
    if not ends:
        when = "" if as_of is None else f" ending on or before {as_of:%Y-%m-%d %H:%M}"
        raise NotEnoughData(f"no curated partition of {paths.pipeline}{when}")
    return max(ends)


def recent_window(cfg: PipelineConfig, data_root: Path, as_of: datetime | None, days: int):
    """``(end, rows)``: the ``days`` of curated data up to the partition end at or before ``as_of``."""
    paths = PipelinePaths(data_root, cfg.name)
    end = curated_end_at_or_before(paths, as_of)
    rows = load_window(paths, cfg.schema_.timestamp_column, end - timedelta(days=days), end)
    if rows.empty:
        raise NotEnoughData(f"no curated rows of {cfg.name} in the {days} days before {end:%Y-%m-%d}")
    return end, rows


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
