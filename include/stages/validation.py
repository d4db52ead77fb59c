"""Validation stage: a Great Expectations suite built from the pipeline's schema.

The suite, validation definition and checkpoint live in a file-backed GX project under
``<data_root>/<pipeline>/gx`` so that Data Docs accumulate one page per validated batch.
A failing batch is moved to quarantine beside its validation result and
:class:`DataValidationFailed` is raised with a message that names what was wrong.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import unquote, urlparse

from include.foundation.chunked import row_count
from include.foundation.config import ColumnSpec, PipelineConfig
from include.foundation.errors import PermanentError
from include.foundation.payloads import ValidationSummary
from include.foundation.storage import (
    PipelinePaths,
    exclusive,
    file_digest,
    interval_name,
    record_readmission,
    record_validation_pass,
    write_json,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# pandas' nullable integers are named by their dtype class for GX ("Int64Dtype"; GX resolves
# "Int64" to nothing and fails every nullable integer column)
_INTS = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
         "Int8Dtype", "Int16Dtype", "Int32Dtype", "Int64Dtype"]  # fmt: skip
TYPE_LISTS: dict[str, list[str]] = {
    "int": _INTS,
    "float": ["float16", "float32", "float64", "Float32Dtype", "Float64Dtype", *_INTS],
    "str": ["object", "str", "string", "StringDtype"],
    "bool": ["bool", "boolean", "BooleanDtype"],
    # naive UTC (see foundation.timeutil.to_naive_utc): GX cannot match tz-aware pandas dtypes
    "datetime": ["datetime64[ns]", "datetime64[us]", "datetime64[ms]"],
}  # fmt: skip


class MissingBatch(PermanentError):
    """The batch a task should read is not there (its ingest did not run, or it was removed)."""


class DataValidationFailed(PermanentError):
    """A batch failed its expectation suite. ``result`` is a JSON-able summary."""

    def __init__(self, message: str, result: dict[str, Any]):
        super().__init__(message)
        self.result = result


def _gx():
    # GX logs ~200 INFO lines when imported after Airflow configured logging.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    return gx


def build_expectations(cfg: PipelineConfig, part: str = "whole") -> list:
    """Translate the config's schema into GX expectations (one list, in schema order).

    ``part``: ``whole`` (a batch with its outcomes), ``inputs`` (outcomes arrive later: every
    column but the outcomes, no class shares) or ``outcomes`` (a batch of outcomes that arrived
    later: the key columns present and unique, the outcome columns' ranges, the class shares)."""
    import great_expectations.expectations as gxe

    schema, outcomes = cfg.schema_, set(cfg.outcome_columns)
    if part == "outcomes":
        keep = set(cfg.key_columns) | outcomes
        exps: list = []
    else:
        keep = set(schema.names) - (outcomes if part == "inputs" else set())
        exps = [
            gxe.ExpectTableRowCountToBeBetween(min_value=schema.row_count.min, max_value=schema.row_count.max)
        ]
    for col in schema.columns:
        if col.name in keep:
            exps.extend(_column_expectations(gxe, col))
    ts = cfg.timestamp_column
    if (
        ts in keep and schema.column(ts).nullable
    ):  # it places rows in partitions: a null (or unparseable) one is an error
        exps.append(
            gxe.ExpectColumnValuesToNotBeNull(
                column=ts, description="timestamps must be present and parseable"
            )
        )
    for group in schema.unique_together:  # GX's compound check needs two or more columns
        exps.append(
            gxe.ExpectColumnValuesToBeUnique(column=group[0])
            if len(group) == 1
            else gxe.ExpectCompoundColumnsToBeUnique(column_list=group)
        )
    if part != "inputs":
        exps.extend(_label_share_expectations(gxe, cfg))
    return exps


def _label_share_expectations(gxe, cfg: PipelineConfig) -> list:
    """What the target must look like in a batch, by kind (besides its column's own range and
    allowed set): binary, at least ``target.min_class_share`` of positives and of negatives;
    multiclass, that share of every declared class; regression, a target that is not constant
    and, with ``target.mean_between``, a mean in that range.

    Every value can be in range while the label collapses to one class (or one value); these
    catch that.
    """
    t, kind = cfg.target, cfg.target_kind
    share = t.min_class_share
    if kind == "regression":
        out = [gxe.ExpectColumnStdevToBeBetween(column=t.column, min_value=0, strict_min=True,
                                                description="the target is not constant")]  # fmt: skip
        if t.mean_between is not None:
            low, high = t.mean_between
            out.append(gxe.ExpectColumnMeanToBeBetween(column=t.column, min_value=low, max_value=high,
                                                       description=f"mean target in [{low}, {high}]"))  # fmt: skip
        return out
    if share <= 0:
        return []
    if kind == "multiclass":
        return [
            gxe.ExpectColumnValuesToBeInSet(column=t.column, value_set=[c], mostly=share,
                                            description=f"at least {share:.0%} of labelled rows of class {c!r}")
            for c in cfg.classes
        ]  # fmt: skip
    pos = f"at least {share:.0%} of labelled rows positive"
    neg = f"at least {share:.0%} of labelled rows negative"
    if t.positive_above is not None:
        return [
            gxe.ExpectColumnValuesToBeBetween(
                column=t.column, min_value=t.positive_above, strict_min=True, mostly=share, description=pos
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column=t.column, max_value=t.positive_above, mostly=share, description=neg
            ),
        ]
    positive = [t.positive_class] if t.positive_class is not None else [1, True]
    return [
        gxe.ExpectColumnValuesToBeInSet(column=t.column, value_set=positive, mostly=share, description=pos),
        gxe.ExpectColumnValuesToNotBeInSet(
            column=t.column, value_set=positive, mostly=share, description=neg
        ),
    ]


def _column_expectations(gxe, col: ColumnSpec) -> list:
    out = [
        gxe.ExpectColumnToExist(column=col.name),
        gxe.ExpectColumnValuesToBeInTypeList(column=col.name, type_list=TYPE_LISTS[col.dtype]),
    ]
    if not col.nullable:
        out.append(gxe.ExpectColumnValuesToNotBeNull(column=col.name))
    elif col.max_null_fraction is not None:
        out.append(gxe.ExpectColumnValuesToNotBeNull(column=col.name, mostly=1 - col.max_null_fraction))
    if col.min is not None or col.max is not None:
        out.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=col.name, min_value=col.min, max_value=col.max, mostly=col.mostly
            )
        )
    if col.allowed is not None:
        out.append(gxe.ExpectColumnValuesToBeInSet(column=col.name, value_set=col.allowed, mostly=col.mostly))
    if col.unique:
        out.append(gxe.ExpectColumnValuesToBeUnique(column=col.name))
    return out


