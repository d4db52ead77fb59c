"""Which rows a step may use: the window cut, the training/holdout windows and the first champion.

Pure functions of frames, specs and dates. ``include.stages.datasets`` (reading curated
partitions for the DAGs) and ``include.replay`` (the same year in memory) both cut with them.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from include.foundation.config import TrainingSpec
from include.foundation.timeutil import naive_utc

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def cut_window(
    df: pd.DataFrame, ts_col: str, start: datetime, end: datetime, unique_together: list[list[str]]
) -> pd.DataFrame:
    """Rows with ``start <= timestamp < end`` (timestamps naive UTC), each counted once.

    Where the same row appears twice (partitions that overlap: a manual batch over scheduled
    weeks, published before ingestion refused such batches), it is de-duplicated on each
    ``unique_together`` group, the later copy winning.
    """
    df = df[(df[ts_col] >= naive_utc(start)) & (df[ts_col] < naive_utc(end))]
    for group in unique_together:
        before = len(df)
        df = df.drop_duplicates(subset=group, keep="last")
        if len(df) < before:
            log.warning(
                "dropped %d rows repeated in overlapping partitions (key %s)", before - len(df), group
            )
    return df.reset_index(drop=True)


def training_windows(
    training: TrainingSpec, as_of: datetime, train_days: int | None = None
) -> tuple[datetime, datetime]:
    """``(train_start, holdout_start)`` for data up to ``as_of``: the holdout is the last
    ``holdout_days`` before it, training the ``train_days`` (default: the config's) before that."""
    holdout_start = as_of - timedelta(days=training.holdout_days)
    return holdout_start - timedelta(days=train_days or training.train_days), holdout_start


def first_champion_as_of(training: TrainingSpec, first_day: datetime, interval: timedelta) -> datetime:
    """The first batch end (``first_day`` + whole intervals) by which a training window and its
    holdout fit: when the first champion can be trained."""
    needed = timedelta(days=training.train_days + training.holdout_days)
    return first_day + interval * -(-needed // interval)
