"""Which rows a step may use: the window cut, the rows whose outcomes have arrived, the
training/holdout windows and the first champion.

Pure functions of frames, specs and dates. ``include.stages.datasets`` (reading curated
partitions for the DAGs) and ``include.replay`` (the same year in memory) both cut with them.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from include.foundation.config import DriftSpec, LabelSpec, PipelineConfig, TrainingSpec
from include.foundation.timeutil import naive_utc

if TYPE_CHECKING:
    import numpy as np
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


def labelled_until(labels: LabelSpec, as_of: datetime, interval: timedelta) -> datetime:
    """The end of the data whose outcomes have arrived by ``as_of``.

    An interval's outcomes arrive ``labels.delay_days`` after its end, so the intervals ending at
    or before ``as_of - delay`` are labelled; with ``as_of`` an interval end (every run's is), the
    cut is the interval end at or before that: the delay rounded up to whole intervals. Every step
    that reads outcomes (training, the holdout, the champion's performance, the replay) cuts here.
    """
    delay = timedelta(days=labels.delay_days)
    return as_of - interval * -(-delay // interval)


def outcomes_due(labels: LabelSpec, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The inputs' interval whose outcomes a collection run over ``[start, end)`` gathers: the one
    that ended ``labels.delay_days`` before ``end``, the delay rounded up to whole intervals as in
    :func:`labelled_until` — so outcomes collected by a run are the ones every later step may use."""
    interval = end - start
    shift = interval * -(-timedelta(days=labels.delay_days) // interval)
    return start - shift, end - shift


def training_windows(
    cfg: PipelineConfig, as_of: datetime, train_days: int | None = None
) -> tuple[datetime, datetime, datetime]:
    """``(train_start, holdout_start, labelled_end)`` for a training at ``as_of``: the holdout is
    the last ``holdout_days`` before the labelled end (:func:`labelled_until`), training the
    ``train_days`` (default: the config's) before that."""
    end = labelled_until(cfg.labels, as_of, timedelta(days=cfg.drift.interval_days))
    training: TrainingSpec = cfg.training
    holdout_start = end - timedelta(days=training.holdout_days)
    return holdout_start - timedelta(days=train_days or training.train_days), holdout_start, end


def performance_window(labels: LabelSpec, drift: DriftSpec, as_of: datetime) -> tuple[datetime, datetime]:
    """``(start, end)`` of the rows the champion's performance is judged on at ``as_of``: the
    drift window's length, ending where the arrived outcomes end (:func:`labelled_until`)."""
    end = labelled_until(labels, as_of, timedelta(days=drift.interval_days))
    return end - timedelta(days=drift.window_days), end


def first_champion_as_of(cfg: PipelineConfig, first_day: datetime, interval: timedelta) -> datetime:
    """The first batch end (``first_day`` + whole intervals) by which a training window and its
    holdout fit, with their outcomes arrived: when the first champion can be trained."""
    training = cfg.training
    needed = timedelta(days=training.train_days + training.holdout_days)
    fits = first_day + interval * -(-needed // interval)
    return fits + (fits - labelled_until(cfg.labels, fits, interval))


def capped_training_set(cfg: PipelineConfig, df: pd.DataFrame) -> pd.DataFrame:
    """The labelled training window as a model is fit on it: :func:`training_sample` with the
    pipeline's ``training.max_train_rows`` and seed."""
    t = cfg.training
    return training_sample(df, cfg.target.name, t.max_train_rows, t.seed, cfg.target_kind != "regression")


def training_sample(
    df: pd.DataFrame, label: str, cap: int | None, seed: int, stratified: bool
) -> pd.DataFrame:
    """At most ``cap`` rows of a training window, in their order (:func:`sample_positions` on its
    labels). The training DAG and the replay both sample with it, so a cap changes neither's
    agreement; ``cap`` None or a window within it: the window as it is."""
    positions = sample_positions(df[label].to_numpy(), cap, seed, stratified)
    return df if positions is None else df.iloc[positions].reset_index(drop=True)


def sample_positions(labels: np.ndarray, cap: int | None, seed: int, stratified: bool) -> np.ndarray | None:
    """Sorted positions of at most ``cap`` rows of a window whose labels are ``labels`` (None: all):
    a seeded sample, stratified by label (each class keeps its share, floor first, the rest to the
    largest remainders, at least one row of each class) unless the target is a number. Only the
    labels are needed, so a window read twice (labels first) yields the same rows."""
    import numpy as np

    if cap is None or len(labels) <= cap:
        return None
    rng = np.random.default_rng(seed)
    if not stratified:
        return np.sort(rng.choice(len(labels), size=cap, replace=False))
    classes, counts = np.unique(labels, return_counts=True)
    share = counts * cap / len(labels)
    take = np.maximum(np.floor(share).astype(int), 1)
    for i in np.argsort(-(share - np.floor(share)), kind="stable")[: max(0, cap - int(take.sum()))]:
        take[i] += 1
    take = np.minimum(take, counts)
    chosen = [
        rng.choice(np.flatnonzero(labels == c), size=k, replace=False)
        for c, k in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(chosen))
