"""Drift check: Evidently compares recent curated data with the champion's training data.

Three steps: the evidence is gathered (:mod:`include.stages.evidence`, which the replay shares),
the pure decision reads it (:func:`include.decisions.retraining.assess_retraining`, with the
cooldown state), and this module records both: the HTML report beside the data, the summary in a
monitoring run of the pipeline's MLflow experiment, realized metrics on the serving versions and
points on the timeline. When it says retrain, it hands the training DAG a
:class:`~include.foundation.payloads.RetrainRequest`.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from include.decisions.retraining import DriftEvidence, RetrainDecision, TriggerState, assess_retraining
from include.foundation import tracking
from include.foundation.config import PipelineConfig
from include.foundation.errors import NothingToDo
from include.foundation.payloads import DriftCheck, RetrainRequest
from include.foundation.settings import Settings
from include.foundation.storage import PipelinePaths, atomic_write, parse_partition_key, week_ending
from include.foundation.timeutil import utc
from include.foundation.tracking import Role, Tag
from include.stages.datasets import recent_window
from include.stages.evidence import ProductionEvidence, gather_evidence
from include.stages.registry import get_champion, with_lineage
from include.stages.timeline import write_timeline

log = logging.getLogger(__name__)


def last_retrain_trigger(
    client, experiment: str, exclude_airflow_run_id: str | None = None
) -> datetime | None:
    """``as_of`` of the newest finished monitoring run that asked for retraining (the cooldown's clock).

    Runs that did not finish and runs of ``exclude_airflow_run_id`` (the check being retried or
    cleared) do not count: a retried check keeps its own trigger.
    """
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    query = (
        f"tags.`{Tag.ROLE}` = '{Role.MONITORING}' and tags.`{Tag.DRIFT_RETRAIN}` = 'true' "
        "and attributes.status = 'FINISHED'"
    )
    if exclude_airflow_run_id:
        query += f" and tags.`{Tag.AIRFLOW_RUN_ID}` != '{exclude_airflow_run_id}'"
    runs = client.search_runs([exp.experiment_id], filter_string=query, order_by=["attributes.start_time DESC"],
                              max_results=1)  # fmt: skip
    return datetime.fromisoformat(runs[0].data.tags[Tag.DRIFT_AS_OF]) if runs else None


def trained_for(client, version) -> datetime | None:
    """The end of the data ``version`` was trained for (its training run's ``data.as_of``; None
    for a version registered without one): where the calendar counts from."""
    as_of = with_lineage(client, version).tags.get(Tag.DATA_AS_OF)
    return utc(datetime.fromisoformat(as_of)) if as_of else None


def check_drift(
    cfg: PipelineConfig,
    settings: Settings,
    as_of: datetime | None,
    run_id: str,
    active_training_runs: int = 0,
) -> DriftCheck:
    """Gather the evidence on the champion, decide on retraining, record both.

    :class:`NothingToDo` when there is no champion yet (nothing to compare with).
    """
    client = tracking.client(settings, cfg.experiment)
    champion = get_champion(client, cfg.registered_model)
    if champion is None:
        raise NothingToDo(
            f"no champion for {cfg.registered_model} yet: nothing to compare with; run {cfg.name}__train first",
            {"champion_version": None, "retrain": False, "reasons": ["no champion yet"]},
        )
    as_of, window = recent_window(cfg, settings.data_root, as_of, cfg.drift.window_days, cfg.drift.max_rows)
    source = ProductionEvidence(cfg, settings, client, champion, as_of, window)  # window None: streamed
    evidence = gather_evidence(cfg.drift, cfg.promotion.primary_metric, source)
    state = TriggerState(last_retrain_trigger(client, cfg.experiment, exclude_airflow_run_id=run_id),
                         active_training_runs, trained_for(client, champion))  # fmt: skip
    decision = assess_retraining(cfg.drift, evidence, metric=cfg.promotion.primary_metric, as_of=as_of,
                                 state=state)  # fmt: skip
    return record_check(cfg, settings, client, run_id, source, evidence, decision)


def record_check(
    cfg: PipelineConfig, settings: Settings, client, run_id: str, source: ProductionEvidence,
    evidence: DriftEvidence, decision: RetrainDecision,
) -> DriftCheck:  # fmt: skip
    """The check's summary, HTML report, task log, monitoring run and timeline points."""
    report = PipelinePaths(settings.data_root, cfg.name).drift_dir(run_id) / "report.html"
    result = check_summary(cfg, source, evidence, decision, report)
    atomic_write(report, lambda tmp: write_report(source.snapshot, result, tmp))
    atomic_write(report.parent / "summary.json", lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    log.info(format_summary(result))  # first: the table and the decision lead the task log
    result["note"] = f"drift {result['week']}: {decision_phrase(result)}"
    result["mlflow_run_id"] = log_monitoring_run(cfg, run_id, result)
    log_realized(client, cfg, source.realized_rows)
    log_timeline(client, cfg, result)
    result["timeline"] = str(write_timeline(cfg, PipelinePaths(settings.data_root, cfg.name), client))
    result["experiment_id"] = client.get_experiment_by_name(cfg.experiment).experiment_id
    return result


def check_summary(
    cfg: PipelineConfig, source: ProductionEvidence, evidence: DriftEvidence, decision: RetrainDecision,
    report: Path,
) -> dict[str, Any]:  # fmt: skip
    """What the check saw and decided, JSON-able: the summary file, the run's XCom, the report's banner."""
    start, labelled_end = source.window
    as_of, spec = source.as_of.isoformat(), cfg.drift
    drifted = evidence.drift_share >= spec.share_threshold
    said = evidence.prediction_drift
    reason = "drift" if drifted else "prediction_drift" if (said or {}).get("drifted") else "performance"
    return {
        **source.summary,
        "as_of": as_of,
        "week": week_ending(source.as_of, spec.interval_days),  # the week's one name (the window's newest)
        "champion_version": source.version,
        "model_name": cfg.registered_model,
        "share_threshold": spec.share_threshold,
        "performance": evidence.performance,
        "performance_metric": cfg.promotion.primary_metric,
        "performance_window": [start.isoformat(), labelled_end.isoformat()],
        "prediction_drift": said,
        "estimated": source.estimates,  # the champion's estimated metric, last scored intervals
        "staleness_debt": None
        if decision.debt is None
        else {
            "value": decision.debt.value,
            "cost": spec.staleness.cost,
            "intervals": decision.debt.intervals,
            "realized": decision.debt.realized,
        },  # fmt: skip
        "realized": [
            {k: r[k] for k in ("partition", "model_version", "rows", "value", "ci")}
            for r in source.realized_rows
        ],  # fmt: skip
        "retrain": decision.retrain,
        "reasons": decision.reasons,
        "suppressed_by": decision.suppressed_by,
        "report": str(report),
        "retrain_request": RetrainRequest(
            reason=reason,
            as_of=as_of,
            drift_share=evidence.drift_share,
            report=str(report),
            signals=decision.reasons or None,
        ).to_conf(),  # fmt: skip
    }


def log_monitoring_run(cfg: PipelineConfig, airflow_run_id: str, result: dict[str, Any]) -> str:
    """One MLflow run per check: the decision as tags, scores as metrics, report and summary as artifacts."""
    import mlflow

    tags = {
        Tag.ROLE: Role.MONITORING,
        Tag.PIPELINE: cfg.name,
        Tag.AIRFLOW_RUN_ID: airflow_run_id,
        Tag.DRIFT_AS_OF: result["as_of"],
        Tag.DRIFT_CHAMPION: result["champion_version"],
        Tag.DRIFT_REASONS: "; ".join(result["reasons"]) or "none",
    }
    values = {
        "drift_share": result["drift_share"],
        "drifted_columns": len(result["drifted_columns"]),
        "reference_rows_used": result["reference_used"],
        "current_rows_used": result["current_used"],
        **{f"drift_score.{c}": v["score"] for c, v in result["columns"].items()},
    }
    if result["performance"] is not None:
        values[f"champion_current_{result['performance_metric']}"] = result["performance"]
    if result.get("prediction_drift"):
        values["prediction_drift_score"] = result["prediction_drift"]["score"]
    if result.get("staleness_debt"):
        values["staleness_debt"] = result["staleness_debt"]["value"]
    earlier = _finished_monitoring_run(cfg, airflow_run_id, result["as_of"])
    if earlier is not None:  # a retried or cleared check: the first try's record stands
        log.info("drift check of Airflow run %s already logged as MLflow run %s", airflow_run_id, earlier)
        return earlier
    with mlflow.start_run(run_name=f"drift check of {result['week']}", tags=tags) as run:
        mlflow.log_metrics(values)
        mlflow.log_artifact(result["report"], "drift")
        mlflow.log_dict(result, "drift/summary.json")
        # last: the cooldown counts this mark only on a run that got this far and finished
        mlflow.set_tag(Tag.DRIFT_RETRAIN, str(result["retrain"]).lower())
    return run.info.run_id


def log_realized(client, cfg: PipelineConfig, realized: list[dict[str, Any]]) -> None:
    """Each interval's realized metric as a point of ``realized_<metric>`` on the training run of the
    version that served it (step: the interval's end, in days since 1970), so the model version's
    run charts what it was worth in production over time. A point already logged is not repeated."""
    from mlflow.entities import Metric

    key = f"realized_{cfg.promotion.primary_metric}"
    for version in {r["model_version"] for r in realized if r["value"] is not None}:
        run_id = client.get_model_version(cfg.registered_model, version).run_id
        logged = {m.step for m in client.get_metric_history(run_id, key)}
        points = []
        for r in realized:
            end = parse_partition_key(r["partition"])[1]
            step = int(end.timestamp() // 86400)
            if r["model_version"] == version and r["value"] is not None and step not in logged:
                points.append(Metric(key, r["value"], int(end.timestamp() * 1000), step))
        if points:
            client.log_batch(run_id, metrics=points)


def timeline_run(client, cfg: PipelineConfig) -> str:
    """The pipeline's timeline run (``ct.role`` timeline, named "<pipeline> over time"), made on first use."""
    exp = client.get_experiment_by_name(cfg.experiment)
    found = client.search_runs([exp.experiment_id], f"tags.`{Tag.ROLE}` = '{Role.TIMELINE}'",
                               order_by=["attributes.start_time ASC"], max_results=1)  # fmt: skip
    if found:
        return found[0].info.run_id
    run = client.create_run(exp.experiment_id, run_name=f"{cfg.name} over time",
                            tags={Tag.ROLE: Role.TIMELINE, Tag.PIPELINE: cfg.name})  # fmt: skip
    client.set_terminated(run.info.run_id)  # a record that grows, not a job that runs
    return run.info.run_id


def log_timeline(client, cfg: PipelineConfig, result: dict[str, Any]) -> str:
    """The check's drift share and the champion's metric as one point each on the timeline run
    (step: ``as_of`` in days since 1970, time: ``as_of``), so its chart shows both over time at a
    glance, one click from the experiment. A point already logged for that ``as_of`` is not repeated."""
    from mlflow.entities import Metric

    run_id = timeline_run(client, cfg)
    as_of = datetime.fromisoformat(result["as_of"])
    step, at = int(as_of.timestamp() // 86400), int(as_of.timestamp() * 1000)
    if step in {m.step for m in client.get_metric_history(run_id, "drift_share")}:
        return run_id
    values = {"drift_share": result["drift_share"], "drift_share_threshold": result["share_threshold"]}
    if result["performance"] is not None:
        values[f"champion_{result['performance_metric']}"] = result["performance"]
    if result.get("staleness_debt"):
        values["staleness_debt"] = result["staleness_debt"]["value"]
    client.log_batch(run_id, metrics=[Metric(k, float(v), at, step) for k, v in values.items()])
    return run_id


def _finished_monitoring_run(cfg: PipelineConfig, airflow_run_id: str, as_of: str) -> str | None:
    import mlflow

    exp = mlflow.get_experiment_by_name(cfg.experiment)
    if exp is None:
        return None
    found = mlflow.search_runs(
        [exp.experiment_id],
        f"tags.`{Tag.ROLE}` = '{Role.MONITORING}' AND tags.`{Tag.AIRFLOW_RUN_ID}` = '{airflow_run_id}' "
        f"AND tags.`{Tag.DRIFT_AS_OF}` = '{as_of}' AND attributes.status = 'FINISHED'",
        output_format="list", max_results=1,
    )  # fmt: skip
    return found[0].info.run_id if found and Tag.DRIFT_RETRAIN in found[0].data.tags else None


def verdict_html(result: dict[str, Any]) -> str:
    """The check's whole verdict, at the top of its report: the week, the champion judged, each
    signal's evidence and the decision, so a retraining on decay is never shown under Evidently's
    "no drift detected" alone. Every value is escaped."""
    from html import escape

    metric = result["performance_metric"]
    rows = [("week", result["week"]), ("champion judged", f"v{result['champion_version']}"),
            ("data drift", f"share {result['drift_share']:.2f} of {result['n_columns']} columns "
                           f"(threshold {result['share_threshold']}): {', '.join(result['drifted_columns']) or 'none'}")]  # fmt: skip
    said = result.get("prediction_drift")
    if said:
        rows.append(("prediction drift", f"{said['method']} {said['score']:.3f} (threshold {said['threshold']})"
                                         f"{': DRIFTED' if said['drifted'] else ''}"))  # fmt: skip
    perf = result.get("performance")
    rows.append(
        (f"champion {metric}", "n/a" if perf is None else f"{perf:.4f} on {_labelled_rows_of(result)}")
    )
    estimates = [v for v in result.get("estimated") or [] if v is not None]
    if estimates:
        rows.append(
            (f"estimated {metric}", ", ".join(f"{v:.4f}" for v in estimates) + " (last scored weeks)")
        )
    rows += _debt_rows(result)
    for r in result.get("realized") or []:
        value = "n/a" if r["value"] is None else f"{r['value']:.4f}"
        rows.append(
            (f"realized {metric}", f"{value} of v{r['model_version']} on {r['partition']} ({r['rows']} rows)")
        )
    rows.append(("decision", decision_phrase(result)))
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    return ("<section style='font-family:sans-serif;margin:16px;padding:12px;border:2px solid #444'>"
            f"<h2 style='margin-top:0'>Drift check of {escape(result['week'])}: "
            f"{'RETRAIN' if result['retrain'] else 'no retraining'}</h2>"
            f"<table style='border-collapse:collapse;text-align:left'>{cells}</table>"
            "<p>Below: Evidently's data drift report of the inputs (one signal of the ones above).</p></section>")  # fmt: skip


def write_report(snapshot, result: dict[str, Any], path: Path) -> None:
    """Evidently's HTML report with the check's verdict at the top of its page."""
    import re

    snapshot.save_html(str(path))
    html = path.read_text(encoding="utf-8")
    banner = verdict_html(result)
    html, n = re.subn(r"(<body[^>]*>)", lambda m: m.group(1) + banner, html, count=1)
    path.write_text(html if n else banner + html, encoding="utf-8")


def _debt_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    debt = result.get("staleness_debt")
    if not debt:
        return []
    return [("staleness debt", f"{debt['value']:.4f} of the retraining cost {debt['cost']} "
                               f"({debt['intervals']} served intervals, {debt['realized']} realized)")]  # fmt: skip


def _labelled_rows_of(result: dict[str, Any]) -> str:
    window = result.get("performance_window")
    if not window or window[1] == result["as_of"]:
        return "current window"
    return f"labelled rows {window[0][:10]}..{window[1][:10]} (outcomes arrive later)"


def decision_phrase(result: dict[str, Any]) -> str:
    """The check's decision and why, in the threshold's own words (the log's decision line, the
    run's note): ``RETRAIN (drift share 0.42 >= 0.3)``, ``no retraining (drift share 0.27 < 0.3)``."""
    verdict = "RETRAIN" if result["retrain"] else "no retraining"
    threshold = result.get("share_threshold")
    quiet = "no drift" if threshold is None else f"drift share {result['drift_share']:.2f} < {threshold}"
    why = "; ".join(result["reasons"]) or quiet
    return (
        f"{verdict} ({why}){' — suppressed: ' + result['suppressed_by'] if result['suppressed_by'] else ''}"
    )


def format_summary(result: dict[str, Any]) -> str:
    """A short, readable table for the task log."""
    lines = [
        f"drift check of {result['week']} vs champion v{result['champion_version']} training data: "
        f"reference {result['reference_used']}/{result['reference_rows']} rows, "
        f"current {result['current_used']}/{result['current_rows']} rows (sampled/total)"
        + (
            f"; drift judged on {result['judged_on']} (histograms), the report shows the sample"
            if result.get("judged_on")
            else ""
        ),
        f"{'column':<18}{'method':<16}{'score':>9}{'threshold':>11}  drifted",
    ]
    for col, v in sorted(result["columns"].items(), key=lambda kv: -kv[1]["score"]):
        lines.append(
            f"{col:<18}{v['method']:<16}{v['score']:>9.4f}{v['threshold']:>11}  {'YES' if v.get('drifted') else ''}"
        )
    perf = result["performance"]
    lines.append(
        f"drift share {result['drift_share']:.2f} ({len(result['drifted_columns'])}/{result['n_columns']} columns); "
        f"champion {result['performance_metric']} on {_labelled_rows_of(result)}: {'n/a' if perf is None else f'{perf:.4f}'}"
    )
    said = result.get("prediction_drift")
    if said:
        lines.append(f"prediction drift ({said['method']}) {said['score']:.3f} vs threshold {said['threshold']}: "
                     f"{said['current_rows']} served scores vs {said['reference_rows']} on the holdout"
                     f"{' -> DRIFTED' if said['drifted'] else ''}")  # fmt: skip
    lines += [f"{k}: {v}" for k, v in _debt_rows(result)]
    for r in result.get("realized") or []:
        ci = "" if r["ci"] is None else f" [{r['ci'][0]:.4f}, {r['ci'][1]:.4f}]"
        value = "n/a" if r["value"] is None else f"{r['value']:.4f}{ci}"
        lines.append(f"realized {result['performance_metric']} of v{r['model_version']} on {r['partition']}: {value} "
                     f"({r['rows']} labelled rows)")  # fmt: skip
    lines.append(f"decision: {decision_phrase(result)}")
    lines.append(f"report: {result['report']}")
    return "\n".join(lines)
