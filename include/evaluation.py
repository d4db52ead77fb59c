"""Evaluation stage: challenger vs champion on the same holdout, and the promotion decision.

Metrics come from ``mlflow.models.evaluate`` (which also logs ROC, PR, calibration and confusion
matrix plots to the challenger's run); the rule is expressed as MLflow ``MetricThreshold``s and
checked with ``mlflow.validate_evaluation_results``. A paired bootstrap gives a confidence
interval for the difference in the primary metric.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from include import metrics, tracking
from include.config import PipelineConfig, PromotionSpec
from include.datasets import model_frame
from include.registry import get_champion, load_model, model_uri
from include.settings import Settings
from include.tracking import Tag, quiet_library_warnings

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


class ChampionUnavailable(RuntimeError):
    """The champion alias exists but its model cannot be loaded or scored: never promote blindly."""


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


def decide(
    rule: PromotionSpec,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    ci: tuple[float, float] | None = None,
) -> Decision:
    """Promote only if MLflow's validation of the thresholds passes (and the CI, if required)."""
    from mlflow.exceptions import MlflowException
    from mlflow.models.evaluation import EvaluationResult
    from mlflow.models.evaluation.validation import validate_evaluation_results

    m = rule.primary_metric
    sign = metrics.orientation(m)
    diff = None if champion is None else sign * (challenger[m] - champion[m])
    base = dict(
        primary_metric=m,
        challenger=challenger[m],
        champion=None if champion is None else champion[m],
        difference=diff,
        ci_low=ci[0] if ci else None,
        ci_high=ci[1] if ci else None,
    )
    try:
        validate_evaluation_results(
            thresholds(rule, champion),
            EvaluationResult(metrics=challenger, artifacts={}),
            None if champion is None else EvaluationResult(metrics=champion, artifacts={}),
        )
    except MlflowException as exc:  # ModelValidationFailedException is one
        return Decision(False, f"rejected: {' '.join(str(exc).split())}", **base)
    if champion is None:
        return Decision(
            True, f"no champion yet; {m}={challenger[m]:.4f} clears the floor {rule.absolute_floor}", **base
        )
    if rule.bootstrap.require_lower_bound_above_zero and (ci is None or ci[0] <= 0):
        bound = "was not computed" if ci is None else f"{ci[0]:.4f} <= 0"
        return Decision(False, f"rejected: {m} gain {diff:+.4f} but its CI lower bound {bound}", **base)
    return Decision(
        True,
        f"{m} {challenger[m]:.4f} vs champion {champion[m]:.4f} ({diff:+.4f} >= {rule.min_improvement})",
        **base,
    )


def paired_bootstrap_ci(
    y: np.ndarray, p_challenger: np.ndarray, p_champion: np.ndarray, metric: str,
    n_resamples: int, seed: int, confidence: float,
) -> tuple[float, float]:  # fmt: skip
    """CI of (challenger - champion) on the metric, oriented so that positive = challenger better."""
    import numpy as np

    fn = metrics.metric_fn(metric)
    sign = metrics.orientation(metric)
    rng = np.random.default_rng(seed)
    n = len(y)
    diffs = []
    for _ in range(n_resamples):
        idx = rng.integers(0, n, n)
        if len(np.unique(y[idx])) < 2:
            continue
        diffs.append(sign * (fn(y[idx], p_challenger[idx]) - fn(y[idx], p_champion[idx])))
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(diffs, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _evaluate(model, data, target: str) -> dict[str, float]:
    """MLflow's default classifier evaluation of a loaded model (metrics and plots to the active run)."""
    import mlflow

    result = mlflow.models.evaluate(
        model, data=data, targets=target, model_type="classifier", evaluators=["default"],
        evaluator_config={"default": {"log_model_explainability": False, "pos_label": 1}},
    )  # fmt: skip
    return {k: float(v) for k, v in result.metrics.items()}


def _load_and_evaluate_champion(uri: str, holdout, target: str, name: str):
    """The champion loaded once and scored on the holdout; any failure refuses the decision."""
    import mlflow

    try:
        model = load_model(uri)
        with mlflow.start_run(run_name=f"champion {name} on this holdout", nested=True):
            return model, _evaluate(model, holdout, target)
    except Exception as exc:
        raise ChampionUnavailable(
            f"champion {uri} cannot be loaded or scored ({exc}); refusing to decide"
        ) from exc


def evaluate_challenger(cfg: PipelineConfig, settings: Settings, challenger: dict, assembled: dict) -> dict:
    """Score challenger and champion on the same holdout, decide, and log it all to the challenger run.

    Each model is loaded once: MLflow's evaluation and the paired bootstrap use the same object.
    """
    import mlflow
    import pandas as pd

    client = tracking.client(settings, cfg.experiment)
    rule = cfg.promotion
    holdout = model_frame(cfg, pd.read_parquet(assembled["holdout"]["uri"]))
    X, y = holdout[cfg.model.features], holdout[cfg.target.name].to_numpy()
    champ = get_champion(client, cfg.registered_model)
    if champ is not None and str(champ.version) == challenger["version"]:
        raise ChampionUnavailable(f"v{champ.version} is already champion: nothing to compare against")

    with quiet_library_warnings(), mlflow.start_run(run_id=challenger["run_id"]):
        challenger_model = load_model(challenger["model_uri"])
        ch_metrics = _evaluate(challenger_model, holdout, cfg.target.name)
        champ_metrics = ci = None
        if champ is not None:
            champ_uri = model_uri(cfg.registered_model, champ.version)
            champ_model, champ_metrics = _load_and_evaluate_champion(
                champ_uri, holdout, cfg.target.name, f"v{champ.version}"
            )
            b = rule.bootstrap
            ci = paired_bootstrap_ci(
                y, metrics.positive_scores(challenger_model, X), metrics.positive_scores(champ_model, X),
                rule.primary_metric, b.n_resamples, b.seed, b.confidence,
            )  # fmt: skip
        decision = decide(rule, ch_metrics, champ_metrics, ci)
        summary = {
            **decision.as_dict(),
            "challenger_version": challenger["version"],
            "champion_version": None if champ is None else str(champ.version),
            "challenger_metrics": ch_metrics,
            "champion_metrics": champ_metrics,
            "holdout_rows": len(holdout),
            "holdout_sha256": assembled["holdout"]["sha256"],
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
