"""The training DAG's last steps: ``promote`` and ``reject`` (and ``reject_by_approver``).

Each re-checks the durable evidence where the decision takes effect — the verdict ``evaluate``
recorded and, behind the human gate, the answer the approval task kept on the version — whatever
way it was reached (a task marked success by hand, a clear, a retry), then records the decision
(:func:`decision_record_of_run`) and, for ``promote``, moves ``champion`` fenced by the generation
its evaluation saw (:func:`include.stages.registry.move_champion`).
"""

from __future__ import annotations

from include.foundation.config import PipelineConfig
from include.foundation.payloads import Evaluation
from include.foundation.settings import Settings
from include.orchestration.run_context import run_link


def decision_record_of_run(
    cfg: PipelineConfig, settings: Settings, context: dict, evaluation: Evaluation, approval: dict | None
) -> dict:
    """The decision record ``promote``/``reject`` write: the evaluation, why the run ran, its
    Airflow page and, behind the approval gate, the person's answer (as recorded)."""
    from include.stages.registry import decision_record

    params = context.get("params") or {}
    record = decision_record(
        evaluation, params.get("reason", "manual"), context["run_id"], run_link(settings, context)
    )
    if approval is not None:
        record["approval"] = approval
    return record


def _evidence(cfg: PipelineConfig, settings: Settings, version: str):
    """The durable evidence about ``version``: the MLflow client, the evaluation ``evaluate``
    recorded, the approval answer the approval task recorded, and its rollback record."""
    from include.foundation import tracking
    from include.foundation.tracking import Tag
    from include.stages.registry import recorded_approval, recorded_evaluation

    client = tracking.client(settings, cfg.experiment)
    model = cfg.registered_model
    demoted = client.get_model_version(model, version).tags.get(Tag.ROLLBACK_DEMOTED)
    return (
        client,
        recorded_evaluation(client, model, version),
        recorded_approval(client, model, version),
        demoted,
    )


def promote_challenger(
    cfg: PipelineConfig, settings: Settings, context: dict, evaluation: Evaluation
) -> dict:
    """``promote``: re-check, from the registry's evidence and not from having been reached, that
    this version may be champion (:func:`include.decisions.promotion.promotion_preconditions`),
    then move ``champion`` to it, fenced by the generation its evaluation saw. A refusal or a
    stale decision (PromotionConflict) is permanent: never retried into place."""
    from include.decisions.promotion import promotion_preconditions
    from include.orchestration.run_context import airflow_tags
    from include.stages.registry import PromotionRefused, describe_judged, promote, refuse_promotion
    from include.stages.training import refit_for_serving

    version = str(evaluation["challenger_version"])
    client, recorded, approval, demoted = _evidence(cfg, settings, version)
    failures = promotion_preconditions(version, recorded, approval_required=cfg.promotion.approval == "required",
                                       approval=approval, demoted=demoted)  # fmt: skip
    if failures:
        refuse_promotion(client, cfg.registered_model, version, failures, context["run_id"])
        raise PromotionRefused(f"v{version} is not promoted: " + "; ".join(failures))
    record = decision_record_of_run(cfg, settings, context, recorded, approval)
    served = refit_for_serving(cfg, settings, version, airflow_tags(context))  # the judged one, or its refit
    if served != version:
        record["refit_of"] = version
    promoted = promote(client, cfg.registered_model, served, recorded["champion_version"], record,
                       recorded["champion_generation"])  # fmt: skip
    if served != version:  # the version the gate judged (where evaluate's link lands) says where it went
        describe_judged(client, cfg.registered_model, version, served, record)
    return {**promoted, "judged_version": version, "note": note_line("promoted", recorded, record, served)}


def reject_challenger(cfg: PipelineConfig, settings: Settings, context: dict, evaluation: Evaluation) -> dict:
    """``reject`` (the rule said no) and ``reject_by_approver`` (the rule said yes; a person, or
    the timeout, said no): record why; the champion is untouched. The rejection is re-checked
    against the recorded evidence, so a task marked success by hand cannot label a version
    rejected that its evaluation and its approver allowed."""
    from include.decisions.promotion import rejection_preconditions
    from include.stages.registry import RejectionRefused, reject

    version = str(evaluation["challenger_version"])
    client, recorded, approval, _ = _evidence(cfg, settings, version)
    by_approver = context["ti"].task_id == "reject_by_approver"  # not the answer: it is empty if marked
    failures = rejection_preconditions(version, recorded, by_approver=by_approver, approval=approval)
    if failures:
        raise RejectionRefused(f"v{version} is not recorded as rejected: " + "; ".join(failures))
    record = decision_record_of_run(cfg, settings, context, recorded, approval)
    outcome = "rejected by approver" if by_approver else "rejected"
    rejected = reject(client, cfg.registered_model, version, record, outcome)
    return {**rejected, "note": note_line(outcome, recorded, record)}


def note_line(outcome: str, evaluation: Evaluation, record: dict, served: str | None = None) -> str:
    """The training run's outcome in one line (its note in the run list): the version, what
    happened to it and why, e.g. ``v7 rejected: roc_auc gain +0.0021 but its CI lower bound …``."""
    version = f"v{evaluation['challenger_version']}"
    if served is not None and served != str(evaluation["challenger_version"]):
        version += f" (serving as v{served}, refit on its holdout)"
    reason = str(evaluation.get("reason") or "")
    if outcome == "rejected":  # the rule's reason reads "rejected: …"
        return f"{version} {reason}" if reason.startswith("rejected") else f"{version} rejected: {reason}"
    approval = (record.get("approval") or {}).get("summary")
    if outcome == "rejected by approver":
        return f"{version} {approval or outcome} (the rule had allowed it: {reason})"
    return f"{version} promoted{f' ({approval})' if approval else ''}: {reason}"
