"""What the tasks hand each other, spelled once: every task's return value (its XCom) is one of
these types, imported by the stage that produces it and by every reader (the next task, the
plugin's extra links, the notifications). Small on purpose: paths, ids and numbers, never data.

The drift check → training handoff is a :class:`RetrainRequest`: the conf of the training run it
triggers; the training DAG's params form has exactly these fields (plus its own options), and
the training run records them on the MLflow run and model version as ``run.<field>`` tags.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, NotRequired, TypedDict

from include.foundation.tracking import Tag

TRIGGERED_RUN_PREFIX = "drift__"  # run id of a training the drift check triggers: drift__<its run id>


@dataclass(frozen=True)
class RetrainRequest:
    """Why a training runs and on data up to when."""

    reason: str = "manual"  # "drift", "performance", "bootstrap", "manual", ...
    as_of: str | None = None  # end of the holdout window (ISO); None = latest curated data
    drift_share: float | None = None  # set by the drift check
    report: str | None = None  # the drift report that triggered the run
    signals: list[str] | None = None  # what fired, with its evidence (drift share, prediction drift, decay)

    # field -> (JSON-schema type, description): the training DAG's params form is built from it
    FORM = {
        "reason": ("string", "Why this training runs (recorded on the model)"),
        "as_of": (["null", "string"], "End of the holdout window (ISO date); empty = latest curated data"),
        "drift_share": (["null", "number"], "Set by the drift check"),
        "report": (["null", "string"], "Drift report that triggered this run"),
        "signals": (["null", "array"], "Set by the drift check: the signals that fired, with their evidence"),
    }

    def to_conf(self) -> dict[str, Any]:
        """The training run's conf (JSON-able)."""
        return asdict(self)

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> RetrainRequest:
        """Read the request out of a run's params/conf (other keys are the DAG's own options)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in conf.items() if k in names and v is not None}
        if "drift_share" in values:
            values["drift_share"] = float(values["drift_share"])
        if "signals" in values:
            values["signals"] = [str(v) for v in values["signals"]]
        return cls(**values)

    def tags(self) -> dict[str, str]:
        """``run.<field>`` tags for the MLflow run and model version."""
        out = {Tag.run("reason"): self.reason or ""}
        for key in ("drift_share", "report"):
            if getattr(self, key) is not None:
                out[Tag.run(key)] = str(getattr(self, key))
        if self.signals:
            out[Tag.run("signals")] = "; ".join(self.signals)[:5000]
        return out


# --------------------------------------------------------------------------- ingestion


class IngestedBatch(TypedDict):
    """``ingest``: the interval's raw batch (or, ``already_published``, the published one left alone)."""

    partition: str
    uri: str
    rows: int
    sha256: NotRequired[str]
    replace: NotRequired[bool]
    already_published: NotRequired[bool]
    nothing_due: NotRequired[bool]  # outcomes: the source holds none of the interval (yet)
    readmission: NotRequired[dict[str, Any]]  # a quarantined interval asked back: who, why, the report


class ValidationSummary(TypedDict):
    """``validate``: GX's verdict on a batch (also kept as XCom ``failure`` by a failed validation)."""

    success: bool
    statistics: dict[str, Any]
    failures: list[dict[str, Any]]
    data_docs_page: str | None
    partition: str
    rows: int
    data_docs: str | None
    part: NotRequired[str]  # "inputs" or "outcomes" (a batch of outcomes that arrived later)
    report: NotRequired[str]  # the quarantine report, when it failed
    readmission: NotRequired[dict[str, Any]]  # carried from ingest to publish when re-admitting


class PublishedBatch(TypedDict):
    """``publish``: the curated batch; ``replaced_rows`` when it replaced a published one."""

    partition: str
    uri: str
    rows: int
    replaced_rows: int | None
    readmission_record: NotRequired[str]  # where the re-admission decision was recorded
    note: NotRequired[str]  # one line for the run's note: what was published


class PublishedOutcomes(TypedDict):
    """``publish_outcomes``: an interval's outcomes, and how they join the interval's inputs."""

    partition: str
    uri: str
    rows: int
    joined: int  # outcome rows whose key is one input row's
    unknown: int  # outcomes for rows never published as inputs (reported, never used)
    duplicated: int  # outcome rows whose key came more than once (none of them used)
    unlabelled: int  # published input rows still without an outcome
    realized: NotRequired[float]  # the primary metric of what was served that week, on these outcomes
    realized_version: NotRequired[str]  # the version that served it
    estimated: NotRequired[float]  # what was estimated of it when it was scored, before these outcomes
    note: NotRequired[str]  # one line for the run's note


