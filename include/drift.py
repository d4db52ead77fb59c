"""Drift check: Evidently compares recent curated data with the champion's training data.

The reference is found through the champion version's lineage tags (``data.train_uri`` and
``data.train_sha256``, written at training time), never guessed. Each side is sampled to
``drift.max_rows`` (seeded) so a million-row window stays fast. The report is saved as HTML
beside the data and logged to a monitoring run in the pipeline's MLflow experiment.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.config import LOWER_IS_BETTER, DriftSpec, PipelineConfig, Settings
from include.storage import PipelinePaths, atomic_write, frame_digest
from include.tracking import configure, quiet_library_warnings

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

COLUMN_DRIFT = "evidently:metric_v2:ValueDrift"
DRIFTED_COUNT = "evidently:metric_v2:DriftedColumnsCount"


class LineageError(RuntimeError):
    """The champion's training data cannot be found or no longer matches its recorded hash."""


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
    raw = json.loads(snapshot.json())
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
    summary = {
        "drift_share": float(count["share"]),
        "drifted_columns": sorted(c for c, v in columns.items() if v.get("drifted")),
        "n_columns": len(columns),
        "empty_columns": empty,
        "columns": columns,
        "reference_rows": len(reference),
        "reference_used": len(ref),
        "current_rows": len(current),
        "current_used": len(cur),
    }
    return snapshot, summary


@dataclass(frozen=True)
class RetrainDecision:
    retrain: bool
    reasons: list[str]
    suppressed_by: str | None = None


def retrain_decision(
    spec: DriftSpec,
    drift_share: float,
    performance: float | None,
    metric: str,
    last_trigger_as_of: datetime | None,
    as_of: datetime,
    active_training_runs: int,
) -> RetrainDecision:
    """Drift share at or over the threshold, or champion performance under the floor; then cooldown."""
    reasons = []
    if drift_share >= spec.share_threshold:
        reasons.append(f"drift share {drift_share:.2f} >= {spec.share_threshold}")
    if performance is not None and spec.performance_floor is not None:
        worse = (
            performance > spec.performance_floor
            if metric in LOWER_IS_BETTER
            else performance < spec.performance_floor
        )
        if worse:
            reasons.append(f"champion {metric} {performance:.4f} past the floor {spec.performance_floor}")
    if not reasons:
        return RetrainDecision(False, [])
    if active_training_runs:
        return RetrainDecision(
            False, reasons, f"{active_training_runs} training run(s) still queued or running"
        )
    cooldown = timedelta(days=spec.interval_days * spec.cooldown_intervals)
    if last_trigger_as_of is not None and as_of - last_trigger_as_of < cooldown:
        return RetrainDecision(
            False, reasons, f"cooldown: last retraining trigger for data up to {last_trigger_as_of:%Y-%m-%d}, "
            f"less than {spec.cooldown_intervals} interval(s) ago"
        )  # fmt: skip
    return RetrainDecision(True, reasons)


def load_reference(cfg: PipelineConfig, champion) -> pd.DataFrame:
    """The champion's training set, located and verified through its lineage tags."""
    import pandas as pd

    uri, sha = champion.tags.get("data.train_uri"), champion.tags.get("data.train_sha256")
    if not uri or not sha:
        raise LineageError(f"champion v{champion.version} has no data.train_uri/data.train_sha256 tags")
    if not Path(uri).exists():
        raise LineageError(f"champion v{champion.version} was trained on {uri}, which no longer exists")
    df = pd.read_parquet(uri)
    if frame_digest(df) != sha:
        raise LineageError(
            f"{uri} changed since champion v{champion.version} was trained on it (sha256 mismatch)"
        )
    return df


def curated_end_at_or_before(paths: PipelinePaths, as_of: datetime) -> datetime:
    """Snap to a partition boundary so the current window holds whole batches."""
    from include.storage import parse_partition_key

    ends = [e for _, e in map(parse_partition_key, paths.curated_partitions()) if e <= as_of]
    if not ends:
        raise LineageError(f"no curated partition ends on or before {as_of:%Y-%m-%d %H:%M}")
    return max(ends)


