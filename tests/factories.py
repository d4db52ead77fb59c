"""Small pipeline configs and curated weeks for unit tests (one place, so tests stay short)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from include.foundation.config import PipelineConfig
from include.foundation.storage import PipelinePaths, partition_key


def landing_cfg(name: str = "shop", y: dict[str, Any] | None = None, **overrides) -> PipelineConfig:
    """A landing-folder pipeline with columns ``ts``, ``x`` (the feature) and a 0/1 target ``y``."""
    raw: dict[str, Any] = {
        "name": name,
        "source": {"kind": "landing_folder", "path": "landing"},
        "schema": {
            "timestamp_column": "ts",
            "columns": [
                {"name": "ts", "dtype": "datetime"},
                {"name": "x", "dtype": "float"},
                {"name": "y", "dtype": "int", "allowed": [0, 1], **(y or {})},
            ],
        },
        "target": {"column": "y"},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression", "numeric_features": ["x"]},
    }
    raw.update(overrides)
    return PipelineConfig.model_validate(raw)


def write_curated_weeks(paths: PipelinePaths, start: datetime, frames) -> list[str]:
    """Publish one frame per week from ``start`` as curated partitions; returns their keys."""
    keys = []
    for i, df in enumerate(frames):
        s = start + timedelta(weeks=i)
        key = partition_key(s, s + timedelta(weeks=1))
        paths.curated(key).parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(paths.curated(key), index=False)
        keys.append(key)
    return keys


def tiny_cfg(**model) -> PipelineConfig:
    """ts, a numeric and a categorical feature, and a float target binarised at 0.5."""
    return landing_cfg(
        "tiny",
        source={"kind": "landing_folder", "path": "in"},
        schema={
            "timestamp_column": "ts",
            "columns": [
                {"name": "ts", "dtype": "datetime"},
                {"name": "x", "dtype": "float"},
                {"name": "c", "dtype": "str"},
                {"name": "y", "dtype": "float"},
            ],
        },  # fmt: skip
        target={"column": "y", "positive_above": 0.5, "name": "label"},
        model={
            "estimator": "sklearn.linear_model.LogisticRegression",
            "numeric_features": ["x"],
            "categorical_features": ["c"],
            **model,
        },  # fmt: skip
        training={"train_days": 14, "holdout_days": 7, "min_train_rows": 50},
    )


def frame(start: datetime, days: int, n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    ts = pd.to_datetime(start.replace(tzinfo=None)) + pd.to_timedelta(
        rng.uniform(0, days * 86400, n), unit="s"
    )
    return pd.DataFrame(
        {"ts": ts, "x": x, "c": rng.choice(["a", "b"], n), "y": (x + rng.normal(0, 0.5, n) > 0.5) * 1.0}
    )


def as_validated(cfg, data_root, partition: str, part: str = "inputs") -> str:
    """Record what validate records on a pass, for tests that publish without running GX
    (validation has tests of its own); publication refuses a batch without it."""
    from include.foundation.storage import PipelinePaths, record_validation_pass

    paths = PipelinePaths(data_root, cfg.name)
    raw = paths.raw_outcomes(partition) if part == "outcomes" else paths.raw(partition)
    record_validation_pass(raw, partition, part)
    return partition


SIGNALS_POLICY = {  # the drift signals the e2e tests were written around (the demo ships a calendar)
    "share_threshold": 0.35, "cooldown_intervals": 4, "performance_floor": 0.62, "calendar_intervals": None,
    "performance_decay": {"margin": 0.02, "intervals": 2, "of_last": 3},
    "prediction_drift": {"method": "psi", "threshold": 0.1},
}  # fmt: skip


def demo_yaml(delay_days: int | None = 0, shipped_policy: bool = False) -> dict[str, Any]:
    """The demo pipeline's YAML as a dict, its outcomes arriving ``delay_days`` after each week
    (default 0: with the inputs; None: as shipped). The shipped file delays them a week; tests
    about something else pin the arrival so their weeks do not move with it (the delay has its
    own tests). Likewise the retraining policy: unless ``shipped_policy``, the drift signals of
    :data:`SIGNALS_POLICY` trigger and nothing is refit (the shipped calendar and refit have
    their own tests: the demo's, the train DAG's, the replay's)."""
    from pathlib import Path

    import yaml

    raw = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "include" / "pipelines" / "flights_delay.yaml").read_text()
    )
    if delay_days is not None:
        raw["labels"] = {**raw.get("labels", {}), "delay_days": delay_days}
    if not shipped_policy:
        raw["drift"] = {**raw["drift"], **SIGNALS_POLICY}
        raw["training"] = {**raw["training"], "refit_on_holdout": False}
    return raw


