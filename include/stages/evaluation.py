"""Evaluation stage: challenger vs champion on the same holdout, and the promotion decision.

Metrics come from ``mlflow.models.evaluate`` (which also logs ROC, PR, calibration and confusion
matrix plots to the challenger's run); the rule is expressed as MLflow ``MetricThreshold``s and
checked with ``mlflow.validate_evaluation_results``. A paired bootstrap gives a confidence
interval for the difference in the primary metric.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from include.foundation import metrics, tracking
from include.foundation.config import PipelineConfig, PromotionSpec
from include.foundation.errors import PermanentError
from include.foundation.settings import Settings
from include.foundation.tracking import Tag
from include.stages.datasets import model_inputs, training_end
from include.stages.registry import get_champion, load_model, model_uri, signature_inputs, with_lineage

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


class AlreadyChampion(PermanentError):
    """The challenger is already champion by another decision: judging it again means nothing."""


class ChampionUnavailable(RuntimeError):
    """The champion alias exists but its model cannot be loaded or scored: never promote blindly.

    Not permanent: a tracking server that is briefly down is the usual cause, so it is retried.
    """


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    primary_metric: str
    challenger: float
    champion: float | None
    difference: float | None
    ci_low: float | None = None
    ci_high: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def thresholds(rule: PromotionSpec, champion: dict[str, float] | None) -> dict:
    """The promotion rule as MLflow MetricThresholds."""
    from mlflow.models import MetricThreshold

    primary = rule.primary_metric
    higher = metrics.greater_is_better(primary)
    if champion is None:
        return {primary: MetricThreshold(threshold=rule.absolute_floor, greater_is_better=higher)}
    out = {primary: MetricThreshold(min_absolute_change=rule.min_improvement, greater_is_better=higher)}
    for metric, tolerance in rule.guardrails.items():
        g_higher = metrics.greater_is_better(metric)
        floor = champion[metric] - tolerance if g_higher else champion[metric] + tolerance
        out[metric] = MetricThreshold(threshold=floor, greater_is_better=g_higher)
    return out


def rounded(text: str, digits: int = 4) -> str:
    """Library messages print full float precision; people read four decimals."""
    long_float = r"-?\d+\.\d{" + str(digits + 1) + r",}(?:[eE][-+]?\d+)?"
    return re.sub(long_float, lambda m: f"{float(m.group()):.{digits}f}", text)


def _in_sample(holdout_start: datetime | None, trained_until: dict[str, datetime] | None) -> str | None:
    """Why the holdout is not out-of-sample for every model compared, if it is not."""
    if holdout_start is None:
        return None
    overlap = {who: end for who, end in (trained_until or {}).items() if end > holdout_start}
    if not overlap:
        return None
    who = ", ".join(f"the {w} was trained on data up to {e:%Y-%m-%d %H:%M}" for w, e in overlap.items())
    return f"the holdout starts {holdout_start:%Y-%m-%d %H:%M} but {who}"


def _regressed_slice(rule: PromotionSpec, slices: list[dict[str, Any]]) -> str | None:
    """Why a slice blocks the promotion (the worst regression past the tolerance), if one does."""
    tol, m = rule.slices.tolerance, rule.primary_metric
    regressed = [x for x in slices if x["change"] < -tol]
    if not regressed:
        return None
    w = min(regressed, key=lambda x: x["change"])
    return (
        f"{m} on {len(regressed)} slice(s) regressed past {tol}, worst {w['column']}={w['value']}: "
        f"{w['challenger']:.4f} vs champion {w['champion']:.4f} ({w['change']:+.4f}, {w['rows']} rows)"
    )


def _not_finite(
    rule: PromotionSpec, challenger: dict[str, float], champion: dict[str, float] | None
) -> str | None:
    """Name the first metric the rule needs that is missing or not a finite number."""
    import math

    needed = [rule.primary_metric, *(rule.guardrails if champion is not None else ())]
    for who, values in (("challenger", challenger), ("champion", champion or {})):
        if who == "champion" and champion is None:
            continue
        for m in needed:
            v = values.get(m)
            if v is None or not math.isfinite(v):
                return f"{who} {m} is {v!r}, so the rule cannot be applied"
    return None


def decide(
    rule: PromotionSpec,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    ci: tuple[float, float] | None = None,
    holdout_start: datetime | None = None,
    trained_until: dict[str, datetime] | None = None,
    slices: list[dict[str, Any]] | None = None,
) -> Decision:
    """Promote only if the holdout is out-of-sample for every model compared, every metric the rule
    needs is a number, MLflow's validation of the thresholds passes, and (if required) the CI does.

    ``trained_until`` maps each model ("challenger", "champion") to the end of its training
    window; the holdout must start at or after every one of them. ``slices`` (from
    :func:`slice_scores`) must not regress past ``promotion.slices.tolerance`` anywhere.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.models.evaluation import EvaluationResult
    from mlflow.models.evaluation.validation import validate_evaluation_results

    m = rule.primary_metric
    ch_value, champ_value = challenger.get(m, float("nan")), None if champion is None else champion.get(m)
    diff = None if champion is None else metrics.orientation(m) * (ch_value - champ_value)
    base = dict(
        primary_metric=m,
        challenger=ch_value,
        champion=champ_value,
        difference=diff,
        ci_low=ci[0] if ci else None,
        ci_high=ci[1] if ci else None,
    )
    refusal = _in_sample(holdout_start, trained_until) or _not_finite(rule, challenger, champion)
    if refusal:
        return Decision(False, f"rejected: {refusal}", **base)
    try:
        validate_evaluation_results(
            thresholds(rule, champion),
            EvaluationResult(metrics=challenger, artifacts={}),
            None if champion is None else EvaluationResult(metrics=champion, artifacts={}),
        )
    except MlflowException as exc:  # ModelValidationFailedException is one
        return Decision(False, f"rejected: {rounded(' '.join(str(exc).split()))}", **base)
    if champion is None:
        return Decision(
            True, f"no champion yet; {m}={ch_value:.4f} clears the floor {rule.absolute_floor}", **base
        )
    if rule.bootstrap.require_lower_bound_above_zero and (ci is None or ci[0] <= 0):
        bound = "was not computed (no valid resample)" if ci is None else f"{ci[0]:.4f} <= 0"
        return Decision(False, f"rejected: {m} gain {diff:+.4f} but its CI lower bound {bound}", **base)
    slice_refusal = _regressed_slice(rule, slices or [])
    if slice_refusal:
        return Decision(False, f"rejected: {slice_refusal}", **base)
    guards = "".join(
        f"; {g} {challenger[g]:.4f} vs {champion[g]:.4f} (tolerance {t})" for g, t in rule.guardrails.items()
    )
    return Decision(
        True,
        f"{m} {ch_value:.4f} vs champion {champ_value:.4f} ({diff:+.4f} >= {rule.min_improvement}){guards}",
        **base,
    )


