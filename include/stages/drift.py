"""Drift check: Evidently compares recent curated data with the champion's training data.

The reference is the champion version's own training set, read through its lineage tags and
verified by hash (:func:`include.stages.datasets.read_training_set`), never guessed. Each side is
sampled to ``drift.max_rows`` (seeded) so a million-row window stays fast. The champion is also
scored on the window's labels (the performance floor). The decision honours a cooldown; the
HTML report is saved beside the data and logged with the summary to a monitoring run in the
pipeline's MLflow experiment. When it says retrain, it hands the training DAG a
:class:`~include.foundation.payloads.RetrainRequest`.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.decisions.outcomes import join_outcomes, realized_performance
from include.decisions.retraining import assess_retraining, performance_decayed
from include.decisions.windows import labelled_until, performance_window
from include.foundation import tracking
from include.foundation.config import DriftSpec, PipelineConfig, PredictionDriftSpec
from include.foundation.payloads import DriftCheck, RetrainRequest
from include.foundation.settings import Settings
from include.foundation.storage import PipelinePaths, atomic_write, parse_partition_key
from include.foundation.tracking import Role, Tag
from include.stages.datasets import (
    add_label,
    key_columns,
    labelled_rows,
    load_window,
    model_inputs,
    read_partition,
    read_training_set,
    recent_window,
    served_predictions,
)
from include.stages.registry import get_champion, load_model, model_uri, signature_inputs, with_lineage

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

COLUMN_DRIFT = "evidently:metric_v2:ValueDrift"
DRIFTED_COUNT = "evidently:metric_v2:DriftedColumnsCount"


def sample(df: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    return df if len(df) <= max_rows else df.sample(max_rows, random_state=seed)


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    spec: DriftSpec,
) -> tuple[Any, dict[str, Any]]:
    """Run Evidently's DataDriftPreset on (sampled) frames; returns (snapshot, JSON-able summary)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref = sample(reference, spec.max_rows, spec.seed)
    cur = sample(current, spec.max_rows, spec.seed)
    # Evidently refuses an all-null column; report it instead of failing the check
    empty = sorted(c for c in [*numeric, *categorical] if ref[c].isna().all() or cur[c].isna().all())
    if empty:
        log.warning("columns empty on one side, left out of the drift check: %s", empty)
        numeric = [c for c in numeric if c not in empty]
        categorical = [c for c in categorical if c not in empty]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    preset = DataDriftPreset(
        columns=[*numeric, *categorical],
        num_method=spec.num_method,
        cat_method=spec.cat_method,
        threshold=spec.column_threshold,
        drift_share=spec.share_threshold,
    )
    sampling = {
        "reference_rows": f"{len(ref)} of {len(reference)} (seeded sample, seed {spec.seed})",
        "current_rows": f"{len(cur)} of {len(current)} (seeded sample, seed {spec.seed})",
        "empty_columns_left_out": ", ".join(empty) or "none",
    }
    log.info(
        "drift check on %s reference rows and %s current rows",
        sampling["reference_rows"],
        sampling["current_rows"],
    )
    report = Report([preset], include_tests=True, metadata=sampling, tags=["drift", "ct-loop"])
    snapshot = report.run(
        current_data=Dataset.from_pandas(cur[[*numeric, *categorical]], data_definition=definition),
        reference_data=Dataset.from_pandas(ref[[*numeric, *categorical]], data_definition=definition),
    )
    summary = {
        **summarize_snapshot(json.loads(snapshot.json())),
        "empty_columns": empty,
        "reference_rows": len(reference),
        "reference_used": len(ref),
        "current_rows": len(current),
        "current_used": len(cur),
    }
    return snapshot, summary


