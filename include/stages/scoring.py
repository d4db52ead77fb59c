"""Scoring stage: a model version scores a published batch into the prediction log.

The log's format and its readers live in :mod:`include.foundation.prediction_log`. It is
append-only per (interval, version): a retried or cleared run finds its part and leaves it as it
is; another version (a shadow or backfill run) writes a part of its own beside the champion's; a
part scored from a batch replaced since is superseded and the batch scored afresh.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from include.foundation import metrics, prediction_log, tracking
from include.foundation.config import PipelineConfig
from include.foundation.errors import NothingToDo, PermanentError
from include.foundation.payloads import ScoredBatch, ScoringRun
from include.foundation.settings import Settings
from include.foundation.storage import PipelinePaths, file_digest, interval_name, parse_partition_key
from include.foundation.tracking import Tag
from include.stages.datasets import LineageError, key_columns, model_inputs, read_training_set
from include.stages.registry import (
    get_champion,
    judged_version,
    load_model,
    model_uri,
    signature_inputs,
    with_lineage,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)
CHUNK_ROWS = 100_000  # rows scored per model call: bounds the model's working memory


class MissingFeatures(PermanentError):
    """The batch lacks columns the model's signature needs: scoring it would be a guess."""


class UnpublishedBatch(PermanentError):
    """The interval has no published batch: only validated data is scored."""


def partitions_to_score(paths: PipelinePaths, event_partitions: list[str], interval: str | None) -> list[str]:
    """The batches a run scores: those its triggering ``curated`` events name (oldest first, once
    each); else the published batch starting on ``interval`` (a date); else the newest one."""
    published = paths.curated_partitions()
    if event_partitions:
        return [k for k in dict.fromkeys(event_partitions) if k in published] or list(
            dict.fromkeys(event_partitions)
        )
    if interval:
        day = interval.replace("-", "")[:8]
        found = [k for k in published if k.startswith(day)]
        if not found:
            raise UnpublishedBatch(
                f"no published batch starts on {interval}; published: {published[-5:]} ..."
            )
        return found[-1:]
    if not published:
        raise UnpublishedBatch(f"{paths.pipeline} has no published batch yet: nothing to score")
    return published[-1:]


def score_published(
    cfg: PipelineConfig, settings: Settings, airflow_run_id: str, event_partitions: list[str],
    interval: str | None, version: str | None,
) -> ScoringRun:  # fmt: skip
    """One scoring run: every batch it is asked to score (:func:`partitions_to_score`), by
    ``version`` or the champion; :class:`NothingToDo` when there is no champion yet."""
    keys = partitions_to_score(PipelinePaths(settings.data_root, cfg.name), event_partitions, interval)
    scored = [score_batch(cfg, settings, k, airflow_run_id, version) for k in keys]
    if any(s is None for s in scored):
        raise NothingToDo(
            f"{cfg.registered_model} has no champion yet: {keys} not scored; run {cfg.name}__train first"
        )
    last = scored[-1]
    return {"model_name": last["model_name"], "model_version": last["model_version"], "batches": scored,
            "note": " · ".join(s["note"] for s in scored)}  # fmt: skip


def _model_for(cfg: PipelineConfig, version: str, batch_file, partition: str) -> tuple:
    """``(model, columns, numeric)`` of ``version``, refused when the batch lacks an input it takes."""
    import pyarrow.parquet as pq

    name = cfg.registered_model
    model = load_model(model_uri(name, version))
    columns, numeric = signature_inputs(model, cfg.model.features, cfg.model.numeric_features)
    present = set(pq.read_schema(batch_file).names)
    missing = [c for c in columns if c not in present]
    if missing:
        raise MissingFeatures(
            f"batch {interval_name(partition)} of {cfg.name} lacks {missing}, which {name} v{version} takes "
            "(its signature); it is not scored"
        )
    return model, columns, numeric


