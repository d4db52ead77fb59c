"""The retrain assessment: drift share, performance floor, running trainings and the cooldown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.decisions.retraining import assess_retraining
from include.foundation.config import DriftSpec

SPEC = DriftSpec(
    column_threshold=0.1,
    share_threshold=0.3,
    max_rows=2_000,
    cooldown_intervals=2,
    interval_days=7,
    performance_floor=0.6,
)
NOW = datetime(2013, 7, 1, tzinfo=UTC)


def test_threshold_is_inclusive():
    assert assess_retraining(SPEC, 0.3, None, "roc_auc", None, NOW, 0).retrain


@pytest.mark.parametrize(
    "share, perf, last, active, retrain, suppressed",
    [
        (0.1, 0.7, None, 0, False, None),  # no drift, fine performance
        (0.4, 0.7, None, 0, True, None),  # drift
        (0.1, 0.5, None, 0, True, None),  # performance under the floor
        (0.4, 0.7, None, 1, False, "still queued or running"),
        (0.4, 0.7, NOW - timedelta(days=7), 0, False, "cooldown"),
        (0.4, 0.7, NOW - timedelta(days=14), 0, True, None),  # cooldown over
    ],
)
def test_assess_retraining(share, perf, last, active, retrain, suppressed):
    d = assess_retraining(SPEC, share, perf, "roc_auc", last, NOW, active)
    assert d.retrain is retrain
    assert (d.suppressed_by is None) if suppressed is None else (suppressed in d.suppressed_by)
