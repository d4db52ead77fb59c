"""The pipeline's "over time" page: how the model is doing, week by week, on one screen.

For each drift check: the version serving then, the realized metric of the newest week whose
outcomes had arrived (and which version served it), the drift share against its threshold,
prediction drift, and what the check decided; for each training: the version it registered and
what became of it (promoted, rejected, rolled back). Two charts on a time axis (the realized
metric; the drift share) carry markers for retraining triggers, promotions and rejections.

Every drift check rewrites it (``timeline/index.html``, :meth:`PipelinePaths.timeline`) from the
durable records: the checks' ``summary.json`` files and the registry's versions. The plugin's
viewer serves it ("Over time" on the drift check's task) to whoever may read the drift check.
"""

from __future__ import annotations

import json
import logging
from html import escape
from pathlib import Path
from typing import Any

from include.foundation.config import PipelineConfig
from include.foundation.storage import PipelinePaths, atomic_write, interval_name, week_ending
from include.foundation.tracking import Tag
from include.stages.registry import with_lineage

log = logging.getLogger(__name__)

MARKERS = {"retrain": "#e67e00", "promoted": "#1a7f37", "rejected": "#c62828"}


def recorded_checks(paths: PipelinePaths) -> list[dict[str, Any]]:
    """Every drift check's summary, the newest file per ``as_of`` (a re-run of a week replaces it)."""
    newest: dict[str, tuple[float, dict]] = {}
    for file in (paths.base / "drift").glob("*/summary.json"):
        try:
            summary = json.loads(file.read_text())
        except (OSError, ValueError):  # a summary being written right now: the next check shows it
            continue
        as_of, mtime = str(summary.get("as_of", ""))[:10], file.stat().st_mtime
        if as_of and (as_of not in newest or newest[as_of][0] < mtime):
            newest[as_of] = (mtime, summary)
    return [summary for _, summary in newest.values()]


def recorded_trainings(client, model: str) -> list[dict[str, Any]]:
    """Each registered version: the data end it was trained for and the decision recorded on it."""
    out = []
    for mv in client.search_model_versions(f"name = '{model}'"):
        tags = with_lineage(client, mv).tags  # data.* live on its training run
        as_of = tags.get(Tag.DATA_AS_OF) or tags.get(Tag.TRAIN_END) or ""
        outcome = tags.get(Tag.DECISION_OUTCOME, "undecided")
        if tags.get(Tag.REFIT_SERVED_AS) and outcome == "undecided":  # the gate accepted it; its refit serves
            outcome = f"accepted, serving as its refit v{tags[Tag.REFIT_SERVED_AS]}"
        if tags.get(Tag.ROLLBACK_DEMOTED):
            outcome += ", rolled back"
        out.append({"version": str(mv.version), "as_of": as_of[:10], "outcome": outcome,
                    "reason": tags.get(Tag.DECISION_REASON, "")})  # fmt: skip
    return out