def slice_scores(
    rule: PromotionSpec, holdout, y: np.ndarray, challenger: tuple, champion: tuple
) -> list[dict[str, Any]]:
    """The primary metric per value of each ``promotion.slices`` column, for both models.

    ``change`` is oriented (positive = challenger better). Slices with fewer than ``min_rows``
    rows or a single class are left out (a metric there would be noise).
    """
    import numpy as np

    fn, sign, spec = (
        metrics.metric_fn(rule.primary_metric),
        metrics.orientation(rule.primary_metric),
        rule.slices,
    )
    out = []
    for column in spec.columns:
        for value, idx in holdout.groupby(column, dropna=True, observed=True).indices.items():
            if len(idx) < spec.min_rows or len(np.unique(y[idx])) < 2:
                continue
            ch, cp = (float(fn(y[idx], p[idx], d[idx])) for p, d in (challenger, champion))
            out.append({"column": column, "value": str(value), "rows": int(len(idx)),
                        "challenger": ch, "champion": cp, "change": sign * (ch - cp)})  # fmt: skip
    return out


def paired_bootstrap_ci(
    y: np.ndarray,
    challenger: tuple[np.ndarray, np.ndarray],
    champion: tuple[np.ndarray, np.ndarray],
    metric: str,
    n_resamples: int,
    seed: int,
    confidence: float,
) -> tuple[float, float] | None:
    """Percentile CI of (challenger - champion) on the metric, positive = challenger better.

    ``challenger``/``champion`` are ``(p_positive, predicted label)`` on the same rows; rows are
    resampled in pairs (``scipy.stats.bootstrap(paired=True)``). None when no valid interval
    exists (e.g. resamples holding a single class).
    """
    import warnings

    import numpy as np
    from scipy.stats import bootstrap

    fn, sign = metrics.metric_fn(metric), metrics.orientation(metric)

    def difference(y, p1, d1, p2, d2):
        if len(np.unique(y)) < 2:
            return np.nan
        return sign * (fn(y, p1, d1) - fn(y, p2, d2))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on degenerate or NaN resamples; we report None
        res = bootstrap(
            (np.asarray(y), *challenger, *champion), difference, paired=True, vectorized=False,
            n_resamples=n_resamples, confidence_level=confidence, method="percentile",
            rng=np.random.default_rng(seed),
        )  # fmt: skip
    lo, hi = res.confidence_interval
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return None
    return float(lo), float(hi)


