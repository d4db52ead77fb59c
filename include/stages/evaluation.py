"""Evaluation stage: challenger and champion loaded and scored on the same holdout, the
judgement (``include.decisions.promotion.judge``) taken on their scores, and all of it logged.

Metrics come from ``mlflow.models.evaluate`` with the target kind's ``model_type``: for a
classifier it also logs ROC, PR, calibration and confusion-matrix plots (multiclass: per-class
metrics) to the challenger's run; for a regressor, which MLflow gives no plots, this stage logs
residual plots and the error per slice.
"""

from __future__ import annotations

import logging
from datetime import datetime

from include.decisions.promotion import Decision, judge
from include.foundation import metrics, tracking
from include.foundation.config import PipelineConfig, PromotionSpec
from include.foundation.errors import PermanentError
from include.foundation.logging_config import quieted
from include.foundation.payloads import AssembledData, Evaluation, TrainedModel
from include.foundation.settings import Settings
from include.foundation.tracking import Role, Tag
from include.stages.datasets import model_inputs, training_end
from include.stages.registry import (
    champion_state,
    generation_before_own_move,
    get_champion,
    judged_version,
    load_model,
    model_uri,
    signature_inputs,
    with_lineage,
)

log = logging.getLogger(__name__)
# MLflow's per-call INFO lines (active model set, testing metrics on the first row, validating
# against the baseline): raised to WARNING while this stage calls it, so the decision leads the log
MLFLOW_CHATTER = ("mlflow.models.evaluation", "mlflow.tracking.fluent")


class AlreadyChampion(PermanentError):
    """The challenger is already champion by another decision: judging it again means nothing."""


class ChampionUnavailable(RuntimeError):
    """The champion alias exists but its model cannot be loaded or scored: never promote blindly.

    Not permanent: a tracking server that is briefly down is the usual cause, so it is retried.
    """


def _evaluate(model, data, target: str, scorer: metrics.Scorer) -> dict[str, float]:
    """MLflow's default evaluation of a loaded model for the target kind (metrics and plots to
    the active run)."""
    import mlflow

    args = scorer.evaluate_args()
    with quieted(*MLFLOW_CHATTER):
        result = mlflow.models.evaluate(
            model, data=data, targets=target, model_type=args["model_type"], evaluators=["default"],
            evaluator_config={"default": args["evaluator_config"]},
        )  # fmt: skip
    return {k: float(v) for k, v in result.metrics.items()}


def _score(cfg: PipelineConfig, model, holdout) -> tuple[dict[str, float], tuple]:
    """MLflow's metrics and the raw predictions of one model, fed its own input columns."""
    label, scorer = cfg.target.name, cfg.scorer
    columns, numeric = signature_inputs(model, cfg.model.features, cfg.model.numeric_features)
    X = model_inputs(holdout, columns, numeric)
    scores = _evaluate(model, X.assign(**{label: holdout[label].to_numpy()}), label, scorer)
    return scores, scorer.predictions(model, X)


def _score_champion(cfg: PipelineConfig, uri: str, holdout, name: str) -> tuple[dict[str, float], tuple]:
    """The champion loaded once and scored on the holdout (nested run); any failure refuses the decision."""
    import mlflow

    try:
        model = load_model(uri)
        tags = {Tag.ROLE: Role.EVALUATION, Tag.PIPELINE: cfg.name}
        with mlflow.start_run(run_name=name, nested=True, tags=tags):
            return _score(cfg, model, holdout)
    except PermanentError:  # e.g. an unsafe (pickled) champion: refused for good, not retried
        raise
    except Exception as exc:
        raise ChampionUnavailable(
            f"champion {uri} cannot be loaded or scored ({exc}); refusing to decide"
        ) from exc


def champion_to_beat(client, model_name: str, challenger_version: str):
    """``(generation, champion)``: the champion the challenger is judged against and the
    generation of the champion alias it was read at (``promote`` is fenced by it): the current
    one, or, when this challenger is already champion because its own run promoted it (evaluate
    cleared after promote), the champion it replaced, so that the cleared task reaches the same
    decision again."""
    generation, _ = champion_state(client, model_name)
    champ = get_champion(client, model_name)
    judged = None if champ is None else str(judged_version(client, model_name, champ).version)
    if champ is None or judged != str(challenger_version):
        return generation, champ
    generation = generation_before_own_move(client, model_name, str(champ.version))  # it, or its refit
    if champ.tags.get(Tag.DECISION_OUTCOME) != "promoted":
        raise AlreadyChampion(
            f"v{champ.version} is already champion, but not through this evaluation's promotion: "
            "nothing to compare it against"
        )
    previous = champ.tags.get(Tag.DECISION_PREVIOUS_CHAMPION)
    log.info("v%s is champion through this evaluation's own promotion: judging it again against %s",
             champ.version, f"v{previous}" if previous not in (None, "null") else "no champion")  # fmt: skip
    if previous in (None, "null"):
        return generation, None
    return generation, client.get_model_version(model_name, previous)


