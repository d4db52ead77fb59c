"""Datasets: windows of *curated* data, labels, model frames and lineage-checked training sets.

What every stage reads goes through here, so training, evaluation and the drift check frame
the same rows the same way. Nothing but published (validated) batches is ever read: this
module never touches ``raw/`` or ``quarantine/``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.decisions.outcomes import attach_outcomes
from include.decisions.windows import capped_training_set, cut_window, training_windows
from include.foundation.config import PipelineConfig
from include.foundation.errors import BadRunParam, PermanentError
from include.foundation.payloads import AssembledData
from include.foundation.storage import PipelinePaths, frame_digest, parse_partition_key, write_parquet
from include.foundation.timeutil import utc
from include.foundation.tracking import Tag

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


class NotEnoughData(PermanentError):
    """The curated dataset does not cover the requested window yet."""


class HoldoutOverlap(PermanentError):
    """The holdout would overlap the champion's training data: the comparison would be unfair."""


class LineageError(PermanentError):
    """A model's training data cannot be found or no longer matches its recorded hash."""


def load_window(cfg: PipelineConfig, paths: PipelinePaths, start: datetime, end: datetime) -> pd.DataFrame:
    """Rows of curated partitions with ``start <= timestamp < end`` (timestamps are naive UTC).

    A row is never counted twice: where partitions overlap (a manual batch over scheduled
    weeks, published before ingestion refused such batches), rows are de-duplicated on each
    ``schema.unique_together`` group, the copy in the later partition winning.
    """
    import pandas as pd

    keys = [
        k
        for k in paths.curated_partitions()
        if parse_partition_key(k)[0] < end and parse_partition_key(k)[1] > start
    ]
    if not keys:
        return pd.DataFrame(columns=cfg.schema_.names)
    df = pd.concat([read_partition(cfg, paths, k) for k in keys], ignore_index=True)
    return cut_window(df, cfg.timestamp_column, start, end, cfg.schema_.unique_together)


def window_partitions(paths: PipelinePaths, start: datetime, end: datetime) -> list[str]:
    """Curated partitions that share time with ``[start, end)``, oldest first."""
    return [k for k in paths.curated_partitions()
            if parse_partition_key(k)[0] < end and parse_partition_key(k)[1] > start]  # fmt: skip


