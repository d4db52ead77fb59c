"""Small pipeline configs and curated weeks for unit tests (one place, so tests stay short)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

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
