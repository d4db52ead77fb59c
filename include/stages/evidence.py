"""The drift check's evidence, gathered in one place for the DAG and the replay alike.

:func:`gather_evidence` turns what a source can read into a
:class:`~include.decisions.retraining.DriftEvidence`: the drift share, the champion's performance
on the labelled window, its realized decay against its own holdout (:func:`performance_decayed`)
and Evidently's verdict on the scores it served (:func:`prediction_drift`). A source says where
the numbers come from: :class:`ProductionEvidence` reads curated data, the prediction log and
MLflow (the drift check DAG); ``include.replay.ReplayEvidence`` reads the year in memory
(``make loop-value``). A new signal is a field of the evidence, a branch here and a method on each
source (the estimated decay, :meth:`EvidenceSource.estimated`, was added that way).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from include.decisions.outcomes import join_outcomes, realized_performance
from include.decisions.retraining import DriftEvidence, performance_decayed
from include.decisions.windows import labelled_until, performance_window
from include.foundation.config import DriftSpec, PipelineConfig, PredictionDriftSpec
from include.foundation.prediction_log import ESTIMATE, MODEL_VERSION, SCORE, served_by, served_part
from include.foundation.settings import Settings
from include.foundation.storage import PipelinePaths, parse_partition_key
from include.stages.datasets import (
    add_label,
    key_columns,
    labelled_rows,
    load_window,
    model_inputs,
    read_partition,
    read_training_set,
    sampled_labelled,
)
from include.stages.registry import judged_version, load_model, model_uri, signature_inputs, with_lineage

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterable

    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

COLUMN_DRIFT = "evidently:metric_v2:ValueDrift"
DRIFTED_COUNT = "evidently:metric_v2:DriftedColumnsCount"


class EvidenceSource(Protocol):
    """Where one drift check reads the numbers it judges: one champion at one ``as_of``."""

    def drift_share(self) -> float:
        """Evidently's drift share of the window against the champion's training set."""

    def performance(self) -> float | None:
        """The champion's primary metric on the window's labelled rows."""

    def holdout_metric(self) -> float | None:
        """The champion's primary metric on its own holdout (the decay rule's baseline)."""

    def realized(self, last: int) -> list[float | None]:
        """Its realized metric on the last ``last`` labelled intervals it served, oldest first."""

    def estimated(self, last: int) -> list[float | None]:
        """Its estimated metric on the last ``last`` intervals it served, oldest first (labels or not)."""

    def served_metrics(self) -> list[tuple[datetime, float | None, float | None]]:
        """``(start, realized, estimated)`` for each interval it served up to ``as_of``, oldest
        first: realized once the interval's outcomes arrived, estimated where it is (None: not
        measured)."""

    def served_scores(self) -> np.ndarray:
        """The scores it served over the drift window (empty: none logged)."""

    def holdout_scores(self) -> np.ndarray:
        """Its scores on its own holdout (the prediction-drift reference)."""

    def served_key(self) -> Hashable:
        """What :meth:`served_scores` depends on (the replay's memo key; production: anything)."""


def gather_evidence(
    spec: DriftSpec, metric: str, source: EvidenceSource, memo: dict | None = None
) -> DriftEvidence:
    """Every configured signal's evidence from ``source``; a signal not configured is not measured.

    ``memo`` (the replay's) keeps Evidently's prediction-drift verdicts across the policies it
    replays, keyed by what they depend on; the DAG passes none.
    """
    decayed = None
    if spec.performance_decay is not None:
        realized = source.realized(spec.performance_decay.of_last)
        holdout = source.holdout_metric()
        if holdout is not None:
            decayed = performance_decayed(spec.performance_decay, realized, holdout, metric)
    estimated = None
    if spec.estimated_decay is not None:
        estimates = source.estimated(spec.estimated_decay.of_last)
        holdout = source.holdout_metric()
        if holdout is not None:
            estimated = performance_decayed(spec.estimated_decay, estimates, holdout, metric, "estimated")
    served = holdout = None
    if spec.staleness is not None:
        holdout = source.holdout_metric()
        served = tuple(source.served_metrics()) if holdout is not None else None
    said = None
    if spec.prediction_drift is not None:
        key = ("prediction drift", source.served_key(), spec.prediction_drift)
        said = _once(memo, key, lambda: _prediction_drift_of(source, spec.prediction_drift))
    return DriftEvidence(
        drift_share=source.drift_share(), performance=source.performance(), decayed=decayed,
        estimated_decay=estimated, prediction_drift=said, served=served, holdout_metric=holdout,
    )  # fmt: skip


def _once(memo: dict | None, key: Hashable, compute: Callable[[], Any]) -> Any:
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def _prediction_drift_of(source: EvidenceSource, spec: PredictionDriftSpec) -> dict[str, Any] | None:
    served = source.served_scores()
    return prediction_drift(source.holdout_scores(), served, spec) if len(served) else None


class ProductionEvidence:
    """The drift check DAG's source: curated data, the prediction log and MLflow.

    Keeps what the record step shows beside the decision: Evidently's snapshot and summary, the
    performance window and every realized interval it judged.
    """

    def __init__(self, cfg: PipelineConfig, settings: Settings, client, champion, as_of: datetime,
                 window: pd.DataFrame | None) -> None:  # fmt: skip
        """``window``: the drift window's rows, or None when it is larger than ``drift.max_rows``:
        then it is streamed (:func:`streamed_drift`) and ``current`` is its seeded sample."""
        self.cfg, self.settings, self.client, self.champion, self.as_of = (
            cfg,
            settings,
            client,
            champion,
            as_of,
        )
        self.version, self.spec = str(champion.version), cfg.drift
        self.reference = read_training_set(with_lineage(client, champion))
        self.streamed = window is None
        if window is None:
            paths = PipelinePaths(settings.data_root, cfg.name)
            self.snapshot, self.summary, self.current = streamed_drift(
                cfg, paths, self.reference, as_of - timedelta(days=self.spec.window_days), as_of
            )
        else:
            self.current = drift_window(cfg, window)
            self.snapshot, self.summary = drift_report(
                self.reference, self.current, *drift_columns(cfg, self.reference), self.spec
            )
        self.window = performance_window(cfg.labels, self.spec, as_of)
        # the newest labelled interval always (charted on its serving version), then this champion's
        self.realized_rows = realized_history(cfg, settings, as_of, last=1)
        self.estimates: list[float | None] = []  # filled when the estimated decay is configured

    def drift_share(self) -> float:
        return self.summary["drift_share"]

    def performance(self) -> float | None:
        start, labelled_end = self.window
        current = self.current
        if self.streamed:  # a window past drift.max_rows: a seeded sample of its labelled rows
            paths = PipelinePaths(self.settings.data_root, self.cfg.name)
            current = sampled_labelled(
                self.cfg, paths, start, labelled_end, self.spec.max_rows, self.spec.seed
            )[0]
        elif labelled_end < self.as_of:  # judged on the rows whose outcomes have arrived, not this window's
            performed = load_window(self.cfg, PipelinePaths(self.settings.data_root, self.cfg.name),
                                    start, labelled_end)  # fmt: skip
            current = labelled_rows(self.cfg, performed) if not performed.empty else current.iloc[:0]
        return champion_performance(self.cfg, self.champion, current)

    def holdout_metric(self) -> float | None:
        metric = self.cfg.promotion.primary_metric
        return self.client.get_run(self.champion.run_id).data.metrics.get(metric)

    def realized(self, last: int) -> list[float | None]:
        its_own = realized_history(self.cfg, self.settings, self.as_of, self.version, last)
        seen = {r["partition"] for r in its_own}
        self.realized_rows = its_own + [r for r in self.realized_rows if r["partition"] not in seen]
        return [r["value"] for r in its_own]

    def _served(self) -> list[tuple[str, pd.DataFrame]]:
        """``(partition, served part)`` of each interval this champion served up to ``as_of``."""
        paths, found = PipelinePaths(self.settings.data_root, self.cfg.name), []
        for partition in paths.curated_partitions():
            if parse_partition_key(partition)[1] > self.as_of:
                break
            served = served_part(paths, partition)
            if served is not None and served_by(served, self.version):
                found.append((partition, served))
        return found

    def estimated(self, last: int) -> list[float | None]:
        values = [_estimate(served) for _, served in self._served()]
        self.estimates = values[-last:]  # shown beside the decision
        return self.estimates

    def served_metrics(self) -> list[tuple[datetime, float | None, float | None]]:
        realized = {r["partition"]: r["value"]
                    for r in realized_history(self.cfg, self.settings, self.as_of, self.version)}  # fmt: skip
        return [(parse_partition_key(partition)[0], realized.get(partition), _estimate(served))
                for partition, served in self._served()]  # fmt: skip

    def served_scores(self) -> np.ndarray:
        start = self.as_of - timedelta(days=self.spec.window_days)
        return served_scores(self.cfg, self.settings, start, self.as_of, self.version)

    def holdout_scores(self) -> np.ndarray:
        holdout = read_training_set(with_lineage(self.client, self.champion), "holdout")
        judged = judged_version(self.client, self.cfg.registered_model, self.champion)  # unseen by it
        return champion_scores(self.cfg, judged, holdout)

    def served_key(self) -> Hashable:
        return (self.version, self.as_of)


def _estimate(served: pd.DataFrame) -> float | None:
    return (served.attrs.get(ESTIMATE) or {}).get("value")


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


def served_scores(cfg: PipelineConfig, settings: Settings, start: datetime, end: datetime, version: str):
    """The scores ``version`` served (as champion) for the intervals inside ``[start, end)``."""
    import numpy as np

    paths = PipelinePaths(settings.data_root, cfg.name)
    parts = []
    for partition in paths.curated_partitions():
        first, last = parse_partition_key(partition)
        if first >= start and last <= end:
            served = served_part(paths, partition)
            if served is not None and served_by(served, version):
                parts.append(served[SCORE].to_numpy())
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
    served_parts = []  # (partition, its served part), oldest first; joined and judged below
    for partition in paths.curated_partitions():
        if parse_partition_key(partition)[1] > end:
            break
        served = served_part(paths, partition)
        if served is None or not served_by(served, version):
            continue
        served_parts.append((partition, served))
    return [realized_interval(cfg, paths, partition, served)
            for partition, served in (served_parts[-last:] if last else served_parts)]  # fmt: skip


def realized_interval(
    cfg: PipelineConfig, paths: PipelinePaths, partition: str, served: pd.DataFrame
) -> dict:
    """One interval's served part of the prediction log joined with its outcomes by key
    (:func:`join_outcomes`), and its realized metric (:func:`realized_performance`)."""
    keys, rule = key_columns(cfg), cfg.promotion
    columns = list(dict.fromkeys([*keys, cfg.target.name, *rule.slices.columns]))
    outcomes = add_label(cfg, read_partition(cfg, paths, partition))[columns]
    joined = join_outcomes(served, outcomes, keys)
    perf = realized_performance(joined.joined, cfg.target.name, rule.primary_metric, rule.slices,
                                rule.bootstrap, cfg.scorer)  # fmt: skip
    return {"partition": partition, "model_version": str(served[MODEL_VERSION].iloc[0]), **perf,
            "join": joined.summary()}  # fmt: skip


def sample(df: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    return df if len(df) <= max_rows else df.sample(max_rows, random_state=seed)


def streamed_drift(
    cfg: PipelineConfig, paths: PipelinePaths, reference: pd.DataFrame, start: datetime, end: datetime
) -> tuple[Any, dict[str, Any], pd.DataFrame]:
    """Drift of a window larger than ``drift.max_rows``, read a chunk of rows at a time
    (:func:`judged_drift`); returns (snapshot, summary, the sample)."""
    from include.stages.datasets import stream_window, window_rows

    chunk_rows = cfg.limits.rows_per_chunk(len(cfg.schema_.columns))
    total = window_rows(cfg, paths, start, end)
    return judged_drift(cfg, cfg.drift, reference, stream_window(cfg, paths, start, end, chunk_rows), total)


def judged_drift(
    cfg: PipelineConfig, spec: DriftSpec, reference: pd.DataFrame, chunks: Iterable[pd.DataFrame], total: int
) -> tuple[Any, dict[str, Any], pd.DataFrame]:
    """Drift of a window of ``total`` rows given as ``chunks`` (the drift check streams them, the
    replay passes its frame): each column judged over all rows from histograms on the reference's
    bin edges (:mod:`include.stages.drift_stats`), Evidently's report on a seeded uniform sample
    of the window; returns (snapshot, summary, the sample)."""
    from include.stages.drift_stats import overrule, stream_window_drift

    numeric, categorical = drift_columns(cfg, reference)
    drift = stream_window_drift(chunks, reference, numeric, categorical, spec, total,
                                keep=lambda df: drift_window(cfg, df))  # fmt: skip
    sample = drift.sampled()
    snapshot, summary = drift_report(
        reference, sample, numeric, categorical, spec, current_total=drift.judged
    )
    return snapshot, overrule(summary, drift.verdicts(spec.column_threshold), spec.share_threshold), sample


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    spec: DriftSpec,
    current_total: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Run Evidently's DataDriftPreset on (sampled) frames; returns (snapshot, JSON-able summary).
    ``current_total``: the rows ``current`` was sampled from, when it is a streamed window's sample."""
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
        "current_rows": f"{len(cur)} of {current_total or len(current)} (seeded sample, seed {spec.seed})"
        + ("; drift judged on all rows (histograms), this page shows the sample" if current_total else ""),
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
        "current_rows": current_total or len(current),
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


def drift_window(cfg: PipelineConfig, window: pd.DataFrame) -> pd.DataFrame:
    """The rows data drift is judged on: every input as scored when outcomes arrive later (their
    outcomes are not in yet), else the labelled rows, like the reference (a training set)."""
    return window if cfg.outcomes_later else labelled_rows(cfg, window)