def _checkpoint(cfg: PipelineConfig, gx_project: Path, part: str = "whole"):
    """Create or update the GX objects for this pipeline (its outcome batches have their own
    asset, suite and checkpoint); safe to call on every run."""
    gx = _gx()
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="file", project_root_dir=str(gx_project))
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    ds = ctx.data_sources.add_or_update_pandas(name=cfg.name)
    outcomes = part == "outcomes"
    # Data Docs list each validation by asset and run name: the pipeline (its outcomes) and the week
    asset_name = name = f"{cfg.name}_outcomes" if outcomes else cfg.name
    try:
        asset = ds.get_asset(asset_name)
    except LookupError:
        asset = ds.add_dataframe_asset(name=asset_name)
    try:
        batch_def = asset.get_batch_definition("whole_batch")
    except (KeyError, LookupError):
        batch_def = asset.add_batch_definition_whole_dataframe("whole_batch")
    suite = ctx.suites.add_or_update(
        gx.ExpectationSuite(name=f"{name}_suite", expectations=build_expectations(cfg, part))
    )
    vd = ctx.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"{name}_batch", data=batch_def, suite=suite)
    )
    cp = ctx.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"{name}_checkpoint",
            validation_definitions=[vd],
            actions=[UpdateDataDocsAction(name="data_docs")],
            result_format={"result_format": "SUMMARY"},
        )
    )
    return ctx, cp