def window_rows(cfg: PipelineConfig, paths: PipelinePaths, start: datetime, end: datetime) -> int:
    """Rows with ``start <= timestamp < end`` in the curated partitions: a partition inside the
    window counted from its Parquet footer, one it straddles from its timestamp column alone."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from include.foundation.chunked import row_count
    from include.foundation.timeutil import naive_utc

    total = 0
    for key in window_partitions(paths, start, end):
        first, last = parse_partition_key(key)
        if first >= start and last <= end:
            total += row_count(paths.curated(key))
            continue
        ts = pq.read_table(paths.curated(key), columns=[cfg.timestamp_column]).column(0)
        low, high = naive_utc(start), naive_utc(end)
        total += int(pc.sum(pc.and_(pc.greater_equal(ts, low), pc.less(ts, high))).as_py() or 0)
    return total


def stream_window(
    cfg: PipelineConfig, paths: PipelinePaths, start: datetime, end: datetime, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """The curated rows with ``start <= timestamp < end``, ``chunk_rows`` at a time (the inputs
    only: outcomes that arrived later are not joined). :func:`load_window` de-duplicates
    overlapping partitions (published before ingest refused them); a window with such overlaps
    is read that way, whole."""
    from include.foundation.chunked import iter_frames

    keys = window_partitions(paths, start, end)
    spans = [parse_partition_key(k) for k in keys]
    if any(a[1] > b[0] for a, b in zip(spans, spans[1:], strict=False)):
        yield load_window(cfg, paths, start, end)
        return
    for key in keys:
        for chunk in iter_frames(paths.curated(key), chunk_rows):
            yield cut_window(chunk, cfg.timestamp_column, start, end, [])


def stream_labelled(
    cfg: PipelineConfig, paths: PipelinePaths, start: datetime, end: datetime, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """``add_label(load_window(...))`` a chunk at a time: the same rows in the same order, outcomes
    that arrived later joined to each chunk (a partition's usable outcomes held while its inputs
    stream). A window with overlapping partitions is read whole, as :func:`load_window` does."""
    import pandas as pd

    from include.decisions.outcomes import attach_usable, usable_outcomes
    from include.foundation.chunked import iter_frames

    keys = window_partitions(paths, start, end)
    spans = [parse_partition_key(k) for k in keys]
    if any(a[1] > b[0] for a, b in zip(spans, spans[1:], strict=False)):
        yield add_label(cfg, load_window(cfg, paths, start, end))
        return
    for key in keys:
        arrived = cfg.outcomes_later and paths.outcomes(key).exists()
        usable = usable_outcomes(pd.read_parquet(paths.outcomes(key)), cfg.key_columns) if arrived else None
        for chunk in iter_frames(paths.curated(key), chunk_rows):
            chunk = cut_window(chunk, cfg.timestamp_column, start, end, [])
            if usable is not None:
                chunk = attach_usable(chunk, usable, cfg.key_columns)
            elif cfg.outcomes_later:  # not arrived yet: the outcome columns empty (read_partition's rule)
                missing = [c for c in cfg.outcome_columns if c not in chunk]
                chunk = chunk.assign(**{c: float("nan") for c in missing})[[*chunk.columns, *missing]]
            yield add_label(cfg, chunk)


def sampled_training_window(
    cfg: PipelineConfig, paths: PipelinePaths, start: datetime, end: datetime
) -> tuple[pd.DataFrame, int]:
    """``(capped_training_set(cfg, labelled window), labelled rows of the window)``, never whole
    in memory (:func:`sampled_labelled` with ``training.max_train_rows`` and its seed)."""
    return sampled_labelled(cfg, paths, start, end, cfg.training.max_train_rows, cfg.training.seed)


def sampled_labelled(
    cfg: PipelineConfig, paths: PipelinePaths, start: datetime, end: datetime, cap: int | None, seed: int
) -> tuple[pd.DataFrame, int]:
    """At most ``cap`` of the window's labelled rows and how many it has, in two passes, a chunk
    in memory at a time: the labels first (8 bytes a row), then the sampled rows
    (:func:`include.decisions.windows.sample_positions`, which the one-pass path and the replay use)."""
    import numpy as np
    import pandas as pd

    from include.decisions.windows import sample_positions

    chunk_rows = cfg.limits.rows_per_chunk(len(cfg.schema_.columns))
    labels = [c[cfg.target.name].to_numpy() for c in stream_labelled(cfg, paths, start, end, chunk_rows)]
    values = np.concatenate(labels) if labels else np.array([])
    positions = sample_positions(values, cap, seed, cfg.target_kind != "regression")
    picked, offset = [], 0
    for chunk in stream_labelled(cfg, paths, start, end, chunk_rows):
        if positions is None:
            picked.append(chunk)
        else:
            lo, hi = np.searchsorted(positions, [offset, offset + len(chunk)])
            picked.append(chunk.iloc[positions[lo:hi] - offset])
        offset += len(chunk)
    if offset != len(values):
        raise PermanentError(f"the training window of {cfg.name} changed while it was read ({len(values)} then "
                             f"{offset} labelled rows): run again")  # fmt: skip
    train = (
        pd.concat(picked, ignore_index=True)
        if picked
        else add_label(cfg, pd.DataFrame(columns=cfg.schema_.names))
    )
    return train, len(values)


def read_partition(cfg: PipelineConfig, paths: PipelinePaths, key: str) -> pd.DataFrame:
    """One published interval: its inputs, with its outcomes joined by key where they arrived as
    a batch of their own (``labels.delay_days``; :func:`attach_outcomes`). Until they arrive, the
    outcome columns are empty and the rows unlabelled."""
    import pandas as pd

    inputs = pd.read_parquet(paths.curated(key))
    if not cfg.outcomes_later:
        return inputs
    if paths.outcomes(key).exists():
        return attach_outcomes(inputs, pd.read_parquet(paths.outcomes(key)), cfg.key_columns)[0]
    missing = [c for c in cfg.outcome_columns if c not in inputs]
    return inputs.assign(**{c: float("nan") for c in missing})[[*inputs.columns, *missing]]


def key_columns(cfg: PipelineConfig) -> list[str]:
    """The columns that identify a row: the prediction log's keys, and how outcomes are joined."""
    return cfg.key_columns


