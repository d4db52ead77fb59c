"""Ingestion stage: pull one data interval from the source into its raw partition, and publish it
to the curated dataset once validation (``include.stages.validation``) passed it."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from croniter import croniter

from include.decisions.windows import outcomes_due
from include.foundation.config import PipelineConfig
from include.foundation.errors import BadRunParam, NothingToDo, PermanentError
from include.foundation.payloads import IngestedBatch, PublishedBatch, PublishedOutcomes
from include.foundation.storage import (
    PipelinePaths,
    atomic_write,
    file_digest,
    interval_name,
    parse_partition_key,
    partition_key,
    record_readmission,
    require_validated,
)
from include.foundation.timeutil import utc, utc_midnight
from include.stages import sources

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


class OverlappingBatch(PermanentError):
    """The interval overlaps published partitions other than its own: its rows would count twice."""


def overlapping_partitions(paths: PipelinePaths, start: datetime, end: datetime) -> list[str]:
    """Curated partitions, other than ``[start, end)``'s own, that share time with it."""
    key = partition_key(start, end)
    out = []
    for k in paths.curated_partitions():
        s, e = parse_partition_key(k)
        if k != key and s < end and e > start:
            out.append(k)
    return out


class QuarantinedInterval(PermanentError):
    """The interval's batch is quarantined: only a re-admission with a reason brings it back."""


def refuse_quarantined(cfg: PipelineConfig, paths: PipelinePaths, key: str, part: str = "inputs") -> None:
    """A plain run (a re-run, a clear, a retry, ``replace``) of a quarantined interval that was
    never published stays quarantined, and says how to re-admit it."""
    reports = paths.quarantine_reports(key, part)
    if reports and not paths.curated(key).exists():
        raise QuarantinedInterval(
            f"batch {interval_name(key)} of {cfg.name} is quarantined (report {reports[-1]}); a re-run or clear leaves it there. "
            f"When its producer has fixed it, re-admit it with a reason: trigger {cfg.name}__ingest with readmit: "
            f"true and reason, or make readmit READMIT_ARGS='--pipeline {cfg.name} --interval "
            f'{parse_partition_key(key)[0]:%Y-%m-%d} --reason "..."\''
        )


class NothingToReadmit(BadRunParam):
    """A re-admission was asked for an interval with no quarantined batch, or one already published."""


def readmission_request(
    cfg: PipelineConfig, paths: PipelinePaths, key: str, readmit: dict[str, Any]
) -> dict[str, Any]:
    """Check a re-admission can be asked (a reason; the interval quarantined and not published)
    and describe it: who, why, when, the Airflow run, the quarantine report it replaces."""
    reason = (readmit.get("reason") or "").strip()
    if not reason:
        raise BadRunParam("readmit: say why the batch may come back (the reason param), e.g. "
                          "'producer re-exported the week with the corrected prices'")  # fmt: skip
    if paths.curated(key).exists():
        raise NothingToReadmit(f"{cfg.name} {interval_name(key)} is published already: nothing to re-admit (replace: true "
                               "ingests a published interval again)")  # fmt: skip
    reports = paths.quarantine_reports(key)
    if not reports:
        quarantined = sorted(p.name for p in (paths.base / "quarantine").glob("*T*Z_*") if p.is_dir())
        raise NothingToReadmit(f"{cfg.name} has no quarantined batch for {interval_name(key)}; quarantined intervals: "
                               f"{quarantined or 'none'}")  # fmt: skip
    return {
        "partition": key,
        "requested_by": readmit.get("by") or "unknown",
        "reason": reason,
        "requested_at": datetime.now(UTC).isoformat(),
        "airflow_run_id": readmit.get("run_id") or "manual",
        "replaces_report": str(reports[-1]),
    }