def _champion_as_judged(cfg: PipelineConfig, client, champ, holdout, holdout_start: datetime) -> tuple:
    """``(metrics, predictions, trained until)`` of the champion on the holdout: a refit champion
    as the gate judged it, before its refit (the refit has seen its own holdout)."""
    twin = judged_version(client, cfg.registered_model, champ)
    as_judged = "" if twin.version == champ.version else f" (as judged: v{twin.version}, before its refit)"
    metrics_, predictions = _score_champion(
        cfg, model_uri(cfg.registered_model, twin.version), holdout,
        f"champion v{champ.version}{as_judged} on the holdout from {holdout_start:%Y-%m-%d}",
    )  # fmt: skip
    return metrics_, predictions, training_end(cfg, with_lineage(client, twin))


def evaluate_challenger(
    cfg: PipelineConfig, settings: Settings, challenger: TrainedModel, assembled: AssembledData
) -> Evaluation:
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
    generation, champ = champion_to_beat(client, cfg.registered_model, challenger["version"])
    holdout_start = datetime.fromisoformat(assembled["holdout_window"][0])
    trained_until = {"challenger": datetime.fromisoformat(assembled["train_window"][1])}

    with mlflow.start_run(run_id=challenger["run_id"]):
        ch_metrics, ch_predictions = _score(cfg, load_model(challenger["model_uri"]), holdout)
        champ_metrics = champ_predictions = None
        if champ is not None:
            champ_metrics, champ_predictions, trained_until["champion"] = _champion_as_judged(
                cfg, client, champ, holdout, holdout_start
            )
        with quieted(*MLFLOW_CHATTER):
            verdict = judge(rule, y, ch_predictions, champ_predictions, ch_metrics, champ_metrics, holdout,
                            holdout_start, trained_until, scorer=cfg.scorer)  # fmt: skip
        if cfg.target_kind == "regression":
            _log_residuals(cfg, holdout, y, ch_predictions[1])
        decision, ci, slices = verdict.decision, verdict.ci, verdict.slices
        summary = {
            **decision.as_dict(),
            "model_name": cfg.registered_model,
            "challenger_version": challenger["version"],
            "champion_version": None if champ is None else str(champ.version),
            "champion_generation": generation,  # promote is fenced by it (registry.move_champion)
            "challenger_metrics": ch_metrics,
            "champion_metrics": champ_metrics,
            "holdout_rows": len(holdout),
            "holdout_sha256": assembled["holdout"]["sha256"],
            "holdout_window": assembled["holdout_window"],
            "trained_until": {k: v.isoformat() for k, v in trained_until.items()},
            "slices": slices,
            "mlflow_run_id": challenger["run_id"],  # the run the evaluation is logged to
            "experiment_id": challenger["experiment_id"],
        }
        _log_decision(rule, decision, champ_metrics, ci, summary)
    log.info(
        decision_line(
            challenger["version"], summary["champion_version"], decision, ci, rule.bootstrap.confidence
        )
    )
    return summary


def decision_line(
    version: str, champion: str | None, decision: Decision, ci, confidence: float = 0.95
) -> str:
    """The evaluation's verdict for a person: a short first line, then the numbers and the reason."""
    who = "no champion yet" if champion is None else f"champion v{champion}"
    verdict = "PROMOTE" if decision.promote else "REJECT"
    first = f"decision: {verdict} v{version} ({who}{' stays' if champion and not decision.promote else ''})"
    champ = "" if decision.champion is None else f" vs {decision.champion:.4f}"
    interval = "" if ci is None else f", {confidence:.0%} CI of the gain [{ci[0]:+.4f}, {ci[1]:+.4f}]"
    return f"{first}\n  {decision.primary_metric} {decision.challenger:.4f}{champ}{interval}\n  why: {decision.reason}"


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


def _log_residuals(cfg: PipelineConfig, holdout, y, predicted) -> None:
    """What MLflow's regressor evaluation does not log: predicted vs actual and the residuals'
    spread (``residuals.png``), and the error per slice (``error_by_slice.json``: RMSE, MAE and
    bias for each value of the ``promotion.slices`` columns) on the challenger's run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow
    import numpy as np

    residual = np.asarray(predicted, dtype=float) - np.asarray(y, dtype=float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    left.scatter(y, predicted, s=4, alpha=0.3)
    low, high = float(np.min(y)), float(np.max(y))
    left.plot([low, high], [low, high], color="black", lw=1)
    left.set(xlabel=f"actual {cfg.target.column}", ylabel="predicted", title="predicted vs actual (holdout)")
    right.hist(residual, bins=50)
    right.set(
        xlabel="residual (predicted - actual)", ylabel="rows", title=f"residuals: mean {residual.mean():+.3g}"
    )
    fig.tight_layout()
    mlflow.log_figure(fig, "residuals.png")
    plt.close(fig)
    by_slice, named = [], ("root_mean_squared_error", "mean_absolute_error")
    fns = {m: cfg.scorer.metric_fn(m) for m in named}
    y, predicted = np.asarray(y, dtype=float), np.asarray(predicted, dtype=float)
    for column in cfg.promotion.slices.columns:
        for value, idx in holdout.groupby(column, dropna=True, observed=True).indices.items():
            errors = {m: round(float(fn(y[idx], predicted[idx], predicted[idx])), 6) for m, fn in fns.items()}
            by_slice.append({"column": column, "value": str(value), "rows": int(len(idx)), **errors,
                             "bias": round(float(residual[idx].mean()), 6)})  # fmt: skip
    mlflow.log_dict({"metric": "residual = predicted - actual", "slices": by_slice}, "error_by_slice.json")