def add_label(cfg: PipelineConfig, df: pd.DataFrame) -> pd.DataFrame:
    """Add the label column ``cfg.target.name`` (binary: 0/1; multiclass: the class; regression:
    the value as float); rows without a target value are dropped."""
    tgt = cfg.target
    df = df[df[tgt.column].notna()].copy()
    values = df[tgt.column]
    if cfg.target_kind == "regression":
        df[tgt.name] = values.astype("float64")
        return df
    if cfg.target_kind == "multiclass":  # a nullable Int64 column (blanks read as nulls) as plain ints
        df[tgt.name] = values.astype("int64") if str(values.dtype).startswith(("Int", "UInt")) else values
        return df
    if tgt.positive_above is not None:
        label = values > tgt.positive_above
    elif tgt.positive_class is not None:
        label = values == tgt.positive_class
    else:  # bool, or 0/1 declared in the schema (config checks one of these holds)
        label = values.astype(bool)
    df[tgt.name] = label.astype("int64")
    return df


def labelled_rows(cfg: PipelineConfig, df: pd.DataFrame) -> pd.DataFrame:
    """The rows a training set would keep (those with a target value), unlabelled data as is.

    The drift check compares like with like: the reference (a training set) holds labelled rows
    only, so the current window is filtered the same way whenever its labels have arrived.
    """
    col = cfg.target.column
    if col in df and df[col].notna().any():
        return df[df[col].notna()]
    return df


def model_frame(cfg: PipelineConfig, df: pd.DataFrame) -> pd.DataFrame:
    """The config's features (numeric as float64, so missing values fit the signature) plus the label."""
    return model_inputs(df, [*cfg.model.features, cfg.target.name], cfg.model.numeric_features)


def model_inputs(df: pd.DataFrame, columns: list[str], numeric: list[str]) -> pd.DataFrame:
    """The columns one model takes, numeric ones as float64 (how signatures record them)."""
    out = df[columns].copy()
    out[numeric] = out[numeric].astype("float64")
    return out