def score_batch(
    cfg: PipelineConfig, settings: Settings, partition: str, airflow_run_id: str, version: str | None = None
) -> ScoredBatch | None:
    """Score the published batch of ``partition`` with ``version`` (default: the champion now).

    None when there is no champion yet (nothing to score with: not a failure)."""
    client = tracking.client(settings, cfg.experiment)
    name = cfg.registered_model
    champion = get_champion(client, name)
    if version is None:
        if champion is None:
            log.warning("%s has no champion yet: batch %s is not scored", name, interval_name(partition))
            return None
        version = str(champion.version)
    served = champion is not None and str(champion.version) == str(version)
    paths = PipelinePaths(settings.data_root, cfg.name)
    out = paths.predictions(partition, version)
    batch_file = paths.curated(partition)
    if not batch_file.exists():
        raise UnpublishedBatch(
            f"{cfg.name} has no published batch {interval_name(partition)} ({batch_file}): nothing to score"
        )
    batch_sha = file_digest(batch_file)
    prediction_log.supersede_stale_parts(paths, partition, batch_sha)
    if out.exists():
        log.info(
            "%s was already scored by %s v%s (%s): unchanged", interval_name(partition), name, version, out
        )
        return _result(partition, out, *prediction_log.logged_part(out), name, version, True,
                       prediction_log.estimate_of(out))  # fmt: skip
    model, columns, numeric = _model_for(cfg, version, batch_file, partition)
    served_by = ServedBy(name, str(version), airflow_run_id, datetime.now(UTC), served)
    rows, estimated = score_into_log(cfg, model, (columns, numeric), batch_file, out, batch_sha, served_by,
                                     lambda p, d: estimate_served(cfg, client, champion, model, (columns, numeric), p, d))  # fmt: skip
    if estimated:
        log_estimate(client, cfg, champion, partition, estimated)
    log.info("scored %d rows of %s with %s v%s into %s", rows, interval_name(partition), name, version, out)
    # from the model version to what it said: its parts of the log, and the newest
    client.set_model_version_tag(name, version, Tag.PREDICTIONS, str(out.parent.parent / "*" / out.name))
    client.set_model_version_tag(name, version, Tag.PREDICTIONS_LAST, partition)
    return _result(partition, out, rows, str(served_by.scored_at), name, version, False, estimated)


class ServedBy(NamedTuple):
    """Who said what the log's rows say, and when; ``champion``: whether it was served."""

    model_name: str
    version: str
    airflow_run_id: str
    scored_at: datetime
    champion: bool


def score_into_log(
    cfg: PipelineConfig, model, inputs: tuple, batch_file: Path, out: Path, batch_sha: str, by: ServedBy,
    estimate: Callable[[np.ndarray, np.ndarray], dict | None],
) -> tuple[int, dict | None]:  # fmt: skip
    """Stream the batch through the model into its part of the log, ``cfg.limits`` rows at a time
    (only the scores stay in memory, a few bytes a row, for ``estimate(p, d)`` of a served part).
    Returns the rows written and the estimate."""
    import numpy as np

    keys = key_columns(cfg)
    needed = list(dict.fromkeys([*keys, *inputs[0]]))  # what is needed only
    said: list[tuple] = []
    estimated: dict | None = None

    def chunks():
        for batch, p, d in score_stream(model, batch_file, needed, inputs, cfg.scorer,
                                        cfg.limits.rows_per_chunk(len(needed))):  # fmt: skip
            said.append((p, d))
            yield prediction_log.log_rows(batch, keys, cfg.scorer, p, d, *by)

    def estimate_all() -> dict | None:
        nonlocal estimated
        if by.champion:
            estimated = estimate(*(np.concatenate([s[i] for s in said]) for i in (0, 1)))
        return estimated

    # with the content of the batch these rows judge, and what the champion is expected to score on it
    rows = prediction_log.write_part(chunks(), out, batch_sha, estimate_all, pq_schema(batch_file, keys))
    return rows, estimated