def last_trigger_as_of(client, experiment_id: str) -> datetime | None:
    runs = client.search_runs(
        [experiment_id],
        filter_string="tags.`ct.role` = 'monitoring' and tags.`drift.retrain` = 'true'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return datetime.fromisoformat(runs[0].data.tags["drift.as_of"]) if runs else None


def check_drift(
    cfg: PipelineConfig,
    settings: Settings,
    as_of: datetime | None,
    run_id: str,
    active_training_runs: int = 0,
) -> dict[str, Any]:
    """Compare the latest curated window with the champion's training data; decide on retraining.

    Returns ``{"champion_version": None, ...}`` when there is no champion yet.
    """
    import mlflow
    from mlflow import MlflowClient

    from include.datasets import add_label, latest_curated_end, load_window
    from include.evaluation import metric_fn
    from include.registry import get_champion
    from include.training import model_frame

    exp_id = configure(cfg, settings)
    client = MlflowClient()
    champion = get_champion(client, cfg.registered_model)
    if champion is None:
        return {"champion_version": None, "retrain": False, "reasons": ["no champion yet"]}

    paths = PipelinePaths(settings.data_root, cfg.name)
    latest = latest_curated_end(paths)
    if latest is None:
        raise LineageError(f"no curated data for {cfg.name}")
    as_of = curated_end_at_or_before(paths, latest if as_of is None else as_of)
    spec = cfg.drift
    current = load_window(
        paths, cfg.schema_.timestamp_column, as_of - timedelta(days=spec.window_days), as_of
    )
    if current.empty:
        raise LineageError(f"no curated rows in the {spec.window_days} days before {as_of:%Y-%m-%d}")
    reference = load_reference(cfg, champion)
    columns = spec.columns or cfg.model.features
    numeric = [c for c in cfg.model.numeric_features if c in columns]
    categorical = [c for c in columns if c not in numeric]

    with quiet_library_warnings():
        snapshot, summary = drift_report(reference, current, numeric, categorical, spec)

    performance = None
    metric = cfg.promotion.primary_metric
    labelled = add_label(cfg, current) if cfg.target.column in current else current.iloc[:0]
    if not labelled.empty and labelled[cfg.target.name].nunique() == 2:
        frame = model_frame(cfg, labelled)
        model = mlflow.sklearn.load_model(f"models:/{cfg.registered_model}/{champion.version}")
        proba = model.predict_proba(frame[cfg.model.features])[:, 1]
        performance = float(metric_fn(metric)(frame[cfg.target.name].to_numpy(), proba))

    decision = retrain_decision(
        spec, summary["drift_share"], performance, metric,
        last_trigger_as_of(client, exp_id), as_of, active_training_runs,
    )  # fmt: skip
    out_dir = paths.drift_dir(run_id)
    report = atomic_write(out_dir / "report.html", lambda tmp: snapshot.save_html(str(tmp)))
    result = {
        **summary,
        "as_of": as_of.isoformat(),
        "champion_version": str(champion.version),
        "performance": performance,
        "performance_metric": metric,
        "retrain": decision.retrain,
        "trigger_reason": "drift" if summary["drift_share"] >= spec.share_threshold else "performance",
        "reasons": decision.reasons,
        "suppressed_by": decision.suppressed_by,
        "report": str(report),
    }
    atomic_write(out_dir / "summary.json", lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    with mlflow.start_run(
        run_name=f"drift check as_of {as_of:%Y-%m-%d}",
        tags={
            "ct.role": "monitoring",
            "pipeline": cfg.name,
            "airflow.run_id": run_id,
            "drift.as_of": as_of.isoformat(),
            "drift.retrain": str(decision.retrain).lower(),
            "drift.champion_version": str(champion.version),
            "drift.reasons": "; ".join(decision.reasons) or "none",
        },
    ) as run:
        metrics = {
            "drift_share": summary["drift_share"],
            "drifted_columns": len(summary["drifted_columns"]),
            "reference_rows_used": summary["reference_used"],
            "current_rows_used": summary["current_used"],
            **{f"drift_score.{c}": v["score"] for c, v in summary["columns"].items()},
        }
        if performance is not None:
            metrics[f"champion_current_{metric}"] = performance
        mlflow.log_metrics(metrics)
        mlflow.log_artifact(str(report), "drift")
        mlflow.log_dict(result, "drift/summary.json")
        result["mlflow_run_id"] = run.info.run_id
    log.info(format_summary(result))
    return result


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
        f"champion {result['performance_metric']} on current window: {'n/a' if perf is None else f'{perf:.4f}'}"
    )
    verdict = "RETRAIN" if result["retrain"] else "no retraining"
    why = "; ".join(result["reasons"]) or "no drift"
    lines.append(
        f"decision: {verdict} ({why}){' — suppressed: ' + result['suppressed_by'] if result['suppressed_by'] else ''}"
    )
    lines.append(f"report: {result['report']}")
    return "\n".join(lines)
