from __future__ import annotations

from datetime import UTC, datetime

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