def summarize_snapshot(raw: dict[str, Any]) -> dict[str, Any]:
    """Drift share, drifted columns and each column's score from an Evidently snapshot's JSON."""
    columns = {
        m["config"]["column"]: {
            "score": float(m["value"]),
            "method": m["config"]["method"],
            "threshold": m["config"]["threshold"],
        }
        for m in raw["metrics"]
        if m["config"]["type"] == COLUMN_DRIFT
    }
    for t in raw["tests"]:
        params = t["metric_config"]["params"]
        if params.get("type") == COLUMN_DRIFT and params.get("column") in columns:
            columns[params["column"]]["drifted"] = t["status"] == "FAIL"
    count = next(m["value"] for m in raw["metrics"] if m["config"]["type"] == DRIFTED_COUNT)
    return {
        "drift_share": float(count["share"]),
        "drifted_columns": sorted(c for c, v in columns.items() if v.get("drifted")),
        "n_columns": len(columns),
        "columns": columns,
    }


def drift_columns(cfg: PipelineConfig, reference: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(numeric, categorical) columns to check: ``drift.columns`` or the model's features, those
    the reference holds (a champion trained before a feature was added has no reference for it)."""
    columns = cfg.drift.columns or cfg.model.features
    absent = [c for c in columns if c not in reference]
    if absent:
        log.warning("columns not in the champion's training data, left out of the drift check: %s", absent)
    columns = [c for c in columns if c in reference]
    numeric = [c for c in cfg.model.numeric_features if c in columns]
    return numeric, [c for c in columns if c not in numeric]


def champion_performance(cfg: PipelineConfig, champion, current: pd.DataFrame) -> float | None:
    """The champion's primary metric on the window's labelled rows, fed its own input columns
    (None when the labels cannot be measured: one class, a class missing, a constant target)."""
    if cfg.target.column not in current:
        return None
    labelled = add_label(cfg, current)
    if labelled.empty or not cfg.scorer.measurable(labelled[cfg.target.name]):
        return None
    model = load_model(model_uri(cfg.registered_model, champion.version))
    columns, numeric = signature_inputs(model, cfg.model.features, cfg.model.numeric_features)
    X = model_inputs(labelled, columns, numeric)
    return cfg.scorer.score(model, X, labelled[cfg.target.name], cfg.promotion.primary_metric)


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


def check_drift(
    cfg: PipelineConfig,
    settings: Settings,
    as_of: datetime | None,
    run_id: str,
    active_training_runs: int = 0,
) -> DriftCheck:
    """Compare the latest curated window with the champion's training data; decide on retraining.

    Returns ``{"champion_version": None, ...}`` when there is no champion yet.
    """
    client = tracking.client(settings, cfg.experiment)
    champion = get_champion(client, cfg.registered_model)
    if champion is None:
        return {"champion_version": None, "retrain": False, "reasons": ["no champion yet"]}

    spec, metric = cfg.drift, cfg.promotion.primary_metric
    realized, decayed = [], None
    as_of, window = recent_window(cfg, settings.data_root, as_of, spec.window_days)
    current = drift_window(cfg, window)
    reference = read_training_set(with_lineage(client, champion))
    snapshot, summary = drift_report(reference, current, *drift_columns(cfg, reference), spec)
    start, labelled_end = performance_window(cfg.labels, spec, as_of)
    if labelled_end < as_of:  # judged on the rows whose outcomes have arrived, not this window's
        performed = load_window(cfg, PipelinePaths(settings.data_root, cfg.name), start, labelled_end)
        current = labelled_rows(cfg, performed) if not performed.empty else current.iloc[:0]
    performance = champion_performance(cfg, champion, current)
    # what was served, judged by the outcomes that arrived: the newest labelled interval always
    # (charted on its version), this champion's last intervals for the decay rule
    realized = realized_history(cfg, settings, as_of, last=1)
    if spec.performance_decay is not None:
        version = str(champion.version)
        its_own = realized_history(cfg, settings, as_of, version, spec.performance_decay.of_last)
        holdout_metric = client.get_run(champion.run_id).data.metrics.get(metric)
        if holdout_metric is not None:
            decayed = performance_decayed(
                spec.performance_decay, [r["value"] for r in its_own], holdout_metric, metric
            )
        seen = {r["partition"] for r in its_own}
        realized = its_own + [r for r in realized if r["partition"] not in seen]
    predictions = None
    if spec.prediction_drift is not None:  # what the champion said in production vs on its holdout
        served = served_scores(
            cfg, settings, as_of - timedelta(days=spec.window_days), as_of, str(champion.version)
        )
        if len(served):
            on_holdout = champion_scores(
                cfg, champion, read_training_set(with_lineage(client, champion), "holdout")
            )
            predictions = prediction_drift(on_holdout, served, spec.prediction_drift)
    last_trigger = last_retrain_trigger(client, cfg.experiment, exclude_airflow_run_id=run_id)
    decision = assess_retraining(
        spec, summary["drift_share"], performance, metric, last_trigger, as_of, active_training_runs, decayed,
        predictions,
    )  # fmt: skip

    out_dir = PipelinePaths(settings.data_root, cfg.name).drift_dir(run_id)
    report = out_dir / "report.html"
    drifted = summary["drift_share"] >= spec.share_threshold
    result = {
        **summary,
        "as_of": as_of.isoformat(),
        "champion_version": str(champion.version),
        "model_name": cfg.registered_model,
        "share_threshold": spec.share_threshold,
        "performance": performance,
        "performance_metric": metric,
        "performance_window": [start.isoformat(), labelled_end.isoformat()],
        "prediction_drift": predictions,
        "realized": [
            {k: r[k] for k in ("partition", "model_version", "rows", "value", "ci")} for r in realized
        ],
        "retrain": decision.retrain,
        "reasons": decision.reasons,
        "suppressed_by": decision.suppressed_by,
        "report": str(report),
        "retrain_request": RetrainRequest(
            reason="drift"
            if drifted
            else "prediction_drift"
            if (predictions or {}).get("drifted")
            else "performance",
            as_of=as_of.isoformat(),
            drift_share=summary["drift_share"],
            report=str(report),
            signals=decision.reasons or None,
        ).to_conf(),
    }
    atomic_write(report, lambda tmp: write_report(snapshot, result, tmp))
    atomic_write(out_dir / "summary.json", lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    log.info(format_summary(result))  # first: the table and the decision lead the task log
    result["outcome"] = f"drift {result['as_of'][:10]}: {decision_phrase(result)}"
    result["mlflow_run_id"] = log_monitoring_run(cfg, run_id, result)
    log_realized(client, cfg, realized)
    log_timeline(client, cfg, result)
    result["experiment_id"] = client.get_experiment_by_name(cfg.experiment).experiment_id
    return result


def drift_window(cfg: PipelineConfig, window: pd.DataFrame) -> pd.DataFrame:
    """The rows data drift is judged on: every input as scored when outcomes arrive later (their
    outcomes are not in yet), else the labelled rows, like the reference (a training set)."""
    return window if cfg.outcomes_later else labelled_rows(cfg, window)


def served_scores(cfg: PipelineConfig, settings: Settings, start: datetime, end: datetime, version: str):
    """The scores ``version`` served (as champion) for the intervals inside ``[start, end)``."""
    import numpy as np

    paths = PipelinePaths(settings.data_root, cfg.name)
    parts = []
    for partition in paths.curated_partitions():
        first, last = parse_partition_key(partition)
        if first >= start and last <= end:
            served = served_predictions(paths, partition)
            if served is not None and set(served["model_version"]) == {version}:
                parts.append(served["score"].to_numpy())
    return np.concatenate(parts) if parts else np.array([])


def champion_scores(cfg: PipelineConfig, champion, rows: pd.DataFrame):
    """The champion's scores on ``rows`` (:meth:`Scorer.served_score`: what the log's ``score``
    holds), fed its own input columns."""
    model = load_model(model_uri(cfg.registered_model, champion.version))
    columns, numeric = signature_inputs(model, cfg.model.features, cfg.model.numeric_features)
    scorer = cfg.scorer
    return scorer.served_score(*scorer.predictions(model, model_inputs(rows, columns, numeric)))


def prediction_drift(reference, current, spec: PredictionDriftSpec) -> dict[str, Any]:
    """Evidently's ``ValueDrift`` on the score: ``current`` (served) against ``reference``
    (the champion on its holdout). ``drifted`` is Evidently's own test verdict."""
    import pandas as pd
    from evidently import Report
    from evidently.metrics import ValueDrift

    report = Report(
        [ValueDrift(column="score", method=spec.method, threshold=spec.threshold)], include_tests=True
    )
    snap = report.run(
        reference_data=pd.DataFrame({"score": reference}), current_data=pd.DataFrame({"score": current})
    )
    raw = snap.dict()
    return {"method": spec.method, "threshold": spec.threshold, "score": float(raw["metrics"][0]["value"]),
            "drifted": str(raw["tests"][0]["status"]).endswith("FAIL"),
            "reference_rows": len(reference), "current_rows": len(current)}  # fmt: skip


