"""The prediction log: what each model version said about each published input row.

One owner for its format. The scoring stage writes it (:func:`log_rows`, :func:`write_part`); the
drift check, the realized-performance join and the replay read it through :func:`served_part`,
:func:`predictions_of` and the column names below. A new column is one constant here, one line
in :func:`log_rows` and, if a reader needs it, one line where that reader takes it.

Layout (paths: :meth:`include.foundation.storage.PipelinePaths.predictions`)::

    predictions/<interval>/v<version>.parquet          one part per (interval, version), append-only
    predictions/<interval>/superseded/v<version>-<sha>.parquet   parts scored from a replaced batch

Each part's rows: the batch's key columns, then :data:`PREDICTION` (binary and multiclass: the
class; regression: the value), :data:`SCORE` (the positive-class probability, the predicted
class's probability, or the value: :meth:`Scorer.served_score`), a multiclass model's
``proba_<class>`` columns, :data:`MODEL_NAME`, :data:`MODEL_VERSION`, :data:`CHAMPION` (true: the
version was champion when it scored, so the rows are what was served; false: a shadow or
backfill), :data:`AIRFLOW_RUN_ID` and :data:`SCORED_AT` (naive UTC). The part's Parquet metadata
holds :data:`BATCH_SHA`, the content of the batch it scored, and a served part :data:`ESTIMATE`,
the champion's metric on the batch estimated before its outcomes arrived.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from include.foundation.errors import PermanentError
from include.foundation.storage import atomic_write, interval_name, parquet_metadata

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from datetime import datetime
    from pathlib import Path

    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from include.foundation.metrics import Scorer
    from include.foundation.storage import PipelinePaths

log = logging.getLogger(__name__)

PREDICTION = "prediction"
SCORE = "score"
PROBA_PREFIX = "proba_"
MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"
CHAMPION = "champion"
AIRFLOW_RUN_ID = "airflow_run_id"
SCORED_AT = "scored_at"
BATCH_SHA = "ct.batch_sha256"  # in a part's Parquet metadata: the batch content it scored
ESTIMATE = "ct.estimate"  # in a served part's metadata: the metric estimated before the outcomes (JSON)
SUPERSEDED = "superseded"
PART_GLOB = "v*.parquet"


class NoRowsToLog(PermanentError):
    """A part was asked for with no chunk at all, not even an empty one that names its columns."""


def proba_columns(scorer: Scorer) -> list[str]:
    """A multiclass model's per-class probability columns (none for the other kinds)."""
    return [f"{PROBA_PREFIX}{c}" for c in scorer.classes] if scorer.kind == "multiclass" else []


def log_rows(
    batch: pd.DataFrame, keys: list[str], scorer: Scorer, p: np.ndarray, labels: np.ndarray,
    model_name: str, version: str, airflow_run_id: str, scored_at: datetime, champion: bool = True,
) -> pd.DataFrame:  # fmt: skip
    """The log's rows for one batch: its keys, what the model said (``p``, ``labels``:
    :meth:`Scorer.predictions`), who said it and when, and whether it was the champion then."""
    out = batch[keys].reset_index(drop=True).copy()
    out[PREDICTION] = labels
    out[SCORE] = scorer.served_score(p, labels)
    if scorer.kind == "multiclass":
        for column, values in zip(proba_columns(scorer), p.T, strict=True):
            out[column] = values
    out[MODEL_NAME] = model_name
    out[MODEL_VERSION] = str(version)
    out[CHAMPION] = champion
    out[AIRFLOW_RUN_ID] = airflow_run_id
    out[SCORED_AT] = scored_at.replace(tzinfo=None)  # naive UTC, like every stored timestamp
    return out