def week_rows(checks: list[dict[str, Any]], trainings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per week (a check's ``as_of`` or a training's), oldest first: the check's numbers and
    the trainings of that week. Pure."""
    rows: dict[str, dict[str, Any]] = {}
    for c in checks:
        arrived = [r for r in c.get("realized") or [] if r.get("value") is not None]
        newest = max(arrived, key=lambda r: r["partition"], default=None)
        said = c.get("prediction_drift") or {}
        rows[c["as_of"][:10]] = {
            "week": c.get("week") or week_ending(c["as_of"]), "serving": c.get("champion_version"),
            "realized": None if newest is None else newest["value"],
            "realized_of": None if newest is None else f"{interval_name(newest['partition'])} by v{newest['model_version']}",
            "drift_share": c.get("drift_share"), "threshold": c.get("share_threshold"),
            "prediction_drift": said.get("score"), "retrain": bool(c.get("retrain")),
            "decision": "; ".join(c.get("reasons") or []) or "quiet",
            "suppressed_by": c.get("suppressed_by"), "trainings": [],
        }  # fmt: skip
    for t in sorted(trainings, key=lambda t: int(t["version"])):
        week = week_ending(t["as_of"]) if t["as_of"] else "unknown"
        rows.setdefault(t["as_of"], {"week": week, "trainings": []})["trainings"].append(t)
    return [rows[k] for k in sorted(rows)]


def write_timeline(cfg: PipelineConfig, paths: PipelinePaths, client) -> Path:
    """Rewrite the page from the durable records; returns its path."""
    rows = week_rows(recorded_checks(paths), recorded_trainings(client, cfg.registered_model))
    page = timeline_html(cfg, rows)
    return atomic_write(paths.timeline(), lambda tmp: tmp.write_text(page, encoding="utf-8"))


def timeline_html(cfg: PipelineConfig, rows: list[dict[str, Any]]) -> str:
    """The page: two charts with markers, then the table. Every value is escaped."""
    metric = cfg.promotion.primary_metric
    charts = _chart(rows, "realized", f"realized {metric} (when the week's outcomes arrived)")
    charts += _chart(rows, "drift_share", "drift share of the inputs", threshold=cfg.drift.share_threshold)
    legend = " ".join(f"<span style='color:{c}'>&#9646; {escape(k)}</span>" for k, c in MARKERS.items())
    head = ["week", "serving", f"realized {metric}", "drift share", "prediction drift", "check",
            "trainings"]  # fmt: skip
    body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in _cells(r)) + "</tr>" for r in rows)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(cfg.name)} over time</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}</style></head><body>"
        f"<h1>{escape(cfg.name)} over time</h1><p>{legend}</p>{charts}"
        "<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + f"</tr>{body}</table></body></html>"
    )


def _cells(r: dict[str, Any]) -> list[str]:
    def num(v):
        return "" if v is None else f"{v:.4f}"

    check = "" if "decision" not in r else ("RETRAIN: " if r["retrain"] else "") + r["decision"]
    if r.get("suppressed_by"):
        check += f" (suppressed: {r['suppressed_by']})"
    realized = num(r.get("realized")) + (f" ({r['realized_of']})" if r.get("realized_of") else "")
    trained = "; ".join(f"v{t['version']} {t['outcome']}" for t in r["trainings"])
    serving = f"v{r['serving']}" if r.get("serving") else ""
    drift = "" if r.get("drift_share") is None else f"{r['drift_share']:.2f} (threshold {r['threshold']})"
    return [r["week"], serving, realized, drift, num(r.get("prediction_drift")), check, trained]


def _chart(rows: list[dict[str, Any]], key: str, title: str, threshold: float | None = None) -> str:
    """An SVG line chart of ``key`` over the weeks, with a vertical marker per event of the week."""
    w, h, pad = 900, 180, 40
    values = [r.get(key) for r in rows]
    known = [v for v in values if v is not None] + ([threshold] if threshold is not None else [])
    if not rows or not known:
        return f"<p>{escape(title)}: no values yet.</p>"
    lo, hi = min(known), max(known)
    lo, hi = (lo - 0.05, hi + 0.05) if hi - lo < 1e-9 else (lo - (hi - lo) * 0.1, hi + (hi - lo) * 0.1)

    def x(i):
        return pad + (w - 2 * pad) * (i / max(1, len(rows) - 1))

    def y(v):
        return h - pad / 2 - (h - pad) * (v - lo) / (hi - lo)

    parts = []
    for i, r in enumerate(rows):
        events = (["retrain"] if r.get("retrain") else []) + [
            "promoted" if t["outcome"].startswith("promoted") else "rejected" for t in r["trainings"]]  # fmt: skip
        for k, event in enumerate(events):
            parts.append(f"<line x1='{x(i) + 3 * k:.1f}' x2='{x(i) + 3 * k:.1f}' y1='{pad / 2}' y2='{h - pad / 2}' "
                         f"stroke='{MARKERS[event]}' stroke-width='2'><title>{escape(r['week'])}: {event}</title></line>")  # fmt: skip
    points = [(x(i), y(v), rows[i]["week"], v) for i, v in enumerate(values) if v is not None]
    if threshold is not None:
        parts.append(f"<line x1='{pad}' x2='{w - pad}' y1='{y(threshold):.1f}' y2='{y(threshold):.1f}' "
                     "stroke='#999' stroke-dasharray='4'/>")  # fmt: skip
    parts.append("<polyline fill='none' stroke='#1f4e99' stroke-width='2' points='"
                 + " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in points) + "'/>")  # fmt: skip
    parts += [f"<circle cx='{px:.1f}' cy='{py:.1f}' r='3' fill='#1f4e99'><title>{escape(week)}: {v:.4f}</title></circle>"
              for px, py, week, v in points]  # fmt: skip
    labels = f"<text x='{pad}' y='{h - 4}' font-size='11'>{escape(rows[0]['week'])}</text>" + (
        f"<text x='{w - pad}' y='{h - 4}' font-size='11' text-anchor='end'>{escape(rows[-1]['week'])}</text>"
        f"<text x='4' y='{y(hi) + 12:.1f}' font-size='11'>{hi:.3f}</text><text x='4' y='{y(lo):.1f}' font-size='11'>{lo:.3f}</text>"
    )  # fmt: skip
    return (f"<h3>{escape(title)}</h3><svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' "
            f"role='img' aria-label='{escape(title)}'>{''.join(parts)}{labels}</svg>")  # fmt: skip
