"""Scoring stage: a model version scores a published batch into the prediction log.

The log is partitioned like the data: ``predictions/<interval>/v<version>.parquet``, one row per
input row with the batch's key columns, the prediction (binary and multiclass: the class;
regression: the value), the ``score`` (the positive-class probability, the predicted class's
probability, or the value), a multiclass model's ``proba_<class>`` columns, the model
name and version, whether that version was the champion (served) or a shadow, the Airflow run and
the scoring time. It is append-only per (interval,
version): a retried or cleared run finds its part and leaves it as it is; another version (a
shadow or backfill run) writes a part of its own beside the champion's.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from include.foundation import metrics, tracking
from include.foundation.config import PipelineConfig
from include.foundation.errors import PermanentError
from include.foundation.payloads import ScoredBatch
from include.foundation.settings import Settings
from include.foundation.storage import (
    PipelinePaths,
    file_digest,
    interval_name,
    parquet_metadata,
    write_parquet,
)
from include.foundation.tracking import Tag
from include.stages.datasets import key_columns, model_inputs
from include.stages.registry import get_champion, load_model, model_uri, signature_inputs

if TYPE_CHECKING:
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


def prediction_rows(
    batch: pd.DataFrame, keys: list[str], scores, labels, model_name: str, version: str,
    airflow_run_id: str, scored_at: datetime, champion: bool = True, probabilities: dict | None = None,
) -> pd.DataFrame:  # fmt: skip
    """The log's rows for one batch: its keys, what the model said (``probabilities``: a
    multiclass model's column per class), who said it and when, and whether it was the champion
    then (what was served) or a shadow/backfill version."""
    out = batch[keys].reset_index(drop=True).copy()
    out["prediction"] = labels
    out["score"] = scores
    for column, values in (probabilities or {}).items():
        out[column] = values
    out["model_name"] = model_name
    out["model_version"] = str(version)
    out["champion"] = champion
    out["airflow_run_id"] = airflow_run_id
    out["scored_at"] = scored_at.replace(tzinfo=None)  # naive UTC, like every stored timestamp
    return out


def score_batch(
    cfg: PipelineConfig, settings: Settings, partition: str, airflow_run_id: str, version: str | None = None
) -> ScoredBatch | None:
    """Score the published batch of ``partition`` with ``version`` (default: the champion now).

    None when there is no champion yet (nothing to score with: not a failure)."""
    import pandas as pd
    import pyarrow.parquet as pq

    client = tracking.client(settings, cfg.experiment)
    name = cfg.registered_model
    champion = get_champion(client, name)
    if version is None:
        if champion is None:
            log.warning("%s has no champion yet: batch %s is not scored", name, partition)
            return None
        version = str(champion.version)
    served = champion is not None and str(champion.version) == str(version)
    paths = PipelinePaths(settings.data_root, cfg.name)
    out = paths.predictions(partition, version)
    batch_file = paths.curated(partition)
    if not batch_file.exists():
        raise UnpublishedBatch(
            f"{cfg.name} has no published batch {partition} ({batch_file}): nothing to score"
        )
    batch_sha = file_digest(batch_file)
    supersede_stale_parts(paths, partition, batch_sha)
    if out.exists():
        logged = pd.read_parquet(out, columns=["scored_at"])
        log.info("%s was already scored by %s v%s (%s): unchanged", partition, name, version, out)
        return _result(partition, out, len(logged), name, version, logged["scored_at"].iloc[0], True)
    model = load_model(model_uri(name, version))
    columns, numeric = signature_inputs(model, cfg.model.features, cfg.model.numeric_features)
    present = set(pq.read_schema(batch_file).names)
    missing = [c for c in columns if c not in present]
    if missing:
        raise MissingFeatures(
            f"batch {partition} of {cfg.name} lacks {missing}, which {name} v{version} takes (its signature); "
            "it is not scored"
        )
    keys = key_columns(cfg)
    batch = pd.read_parquet(batch_file, columns=list(dict.fromkeys([*keys, *columns])))  # what is needed only
    scorer = cfg.scorer
    p, labels = score_in_chunks(model, batch, columns, numeric, scorer=scorer)
    probabilities = (
        dict(zip(scorer.proba_columns(), p.T, strict=True)) if scorer.kind == "multiclass" else None
    )
    scored_at = datetime.now(UTC)
    rows = prediction_rows(batch, keys, scorer.served_score(p, labels), labels, name, version, airflow_run_id,
                           scored_at, served, probabilities)  # fmt: skip
    write_parquet(rows, out, {BATCH_SHA: batch_sha})  # which content of the batch these rows judge
    log.info("scored %d rows of %s with %s v%s into %s", len(rows), partition, name, version, out)
    # from the model version to what it said: its parts of the log, and the newest
    client.set_model_version_tag(name, version, Tag.PREDICTIONS, str(out.parent.parent / "*" / out.name))
    client.set_model_version_tag(name, version, Tag.PREDICTIONS_LAST, partition)
    return _result(partition, out, len(rows), name, version, scored_at, False)


BATCH_SHA = "ct.batch_sha256"  # in a log part's Parquet metadata: the batch content it scored
SUPERSEDED = "superseded"


def supersede_stale_parts(paths: PipelinePaths, partition: str, batch_sha: str) -> list[Path]:
    """Move the interval's log parts scored from another content of its batch (the batch was
    replaced since, ``replace: true``) to ``predictions/<interval>/superseded/``: kept, named by
    the content they scored, and never read again as what was served; the batch is then scored
    afresh. A part from before this record (no batch hash) is taken as current."""
    import os

    moved = []
    for part in sorted(paths.predictions(partition, "0").parent.glob("v*.parquet")):
        scored = parquet_metadata(part, BATCH_SHA)
        if scored is None or scored == batch_sha:
            continue
        target = part.parent / SUPERSEDED / f"{part.stem}-{scored[:12]}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, target)  # same filesystem: atomic; a retry finds it moved already
        log.warning("%s was replaced since %s scored it: that part is kept as %s and the batch is scored again",
                    partition, part.name, target)  # fmt: skip
        moved.append(target)
    return moved


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
    partition, out: Path, rows: int, name: str, version: str, scored_at, already: bool
) -> ScoredBatch:
    return {"partition": partition, "uri": str(out), "rows": rows, "model_name": name,
            "model_version": str(version), "scored_at": str(scored_at), "already_scored": already,
            "outcome": f"{interval_name(partition)}: {rows:,} rows scored by v{version}"}  # fmt: skip