def write_part(
    chunks: Iterable[pd.DataFrame], part: Path, batch_sha: str, estimate: Callable[[], dict | None],
    typed: pa.Schema | None = None,
) -> int:  # fmt: skip
    """Write one part atomically from its rows a chunk at a time (a row group each), so only one
    chunk is in memory. The footer holds :data:`BATCH_SHA`, the content of the batch the rows
    judge, and for what a champion served :data:`ESTIMATE`: ``estimate()``, asked once every chunk
    is written (``{"metric": ..., "value": ...}``, or None). A column ``typed`` names keeps its type there (a key that
    is empty in the first chunk is not written as a column of nulls). Returns the rows written."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    written = 0

    def write(tmp: Path) -> None:
        nonlocal written
        writer = None
        try:
            for rows in chunks:
                if writer is None:
                    schema = pa.Schema.from_pandas(rows, preserve_index=False)
                    for field in typed or []:
                        if field.name in schema.names:
                            schema = schema.set(schema.get_field_index(field.name), field)
                    writer = pq.ParquetWriter(tmp, schema)
                writer.write_table(pa.Table.from_pandas(rows, schema=writer.schema, preserve_index=False))
                written += len(rows)
            if writer is None:
                raise NoRowsToLog(f"no rows to write to {part} (not even an empty chunk with the columns)")
            value = estimate()
            writer.add_key_value_metadata(
                {BATCH_SHA: batch_sha, **({ESTIMATE: json.dumps(value)} if value else {})}
            )
        finally:
            if writer is not None:
                writer.close()

    atomic_write(part, write)
    return written


def estimate_of(part: Path) -> dict | None:
    """The estimate logged with a part (None: none was made, e.g. a shadow or a regression model)."""
    import json

    value = parquet_metadata(part, ESTIMATE)
    return json.loads(value) if value else None


def logged_part(part: Path) -> tuple[int, str]:
    """``(rows, scored_at)`` of a part already written (a retried scoring leaves it as it is)."""
    import pandas as pd

    logged = pd.read_parquet(part, columns=[SCORED_AT])
    return len(logged), str(logged[SCORED_AT].iloc[0])


def parts(paths: PipelinePaths, key: str) -> list[Path]:
    """Every current part of interval ``key``, one per version that scored it."""
    return sorted(paths.predictions(key, "0").parent.glob(PART_GLOB))


def served_part(paths: PipelinePaths, key: str) -> pd.DataFrame | None:
    """What was served for interval ``key``: the part written by the version that was champion
    when it scored (the first, if the interval was scored by a champion twice), with its estimate
    in ``attrs[ESTIMATE]``; None when the interval was never scored by a champion."""
    import pandas as pd

    served = []
    for part in parts(paths, key):
        df = pd.read_parquet(part)
        if len(df) and df[CHAMPION].all():
            df.attrs[ESTIMATE] = estimate_of(part)  # what was estimated of it, read with it
            served.append(df)
    return min(served, key=lambda df: df[SCORED_AT].iloc[0]) if served else None


def served_by(part: pd.DataFrame, version: str | None) -> bool:
    """Whether a served part is ``version``'s alone (None: any version's)."""
    return version is None or set(part[MODEL_VERSION]) == {version}


def predictions_of(scorer: Scorer, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``(p, d)`` back from log rows (what was served), as :meth:`Scorer.predictions` gave them."""
    d = rows[PREDICTION].to_numpy()
    if scorer.kind == "multiclass":
        return rows[proba_columns(scorer)].to_numpy(dtype="float64"), d
    if scorer.kind == "regression":
        return d.astype("float64"), d.astype("float64")
    return rows[SCORE].to_numpy(), d


def supersede_stale_parts(paths: PipelinePaths, key: str, batch_sha: str) -> list[Path]:
    """Move the interval's parts scored from another content of its batch (the batch was replaced
    since, ``replace: true``) to ``predictions/<interval>/superseded/``: kept, named by the
    content they scored, and never read again as what was served; the batch is then scored
    afresh. A part from before this record (no batch hash) is taken as current."""
    moved = []
    for part in parts(paths, key):
        scored = parquet_metadata(part, BATCH_SHA)
        if scored is None or scored == batch_sha:
            continue
        target = part.parent / SUPERSEDED / f"{part.stem}-{scored[:12]}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, target)  # same filesystem: atomic; a retry finds it moved already
        log.warning("%s was replaced since %s scored it: that part is kept as %s and the batch is scored again",
                    interval_name(key), part.name, target)  # fmt: skip
        moved.append(target)
    return moved
