"""Who hears about the loop: Airflow notifiers for failures, quarantines, promotions and
drift-triggered retraining.

The one place where notification channels are set up. A pipeline's ``notifications`` block
names them (``include.foundation.config.NotificationSpec``); messages go out through the providers made
for it (``SmtpNotifier`` of the SMTP provider, ``AppriseNotifier`` for chat services), whose
servers and credentials are Airflow connections, never the config. With no channel configured
there are no notifiers at all (the demo needs none).

The message texts are pure functions of a few facts (unit-tested); :class:`LoopNotifier` only
gathers the facts from the task context and hands the text to each channel.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from airflow.sdk import BaseNotifier

from include.foundation.config import NotificationEvent, PipelineConfig
from include.foundation.links import airflow_run_url, mlflow_model_version_url, viewer_path
from include.foundation.payloads import TRIGGERED_RUN_PREFIX, DriftCheck, Evaluation, Promotion
from include.foundation.redaction import redact
from include.foundation.settings import Settings
from include.foundation.storage import week_ending

log = logging.getLogger(__name__)

PREFIX = "[ct-loop]"
QUARANTINE_MARK = "DataValidationFailed"


def failure_message(pipeline: str, facts: dict[str, Any]) -> tuple[NotificationEvent, str, str]:
    """(event, subject, body) for a task that failed for good; a failed validation is a quarantine."""
    cause = redact(str(facts.get("exception") or "unknown cause").strip())
    where = f"DAG {facts['dag_id']}, task {facts['task_id']}, run {facts['run_id']} (try {facts.get('try_number')})"
    if QUARANTINE_MARK in cause:
        first = cause.splitlines()[0].split(": ", 1)[-1]
        subject = f"{PREFIX} {pipeline}: batch quarantined ({first[:120]})"
        body = (
            f"A batch of pipeline {pipeline} failed its expectation suite and was moved to quarantine; "
            f"nothing was published and the champion is untouched.\n\n{cause}\n\n{where}\nLog: {facts['log_url']}"
        )
        return "quarantine", subject, body
    subject = f"{PREFIX} {pipeline}: {facts['task_id']} failed in {facts['run_id']}"
    body = (
        f"Task {facts['task_id']} of pipeline {pipeline} failed after its retries.\n\n"
        f"Cause: {cause[:4000]}\n\n{where}\nLog: {facts['log_url']}"
    )
    return "failure", subject, body


def promotion_message(pipeline: str, facts: dict[str, Any]) -> tuple[NotificationEvent, str, str]:
    evaluation: Evaluation = facts["evaluation"]
    promoted: Promotion = facts["promotion"]
    metric, new, old = evaluation["primary_metric"], evaluation["challenger"], evaluation["champion"]
    versus = "no previous champion" if old is None else f"{old:.4f} for v{promoted['previous_champion']}"
    judged = str(promoted.get("judged_version") or promoted["champion"])
    who = f"v{judged}" if judged == str(promoted["champion"]) else (
        f"v{judged} (serving as its refit v{promoted['champion']})")  # fmt: skip
    subject = f"{PREFIX} {pipeline}: {who} promoted to champion ({metric} {new:.4f} vs {versus})"
    body = (
        f"{promoted['model_name']} {who} is the new champion of pipeline {pipeline}.\n"
        f"{metric}: {new:.4f} vs {versus} on the same holdout.\nWhy: {evaluation['reason']}\n\n"
        f"Model version: {facts['model_url']}\nRun: {facts['run_url']}\n"
        f"Roll back: trigger {pipeline}__rollback"
    )
    return "promotion", subject, body


def drift_message(pipeline: str, facts: dict[str, Any]) -> tuple[NotificationEvent, str, str]:
    check: DriftCheck = facts["check"]
    drifted = ", ".join(check.get("drifted_columns") or []) or "none"
    subject = (
        f"{PREFIX} {pipeline}: retraining triggered (drift share {check['drift_share']:.2f}, "
        f"week {check.get('week') or week_ending(check['as_of'])})"
    )
    body = (
        f"The drift check of pipeline {pipeline} triggered a training run.\n"
        f"Why: {'; '.join(check.get('reasons') or [])}\n"
        f"Drifted columns ({len(check.get('drifted_columns') or [])}/{check.get('n_columns')}): {drifted}\n"
        f"Champion: v{check.get('champion_version')}\n\n"
        f"Drift report: {facts['report_url']}\nTraining run: {facts['training_url']}\nCheck run: {facts['run_url']}"
    )
    return "drift_retraining", subject, body


def approval_message(pipeline: str, facts: dict[str, Any]) -> tuple[NotificationEvent, str, str]:
    """An approval request is open: its subject and evidence, and where to answer it."""
    subject = f"{PREFIX} {pipeline}: approval needed: {facts['subject']}"
    timeout = facts.get("timeout_hours")
    body = (
        f"A training run of pipeline {pipeline} passed the promotion rule and waits for a person.\n"
        f"Answer it here (Approve or Reject, with why): {facts['answer_url']}\n"
        f"Without an answer within {timeout} h it is rejected by default; nothing is promoted until then.\n\n"
        f"{facts['body']}\n\nRun: {facts['run_url']}"
    )
    return "approval", subject, body


class LoopNotifier(BaseNotifier):
    """Sends one kind of loop message to the pipeline's channels (e-mail and/or Apprise)."""

    template_fields = ()

    def __init__(self, cfg: PipelineConfig, settings: Settings, kind: str):
        super().__init__()
        self.cfg, self.settings, self.kind = cfg, settings, kind

    def notify(self, context) -> None:
        event, subject, body = self.message(context)
        subject, body = redact(subject), redact(body)
        spec = self.cfg.notifications
        if event not in spec.events:
            return
        for channel in self.channels(subject, body):
            try:
                channel.notify(context)
                log.info("notified %s via %s: %s", event, type(channel).__name__, subject)
            except Exception:  # one broken channel must not hide the others (nor fail the task)
                log.exception("could not send the %s notification via %s", event, type(channel).__name__)

    def message(self, context) -> tuple[NotificationEvent, str, str]:
        ti = context["ti"]
        ui = self.settings.airflow_ui_url.rstrip("/")
        facts: dict[str, Any] = {
            "dag_id": ti.dag_id,
            "task_id": ti.task_id,
            "run_id": ti.run_id,
            "try_number": ti.try_number,
            "log_url": airflow_run_url(ui, ti.dag_id, ti.run_id, ti.task_id, ti.try_number),
            "run_url": airflow_run_url(ui, ti.dag_id, ti.run_id),
        }
        if self.kind == "failure":
            facts["exception"] = context.get("exception")
            return failure_message(self.cfg.name, facts)
        if self.kind == "approval":  # called by the HITL operator once its request is built
            task = context["task"]
            facts.update(subject=task.subject, body=task.body or "",
                         answer_url=airflow_run_url(ui, ti.dag_id, ti.run_id, ti.task_id) + "/required_actions",
                         timeout_hours=self.cfg.promotion.approval_timeout_hours)  # fmt: skip
            return approval_message(self.cfg.name, facts)
        if self.kind == "promotion":
            facts["promotion"] = ti.xcom_pull(task_ids=ti.task_id)
            facts["evaluation"] = ti.xcom_pull(task_ids="evaluate")
            p = facts["promotion"]
            facts["model_url"] = mlflow_model_version_url(
                self.settings.mlflow_ui_url, p["model_name"], p["champion"]
            )
            return promotion_message(self.cfg.name, facts)
        facts["check"] = check = ti.xcom_pull(task_ids="check_drift")
        path = viewer_path(self.settings.data_root, ti.dag_id, check.get("report"))
        facts["report_url"] = f"{ui}{path}" if path else check.get("report")
        facts["training_url"] = airflow_run_url(
            ui, f"{self.cfg.name}__train", TRIGGERED_RUN_PREFIX + ti.run_id
        )
        return drift_message(self.cfg.name, facts)

    def channels(self, subject: str, body: str) -> list:
        spec, out = self.cfg.notifications, []
        if spec.email:
            from airflow.providers.smtp.notifications.smtp import SmtpNotifier

            out.append(
                SmtpNotifier(
                    to=spec.email,
                    from_email=spec.email_from,
                    subject=subject,
                    html_content=f"<pre>{html.escape(body)}</pre>",
                    smtp_conn_id=spec.smtp_conn_id,
                )
            )
        if spec.apprise_conn_id:
            from airflow.providers.apprise.notifications.apprise import AppriseNotifier

            out.append(AppriseNotifier(title=subject, body=body, apprise_conn_id=spec.apprise_conn_id))
        return out


def notifiers(cfg: PipelineConfig, settings: Settings, kind: str) -> list[LoopNotifier]:
    """The callbacks for ``kind`` (failure | promotion | drift_retraining | approval); none without a channel."""
    return [LoopNotifier(cfg, settings, kind)] if cfg.notifications.has_channels else []
