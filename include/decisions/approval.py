"""The optional human gate (``promotion.approval: required``): what a person is asked, and how
their answer is read.

The rule decides first; a person can only say "not this one" to a promotion the rule allows,
never promote one it refused. No answer within the configured time is a rejection (Airflow
applies the request's default, ``Reject``, with nobody named as the responder), so a silent
gate never promotes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from include.foundation import metrics

APPROVE, REJECT = "Approve", "Reject"
OPTIONS = [APPROVE, REJECT]
DEFAULT = [REJECT]  # what Airflow applies when nobody answers in time


@dataclass(frozen=True)
class Answer:
    """A person's answer, as recorded with the decision."""

    approved: bool
    by: str | None  # the Airflow user; None when nobody answered (the default was applied)
    at: str | None
    comment: str
    summary: str  # one line for logs and registry tags

    def record(self) -> dict[str, Any]:
        return {"approved": self.approved, "by": self.by, "at": self.at, "comment": self.comment,
                "summary": self.summary}  # fmt: skip


def read_answer(payload: Mapping[str, Any] | None, timeout_hours: float) -> Answer:
    """The answer to the approval request (the payload Airflow's HITL operator returns).

    Approved only when a named person chose ``Approve`` and nothing else; anything else (a
    rejection, the timeout's default, a malformed or missing payload) is a rejection.
    """
    payload = payload or {}
    chosen = list(payload.get("chosen_options") or [])
    user = payload.get("responded_by_user") or None
    by = None
    if isinstance(user, Mapping):
        by = str(user.get("name") or user.get("id") or "") or None
    elif user:
        by = str(user)
    at = payload.get("responded_at")
    at = at.isoformat(timespec="seconds") if isinstance(at, datetime) else (str(at) if at else None)
    comment = str((payload.get("params_input") or {}).get("comment") or "").strip()
    approved = chosen == [APPROVE] and by is not None
    why = f": {comment!r}" if comment else ""
    if approved:
        summary = f"approved by {by}{why}"
    elif by is None:
        summary = f"rejected by default: no answer within {timeout_hours:g} h"
    else:
        summary = f"rejected by {by}{why}"
    return Answer(approved, by, at, comment, summary)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def approval_request(
    evaluation: Mapping[str, Any],
    guardrails: Mapping[str, float],
    timeout_hours: float,
    links: Mapping[str, str | None],
    run_reason: str,
) -> dict[str, str]:
    """Subject and Markdown body of the request: the evidence a person needs to say yes or no.

    ``links`` maps a label (MLflow run, drift report, ...) to a URL; empty ones are left out.
    """
    model, version = evaluation["model_name"], evaluation["challenger_version"]
    champ_version = evaluation.get("champion_version")
    blocks = [  # Markdown paragraphs (a table or a list is one block)
        f"The promotion rule would promote **{model} v{version}**. Approve to move the champion "
        f"alias to it; reject to keep {'v' + str(champ_version) if champ_version else 'no champion'}.",
        _metrics_table(evaluation, guardrails),
        _evidence_lines(evaluation),
    ]
    slices = sorted(evaluation.get("slices") or [], key=lambda s: s["change"])
    if slices:
        blocks.append(
            f"Slices, worst first ({evaluation['primary_metric']}, change in its better direction):\n"
            + "\n".join(
                f"- {s['column']}={s['value']} ({s['rows']:,} rows): {s['challenger']:.4f} vs "
                f"{s['champion']:.4f} ({s['change']:+.4f})"
                for s in slices[:5]
            )
        )
    blocks.append(f"Why this training ran: {run_reason}")
    named = [f"[{label}]({url})" for label, url in links.items() if url]
    if named:
        blocks.append("Evidence: " + " · ".join(named))
    blocks.append(
        f"No answer within {timeout_hours:g} h rejects it; the champion stays. "
        "Say why in the comment: it is recorded with the decision."
    )
    return {"subject": f"Promote {model} v{version}?", "body": "\n\n".join(blocks)}


def _metrics_table(evaluation: Mapping[str, Any], guardrails: Mapping[str, float]) -> str:
    """Challenger vs champion: the primary metric, then each guardrail with its tolerance."""
    version, champ_version = evaluation["challenger_version"], evaluation.get("champion_version")
    metric = evaluation["primary_metric"]
    better = "lower" if metrics.orientation(metric) < 0 else "higher"
    ch_metrics = evaluation.get("challenger_metrics") or {}
    cp_metrics = evaluation.get("champion_metrics") or {}
    champ_head = f"champion v{champ_version}" if champ_version else "champion (none yet)"
    rows = [
        f"| | challenger v{version} | {champ_head} |",
        "|---|---:|---:|",
        f"| **{metric}** ({better} is better) | {_fmt(evaluation.get('challenger'))} "
        f"| {_fmt(evaluation.get('champion'))} |",
    ]
    for name, tolerance in guardrails.items():
        rows.append(
            f"| {name} (guardrail, may be worse by {tolerance:g}) | {_fmt(ch_metrics.get(name))} "
            f"| {_fmt(cp_metrics.get(name))} |"
        )
    return "\n".join(rows)


def _evidence_lines(evaluation: Mapping[str, Any]) -> str:
    """The gain's interval, the holdout and the rule's reason, one Markdown paragraph."""
    evidence = []
    if evaluation.get("ci_low") is not None:
        evidence.append(
            f"Gain {evaluation['difference']:+.4f}, 95% CI [{evaluation['ci_low']:+.4f}, "
            f"{evaluation['ci_high']:+.4f}] (paired bootstrap)."
        )
    window = evaluation.get("holdout_window") or []
    if window:
        evidence.append(
            f"Holdout: {evaluation.get('holdout_rows', 0):,} rows, {window[0][:10]} to {window[-1][:10]}."
        )
    evidence.append(f"Rule: {evaluation.get('reason', '')}")
    return "  \n".join(evidence)  # Markdown line breaks inside one paragraph