def summarize(run_results: dict, success: bool) -> dict[str, Any]:
    """JSON-able summary of a checkpoint's ``run_results``: statistics and each failed expectation."""
    failures: list[dict[str, Any]] = []
    stats: dict[str, Any] = {}
    for vr in run_results.values():
        stats = dict(vr.statistics)
        for r in vr.results:
            if r.success:
                continue
            kwargs = r.expectation_config.kwargs
            res = r.result or {}
            failures.append(
                {
                    "expectation": r.expectation_config.type,
                    "description": r.expectation_config.description,
                    "column": kwargs.get("column") or kwargs.get("column_list"),
                    "kwargs": {k: v for k, v in kwargs.items() if k not in ("column", "batch_id")},
                    "observed_value": res.get("observed_value"),
                    "unexpected_count": res.get("unexpected_count"),
                    "unexpected_percent": res.get("unexpected_percent"),
                    "partial_unexpected_list": (res.get("partial_unexpected_list") or [])[:5],
                }
            )
    return {"success": bool(success), "statistics": stats, "failures": failures}


def type_failure_reason(
    cfg: PipelineConfig, columns: Callable[[str], Iterable[pd.Series]], failure: dict[str, Any]
) -> str | None:
    """Why a column failed its type check, in the data's terms: blanks and fractions that make an
    integer column float, or text in a numeric one. ``columns(name)`` gives the batch's column, a
    chunk at a time (nothing when the batch lacks it)."""
    import numpy as np
    import pandas as pd

    column = failure.get("column")
    if failure["expectation"] != "expect_column_values_to_be_in_type_list" or not isinstance(column, str):
        return None
    declared = cfg.schema_.column(column).dtype
    fractional = blanks = 0
    values = None
    for values in columns(column):
        if declared == "int" and pd.api.types.is_float_dtype(values):
            present = values.dropna()
            fractional += int((present != np.round(present)).sum())
            blanks += int(values.isna().sum())
    if values is None:
        return None
    if declared == "int" and pd.api.types.is_float_dtype(values):
        if fractional:
            return f"{fractional} values are not whole numbers, so the column reads as float"
        if blanks:
            return f"{blanks} blanks make this column float"
    if declared in ("int", "float") and values.dtype == object:
        return "some values are text, not numbers"
    return None


def describe_failures(summary: dict[str, Any]) -> str:
    lines = []
    for f in summary["failures"]:
        detail = []
        if f["unexpected_count"]:
            detail.append(f"{f['unexpected_count']} unexpected values, e.g. {f['partial_unexpected_list']}")
        if f["observed_value"] is not None:
            detail.append(f"observed {f['observed_value']!r}")
        bounds = {
            k: v
            for k, v in f["kwargs"].items()
            if k in ("min_value", "max_value", "value_set", "type_list", "mostly")
        }
        col = f"column={f['column']}" if f["column"] else "table"
        why = f" [{f['description']}]" if f.get("description") else ""
        if f.get("why"):
            detail.append(f["why"])
        lines.append(
            f"  - {f['expectation']}({col}{', ' if bounds else ''}{_short(bounds)}){why}: "
            + ("; ".join(detail) or "failed")
        )
    return "\n".join(lines)


def _short(d: dict) -> str:
    return ", ".join(f"{k}={str(v)[:60]}" for k, v in d.items())


