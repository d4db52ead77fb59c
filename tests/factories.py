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


def demo_yaml(delay_days: int | None = 0) -> dict[str, Any]:
    """The demo pipeline's YAML as a dict, its outcomes arriving ``delay_days`` after each week
    (default 0: with the inputs; None: as shipped). The shipped file delays them a week; tests
    about something else pin the arrival so their weeks do not move with it (the delay has its
    own tests)."""
    from pathlib import Path

    import yaml

    raw = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "include" / "pipelines" / "flights_delay.yaml").read_text()
    )
    if delay_days is not None:
        raw["labels"] = {**raw.get("labels", {}), "delay_days": delay_days}
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
        publish_batch(cfg, settings.data_root, batch["partition"])
        if (
            cfg.outcomes_later and not cfg.labels.source
        ):  # the outcomes due by this week's end, as collected then
            due = outcomes_due(cfg.labels, start, end)
            if due[0] >= jan1:
                publish_outcomes(
                    cfg, settings.data_root, ingest_outcomes(cfg, settings.data_root, *due)["partition"]
                )
    return cfg, settings
