"""Outcomes that arrive after the predictions: the join by key and the realized performance.

Pure functions of frames. The prediction log says what the model said about each row (keys,
``score``, ``prediction``, ``model_version``, ``champion``); outcomes arrive later, keyed the same
way. The join never guesses: an outcome whose key was never scored, or that arrives twice, is
counted and shown, not used; a served prediction without an outcome yet stays unlabelled. The
realized performance is then the served version's own metric on its own logged scores — never a
re-scoring with a newer model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from include.foundation import metrics
from include.foundation.config import BootstrapSpec, SliceSpec
from include.foundation.errors import PermanentError
from include.foundation.prediction_log import CHAMPION, predictions_of

if TYPE_CHECKING:
    import pandas as pd

EXAMPLES = 5  # keys shown per problem in logs and reports


@dataclass(frozen=True)
class OutcomeJoin:
    """Served predictions with the outcomes that arrived, and what could not be joined."""

    joined: pd.DataFrame  # one row per served prediction that has exactly one outcome
    served: int  # served predictions (rows the champion scored)
    unlabelled: int  # served predictions without an outcome (yet)
    unknown: int  # outcomes for rows that were never served
    duplicated: int  # outcome rows whose key arrived more than once (none of them used)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"served": self.served, "labelled": len(self.joined), "unlabelled": self.unlabelled,
                "unknown": self.unknown, "duplicated": self.duplicated, "examples": self.examples}  # fmt: skip


class KeysNotUnique(PermanentError):
    """The prediction log repeats a key: which prediction an outcome belongs to would be a guess."""


def join_outcomes(predictions: pd.DataFrame, outcomes: pd.DataFrame, keys: list[str]) -> OutcomeJoin:
    """Join the served rows of ``predictions`` (``champion`` true) with ``outcomes`` on ``keys``.

    ``outcomes`` holds the keys and whatever outcome columns the caller needs (the label, slice
    columns). A key that appears more than once among the outcomes is reported and left out, all
    copies; a key never served is reported; a served row without an outcome is unlabelled.
    """
    served = predictions[predictions[CHAMPION]] if CHAMPION in predictions else predictions
    if served.duplicated(keys).any():
        raise KeysNotUnique(
            f"the prediction log repeats keys {keys}: {served[served.duplicated(keys)][keys].head(EXAMPLES)}"
        )
    repeated = outcomes.duplicated(keys, keep=False)
    single = outcomes[~repeated]
    joined = served.merge(single, on=keys, how="inner", validate="one_to_one", suffixes=("", "_outcome"))
    known = single.merge(served[keys], on=keys, how="left", indicator=True)
    unknown = known[known["_merge"] == "left_only"]
    examples = {
        "unknown": _examples(unknown, keys),
        "duplicated": _examples(outcomes[repeated].drop_duplicates(keys), keys),
    }
    return OutcomeJoin(joined=joined.reset_index(drop=True), served=len(served),
                       unlabelled=len(served) - len(joined), unknown=len(unknown),
                       duplicated=int(repeated.sum()), examples={k: v for k, v in examples.items() if v})  # fmt: skip


def attach_outcomes(
    inputs: pd.DataFrame, outcomes: pd.DataFrame, keys: list[str]
) -> tuple[pd.DataFrame, OutcomeJoin]:
    """Every input row, with the outcome columns of its key where exactly one outcome arrived
    (a left join: no input row is dropped or doubled; without an outcome its columns are empty),
    and the join's report (:func:`join_outcomes`: unknown and duplicated keys are counted, not used)."""
    report = join_outcomes(inputs, outcomes, keys)
    return attach_usable(inputs, usable_outcomes(outcomes, keys), keys), report


def usable_outcomes(outcomes: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The outcomes a join may use: those whose key arrived exactly once."""
    return outcomes[~outcomes.duplicated(keys, keep=False)]


def attach_usable(inputs: pd.DataFrame, usable: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Every input row with its usable outcome's columns (:func:`attach_outcomes` without the
    report; a chunk of a partition's inputs gets exactly the rows the whole would)."""
    extra = [c for c in usable.columns if c not in keys and c not in inputs.columns]
    return inputs.merge(usable[[*keys, *extra]], on=keys, how="left", validate="one_to_one")


def _examples(df: pd.DataFrame, keys: list[str]) -> list[dict[str, Any]]:
    return [{k: str(v) for k, v in row.items()} for row in df[keys].head(EXAMPLES).to_dict("records")]


def realized_performance(
    joined: pd.DataFrame, label: str, metric: str, slices: SliceSpec, bootstrap: BootstrapSpec,
    scorer: metrics.Scorer = metrics.BINARY,
) -> dict[str, Any]:  # fmt: skip
    """The primary metric of what was served, on the rows whose outcomes arrived: the value, a
    percentile bootstrap CI (rows resampled; ``scipy.stats.bootstrap``), and the value per
    configured slice (slices under ``min_rows`` rows or whose labels cannot be measured are left out).

    ``joined`` holds the prediction log's columns (:mod:`include.foundation.prediction_log`), the ``label`` and
    the slice columns.
    """

    fn = scorer.metric_fn(metric)
    y = joined[label].to_numpy()
    p, d = predictions_of(scorer, joined)
    out: dict[str, Any] = {"metric": metric, "rows": len(joined), "value": None, "ci": None, "slices": []}
    if not scorer.measurable(y):
        return out  # a metric of one class (or of a constant) is not a measurement
    out["value"] = float(fn(y, p, d))
    out["ci"] = _bootstrap_ci(fn, y, p, d, bootstrap, scorer)
    for column in slices.columns:
        if column not in joined:
            continue
        for value, idx in joined.groupby(column, dropna=True, observed=True).indices.items():
            if len(idx) >= slices.min_rows and scorer.measurable(y[idx]):
                out["slices"].append({"column": column, "value": str(value), "rows": int(len(idx)),
                                      "value_metric": float(fn(y[idx], p[idx], d[idx]))})  # fmt: skip
    return out


def _bootstrap_ci(fn, y, p, d, spec: BootstrapSpec, scorer: metrics.Scorer) -> list[float] | None:
    """Rows resampled by index (``paired=True``'s own way, here also for 2-D probabilities)."""
    import warnings

    import numpy as np
    from scipy.stats import bootstrap

    def statistic(i):
        return fn(y[i], p[i], d[i]) if scorer.measurable(y[i]) else np.nan

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate resamples give NaN; reported as no interval
        res = bootstrap((np.arange(len(y)),), statistic, vectorized=False, n_resamples=spec.n_resamples,
                        confidence_level=spec.confidence, method="percentile", random_state=spec.seed)  # fmt: skip
    lo, hi = res.confidence_interval
    return None if not (np.isfinite(lo) and np.isfinite(hi)) else [float(lo), float(hi)]