def ingest_batch(
    cfg: PipelineConfig, data_root: Path, start: datetime, end: datetime, replace: bool = False,
    read_sql: sources.SqlReader | None = None, readmit: dict[str, Any] | None = None,
) -> IngestedBatch:  # fmt: skip
    """Write the interval's rows to ``raw/<partition>/batch.parquet`` atomically.

    Idempotent: the same interval gives the same file and the same content hash, and a
    re-run replaces the file instead of adding a second one. An interval that is already
    published is left alone (:class:`NothingToDo`, with ``already_published``) unless ``replace``
    asks to ingest it again, in which case the new batch goes through validation before it
    replaces the published one. An interval that overlaps other published partitions is
    refused (:class:`OverlappingBatch`).

    ``readmit`` (``{"by", "reason", "run_id"}``): a quarantined interval is read again from the
    source after its producer fixed it; the result carries the request
    (:func:`readmission_request`), which validation and publication record as they decide.
    """
    paths = PipelinePaths(data_root, cfg.name)
    key = partition_key(start, end)
    if readmit and paths.curated(key).exists() and _readmitted_in(paths, key, readmit.get("run_id")):
        readmit = None  # this run re-admitted it already (a retried or cleared run): as published
    request = readmission_request(cfg, paths, key, readmit) if readmit else None
    if request is None:
        refuse_quarantined(cfg, paths, key)
    if paths.curated(key).exists() and not replace:
        rows = published_rows(paths.curated(key))
        log.warning(
            "batch %s of %s is already published (%d rows in %s): nothing ingested, the published data is "
            "unchanged. To ingest it again from the source as it is now, run with replace: true (the new batch "
            "is validated before it replaces the published one).",
            interval_name(key), cfg.name, rows, paths.curated(key),
        )  # fmt: skip
        raise NothingToDo(
            f"batch {interval_name(key)} is already published ({rows} rows): nothing to do; trigger with replace: true to "
            "ingest it again",
            {"partition": key, "uri": str(paths.curated(key)), "rows": rows, "already_published": True},
        )
    overlap = overlapping_partitions(paths, start, end)
    if overlap:
        raise OverlappingBatch(
            f"batch {interval_name(key)} of {cfg.name} overlaps published partitions {overlap}: its rows would be counted "
            "twice. Ingest whole intervals that do not overlap (or delete those partitions first)."
        )
    rows, digest = write_batch(cfg, sources.fetch_chunks(cfg, start, end, paths.base,
                               "inputs" if cfg.outcomes_later else "whole", read_sql), paths.raw(key))  # fmt: skip
    out = paths.raw(key)
    log.info("ingested %d rows for %s into %s (sha256 %s)", rows, interval_name(key), out, digest[:12])
    result: IngestedBatch = {
        "partition": key,
        "uri": str(out),
        "rows": rows,
        "sha256": digest,
        "replace": replace,
    }
    if request:
        log.info("re-admitting %s, asked by %s (%s); it replaces quarantine report %s: validation decides",
                 interval_name(key), request["requested_by"], request["reason"], request["replaces_report"])  # fmt: skip
        result["readmission"] = request
    return result


def _readmitted_in(paths: PipelinePaths, key: str, run_id: str | None) -> bool:
    """Whether Airflow run ``run_id`` already re-admitted and published interval ``key``."""
    import json

    for record in (paths.base / "quarantine" / key).glob("*/readmission-*.json"):
        entry = json.loads(record.read_text())
        if entry.get("airflow_run_id") == run_id and entry.get("outcome") == "published":
            return True
    return False


def published_rows(path: Path) -> int:
    """Rows of a published batch, from its Parquet footer (the data is not read)."""
    import pyarrow.parquet as pq

    return pq.read_metadata(path).num_rows


class NoInterval(PermanentError):
    """A run has neither a data interval nor a batch_start, and the pipeline has no ingest schedule."""