# --------------------------------------------------------------------------- training


class DataSet(TypedDict):
    uri: str
    rows: int
    sha256: str
    positive_rate: float | None  # binary only


class AssembledData(TypedDict):
    """``assemble``: the training set and the later holdout, written once and keyed by content."""

    as_of: str
    train_window: list[str]  # [start, end) ISO
    holdout_window: list[str]
    train_window_rows: NotRequired[int]  # the window's rows, where training.max_train_rows sampled it
    train: DataSet
    holdout: DataSet


class TrainedModel(TypedDict):
    """``train``: the registered challenger version and its MLflow run."""

    model_name: str
    version: str
    run_id: str
    experiment_id: str
    model_uri: str
    train_metrics: dict[str, float]


class Evaluation(TypedDict):
    """``evaluate``: the judgement (:class:`include.decisions.promotion.Decision` fields) and its evidence."""

    promote: bool
    reason: str
    primary_metric: str
    challenger: float
    champion: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    model_name: str
    challenger_version: str
    champion_version: str | None
    champion_generation: int  # the champion alias's move count when it was read (the promotion's fence)
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    holdout_rows: int
    holdout_sha256: str
    holdout_window: list[str]
    trained_until: dict[str, str]
    slices: list[dict[str, Any]]
    mlflow_run_id: NotRequired[str]
    experiment_id: NotRequired[str]


class Promotion(TypedDict):
    """``promote``: the new champion and the one it replaced."""

    model_name: str
    champion: str
    previous_champion: str | None
    judged_version: NotRequired[str]  # the version the gate judged (``champion`` is its refit, if refit)
    note: NotRequired[str]  # one line for people: the run's note


class Rejection(TypedDict):
    """``reject``: the version left as challenger and the champion that stays."""

    model_name: str
    rejected: str
    champion: str | None
    note: NotRequired[str]  # one line for people: the run's note


# --------------------------------------------------------------------------- monitoring


class DriftCheck(TypedDict, total=False):
    """``check_drift``: Evidently's summary, the champion's performance and the retrain assessment."""

    champion_version: str | None
    model_name: str  # the registered model (the task page's Model version link: the champion checked)
    share_threshold: float
    retrain: bool
    reasons: list[str]
    suppressed_by: str | None
    drift_share: float
    drifted_columns: list[str]
    n_columns: int
    columns: dict[str, dict[str, Any]]
    empty_columns: list[str]
    reference_rows: int
    reference_used: int
    current_rows: int
    current_used: int
    as_of: str
    week: str  # the newest interval of the window, by its one name (``2013-04-02--2013-04-08``)
    performance: float | None
    performance_metric: str
    performance_window: list[str]  # [start, end): rows whose outcomes had arrived by as_of
    realized: list[dict[str, Any]]  # per labelled interval the champion served: its realized metric
    prediction_drift: dict[str, Any] | None  # the served scores vs the holdout's (Evidently ValueDrift)
    staleness_debt: (
        dict[str, Any] | None
    )  # with drift.staleness: the champion's debt and the cost it is held to
    estimated: list[
        float | None
    ]  # the champion's estimated metric on its last scored intervals (estimated_decay)
    report: str
    retrain_request: dict[str, Any]  # RetrainRequest.to_conf()
    mlflow_run_id: str
    experiment_id: str
    note: str  # the decision in one line (the run's note), e.g. "drift 2013-04-02: no retraining (…)"


# --------------------------------------------------------------------------- scoring


class ScoredBatch(TypedDict):
    """``score``: one interval's part of the prediction log, and the version that wrote it."""

    partition: str
    uri: str
    rows: int
    model_name: str
    model_version: str
    scored_at: str
    already_scored: bool
    estimated: NotRequired[float]  # the champion's primary metric on the batch, before its outcomes
    note: NotRequired[str]  # one line for the run's note: rows scored by which version


class ScoringRun(TypedDict):
    """``score``'s return value: every batch the run scored (oldest first) and by which version."""

    model_name: str
    model_version: str
    batches: list[ScoredBatch]
    note: str  # the run's note: each batch's line