def validate_frame(
    cfg: PipelineConfig, df: pd.DataFrame, gx_project: Path, part: str | None = None, run_name: str | None = None
) -> tuple[dict, str | None]:  # fmt: skip
    """Run the checkpoint on a frame (``part``: see :func:`build_expectations`; default: a batch
    as ingested, its inputs when the outcomes arrive later); returns (summary, Data Docs index URL).
    ``run_name`` names the validation in Data Docs (the batch's interval).

    ``summary["data_docs_page"]`` is the local path of this validation's own Data Docs page."""
    from great_expectations.core.run_identifier import RunIdentifier

    part = part or ("inputs" if cfg.outcomes_later else "whole")
    # one validation at a time per GX project: the ingest and outcomes DAGs of a pipeline validate
    # concurrently, and GX rewrites great_expectations.yml and its stores on every run
    with exclusive(gx_project / ".gx.lock"):
        ctx, cp = _checkpoint(cfg, gx_project, part)
        # the run time given: without it GX parses the run name as a date (a week's name is not one)
        run_id = RunIdentifier(run_name=run_name, run_time=datetime.now(UTC)) if run_name else None
        result = cp.run(batch_parameters={"dataframe": df}, run_id=run_id)
        return _summary_of(cfg, lambda c: [df[c]] if c in df else [], ctx, result.run_results, result.success)


def validate_parquet_in_chunks(
    cfg: PipelineConfig, path: Path, gx_project: Path, part: str, run_name: str, chunk_rows: int
) -> tuple[dict, str | None]:
    """:func:`validate_frame` for a batch larger than ``chunk_rows``: GX validates each chunk of
    the Parquet file and the results are combined exactly into the whole batch's
    (:mod:`include.stages.gx_chunks`), then stored in the project's validation store and rendered
    into its Data Docs like a checkpoint's."""
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )
    from great_expectations.validator.v1_validator import Validator

    from include.foundation.chunked import column_names as pq_names
    from include.foundation.chunked import iter_frames
    from include.stages.gx_chunks import MOMENTS, validate_in_chunks

    with exclusive(gx_project / ".gx.lock"):
        ctx, cp = _checkpoint(cfg, gx_project, part)
        vd = cp.validation_definitions[0]
        batch_ids: list[str] = []

        def run_chunk(df: pd.DataFrame):
            validator = Validator(batch_definition=vd.batch_definition, batch_parameters={"dataframe": df},
                                  result_format={"result_format": "SUMMARY"})  # fmt: skip
            batch_ids.append(validator.active_batch_id)
            return validator.validate_expectation_suite(vd.suite)

        moments = [e.column for e in vd.suite.expectations if e.expectation_type in MOMENTS]
        combined = validate_in_chunks(run_chunk, lambda cols: iter_frames(path, chunk_rows, cols), moments)
        run_id = RunIdentifier(run_name=run_name, run_time=datetime.now(UTC))
        combined.meta.update(run_id=run_id, validation_time=run_id.run_time, validation_id=vd.id,
                             checkpoint_id=cp.id, batch_parameters={"dataframe": "<DATAFRAME>"},
                             chunks={"count": len(batch_ids), "rows_per_chunk": chunk_rows})  # fmt: skip
        suite_id = ExpectationSuiteIdentifier(name=vd.suite.name)
        result_id = ValidationResultIdentifier(expectation_suite_identifier=suite_id, run_id=run_id,
                                               batch_identifier=batch_ids[0])  # fmt: skip
        ctx.validation_results_store.store_validation_results(
            suite_validation_result=combined, suite_validation_result_identifier=result_id,
            expectation_suite_identifier=suite_id,
        )  # fmt: skip
        ctx.build_data_docs(resource_identifiers=[result_id])
        log.info("validated %s in %d chunks of at most %d rows; results combined over the whole batch",
                 run_name, len(batch_ids), chunk_rows)  # fmt: skip
        names = set(pq_names(path))
        columns = lambda c: (f[c] for f in iter_frames(path, chunk_rows, [c])) if c in names else []  # noqa: E731
        return _summary_of(cfg, columns, ctx, {result_id: combined}, combined.success)


def _summary_of(
    cfg: PipelineConfig, columns: Callable[[str], Iterable[pd.Series]], ctx, run_results: dict, success: bool
) -> tuple[dict, str | None]:
    """The run's results as a JSON-able summary, with this validation's Data Docs page."""
    summary = summarize(run_results, success)
    for failure in summary["failures"]:
        why = type_failure_reason(cfg, columns, failure)
        if why:
            failure["why"] = why
    summary["data_docs_page"] = None
    for identifier in run_results:
        page = ctx.get_docs_sites_urls(resource_identifier=identifier)
        if page and str(page[0].get("site_url", "")).startswith("file://"):
            summary["data_docs_page"] = unquote(urlparse(page[0]["site_url"]).path)
    docs = ctx.get_docs_sites_urls()
    return summary, (docs[0]["site_url"] if docs else None)


