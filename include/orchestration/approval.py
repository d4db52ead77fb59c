"""The human gate before promotion, built from Airflow's own human-in-the-loop operator.

With ``promotion.approval: required`` the training DAG holds a ``approval`` task between a
passing evaluation and ``promote``: Airflow lists it under *Browse → Required Actions* (and
``GET /api/v2/hitlDetails``), a person answers there or through ``PATCH .../hitlDetails``, and
``act_on_approval`` reads the answer (:func:`include.decisions.approval.read_answer`). The
request's default is ``Reject``: when ``approval_timeout_hours`` pass without an answer the
scheduler applies it, so an unanswered request never promotes. The approval task keeps the answer
on the model version, where ``promote`` (:mod:`include.orchestration.promotion`) checks it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param

from include.decisions.approval import DEFAULT, OPTIONS, approval_request
from include.foundation.config import PipelineConfig
from include.foundation.links import airflow_run_url, mlflow_model_version_url, mlflow_run_url, viewer_path
from include.foundation.settings import Settings
from include.orchestration.notifications import notifiers

log = logging.getLogger(__name__)


class PromotionApproval(HITLOperator):
    """Asks a person to approve the promotion ``evaluate`` allowed, showing its evidence."""

    def __init__(self, *, cfg: PipelineConfig, settings: Settings, evaluate_task_id: str,
                 train_task_id: str, **kwargs):  # fmt: skip
        rule = cfg.promotion
        kwargs.pop("params", None)  # the DAG's params: its form, not this request's (HITL drops them too)
        super().__init__(
            subject=f"Promote a new {cfg.registered_model} version?",  # replaced with the version
            options=OPTIONS,
            defaults=DEFAULT,
            params={
                "comment": Param(
                    None,
                    type=["null", "string"],
                    title="Why",
                    description="Recorded with the decision on the model version",
                )  # fmt: skip
            },
            assigned_users=[{"id": u, "name": u} for u in rule.approvers] or None,
            response_timeout=timedelta(hours=rule.approval_timeout_hours),
            notifiers=notifiers(cfg, settings, "approval"),  # the pipeline's channels: a request is open
            **kwargs,
        )
        self.cfg, self.settings = cfg, settings
        self.evaluate_task_id, self.train_task_id = evaluate_task_id, train_task_id

    def execute(self, context: Any):
        evaluation = context["ti"].xcom_pull(task_ids=self.evaluate_task_id)
        trained = context["ti"].xcom_pull(task_ids=self.train_task_id)
        request = approval_request(
            evaluation,
            self.cfg.promotion.guardrails,
            self.cfg.promotion.approval_timeout_hours,
            evidence_links(self.settings, context, trained),
            run_reason(context.get("params") or {}),
        )
        self.subject, self.body = request["subject"], request["body"]
        self.log.info("approval requested: %s (answer under Browse > Required Actions)", self.subject)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """The answer, as Airflow recorded it, is kept on the version with the evaluation it
        answered: ``promote`` checks it there, so marking a task success never stands in for it."""
        from include.foundation import tracking
        from include.stages.registry import record_approval

        result = super().execute_complete(context, event)
        evaluation = context["ti"].xcom_pull(task_ids=self.evaluate_task_id)
        verdict = approval_answer(self.cfg, dict(result))
        record = {**verdict.record(), "comment": verdict.comment[:1000], "summary": verdict.summary[:1200],  # a tag holds 5,000 characters
                  "champion_version": evaluation.get("champion_version"),
                  "champion_generation": evaluation.get("champion_generation")}  # fmt: skip
        client = tracking.client(self.settings, self.cfg.experiment)
        record_approval(client, self.cfg.registered_model, evaluation["challenger_version"], record)
        return result


def evidence_links(settings: Settings, context: Any, trained: dict) -> dict[str, str | None]:
    """Where the evidence is: the challenger's MLflow run and version (with the evaluation's
    metrics, plots and decision.json), the drift report that triggered it, this Airflow run."""
    dag_id = context["dag"].dag_id
    ui = settings.mlflow_ui_url
    report = (context.get("params") or {}).get("report")
    drift_dag = dag_id.rsplit("__", 1)[0] + "__drift_check"
    report_path = viewer_path(settings.data_root, drift_dag, report)
    return {
        "challenger's MLflow run": mlflow_run_url(ui, trained["experiment_id"], trained["run_id"]),
        "model version": mlflow_model_version_url(ui, trained["model_name"], trained["version"]),
        "drift report that triggered it": report_path and settings.airflow_ui_url.rstrip("/") + report_path,
        "this training run": airflow_run_url(settings.airflow_ui_url, dag_id, context["run_id"]),
    }


def run_reason(params: dict) -> str:
    """The request's reason and the drift check's signals, in one line."""
    reason = str(params.get("reason") or "manual")
    signals = params.get("signals") or []
    share = params.get("drift_share")
    extra = "; ".join(str(s) for s in signals) or (f"drift share {share:.2f}" if share is not None else "")
    return f"{reason} ({extra})" if extra else reason


def approval_gate(cfg: PipelineConfig, settings: Settings):
    """The ``approval`` task of a pipeline with ``promotion.approval: required``."""
    return PromotionApproval(
        task_id="approval", cfg=cfg, settings=settings, evaluate_task_id="evaluate", train_task_id="train"
    )


def approval_answer(cfg: PipelineConfig, answer: dict | None):
    """The person's answer to the approval request, read by the one rule for it (and logged)."""
    from include.decisions.approval import read_answer

    verdict = read_answer(answer, cfg.promotion.approval_timeout_hours)
    log.info("approval: %s", verdict.summary)
    return verdict
