"""Which rows a step may use: the window cut, the training windows and the first champion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from include.decisions.windows import cut_window, first_champion_as_of, training_windows
from include.foundation.config import TrainingSpec

JAN1 = datetime(2013, 1, 1, tzinfo=UTC)


def test_the_cut_is_half_open_and_counts_each_row_once():
    df = pd.DataFrame(
        {
            "ts": pd.to_datetime(
                [
                    "2012-12-31 23:00",
                    "2013-01-01 00:00",
                    "2013-01-03 00:00",
                    "2013-01-03 00:00",
                    "2013-01-08 00:00",
                ]
            ),
            "key": [0, 1, 2, 2, 3],
            "v": [0, 1, 2, 20, 3],  # row 2 twice (overlapping partitions): the later copy wins
        }
    )
    out = cut_window(df, "ts", JAN1, JAN1 + timedelta(days=7), [["ts", "key"]])
    assert out["key"].tolist() == [1, 2] and out["v"].tolist() == [1, 20]
    assert out.index.tolist() == [0, 1]
    assert len(cut_window(df, "ts", JAN1, JAN1 + timedelta(days=7), [])) == 3  # no key: nothing merged


def test_training_windows_end_where_the_holdout_starts():
    spec = TrainingSpec(train_days=56, holdout_days=14)
    as_of = datetime(2013, 3, 12, tzinfo=UTC)
    assert training_windows(spec, as_of) == (as_of - timedelta(days=70), as_of - timedelta(days=14))
    assert training_windows(spec, as_of, train_days=7)[0] == as_of - timedelta(days=21)


def test_the_first_champion_waits_for_whole_batches_of_training_and_holdout():
    week = timedelta(weeks=1)
    assert first_champion_as_of(TrainingSpec(train_days=56, holdout_days=14), JAN1, week) == JAN1 + 10 * week
    assert first_champion_as_of(TrainingSpec(train_days=14, holdout_days=7), JAN1, week) == JAN1 + 3 * week
    assert first_champion_as_of(TrainingSpec(train_days=10, holdout_days=5), JAN1, week) == JAN1 + 3 * week
    assert first_champion_as_of(TrainingSpec(train_days=10, holdout_days=5), JAN1, timedelta(days=1)) == (
        JAN1 + timedelta(days=15)
    )