def _evaluate(model, data, target: str) -> dict[str, float]:
    """MLflow's default classifier evaluation of a loaded model (metrics and plots to the active run)."""
    import mlflow

    result = mlflow.models.evaluate(
        model, data=data, targets=target, model_type="classifier", evaluators=["default"],
        evaluator_config={"default": {"log_model_explainability": False, "pos_label": 1}},
    )  # fmt: skip
    return {k: float(v) for k, v in result.metrics.items()}


def _score(cfg: PipelineConfig, model, holdout) -> tuple[dict[str, float], tuple]:
    """MLflow's metrics and the raw predictions of one model, fed its own input columns."""
    label = cfg.target.name
    columns, numeric = signature_inputs(model, cfg.model.features, cfg.model.numeric_features)
    X = model_inputs(holdout, columns, numeric)
    return _evaluate(model, X.assign(**{label: holdout[label].to_numpy()}), label), metrics.predictions(
        model, X
    )


def _score_champion(cfg: PipelineConfig, uri: str, holdout, name: str) -> tuple[dict[str, float], tuple]:
    """The champion loaded once and scored on the holdout (nested run); any failure refuses the decision."""
    import mlflow

    try:
        model = load_model(uri)
        with mlflow.start_run(run_name=f"{name} on this holdout", nested=True):
            return _score(cfg, model, holdout)
    except PermanentError:  # e.g. an unsafe (pickled) champion: refused for good, not retried
        raise
    except Exception as exc:
        raise ChampionUnavailable(
            f"champion {uri} cannot be loaded or scored ({exc}); refusing to decide"
        ) from exc


def champion_to_beat(client, model_name: str, challenger_version: str):
    """The champion the challenger is judged against: the current one, or, when this challenger
    is already champion because its own run promoted it (evaluate cleared after promote), the
    champion it replaced, so that the cleared task reaches the same decision again."""
    champ = get_champion(client, model_name)
    if champ is None or str(champ.version) != str(challenger_version):
        return champ
    if champ.tags.get(Tag.DECISION_OUTCOME) != "promoted":
        raise AlreadyChampion(
            f"v{champ.version} is already champion, but not through this evaluation's promotion: "
            "nothing to compare it against"
        )
    previous = champ.tags.get(Tag.DECISION_PREVIOUS_CHAMPION)
    log.info("v%s is champion through this evaluation's own promotion: judging it again against %s",
             champ.version, f"v{previous}" if previous not in (None, "null") else "no champion")  # fmt: skip
    if previous in (None, "null"):
        return None
    return client.get_model_version(model_name, previous)