def demo_pipeline_with_weeks(
    folder, name: str, weeks: int, mp, training: dict, drift: dict | None = None, labels: dict | None = None
):
    """The demo pipeline under ``name`` (its own registry and data), its first ``weeks`` weeks
    published without GX (validation has its own tests); ``CT_PIPELINES_DIR`` points at it
    through ``mp`` (a MonkeyPatch the caller undoes). ``labels``: the outcomes' arrival (default:
    with the inputs); when they arrive later only the inputs are published. Returns ``(cfg, settings)``."""
    from datetime import UTC

    import yaml

    from include.decisions.windows import outcomes_due
    from include.foundation.config import load_pipeline
    from include.foundation.settings import Settings
    from include.stages.ingest import ingest_batch, ingest_outcomes, publish_batch, publish_outcomes

    raw = demo_yaml()
    raw["name"] = name
    raw["labels"].update(labels or {})
    raw["training"].update(training)
    raw["drift"].update(drift or {})
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(raw))
    mp.setenv("CT_PIPELINES_DIR", str(folder))
    cfg, settings = load_pipeline(folder / f"{name}.yaml"), Settings.from_env()
    jan1 = datetime(2013, 1, 1, tzinfo=UTC)
    for week in range(weeks):
        start, end = jan1 + timedelta(weeks=week), jan1 + timedelta(weeks=week + 1)
        batch = ingest_batch(cfg, settings.data_root, start, end)
        publish_batch(cfg, settings.data_root, as_validated(cfg, settings.data_root, batch["partition"]))
        if (
            cfg.outcomes_later and not cfg.labels.source
        ):  # the outcomes due by this week's end, as collected then
            due = outcomes_due(cfg.labels, start, end)
            if due[0] >= jan1:
                key = ingest_outcomes(cfg, settings.data_root, *due)["partition"]
                publish_outcomes(
                    cfg, settings.data_root, as_validated(cfg, settings.data_root, key, "outcomes")
                )
    return cfg, settings


# ------------------------------------------------------------------ other target kinds (issue 24)

KIND_START = datetime(2024, 1, 2)  # a Tuesday, like the kinds' ingest schedule