def default_interval(cfg: PipelineConfig, data_root: Path, now: datetime) -> tuple[datetime, datetime]:
    """The interval a manual run without ``batch_start`` ingests.

    A replayed source continues the replay: the schedule interval right after the newest curated
    partition (the first one from ``source.first_day`` when there is none). A live source takes
    the latest complete interval of the ingest schedule before ``now``.
    """
    expr = cfg.schedule.ingest
    if expr is None:
        raise NoInterval(
            f"{cfg.name}__ingest has no schedule (schedule.ingest: null): set batch_start in the run's params"
        )
    replayed = cfg.source.replay_days()
    if replayed is not None:
        first_day, last_day = replayed
        ends = [parse_partition_key(k)[1] for k in PipelinePaths(data_root, cfg.name).curated_partitions()]
        start = max(ends) if ends else utc_midnight(first_day)
        if start.date() > last_day:
            raise NoInterval(
                f"the replay of {cfg.name} is complete (source.last_day {last_day}): nothing left to ingest"
            )
        return start, croniter(expr, start).get_next(datetime)
    end = croniter(expr, utc(now)).get_prev(datetime)
    return croniter(expr, end).get_prev(datetime), end


def interval_for_run(
    cfg: PipelineConfig,
    data_root: Path,
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    batch_start: str | None,
    batch_days: int | None,
    now: datetime,
    run_type: str | None = None,
) -> tuple[datetime, datetime]:
    """The run's interval: ``batch_start`` if given, else its data interval, else the default;
    logged with the run's type, so a scheduled (catch-up) run is never mistaken for a manual one."""
    has_interval = data_interval_start is not None and data_interval_end is not None
    replayed = cfg.source.replay_days()
    if has_interval and replayed is not None:  # e.g. a UI trigger "now" on 2013 data
        first_day, last_day = replayed
        has_interval = data_interval_end > utc_midnight(first_day) and data_interval_start.date() <= last_day
    if batch_start or (has_interval and data_interval_end > data_interval_start):
        start, end = resolve_interval(data_interval_start, data_interval_end, batch_start, batch_days)
        how = "its batch_start param" if batch_start else "its data interval"
        log.info(
            "%s run: ingesting %s (%s)", run_type or "this", interval_name(partition_key(start, end)), how
        )
        return start, end
    start, end = default_interval(cfg, data_root, now)
    log.info(
        "manual run without batch_start or data interval: ingesting %s .. %s (%s)",
        start.isoformat(), end.isoformat(),
        "the latest complete interval" if replayed is None else "the next replayed interval",
    )  # fmt: skip
    return start, end


def resolve_interval(
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    batch_start: str | None = None,
    batch_days: int | None = None,
) -> tuple[datetime, datetime]:
    """The interval a run ingests: the run's data interval, or an explicit manual override."""
    from datetime import timedelta

    if batch_start:
        try:
            start = datetime.fromisoformat(batch_start)
        except ValueError as exc:
            raise BadRunParam(f"batch_start {batch_start!r} is not a date (YYYY-MM-DD)") from exc
        start = utc(start)
        return start, start + timedelta(days=batch_days or 7)
    if data_interval_start is None or data_interval_end is None:
        raise NoInterval("run has no data interval: pass batch_start in the run's params")
    if data_interval_end <= data_interval_start:
        raise NoInterval(f"empty data interval {data_interval_start}..{data_interval_end}: pass batch_start")
    return data_interval_start, data_interval_end