def split_xy(cfg: PipelineConfig, df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """``(X, y)`` of labelled rows, framed as the model sees them."""
    df = model_frame(cfg, df)
    return df[cfg.model.features], df[cfg.target.name]


def read_training_set(version, which: str = "train") -> pd.DataFrame:
    """The training (or, ``which="holdout"``, the holdout) set of a registered model version,
    verified by its lineage tags.

    ``version`` is an MLflow ModelVersion (anything with ``.version`` and ``.tags``).
    """
    import pandas as pd

    uri_tag, sha_tag = (
        (Tag.TRAIN_URI, Tag.TRAIN_SHA) if which == "train" else (Tag.HOLDOUT_URI, Tag.HOLDOUT_SHA)
    )
    uri, sha = version.tags.get(uri_tag), version.tags.get(sha_tag)
    if not uri or not sha:
        raise LineageError(f"v{version.version} has no {uri_tag}/{sha_tag} tags")
    if not Path(uri).exists():
        raise LineageError(f"v{version.version} was trained on {uri}, which no longer exists")
    df = pd.read_parquet(uri)
    if frame_digest(df) != sha:
        raise LineageError(f"{uri} changed since v{version.version} was trained on it (sha256 mismatch)")
    return df


def training_end(cfg: PipelineConfig, version) -> datetime:
    """End (exclusive) of the data a registered version was trained on.

    Read from its ``data.train_end`` tag; versions registered before that tag existed fall back
    to the newest timestamp in their lineage-checked training set.
    """
    import pandas as pd

    tagged = version.tags.get(Tag.TRAIN_END)
    if tagged:
        return utc(datetime.fromisoformat(tagged))
    newest = read_training_set(version)[cfg.timestamp_column].max()
    return pd.Timestamp(newest).tz_localize("UTC").to_pydatetime() + timedelta(microseconds=1)


def parse_as_of(text: str | None) -> datetime | None:
    """An ISO date/datetime from a run's params; naive means UTC."""
    if not text:
        return None
    try:
        ts = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadRunParam(f"as_of {text!r} is not an ISO date or datetime (e.g. 2013-06-04)") from exc
    return utc(ts)


def latest_curated_end(paths: PipelinePaths) -> datetime | None:
    keys = paths.curated_partitions()
    return max(parse_partition_key(k)[1] for k in keys) if keys else None


def curated_end_at_or_before(paths: PipelinePaths, as_of: datetime | None) -> datetime:
    """The end of the newest curated partition at or before ``as_of`` (None: the newest of all).

    Snapping to a partition boundary makes a window hold whole batches.
    """
    ends = [e for _, e in map(parse_partition_key, paths.curated_partitions()) if as_of is None or e <= as_of]
    if not ends:
        when = "" if as_of is None else f" ending on or before {as_of:%Y-%m-%d %H:%M}"
        raise NotEnoughData(f"no curated partition of {paths.pipeline}{when}")
    return max(ends)


def recent_window(
    cfg: PipelineConfig, data_root: Path, as_of: datetime | None, days: int, max_rows: int | None = None
):
    """``(end, rows)``: the ``days`` of curated data up to the partition end at or before ``as_of``;
    ``rows`` is None when the window's partitions hold more than ``max_rows`` rows (a caller that
    can stream reads it a chunk at a time: :func:`stream_window`)."""
    paths = PipelinePaths(data_root, cfg.name)
    end = curated_end_at_or_before(paths, as_of)
    if max_rows is not None and window_rows(cfg, paths, end - timedelta(days=days), end) > max_rows:
        return end, None
    rows = load_window(cfg, paths, end - timedelta(days=days), end)
    if rows.empty:
        raise NotEnoughData(f"no curated rows of {cfg.name} in the {days} days before {end:%Y-%m-%d}")
    return end, rows


def _capped_as_of(cfg: PipelineConfig, paths: PipelinePaths, as_of: datetime | None) -> datetime:
    """``as_of``, defaulting to (and capped at) the end of the latest curated partition."""
    latest = latest_curated_end(paths)
    if latest is None:
        raise NotEnoughData(f"no curated data for pipeline {cfg.name} yet: run {cfg.name}__ingest first")
    if as_of is None or as_of > latest:
        if as_of is not None:
            log.info("as_of %s is past the curated data; using its end %s", as_of, latest)
        as_of = latest
    return utc(as_of)


def write_set(cfg: PipelineConfig, df: pd.DataFrame, out_dir: Path, name: str) -> dict[str, Any]:
    """Write one set keyed by its content: a cleared run that sees other data writes a new file
    and never changes the one a registered model's lineage points at."""
    sha = frame_digest(df)
    path = out_dir / f"{name}-{sha[:16]}.parquet"
    uri = path if path.exists() else write_parquet(df, path)
    binary = cfg.target_kind == "binary"
    return {"uri": str(uri), "rows": len(df), "sha256": sha,
            "positive_rate": round(float(df[cfg.target.name].mean()), 4) if binary else None}  # fmt: skip


def assemble(
    cfg: PipelineConfig,
    data_root: Path,
    as_of: datetime | None,
    out_dir: Path,
    train_days: int | None = None,
    holdout_not_before: datetime | None = None,
) -> AssembledData:
    """Write the training and holdout sets (``train-<sha>.parquet``, ``holdout-<sha>.parquet``) for
    the windows ending at ``as_of``.

    holdout = the most recent ``holdout_days`` before ``as_of``; train = the ``train_days`` before
    that (``train_days`` overrides the config). ``as_of`` defaults to (and is capped at) the end
    of the latest curated partition. ``holdout_not_before`` is the end of the champion's
    training window: a holdout that starts earlier would score the champion in-sample, so it is
    refused. Every schema column is kept, so a champion trained on other features can be scored
    with its own. Too few rows, or too few of either class, stop here with NotEnoughData.
    """
    paths = PipelinePaths(data_root, cfg.name)
    as_of = _capped_as_of(cfg, paths, as_of)
    train_start, holdout_start, labelled_end = training_windows(cfg, as_of, train_days)
    if labelled_end < as_of:
        log.info("outcomes arrive %d day(s) late: data up to %s is labelled by %s",
                 cfg.labels.delay_days, labelled_end, as_of)  # fmt: skip
    _refuse_in_sample(cfg, as_of, holdout_start, holdout_not_before)
    cols = [*cfg.schema_.names, cfg.target.name]
    cap = cfg.training.max_train_rows
    if cap is not None and window_rows(cfg, paths, train_start, holdout_start) > cap:  # never whole in memory
        train, window_rows_labelled = sampled_training_window(cfg, paths, train_start, holdout_start)
    else:  # capped below, after the window itself was judged enough
        train = add_label(cfg, load_window(cfg, paths, train_start, holdout_start))
        window_rows_labelled = len(train)
    holdout = add_label(cfg, load_window(cfg, paths, holdout_start, labelled_end))
    _enough(
        cfg, train, holdout, f"{train_start:%Y-%m-%d}..{holdout_start:%Y-%m-%d}", f"..{labelled_end:%Y-%m-%d}"
    )
    out: AssembledData = {  # type: ignore[typeddict-item]  (train/holdout added below)
        "as_of": as_of.isoformat(),
        "train_window": [train_start.isoformat(), holdout_start.isoformat()],
        "holdout_window": [holdout_start.isoformat(), labelled_end.isoformat()],
    }
    train = capped_training_set(cfg, train)  # the streamed sample is within the cap already
    if len(train) < window_rows_labelled:
        out["train_window_rows"] = window_rows_labelled
        log.info("training on a seeded sample of %d of the window's %d rows (training.max_train_rows)",
                 len(train), window_rows_labelled)  # fmt: skip
    for name, df in (("train", train[cols]), ("holdout", holdout[cols])):
        out[name] = write_set(cfg, df, out_dir, name)
    log.info(
        "assembled %s: train %d rows %s..%s, holdout %d rows ..%s",
        cfg.name, out["train"]["rows"], train_start.date(), holdout_start.date(),
        out["holdout"]["rows"], as_of.date(),
    )  # fmt: skip
    return out


def _refuse_in_sample(
    cfg: PipelineConfig, as_of: datetime, holdout_start: datetime, not_before: datetime | None
) -> None:
    """A holdout that starts inside the champion's training window would score it in-sample."""
    if not_before is None or holdout_start >= not_before:
        return
    raise HoldoutOverlap(
        f"{cfg.name}: as_of {as_of:%Y-%m-%d} puts the holdout ({holdout_start:%Y-%m-%d}..{as_of:%Y-%m-%d}) "
        f"inside the champion's training data (up to {not_before:%Y-%m-%d}), so the champion would be "
        f"scored in-sample; use an as_of on or after "
        f"{not_before + timedelta(days=cfg.training.holdout_days):%Y-%m-%d} or leave it empty"
    )


def _enough(
    cfg: PipelineConfig, train: pd.DataFrame, holdout: pd.DataFrame, train_w: str, hold_w: str
) -> None:
    """Refuse windows a decision could not rest on (NotEnoughData names the counts and the setting)."""
    t, label, kind = cfg.training, cfg.target.name, cfg.target_kind
    problems = []
    if len(train) < t.min_train_rows:
        problems.append(
            f"{len(train)} training rows in {train_w} (training.min_train_rows: {t.min_train_rows})"
        )
    elif train[label].nunique() < 2:
        problems.append(
            f"the training rows in {train_w} hold a single {'value' if kind == 'regression' else 'class'}"
        )
    elif kind == "multiclass" and set(cfg.classes) - set(train[label].unique()):
        unseen = sorted(map(str, set(cfg.classes) - set(train[label].unique())))
        problems.append(f"the training rows in {train_w} hold no row of classes {unseen} (a model could never "
                        "predict them)")  # fmt: skip
    if len(holdout) < t.min_holdout_rows:
        problems.append(
            f"{len(holdout)} holdout rows in {hold_w} (training.min_holdout_rows: {t.min_holdout_rows})"
        )
    if kind == "binary":
        pos = int(holdout[label].sum()) if len(holdout) else 0
        if min(pos, len(holdout) - pos) < t.min_holdout_class_rows:
            problems.append(
                f"the holdout in {hold_w} has {pos} positives and {len(holdout) - pos} negatives "
                f"(training.min_holdout_class_rows: {t.min_holdout_class_rows})"
            )
    elif kind == "multiclass":
        counts = holdout[label].value_counts()
        few = {
            str(c): int(counts.get(c, 0)) for c in cfg.classes if counts.get(c, 0) < t.min_holdout_class_rows
        }
        if few:
            problems.append(f"the holdout in {hold_w} has too few rows of classes {few} "
                            f"(training.min_holdout_class_rows: {t.min_holdout_class_rows})")  # fmt: skip
    elif len(holdout) and holdout[label].nunique() < 2:
        problems.append(f"the holdout in {hold_w} holds a single target value")
    if problems:
        raise NotEnoughData(f"{cfg.name}: not enough data to train and judge a model: {'; '.join(problems)}")