def validate_batch(
    cfg: PipelineConfig, data_root: Path, partition: str, part: str = "inputs",
    readmission: dict | None = None,
) -> ValidationSummary:  # fmt: skip
    """Validate the raw batch of ``partition`` (``part``: its ``inputs``, or its ``outcomes``
    that arrived later); quarantine it and raise if it fails. A re-admitted batch
    (``readmission``) that fails again has that recorded beside the report it was to replace; one
    that passes carries the request on to publication."""
    import pandas as pd

    paths = PipelinePaths(data_root, cfg.name)
    raw = paths.raw_outcomes(partition) if part == "outcomes" else paths.raw(partition)
    what = "outcome batch" if part == "outcomes" else "batch"
    if not raw.exists():
        reports = paths.quarantine_reports(partition, part)
        if reports:
            raise DataValidationFailed(
                f"{what} {interval_name(partition)} is already quarantined, see {reports[-1]}",
                {"report": str(reports[-1])},
            )
        raise MissingBatch(f"raw batch {raw} not found: run the ingest task first")

    paths.validation_pass(raw).unlink(missing_ok=True)  # judged afresh: a pass is for this try's verdict
    week = f"{'outcomes_' if part == 'outcomes' else ''}{interval_name(partition)}"  # the week's one name
    gx_part = "outcomes" if part == "outcomes" else ("inputs" if cfg.outcomes_later else "whole")
    rows, chunk_rows = row_count(raw), cfg.limits.rows_per_chunk(len(cfg.schema_.columns))
    if rows > chunk_rows:  # larger than a chunk: validated a chunk at a time, combined exactly
        summary, docs_url = validate_parquet_in_chunks(cfg, raw, paths.gx_project, gx_part, week, chunk_rows)
    else:
        summary, docs_url = validate_frame(cfg, pd.read_parquet(raw), paths.gx_project, gx_part, week)
    summary.update(partition=partition, rows=rows, data_docs=docs_url, part=part)
    st = summary["statistics"]
    log.info("validated %s %s: %s of %s expectations passed; Data Docs: %s", what, interval_name(partition),
             st.get("successful_expectations"), st.get("evaluated_expectations"), docs_url)  # fmt: skip
    if summary["success"]:
        if readmission:
            summary["readmission"] = readmission
        # the durable evidence publication checks: this content passed (a task marked success leaves none)
        record_validation_pass(raw, partition, part, st)
        return summary

    quarantine(cfg, paths, raw, summary, part, readmission)


def quarantine(
    cfg: PipelineConfig, paths: PipelinePaths, raw: Path, summary: dict, part: str, readmission: dict | None
) -> NoReturn:
    """Move a failed batch beside its report (by content: never over another) and fail naming
    what was wrong; a re-admitted batch that failed again has that recorded."""
    partition, st, docs_url = summary["partition"], summary["statistics"], summary["data_docs"]
    what = "outcome batch" if part == "outcomes" else "batch"
    qdir = paths.quarantine_dir(partition, file_digest(raw), part)
    report = write_json(summary, qdir / "validation_result.json")
    summary["report"] = str(report)
    os.replace(raw, qdir / raw.name)  # same filesystem: an atomic move
    if readmission:
        record_readmission(readmission, "quarantined again", report=str(report))
    msg = (
        f"{what} {interval_name(partition)} of pipeline {cfg.name} failed validation: "
        f"{st.get('unsuccessful_expectations')} of {st.get('evaluated_expectations')} expectations failed\n"
        f"{describe_failures(summary)}\n"
        f"quarantined to {qdir} (report: {report.name}); Data Docs: {docs_url}"
    )
    log.error(msg)
    raise DataValidationFailed(msg, summary)
