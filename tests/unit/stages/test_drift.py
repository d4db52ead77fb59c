"""The drift stage: Evidently's report on sampled frames and the summary table the task log leads with."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from include.foundation.config import DriftSpec
from include.stages.drift import drift_report, format_summary

SPEC = DriftSpec(column_threshold=0.1, share_threshold=0.3, max_rows=2_000)
NOW = datetime(2013, 7, 1, tzinfo=UTC)


def frames(n: int, shift: float, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def make(delta: float) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "a": rng.normal(delta, 1, n),
                "b": rng.normal(0, 1, n),
                "c": rng.exponential(1 + delta, n),
                "d": rng.normal(0, 1, n),
                "cat": rng.choice(["x", "y", "z"], n, p=[0.5, 0.3, 0.2]),
            }
        )

    return make(0.0), make(shift)


def test_no_drift_on_same_distribution():
    ref, cur = frames(5_000, 0.0)
    _, s = drift_report(ref, cur, ["a", "b", "c", "d"], ["cat"], SPEC)
    assert s["drifted_columns"] == [] and s["drift_share"] == 0.0


def test_sampled_and_unsampled_agree_on_injected_drift():
    ref, cur = frames(30_000, 1.0, seed=1)
    full = SPEC.model_copy(update={"max_rows": 100_000})
    _, unsampled = drift_report(ref, cur, ["a", "b", "c", "d"], ["cat"], full)
    _, sampled = drift_report(ref, cur, ["a", "b", "c", "d"], ["cat"], SPEC)
    assert unsampled["drifted_columns"] == sampled["drifted_columns"] == ["a", "c"]
    assert sampled["reference_used"] == sampled["current_used"] == 2_000
    assert unsampled["current_used"] == 30_000
    for col in ("a", "b", "c", "d"):
        full_score, sample_score = unsampled["columns"][col]["score"], sampled["columns"][col]["score"]
        assert abs(sample_score - full_score) < 0.05 + 0.15 * full_score, col
    _, again = drift_report(ref, cur, ["a", "b", "c", "d"], ["cat"], SPEC)
    assert again == sampled  # seeded sampling: reproducible


def test_empty_column_is_left_out_not_fatal():
    ref, cur = frames(3_000, 0.0)
    cur["d"] = np.nan
    _, s = drift_report(ref, cur, ["a", "b", "c", "d"], ["cat"], SPEC)
    assert s["empty_columns"] == ["d"] and "d" not in s["columns"]


def test_summary_table_names_drifted_columns():
    ref, cur = frames(3_000, 1.0)
    _, s = drift_report(ref, cur, ["a", "b", "c", "d"], ["cat"], SPEC)
    text = format_summary(
        {**s, "as_of": NOW.isoformat(), "champion_version": "3", "performance": 0.7, "performance_metric": "roc_auc",
         "retrain": True, "reasons": ["drift share 0.40 >= 0.3"], "suppressed_by": None, "report": "/x/report.html"}
    )  # fmt: skip
    a_line = next(line for line in text.splitlines() if line.startswith("a "))
    assert a_line.rstrip().endswith("YES") and "RETRAIN" in text and "/x/report.html" in text