def score_stream(
    model, batch_file: Path, needed: list[str], inputs: tuple, scorer: metrics.Scorer, rows: int
):
    """``(chunk, p, d)`` for each ``rows`` rows of a Parquet batch, read, scored and let go one
    chunk at a time (an empty batch: one empty chunk, so the part still has its columns)."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(batch_file, pre_buffer=False) as f:  # pre-buffered row groups stay until closed
        if f.metadata.num_rows == 0:
            batch = f.read(columns=needed).to_pandas()
            yield batch, *score_in_chunks(model, batch, *inputs, scorer=scorer)
            return
        for record_batch in f.iter_batches(batch_size=rows, columns=needed):
            batch = record_batch.to_pandas()
            yield batch, *score_in_chunks(model, batch, *inputs, scorer=scorer)


def pq_schema(batch_file: Path, columns: list[str]):
    """The Arrow fields of ``columns`` in a Parquet file (the key columns' types, for the log)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(batch_file)
    return pa.schema([schema.field(c) for c in columns if c in schema.names])


def score_in_chunks(
    model, batch: pd.DataFrame, columns: list[str], numeric: list[str], chunk: int = CHUNK_ROWS,
    scorer: metrics.Scorer = metrics.BINARY,
):  # fmt: skip
    """``(p, d)`` of every row (:meth:`Scorer.predictions`), ``chunk`` rows at a time: the
    model's working copies (encoded and binned inputs) stay the size of a chunk, not of the
    batch; the values are the same as in one call."""
    import numpy as np

    parts = [scorer.predictions(model, model_inputs(batch.iloc[i : i + chunk], columns, numeric))
             for i in range(0, len(batch), chunk)]  # fmt: skip
    if not parts:
        width = (0, len(scorer.classes)) if scorer.kind == "multiclass" else (0,)
        return np.zeros(width, dtype=float), np.array([])
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _result(
    partition, out: Path, rows: int, scored_at: str, name: str, version: str, already: bool,
    estimated: dict | None = None,
) -> ScoredBatch:  # fmt: skip
    said = f"; estimated {estimated['metric']} {estimated['value']:.4f}" if estimated else ""
    return {"partition": partition, "uri": str(out), "rows": rows, "model_name": name,
            "model_version": str(version), "scored_at": str(scored_at), "already_scored": already,
            **({"estimated": estimated["value"]} if estimated else {}),
            "note": f"{interval_name(partition)}: {rows:,} rows scored by v{version}{said}"}  # fmt: skip


def estimate_served(cfg: PipelineConfig, client, champion, model, inputs, p, labels) -> dict | None:
    """The champion's primary metric on the batch, estimated before its outcomes arrive
    (:func:`include.decisions.estimation.estimate_batch`, calibrated on its holdout); None for a
    kind or metric that is not estimated, or a champion whose holdout cannot be read (the batch
    is scored all the same)."""
    from include.decisions.estimation import estimate_batch

    metric, scorer = cfg.promotion.primary_metric, cfg.scorer
    if scorer.kind != "binary" or metric not in metrics.ESTIMABLE:
        return None
    try:
        holdout = read_training_set(with_lineage(client, champion), "holdout")
    except LineageError as exc:  # e.g. a version registered by hand: scored all the same, not estimated
        log.warning("no estimate for v%s: its holdout cannot be read (%s)", champion.version, exc)
        return None
    judged = judged_version(client, cfg.registered_model, champion)  # a refit has seen its holdout
    if str(judged.version) != str(champion.version):
        model = load_model(model_uri(cfg.registered_model, judged.version))
    held_p, _ = scorer.predictions(model, model_inputs(holdout, *inputs))
    value = estimate_batch(metric, held_p, holdout[cfg.target.name].to_numpy(), p, labels)
    return None if value is None else {"metric": metric, "value": value}


def log_estimate(client, cfg: PipelineConfig, champion, partition: str, estimated: dict) -> None:
    """``estimated_<metric>`` as a point on the serving version's training run, at the interval's
    end (the step ``realized_<metric>`` uses), so its chart shows the estimate beside the realized value."""
    from mlflow.entities import Metric

    end = parse_partition_key(partition)[1]
    point = Metric(f"estimated_{estimated['metric']}", estimated["value"], int(end.timestamp() * 1000),
                   int(end.timestamp() // 86400))  # fmt: skip
    client.log_batch(champion.run_id, metrics=[point])
