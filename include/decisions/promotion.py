"""The promotion judgement: challenger vs champion on one holdout -> promote or not, and why.

Pure: metrics, predictions, the holdout frame and the rule in, a :class:`Judgement` out. The
training DAG's ``evaluate`` task (``include.stages.evaluation``, which loads the models and logs
to MLflow) and the replay (``include.replay``) both call :func:`judge`, so they cannot disagree.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from include.foundation import metrics
from include.foundation.config import PromotionSpec

if TYPE_CHECKING:
    import numpy as np


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
        if rule.absolute_floor is None:
            return {}
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


def _thresholds_fail(
    rule: PromotionSpec, challenger: dict[str, float], champion: dict[str, float] | None
) -> str | None:
    """MLflow's own validation of the rule's thresholds (:func:`thresholds`): why it fails, or None."""
    from mlflow.exceptions import MlflowException
    from mlflow.models.evaluation import EvaluationResult
    from mlflow.models.evaluation.validation import validate_evaluation_results

    try:
        validate_evaluation_results(
            thresholds(rule, champion),
            EvaluationResult(metrics=challenger, artifacts={}),
            None if champion is None else EvaluationResult(metrics=champion, artifacts={}),
        )
    except MlflowException as exc:  # ModelValidationFailedException is one
        return rounded(" ".join(str(exc).split()))
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
    refusal = (
        _in_sample(holdout_start, trained_until)
        or _not_finite(rule, challenger, champion)
        or _thresholds_fail(rule, challenger, champion)
    )
    if refusal:
        return Decision(False, f"rejected: {refusal}", **base)
    if champion is None:
        floor = (
            "no absolute_floor is set"
            if rule.absolute_floor is None
            else f"clears the floor {rule.absolute_floor}"
        )
        return Decision(True, f"no champion yet; {m}={ch_value:.4f} {floor}", **base)
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
    rule: PromotionSpec, holdout, y: np.ndarray, challenger: tuple, champion: tuple,
    scorer: metrics.Scorer = metrics.BINARY,
) -> list[dict[str, Any]]:  # fmt: skip
    """The primary metric per value of each ``promotion.slices`` column, for both models.

    ``change`` is oriented (positive = challenger better). Slices with fewer than ``min_rows``
    rows or labels no metric can be measured on (:meth:`Scorer.measurable`: a single class, a
    constant target) are left out (a metric there would be noise).
    """
    fn, sign, spec = (
        scorer.metric_fn(rule.primary_metric),
        metrics.orientation(rule.primary_metric),
        rule.slices,
    )
    out = []
    for column in spec.columns:
        for value, idx in holdout.groupby(column, dropna=True, observed=True).indices.items():
            if len(idx) < spec.min_rows or not scorer.measurable(y[idx]):
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
    scorer: metrics.Scorer = metrics.BINARY,
) -> tuple[float, float] | None:
    """Percentile CI of (challenger - champion) on the metric, positive = challenger better.

    ``challenger``/``champion`` are each model's ``(p, d)`` on the same rows
    (:mod:`include.foundation.metrics`); rows are resampled in pairs: ``scipy.stats.bootstrap``
    resamples the row indices (what its ``paired=True`` does, here also for 2-D class
    probabilities). None when no valid interval exists (e.g. resamples holding a single class).
    """
    import warnings

    import numpy as np
    from scipy.stats import bootstrap

    fn, sign = scorer.metric_fn(metric), metrics.orientation(metric)
    y = np.asarray(y)
    (p1, d1), (p2, d2) = challenger, champion

    def difference(i):
        if not scorer.measurable(y[i]):
            return np.nan
        return sign * (fn(y[i], p1[i], d1[i]) - fn(y[i], p2[i], d2[i]))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on degenerate or NaN resamples; we report None
        res = bootstrap(
            (np.arange(len(y)),), difference, vectorized=False, n_resamples=n_resamples,
            confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed),
        )  # fmt: skip
    lo, hi = res.confidence_interval
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return None
    return float(lo), float(hi)


@dataclass(frozen=True)
class Judgement:
    """The decision and the evidence it rests on (the CI of the difference, the slice scores)."""

    decision: Decision
    ci: tuple[float, float] | None
    slices: list[dict[str, Any]] = field(default_factory=list)


def judge(
    rule: PromotionSpec,
    y: np.ndarray,
    challenger: tuple,
    champion: tuple | None,
    challenger_metrics: dict[str, float],
    champion_metrics: dict[str, float] | None,
    holdout,
    holdout_start: datetime | None,
    trained_until: dict[str, datetime],
    with_ci: bool = True,
    scorer: metrics.Scorer = metrics.BINARY,
) -> Judgement:
    """The promotion judgement on one holdout.

    ``challenger``/``champion`` are each model's ``(p, d)`` on the holdout rows (``y``); the
    metrics are MLflow's definitions for the target kind (``scorer``: :class:`Scorer`).
    With a champion, the paired bootstrap CI (computed unless ``with_ci`` is False and the rule
    does not need it: it only changes what is reported) and the slice scores feed :func:`decide`.
    """
    ci, slices = None, []
    if champion is not None:
        if with_ci or rule.bootstrap.require_lower_bound_above_zero:
            b = rule.bootstrap
            ci = paired_bootstrap_ci(
                y, challenger, champion, rule.primary_metric, b.n_resamples, b.seed, b.confidence, scorer
            )
        slices = slice_scores(rule, holdout, y, challenger, champion, scorer)
    decision = decide(rule, challenger_metrics, champion_metrics, ci, holdout_start, trained_until, slices)
    return Judgement(decision, ci, slices)


def promotion_preconditions(
    version: str,
    evaluation: dict[str, Any] | None,
    *,
    approval_required: bool,
    approval: dict[str, Any] | None,
    demoted: str | None = None,
) -> list[str]:
    """What stops ``version`` becoming champion, read from durable evidence; empty: it may.

    ``promote`` calls this where the decision takes effect, whatever way it was reached (a task
    marked success by hand, a clear, a retry): ``evaluation`` is the verdict ``evaluate``
    recorded for this version, ``approval`` the answer the approval task read from Airflow
    (:func:`include.decisions.approval.read_answer`'s record, with the evaluation it answered),
    ``demoted`` the version's rollback record, if it was ever rolled back.
    """
    version = str(version)
    failures = []
    if evaluation is None:
        failures.append(f"no evaluation of v{version} is recorded (its evaluate task never finished)")
    elif str(evaluation.get("challenger_version")) != version:
        failures.append(
            f"the recorded evaluation is of v{evaluation.get('challenger_version')}, not v{version}"
        )
    elif not evaluation.get("promote"):
        failures.append(f"its evaluation refused it: {evaluation.get('reason') or 'no reason recorded'}")
    elif "champion_generation" not in evaluation:
        failures.append("its evaluation does not record the champion generation it saw: evaluate again")
    if demoted:
        failures.append(
            f"v{version} was rolled back ({demoted}); a rolled-back version is never promoted again"
        )
    if approval_required:
        if approval is None:
            failures.append("promotion.approval is required and no answer of a person is recorded")
        elif not approval.get("approved"):
            failures.append(
                f"the approval request was not approved ({approval.get('summary') or 'no summary'})"
            )
        elif evaluation is not None and (
            str(approval.get("champion_version")) != str(evaluation.get("champion_version"))
            or approval.get("champion_generation") != evaluation.get("champion_generation")
        ):
            failures.append("the recorded approval answered an earlier evaluation, not this one")
    return failures


def rejection_preconditions(
    version: str, evaluation: dict[str, Any] | None, *, by_approver: bool, approval: dict[str, Any] | None
) -> list[str]:
    """What stops ``reject`` recording ``version`` as rejected; empty: it may. A rejection stands
    on the evaluation's own refusal, or (``by_approver``) on a person's answer that was not an
    approval: a task marked success by hand cannot label a promoted version rejected."""
    if evaluation is None or str(evaluation.get("challenger_version")) != str(version):
        return [f"no evaluation of v{version} is recorded"]
    if not by_approver:
        return (
            []
            if not evaluation.get("promote")
            else [f"its evaluation allowed it ({evaluation.get('reason')})"]
        )
    if approval is None:
        return ["no answer of a person is recorded"]
    return [] if not approval.get("approved") else [f"the approver approved it ({approval.get('summary')})"]