def publish_batch(
    cfg: PipelineConfig, data_root: Path, partition: str, readmission: dict[str, Any] | None = None
) -> PublishedBatch:
    """Copy a validated raw batch into the curated dataset (atomic; re-running is harmless).

    Replacing a published batch (a run with ``replace``) is logged with the rows before and after.
    A re-admitted batch (``readmission``) has the decision recorded beside the report it replaces."""
    import filecmp
    import shutil

    import pyarrow.parquet as pq

    paths = PipelinePaths(data_root, cfg.name)
    src, dst = paths.raw(partition), paths.curated(partition)
    require_validated(src, "batch")
    before = pq.read_metadata(dst).num_rows if dst.exists() else None
    after = pq.read_metadata(src).num_rows
    if before is not None and filecmp.cmp(src, dst, shallow=False):
        log.info(
            "%s is already published with this content (%d rows): unchanged", interval_name(partition), after
        )
        out: PublishedBatch = {"partition": partition, "uri": str(dst), "rows": after, "replaced_rows": None}
    else:
        atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))
        if before is None:
            log.info("published %s (%d rows) to %s", interval_name(partition), after, dst)
        else:
            log.warning(
                "replaced published batch %s: %d rows before, %d after (%s)",
                interval_name(partition),
                before,
                after,
                dst,
            )
        out = {"partition": partition, "uri": str(dst), "rows": after, "replaced_rows": before}
    week = interval_name(partition)
    if before is not None and out["replaced_rows"] is not None:
        out["note"] = f"{week}: {after:,} rows published, replacing {before:,}"
    else:
        out["note"] = f"{week}: {after:,} rows published"
    if readmission:  # written after the data: a record never claims a batch that is not there
        record = record_readmission(readmission, "published", published=str(dst), rows=after,
                                    sha256=file_digest(dst))  # fmt: skip
        log.info(
            "re-admitted %s: published %d rows; decision recorded in %s",
            interval_name(partition),
            after,
            record,
        )
        out["readmission_record"] = str(record)
        out["note"] += f" (re-admitted: {readmission.get('reason')})"
    return out


def due_interval_for_run(
    cfg: PipelineConfig,
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    interval: str | None,
    interval_days: int | None,
) -> tuple[datetime, datetime]:
    """The inputs' interval whose outcomes a collection run gathers: ``interval`` (a manual run's
    first day) if given, else the one due at the run's data interval end (:func:`outcomes_due`)."""
    if interval:
        return resolve_interval(None, None, interval, interval_days)
    start, end = resolve_interval(data_interval_start, data_interval_end)
    return outcomes_due(cfg.labels, start, end)


def ingest_outcomes(
    cfg: PipelineConfig, data_root: Path, due_start: datetime, due_end: datetime, replace: bool = False,
    read_sql: sources.SqlReader | None = None,
) -> IngestedBatch:  # fmt: skip
    """Collect the outcomes of the inputs' interval ``[due_start, due_end)`` (see
    :func:`due_interval_for_run`) into ``raw/<partition>/outcomes.parquet`` (atomic, idempotent).
    Already published outcomes are left alone unless ``replace`` (then the new batch is validated
    before it replaces them)."""
    paths = PipelinePaths(data_root, cfg.name)
    key = partition_key(due_start, due_end)
    if paths.outcomes(key).exists() and not replace:
        rows = published_rows(paths.outcomes(key))
        log.warning(
            "the outcomes of %s are already published (%d rows in %s): nothing collected; run with replace: "
            "true to collect them again (validated before they replace the published ones)",
            interval_name(key), rows, paths.outcomes(key),
        )  # fmt: skip
        raise NothingToDo(
            f"the outcomes of {interval_name(key)} are already published ({rows} rows): nothing to do; trigger with replace: "
            "true to collect them again",
            {"partition": key, "uri": str(paths.outcomes(key)), "rows": rows, "already_published": True},
        )
    chunks = sources.fetch_chunks(cfg, due_start, due_end, paths.base, "outcomes", read_sql)
    first = next((c for c in chunks if len(c)), None)
    if first is None:  # e.g. an interval before the data's first day, or outcome files not landed yet
        log.warning("the source holds no outcomes of %s (yet): nothing collected", interval_name(key))
        raise NothingToDo(
            f"the source holds no outcomes of {interval_name(key)} (yet): nothing to collect",
            {"partition": key, "uri": "", "rows": 0, "nothing_due": True},
        )
    out = paths.raw_outcomes(key)
    rows, digest = write_batch(cfg, itertools.chain([first], chunks), out)
    log.info(
        "collected %d outcomes of %s (due %d day(s) after it) into %s (sha256 %s)",
        rows, interval_name(key), cfg.labels.delay_days, out, digest[:12],
    )  # fmt: skip
    return {"partition": key, "uri": str(out), "rows": rows, "sha256": digest, "replace": replace}


