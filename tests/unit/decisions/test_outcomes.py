"""Outcomes that arrive later: the join by key, and the realized performance of what was served."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from include.decisions.outcomes import KeysNotUnique, join_outcomes, realized_performance
from include.foundation.config import BootstrapSpec, SliceSpec

KEYS = ["day", "flight"]


def log(n: int, champion: bool = True, version: str = "3", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    score = rng.uniform(size=n)
    return pd.DataFrame({"day": np.repeat(["d1", "d2"], n // 2), "flight": np.tile(np.arange(n // 2), 2),
                         "score": score, "prediction": (score > 0.5).astype(int),
                         "model_version": version, "champion": champion})  # fmt: skip


def test_the_join_reports_unknown_duplicated_and_unlabelled_keys_and_guesses_none():
    served = log(10)
    shadow = log(10, champion=False, version="4", seed=1)
    outcomes = pd.DataFrame({"day": ["d1", "d1", "d1", "d2", "d2", "d9"],
                             "flight": [0, 1, 1, 2, 3, 0],  # d1/1 arrives twice; d9/0 was never scored
                             "label": [1, 0, 1, 0, 1, 1]})  # fmt: skip
    out = join_outcomes(pd.concat([served, shadow]), outcomes, KEYS)
    assert out.served == 10 and len(out.joined) == 3  # d1/0, d2/2, d2/3
    assert set(zip(out.joined["day"], out.joined["flight"], strict=True)) == {("d1", 0), ("d2", 2), ("d2", 3)}
    assert set(out.joined["model_version"]) == {"3"}  # the shadow's scores are never judged
    assert out.unlabelled == 7 and out.unknown == 1 and out.duplicated == 2
    assert out.examples == {
        "unknown": [{"day": "d9", "flight": "0"}],
        "duplicated": [{"day": "d1", "flight": "1"}],
    }
    assert out.summary()["labelled"] == 3


def test_a_log_that_repeats_a_key_is_refused():
    with pytest.raises(KeysNotUnique, match="repeats keys"):
        join_outcomes(pd.concat([log(4), log(4)]), pd.DataFrame(columns=[*KEYS, "label"]), KEYS)


def test_realized_performance_is_the_served_scores_metric_with_a_ci_and_slices():
    rng = np.random.default_rng(4)  # not the log's seed: outcomes independent of the draw of scores
    n = 2000
    joined = log(n, seed=3)
    joined["label"] = (rng.uniform(size=n) < 0.3 + 0.4 * joined["score"]).astype(int)
    joined["origin"] = rng.choice(["EWR", "JFK", "LGA"], size=n)
    out = realized_performance(joined, "label", "roc_auc", SliceSpec(columns=["origin"], min_rows=500),
                               BootstrapSpec(n_resamples=200, seed=0))  # fmt: skip
    expected = roc_auc_score(joined["label"], joined["score"])  # computed independently
    assert out["value"] == pytest.approx(expected) and out["rows"] == n
    lo, hi = out["ci"]
    assert lo < expected < hi and hi - lo < 0.1
    by_origin = {s["value"]: s["value_metric"] for s in out["slices"]}
    assert set(by_origin) == {"EWR", "JFK", "LGA"}
    jfk = joined[joined["origin"] == "JFK"]
    assert by_origin["JFK"] == pytest.approx(roc_auc_score(jfk["label"], jfk["score"]))


def test_one_class_of_outcomes_is_no_measurement():
    joined = log(20).assign(label=1)
    out = realized_performance(joined, "label", "roc_auc", SliceSpec(), BootstrapSpec())
    assert out["value"] is None and out["ci"] is None and out["rows"] == 20


def test_outcomes_attach_to_every_input_row_by_key_and_none_is_guessed():
    from include.decisions.outcomes import attach_outcomes

    inputs = pd.DataFrame({"k": [1, 2, 3, 4], "x": [0.1, 0.2, 0.3, 0.4]})
    outcomes = pd.DataFrame({"k": [4, 1, 2, 2, 9], "y": [1, 0, 1, 0, 1]})  # 2 twice, 9 never seen
    rows, report = attach_outcomes(inputs, outcomes, ["k"])
    assert rows["k"].tolist() == [1, 2, 3, 4] and rows["x"].tolist() == [0.1, 0.2, 0.3, 0.4]  # none dropped
    assert rows["y"].tolist()[0] == 0 and rows["y"].tolist()[3] == 1  # by key, not by position
    assert rows["y"].isna().tolist() == [False, True, True, False]  # the repeated key is not used; 3 awaits
    assert (report.unknown, report.duplicated, report.unlabelled) == (1, 2, 2)
    assert report.examples["unknown"] == [{"k": "9"}]