def kind_yaml(kind: str) -> dict[str, Any]:
    """A user's pipeline file (as a dict) for a synthetic table of ``kind`` "regression" (minutes
    to deliver an order) or "multiclass" (the team a support ticket is routed to): nothing in
    it is flights, and the target's kind is left for the loader to infer."""
    common = {
        "source": {"kind": "landing_folder", "path": "landing", "pattern": "*.csv"},
        "schedule": {"ingest": "0 0 * * 2", "drift_check": "0 1 * * 2", "train": None, "start_date": "2024-01-02"},
        "training": {"train_days": 21, "holdout_days": 7, "min_train_rows": 300, "min_holdout_rows": 100,
                     "min_holdout_class_rows": 10},
        "drift": {"window_days": 7, "column_threshold": 0.1, "share_threshold": 0.5,
                  "prediction_drift": {"method": "psi", "threshold": 0.2}},
    }  # fmt: skip
    if kind == "regression":
        return {
            **common,
            "name": "delivery",
            "description": "Minutes to deliver an order (synthetic, seeded)",
            "schema": {
                "timestamp_column": "ordered_at",
                "unique_together": [["order_id"]],
                "columns": [
                    {"name": "ordered_at", "dtype": "datetime", "nullable": False},
                    {"name": "order_id", "dtype": "int", "nullable": False},
                    {"name": "distance_km", "dtype": "float", "min": 0, "max": 60},
                    {"name": "items", "dtype": "int", "min": 1, "max": 40},
                    {"name": "region", "dtype": "str", "allowed": ["north", "south", "centre"]},
                    {"name": "minutes", "dtype": "float", "min": 0, "max": 400, "nullable": False},
                ],
            },
            "target": {"column": "minutes", "mean_between": [10, 200]},
            "model": {
                "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
                "params": {"max_iter": 50},
                "numeric_features": ["distance_km", "items"],
                "categorical_features": ["region"],
            },  # fmt: skip
            "promotion": {
                "min_improvement": 0.05,
                "guardrails": {"r2_score": 0.05},
                "slices": {"columns": ["region"], "tolerance": 2.0, "min_rows": 30},
            },  # fmt: skip
            "drift": {**common["drift"], "performance_floor": 60.0},  # RMSE above 60 minutes retrains
        }
    return {
        **common,
        "name": "routing",
        "description": "Which team a support ticket goes to (synthetic, seeded)",
        "schema": {
            "timestamp_column": "opened_at",
            "unique_together": [["ticket_id"]],
            "columns": [
                {"name": "opened_at", "dtype": "datetime", "nullable": False},
                {"name": "ticket_id", "dtype": "int", "nullable": False},
                {"name": "channel", "dtype": "str", "allowed": ["mail", "phone", "chat"]},
                {"name": "words", "dtype": "int", "min": 0, "max": 2000},
                {"name": "amount", "dtype": "float", "min": 0},
                {
                    "name": "team",
                    "dtype": "str",
                    "allowed": ["billing", "network", "sales"],
                    "nullable": False,
                },
            ],
        },
        "target": {"column": "team", "min_class_share": 0.05},
        "model": {
            "estimator": "sklearn.linear_model.LogisticRegression",
            "params": {"max_iter": 500},
            "numeric_features": ["words", "amount"],
            "categorical_features": ["channel"],
        },  # fmt: skip
        "promotion": {
            "guardrails": {"log_loss": 0.05},
            "slices": {"columns": ["channel"], "tolerance": 0.1, "min_rows": 30},
        },  # fmt: skip
        "drift": {**common["drift"], "performance_floor": 0.3},  # weighted F1 below 0.3 retrains
    }


def kind_table(kind: str, weeks: int, per_week: int = 300, seed: int = 3) -> pd.DataFrame:
    """``weeks`` weeks of the synthetic table of ``kind`` from :data:`KIND_START`, as a CSV export
    holds it (ISO timestamps); from the fourth week on, inputs shift (real drift to detect)."""
    rng = np.random.default_rng(seed)
    n = per_week * weeks
    seconds = np.sort(rng.uniform(0, weeks * 7 * 86400, n))
    late = seconds > 3 * 7 * 86400
    when = [(KIND_START + timedelta(seconds=float(s))).strftime("%Y-%m-%dT%H:%M:%SZ") for s in seconds]
    if kind == "regression":
        distance = np.round(rng.gamma(2, 4, n) + late * 6, 2).clip(0, 60)
        items = rng.integers(1, 12, n)
        region = rng.choice(["north", "south", "centre"], n)
        minutes = 12 + 2.5 * distance + 1.5 * items + 8 * (region == "north") + rng.normal(0, 4, n)
        return pd.DataFrame({"ordered_at": when, "order_id": np.arange(n) + 1, "distance_km": distance,
                             "items": items, "region": region, "minutes": np.round(minutes.clip(1, 400), 1)})  # fmt: skip
    channel = rng.choice(["mail", "phone", "chat"], n, p=[0.5, 0.3, 0.2])
    words = rng.integers(5, 400, n) + late * 150
    amount = np.round(rng.gamma(2, 30, n), 2)
    logits = np.stack([0.02 * amount - 1.0 + (channel == "mail"),
                       0.004 * words - 0.5 + (channel == "phone"),
                       0.5 * (channel == "chat") - 0.002 * words + 0.3], axis=1)  # fmt: skip
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    team = np.array(["billing", "network", "sales"])[[rng.choice(3, p=p) for p in proba]]
    return pd.DataFrame({"opened_at": when, "ticket_id": np.arange(n) + 1, "channel": channel,
                         "words": words, "amount": amount, "team": team})  # fmt: skip


def kind_cfg(kind: str) -> PipelineConfig:
    return PipelineConfig.model_validate(kind_yaml(kind))
