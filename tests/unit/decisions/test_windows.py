"""Which rows a step may use: the window cut, the outcomes that arrived, the training windows and
the first champion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from include.decisions.windows import (
    cut_window,
    first_champion_as_of,
    labelled_until,
    outcomes_due,
    training_windows,
)
from include.foundation.config import LabelSpec
from tests.factories import landing_cfg

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


LATE = {"kind": "landing_folder", "path": "outcomes"}  # where a landing pipeline's late outcomes land


def cfg(train_days: int, holdout_days: int, delay_days: int = 0, interval_days: int = 7):
    return landing_cfg(training={"train_days": train_days, "holdout_days": holdout_days},
                       labels={"delay_days": delay_days, **({"source": LATE} if delay_days else {})},
                       drift={"interval_days": interval_days}, schedule={"drift_check": None})  # fmt: skip


def test_training_windows_end_where_the_holdout_starts():
    as_of = datetime(2013, 3, 12, tzinfo=UTC)
    assert training_windows(cfg(56, 14), as_of) == (
        as_of - timedelta(days=70),
        as_of - timedelta(days=14),
        as_of,
    )
    assert training_windows(cfg(56, 14), as_of, train_days=7)[0] == as_of - timedelta(days=21)


def test_outcomes_are_used_only_once_they_arrived():
    as_of, week = datetime(2013, 3, 12, tzinfo=UTC), timedelta(weeks=1)
    assert labelled_until(LabelSpec(), as_of, week) == as_of  # together with the inputs
    assert labelled_until(LabelSpec(delay_days=7), as_of, week) == as_of - week
    # a 10-day delay: the week ending 8 days ago is not labelled until 2 days from now
    assert labelled_until(LabelSpec(delay_days=10), as_of, week) == as_of - 2 * week
    assert labelled_until(LabelSpec(delay_days=3), as_of, timedelta(days=1)) == as_of - timedelta(days=3)
    for delay, shift in ((0, 0), (7, 1), (14, 2), (10, 2)):  # the windows move with the delay, whole
        train_start, holdout_start, end = training_windows(cfg(56, 14, delay), as_of)
        assert end == as_of - shift * week and holdout_start == end - 2 * week
        assert train_start == holdout_start - 8 * week


def test_the_first_champion_waits_for_whole_batches_of_training_and_holdout():
    week = timedelta(weeks=1)
    assert first_champion_as_of(cfg(56, 14), JAN1, week) == JAN1 + 10 * week
    assert first_champion_as_of(cfg(14, 7), JAN1, week) == JAN1 + 3 * week
    assert first_champion_as_of(cfg(10, 5), JAN1, week) == JAN1 + 3 * week
    assert first_champion_as_of(cfg(10, 5, interval_days=1), JAN1, timedelta(days=1)) == JAN1 + timedelta(
        days=15
    )
    # ... and for their outcomes: a week later with a week's delay, two with 10 days
    assert first_champion_as_of(cfg(14, 7, 7), JAN1, week) == JAN1 + 4 * week
    assert first_champion_as_of(cfg(14, 7, 10), JAN1, week) == JAN1 + 5 * week


def test_the_champion_is_judged_on_rows_whose_outcomes_arrived():
    from include.decisions.windows import performance_window
    from include.foundation.config import DriftSpec

    as_of, week, drift = datetime(2013, 3, 12, tzinfo=UTC), timedelta(weeks=1), DriftSpec(window_days=14)
    assert performance_window(LabelSpec(), drift, as_of) == (as_of - 2 * week, as_of)
    assert performance_window(LabelSpec(delay_days=7), drift, as_of) == (as_of - 3 * week, as_of - week)


def test_a_collection_run_gathers_the_interval_whose_outcomes_are_due():
    """The outcomes a run collects are those the cut lets every later step use at its end."""
    week = timedelta(days=7)
    start, end = datetime(2013, 1, 22, tzinfo=UTC), datetime(2013, 1, 29, tzinfo=UTC)
    for delay, weeks_back in ((0, 0), (1, 1), (7, 1), (8, 2), (14, 2)):
        due = outcomes_due(LabelSpec(delay_days=delay), start, end)
        assert due == (start - weeks_back * week, end - weeks_back * week), delay
        assert due[1] == labelled_until(LabelSpec(delay_days=delay), end, week)  # the cut, exactly


def test_a_training_window_past_its_cap_is_a_seeded_stratified_sample_in_order():
    import numpy as np
    import pandas as pd

    from include.decisions.windows import training_sample

    df = pd.DataFrame({"t": range(1000), "label": [1] * 100 + [0] * 897 + [2] * 3})
    same = training_sample(df, "label", None, 0, True)
    assert same is df and training_sample(df, "label", 1000, 0, True) is df  # no cap, or within it
    s = training_sample(df, "label", 200, 7, True)
    assert len(s) == 200 and s["t"].is_monotonic_increasing  # the cap, in the window's order
    assert s["label"].value_counts().to_dict() == {0: 179, 1: 20, 2: 1}  # shares kept, the rare class too
    assert s.equals(training_sample(df, "label", 200, 7, True))  # seeded
    assert not s.equals(training_sample(df, "label", 200, 8, True))
    plain = training_sample(df.assign(label=np.linspace(0, 1, 1000)), "label", 50, 7, False)  # a number
    assert len(plain) == 50 and plain["t"].is_monotonic_increasing