def realized_history(
    cfg: PipelineConfig,
    settings: Settings,
    as_of: datetime,
    version: str | None = None,
    last: int | None = None,
) -> list[dict[str, Any]]:
    """What was served, judged by its outcomes: per interval whose outcomes arrived by ``as_of``
    (:func:`labelled_until`) and that a champion scored (``version``: only that one's), oldest
    first, the served part of the prediction log joined with the interval's outcomes by key
    (:func:`join_outcomes`) and its realized metric (:func:`realized_performance`)."""

    paths = PipelinePaths(settings.data_root, cfg.name)
    end = labelled_until(cfg.labels, as_of, timedelta(days=cfg.drift.interval_days))
    keys, rule = key_columns(cfg), cfg.promotion
    columns = list(dict.fromkeys([*keys, cfg.target.name, *rule.slices.columns]))
    served_parts = []  # (partition, its served part), oldest first; joined and judged below
    for partition in paths.curated_partitions():
        if parse_partition_key(partition)[1] > end:
            break
        served = served_predictions(paths, partition)
        if served is None or (version is not None and set(served["model_version"]) != {version}):
            continue
        served_parts.append((partition, served))
    out = []
    for partition, served in served_parts[-last:] if last else served_parts:
        outcomes = add_label(cfg, read_partition(cfg, paths, partition))[columns]
        joined = join_outcomes(served, outcomes, keys)
        perf = realized_performance(joined.joined, cfg.target.name, rule.primary_metric, rule.slices,
                                    rule.bootstrap, cfg.scorer)  # fmt: skip
        out.append({"partition": partition, "model_version": str(served["model_version"].iloc[0]), **perf,
                    "join": joined.summary()})  # fmt: skip
    return out


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
    earlier = _finished_monitoring_run(cfg, airflow_run_id, result["as_of"])
    if earlier is not None:  # a retried or cleared check: the first try's record stands
        log.info("drift check of Airflow run %s already logged as MLflow run %s", airflow_run_id, earlier)
        return earlier
    with mlflow.start_run(run_name=f"drift {result['as_of'][:10]}", tags=tags) as run:
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
    rows = [("week ending", result["as_of"][:10]), ("champion judged", f"v{result['champion_version']}"),
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
    for r in result.get("realized") or []:
        value = "n/a" if r["value"] is None else f"{r['value']:.4f}"
        rows.append(
            (f"realized {metric}", f"{value} of v{r['model_version']} on {r['partition']} ({r['rows']} rows)")
        )
    rows.append(("decision", decision_phrase(result)))
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    return ("<section style='font-family:sans-serif;margin:16px;padding:12px;border:2px solid #444'>"
            f"<h2 style='margin-top:0'>Drift check {escape(result['as_of'][:10])}: "
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
        f"drift check as of {result['as_of'][:10]} vs champion v{result['champion_version']} training data: "
        f"reference {result['reference_used']}/{result['reference_rows']} rows, "
        f"current {result['current_used']}/{result['current_rows']} rows (sampled/total)",
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
    for r in result.get("realized") or []:
        ci = "" if r["ci"] is None else f" [{r['ci'][0]:.4f}, {r['ci'][1]:.4f}]"
        value = "n/a" if r["value"] is None else f"{r['value']:.4f}{ci}"
        lines.append(f"realized {result['performance_metric']} of v{r['model_version']} on {r['partition']}: {value} "
                     f"({r['rows']} labelled rows)")  # fmt: skip
    lines.append(f"decision: {decision_phrase(result)}")
    lines.append(f"report: {result['report']}")
    return "\n".join(lines)