def evaluate_challenger(cfg: PipelineConfig, settings: Settings, challenger: dict, assembled: dict) -> dict:
    """Score challenger and champion on the same holdout, decide, and log it all to the challenger run.

    Each model is loaded once and scored with its own inputs (its signature); the holdout must
    be later than both models' training data.
    """
    import mlflow
    import pandas as pd

    client = tracking.client(settings, cfg.experiment)
    rule = cfg.promotion
    holdout = pd.read_parquet(assembled["holdout"]["uri"])
    y = holdout[cfg.target.name].to_numpy()
    champ = champion_to_beat(client, cfg.registered_model, challenger["version"])
    holdout_start = datetime.fromisoformat(assembled["holdout_window"][0])
    trained_until = {"challenger": datetime.fromisoformat(assembled["train_window"][1])}

    with mlflow.start_run(run_id=challenger["run_id"]):
        ch_metrics, ch_predictions = _score(cfg, load_model(challenger["model_uri"]), holdout)
        champ_metrics = ci = None
        if champ is not None:
            champ_uri = model_uri(cfg.registered_model, champ.version)
            champ_metrics, champ_predictions = _score_champion(
                cfg, champ_uri, holdout, f"champion v{champ.version}"
            )
            trained_until["champion"] = training_end(cfg, with_lineage(client, champ))
            b = rule.bootstrap
            ci = paired_bootstrap_ci(
                y, ch_predictions, champ_predictions, rule.primary_metric, b.n_resamples, b.seed, b.confidence
            )
        slices = [] if champ is None else slice_scores(rule, holdout, y, ch_predictions, champ_predictions)
        decision = decide(rule, ch_metrics, champ_metrics, ci, holdout_start, trained_until, slices)
        summary = {
            **decision.as_dict(),
            "model_name": cfg.registered_model,
            "challenger_version": challenger["version"],
            "champion_version": None if champ is None else str(champ.version),
            "challenger_metrics": ch_metrics,
            "champion_metrics": champ_metrics,
            "holdout_rows": len(holdout),
            "holdout_sha256": assembled["holdout"]["sha256"],
            "holdout_window": assembled["holdout_window"],
            "trained_until": {k: v.isoformat() for k, v in trained_until.items()},
            "slices": slices,
        }
        _log_decision(rule, decision, champ_metrics, ci, summary)
    log.info(
        "evaluation of v%s vs champion %s: %s=%.4f vs %s, CI %s -> %s",
        challenger["version"], summary["champion_version"], rule.primary_metric, decision.challenger,
        "n/a" if decision.champion is None else f"{decision.champion:.4f}",
        "n/a" if ci is None else f"[{ci[0]:+.4f}, {ci[1]:+.4f}]", decision.reason,
    )  # fmt: skip
    return summary


def _log_decision(rule: PromotionSpec, decision: Decision, champ_metrics, ci, summary: dict) -> None:
    """Comparison metrics, the decision tags and ``decision.json`` on the challenger's run."""
    import mlflow

    comparison = {"decision.promote": float(decision.promote)}
    if champ_metrics is not None:
        comparison.update(
            {f"champion_{k}": champ_metrics[k] for k in (rule.primary_metric, *rule.guardrails)},
            **{f"delta_{rule.primary_metric}": decision.difference},
        )
    if ci is not None:
        comparison.update({"delta_ci_low": ci[0], "delta_ci_high": ci[1]})
    mlflow.log_metrics(comparison)
    mlflow.set_tags(
        {
            Tag.DECISION: "promote" if decision.promote else "reject",
            Tag.DECISION_REASON: decision.reason[:5000],
        }
    )
    mlflow.log_dict(summary, "decision.json")
