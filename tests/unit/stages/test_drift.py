"""The drift stage: Evidently's report on sampled frames and the summary table the task log leads with."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from include.foundation.config import DriftSpec
from include.stages.drift import format_summary
from include.stages.evidence import drift_report

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
        {**s, "as_of": NOW.isoformat(), "week": "w", "champion_version": "3", "performance": 0.7, "performance_metric": "roc_auc",
         "retrain": True, "reasons": ["drift share 0.40 >= 0.3"], "suppressed_by": None, "report": "/x/report.html"}
    )  # fmt: skip
    a_line = next(line for line in text.splitlines() if line.startswith("a "))
    assert a_line.rstrip().endswith("YES") and "RETRAIN" in text and "/x/report.html" in text
    assert "histograms" not in text  # a window within drift.max_rows: Evidently's own verdict


def test_the_task_log_says_when_drift_was_judged_on_every_row():
    from include.stages.drift_stats import overrule, stream_window_drift

    ref, cur = frames(3_000, 1.0)
    drift = stream_window_drift([cur], ref, ["a", "b", "c", "d"], ["cat"], SPEC, len(cur))
    _, s = drift_report(ref, drift.sampled(), ["a", "b", "c", "d"], ["cat"], SPEC, current_total=len(cur))
    s = overrule(s, drift.verdicts(SPEC.column_threshold), SPEC.share_threshold)
    text = format_summary(
        {**s, "as_of": NOW.isoformat(), "week": "w", "champion_version": "3", "performance": 0.7, "performance_metric": "roc_auc",
         "retrain": True, "reasons": ["drift share 0.40 >= 0.3"], "suppressed_by": None, "report": "/x/report.html"}
    )  # fmt: skip
    assert "current 2000/3000 rows (sampled/total); drift judged on all rows (histograms)" in text


def test_realized_history_judges_what_was_served_once_its_outcomes_arrived(tmp_path):
    """Two published weeks: week 1 served by v1 (and shadowed by v2), week 2 served by v2 after a
    promotion. Outcomes arrive a week late: at the end of week 2 only week 1 is judged, as v1's
    (the version that served it, not the champion now), on its logged scores."""
    from dataclasses import replace
    from datetime import timedelta

    from sklearn.metrics import roc_auc_score

    from include.foundation import metrics
    from include.foundation.prediction_log import log_rows
    from include.foundation.settings import Settings
    from include.foundation.storage import PipelinePaths
    from include.stages.evidence import realized_history
    from tests.factories import frame, tiny_cfg, write_curated_weeks

    base = tiny_cfg()
    cfg = base.model_copy(update={"labels": base.labels.model_copy(update={"delay_days": 7})})
    settings = replace(Settings.from_env(), data_root=tmp_path)
    paths = PipelinePaths(tmp_path, cfg.name)
    start = datetime(2013, 1, 1, tzinfo=UTC)
    weeks = [frame(start + timedelta(weeks=i), 7, n=400, seed=i) for i in range(2)]
    keys = write_curated_weeks(paths, start, weeks)
    rng = np.random.default_rng(9)
    for key, week, version, champion in ((keys[0], weeks[0], "1", True), (keys[0], weeks[0], "2", False),
                                         (keys[1], weeks[1], "2", True)):  # fmt: skip
        score = np.clip(
            week["y"].to_numpy() + rng.normal(0, 0.4, len(week)), 0, 1
        )  # informative, not perfect
        rows = log_rows(week, ["ts"], metrics.BINARY, score, (score > 0.5).astype(int), "tiny_model", version,
                        "r", start, champion)  # fmt: skip
        paths.predictions(key, version).parent.mkdir(parents=True, exist_ok=True)
        rows.to_parquet(paths.predictions(key, version))

    at_week2_end = realized_history(cfg, settings, start + timedelta(weeks=2))
    assert [(r["partition"], r["model_version"]) for r in at_week2_end] == [(keys[0], "1")]
    served = pd.read_parquet(paths.predictions(keys[0], "1"))
    expected = roc_auc_score(weeks[0]["y"] > 0.5, served["score"])  # independently, from log and outcomes
    assert at_week2_end[0]["value"] == pytest.approx(expected) and at_week2_end[0]["rows"] == 400
    assert at_week2_end[0]["join"]["unknown"] == 0 and at_week2_end[0]["join"]["unlabelled"] == 0
    # the outcomes run of that week says the same in its note, the week they arrive
    from include.stages.ingest import realized_on_arrival

    arrived = realized_on_arrival(cfg, paths, keys[0])
    assert arrived["realized"] == pytest.approx(expected) and arrived["realized_version"] == "1"
    assert arrived["realized_line"] == f"; realized roc_auc {expected:.4f} (served by v1)"

    a_week_later = realized_history(cfg, settings, start + timedelta(weeks=3))
    assert [(r["partition"], r["model_version"]) for r in a_week_later] == [(keys[0], "1"), (keys[1], "2")]
    assert [r["model_version"] for r in realized_history(cfg, settings, start + timedelta(weeks=3), "2")] == [
        "2"
    ]
    together = cfg.model_copy(update={"labels": base.labels})  # no delay: both weeks at once
    assert len(realized_history(together, settings, start + timedelta(weeks=2))) == 2


def test_prediction_drift_is_evidentlys_verdict_on_the_scores():
    from include.foundation.config import PredictionDriftSpec
    from include.stages.evidence import prediction_drift

    rng = np.random.default_rng(5)
    holdout, same, shifted = rng.beta(2, 5, 3000), rng.beta(2, 5, 3000), rng.beta(3.5, 5, 3000)
    spec = PredictionDriftSpec(method="psi", threshold=0.1)
    quiet, loud = prediction_drift(holdout, same, spec), prediction_drift(holdout, shifted, spec)
    assert not quiet["drifted"] and quiet["score"] < 0.1
    assert loud["drifted"] and loud["score"] >= 0.1 and loud["current_rows"] == loud["reference_rows"] == 3000


def test_a_report_of_a_retraining_on_decay_says_decay_not_only_no_drift():
    """Evidently says "no drift detected"; the page's verdict names the realized decay and the decision."""
    from include.stages.drift import verdict_html

    result = {"as_of": "2013-05-07T00:00:00+00:00", "week": "2013-04-30--2013-05-06", "champion_version": "2", "performance_metric": "roc_auc",
              "drift_share": 0.1, "n_columns": 10, "share_threshold": 0.35, "drifted_columns": ["temp"],
              "prediction_drift": None, "performance": 0.61, "performance_window": ["2013-04-23", "2013-04-30"],
              "realized": [{"partition": "20130423T0000Z_20130430T0000Z", "model_version": "2", "rows": 5000,
                            "value": 0.6262, "ci": None}],
              "retrain": True, "suppressed_by": None,
              "reasons": ["realized roc_auc below the champion's holdout 0.7076 by more than 0.02 in 2 of the last 3"]}  # fmt: skip
    html = verdict_html(result)
    assert "Drift check of 2013-04-30--2013-05-06: RETRAIN" in html and "champion judged</th><td>v2" in html
    assert "realized roc_auc below the champion&#x27;s holdout" in html and "0.6262" in html
    assert "share 0.10 of 10 columns (threshold 0.35): temp" in html
    hostile = verdict_html({**result, "drifted_columns": ["<script>x</script>"]})
    assert "<script>x" not in hostile and "&lt;script&gt;" in hostile