def write_batch(cfg: PipelineConfig, chunks: Iterable[pd.DataFrame], path: Path) -> tuple[int, str]:
    """A batch's chunks into one Parquet file (atomic), a chunk in memory at a time, with the types
    and content hash of the batch read at once; returns ``(rows, sha256)``."""
    from include.foundation.chunked import write_chunks

    return write_chunks(
        chunks, path, lambda dtypes, not_whole: sources.nullable_int_types(cfg, dtypes, not_whole)
    )


def publish_outcomes(cfg: PipelineConfig, data_root: Path, partition: str) -> PublishedOutcomes:
    """Publish a validated outcome batch to ``outcomes/<partition>/`` (atomic; re-running is
    harmless) and report how it joins the interval's published inputs by key: outcomes for rows
    never published and repeated keys are counted and logged with examples, never used."""
    import shutil

    import pandas as pd

    from include.decisions.outcomes import join_outcomes

    paths = PipelinePaths(data_root, cfg.name)
    src, dst = paths.raw_outcomes(partition), paths.outcomes(partition)
    require_validated(src, "outcome batch")
    outcomes = pd.read_parquet(src)
    inputs = (
        pd.read_parquet(paths.curated(partition), columns=cfg.key_columns)
        if paths.curated(partition).exists()
        else pd.DataFrame(columns=cfg.key_columns)
    )
    report = join_outcomes(inputs, outcomes, cfg.key_columns)
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))
    log.info(
        "published the outcomes of %s (%d rows) to %s: %d join an input row; %d input rows still without one",
        interval_name(partition), len(outcomes), dst, len(report.joined), report.unlabelled,
    )  # fmt: skip
    if report.unknown or report.duplicated:
        log.warning(
            "outcomes of %s not used: %d for rows never published as inputs (e.g. %s), %d whose key came more "
            "than once (e.g. %s)",
            interval_name(partition), report.unknown, report.examples.get("unknown", []), report.duplicated,
            report.examples.get("duplicated", []),
        )  # fmt: skip
    unused = (
        f"; {report.unknown + report.duplicated:,} not used" if report.unknown or report.duplicated else ""
    )
    realized = realized_on_arrival(cfg, paths, partition)
    said = realized.pop("realized_line", "")
    return {"partition": partition, "uri": str(dst), "rows": len(outcomes), "joined": len(report.joined),
            "unknown": report.unknown, "duplicated": report.duplicated, "unlabelled": report.unlabelled,
            **realized, "note": f"outcomes of {interval_name(partition)}: {len(report.joined):,} rows labelled"
            f"{unused}{said}"}  # fmt: skip


def realized_on_arrival(cfg: PipelineConfig, paths: PipelinePaths, partition: str) -> dict[str, Any]:
    """What the week's outcomes say of the version that served it (nothing when no champion
    scored it, or the metric cannot be measured on its labels): the run's note shows it."""
    from include.foundation.prediction_log import ESTIMATE, served_part
    from include.stages.evidence import realized_interval

    served = served_part(paths, partition)
    if served is None:
        return {}
    realized = realized_interval(cfg, paths, partition, served)
    if realized["value"] is None:
        return {}
    metric, version = cfg.promotion.primary_metric, realized["model_version"]
    estimated = (served.attrs.get(ESTIMATE) or {}).get("value")  # what was expected of it when scored
    before = "" if estimated is None else f", estimated {estimated:.4f} before"
    log.info(
        "realized %s of v%s on %s: %.4f%s",
        metric,
        version,
        interval_name(partition),
        realized["value"],
        before,
    )
    return {"realized": realized["value"], "realized_version": version,
            **({"estimated": estimated} if estimated is not None else {}),
            "realized_line": f"; realized {metric} {realized['value']:.4f}{before} (served by v{version})"}  # fmt: skip
