"""A GX suite over a batch larger than memory: the expectations are evaluated by Great
Expectations on each chunk of rows and the results combined exactly into the result one run over
the whole batch gives, which is then stored and rendered by GX (its validation store, its Data Docs).

How each kind combines (the suite's kinds: :func:`include.stages.validation.build_expectations`):

* column map expectations (not null, between, in set, not in set; ``mostly``): counts summed,
  percentages and ``mostly`` judged from the sums with GX's own rule, the first 20 unexpected
  values in row order;
* uniqueness (one column or compound): over the whole batch, never per chunk. Each row's key is
  hashed (8 bytes a row); only rows whose hash repeats are read again and compared exactly;
* the row count summed; the target's mean and standard deviation from each chunk's count, mean and
  sum of squared deviations (Chan's parallel formula);
* column existence and type: the same in every chunk of one Parquet file (the file has one schema);
  a chunk that fails fails the whole.
"""

from __future__ import annotations

import copy
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from include.foundation.errors import PermanentError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

PARTIAL = 20  # GX's partial_unexpected_count for result_format SUMMARY
MAP = {"expect_column_values_to_not_be_null", "expect_column_values_to_be_between",
       "expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set"}  # fmt: skip
UNIQUE = {"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"}
MOMENTS = {"expect_column_mean_to_be_between", "expect_column_stdev_to_be_between"}
SAME_IN_EVERY_CHUNK = {"expect_column_to_exist", "expect_column_values_to_be_in_type_list"}
ROW_COUNT = "expect_table_row_count_to_be_between"


class UncombinableExpectation(PermanentError):
    """An expectation whose chunk results cannot be combined exactly: the suite gained a kind
    this module does not know."""


class _Moments:
    """Count, mean and sum of squared deviations of a column's non-null values, mergeable."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, values) -> None:
        import numpy as np

        x = np.asarray(values, dtype="float64")
        x = x[~np.isnan(x)]
        if not len(x):
            return
        n, mean = len(x), float(x.mean())
        m2 = float(((x - mean) ** 2).sum())
        delta, total = mean - self.mean, self.n + n
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total

    def stdev(self) -> float | None:
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else None


def validate_in_chunks(
    run_chunk: Callable[[pd.DataFrame], Any],
    chunks: Callable[[list[str] | None], Iterable[pd.DataFrame]],
    moment_columns: list[str],
):
    """The suite's result over every chunk, combined (see the module's docstring).

    ``run_chunk(df)`` validates one chunk with GX and returns its ExpectationSuiteValidationResult;
    ``chunks(columns)`` reads the batch again, a chunk at a time (only ``columns`` when given);
    ``moment_columns``: the columns whose mean or standard deviation the suite bounds."""
    moment_cols = sorted(set(moment_columns))
    moments = {c: _Moments() for c in moment_cols}
    combined, parts, offset = None, [], 0
    for df in chunks(None):
        result = run_chunk(df)
        for col in moment_cols:
            if col in df:
                moments[col].add(df[col])
        parts.append((offset, result))
        offset += len(df)
        if combined is None:
            combined = copy.deepcopy(result)
    assert combined is not None  # iter_frames yields at least one (possibly empty) frame
    kinds = {r.expectation_config.type for r in combined.results}
    unknown = kinds - MAP - UNIQUE - MOMENTS - SAME_IN_EVERY_CHUNK - {ROW_COUNT}
    if unknown:
        raise UncombinableExpectation(f"expectations {sorted(unknown)} cannot be combined over chunks")
    for i, target in enumerate(combined.results):
        config = target.expectation_config
        chunk_results = [(off, r.results[i]) for off, r in parts]
        raised = [r for _, r in chunk_results if _raised(r)]
        if raised:  # GX could not evaluate it (a missing column, text compared with numbers): failed
            target.success, target.result, target.exception_info = (
                False,
                raised[0].result,
                raised[0].exception_info,
            )
        elif config.type in UNIQUE:
            _combine_unique(target, config, chunks, offset)
        elif config.type in MOMENTS:
            _combine_moments(target, config, moments[config.kwargs["column"]])
        elif config.type == ROW_COUNT:
            target.result["observed_value"] = offset
            target.success = _within(offset, config.kwargs)
        elif config.type in MAP or "element_count" in (
            target.result or {}
        ):  # a text column's type: per value
            _combine_map(target, chunk_results, config.kwargs)
        else:
            target.success = all(r.success for _, r in chunk_results)
    _restate(combined)
    return combined


def _raised(result) -> bool:
    """Whether GX raised evaluating the expectation on a chunk (its exception_info says so)."""
    info = result.exception_info or {}
    if "raised_exception" in info:
        return bool(info["raised_exception"])
    return any(isinstance(v, dict) and v.get("raised_exception") for v in info.values())


def _restate(combined) -> None:
    """The suite's success and statistics from its (combined) expectation results."""
    ok = sum(bool(r.success) for r in combined.results)
    total = len(combined.results)
    combined.success = ok == total
    combined.statistics.update(evaluated_expectations=total, successful_expectations=ok,
                               unsuccessful_expectations=total - ok,
                               success_percent=ok / total * 100 if total else None)  # fmt: skip


def _within(value, kwargs: dict) -> bool:
    """GX's bounds check: ``min_value``/``max_value`` (None: open), strict when asked."""
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if value is None:
        return False
    if low is not None and (value <= low if kwargs.get("strict_min") else value < low):
        return False
    return not (high is not None and (value >= high if kwargs.get("strict_max") else value > high))


def _combine_map(target, chunk_results, kwargs: dict) -> None:
    element = unexpected = missing = 0
    has_missing = "missing_count" in (target.result or {})
    values: list = []
    indexes: list = []
    for off, r in chunk_results:
        res = r.result or {}
        element += res.get("element_count") or 0
        unexpected += res.get("unexpected_count") or 0
        missing += res.get("missing_count") or 0
        values += res.get("partial_unexpected_list") or []
        indexes += [off + i for i in res.get("partial_unexpected_index_list") or [] if isinstance(i, int)]
    considered = element - missing if has_missing else element
    mostly = kwargs.get("mostly", 1.0)
    target.success = element == 0 or considered == 0 or (considered - unexpected) / considered >= mostly
    _map_result(target, element, unexpected, missing if has_missing else None, values[:PARTIAL],
                indexes[:PARTIAL] if indexes else None)  # fmt: skip


def _map_result(target, element, unexpected, missing, values, indexes) -> None:
    """``target.result`` as GX's map output would state those counts (``_format_map_output``)."""
    res = target.result = dict(target.result or {})
    total = unexpected / element * 100 if element else None
    res.update(element_count=element, unexpected_count=unexpected, partial_unexpected_list=values)
    if missing is None:
        res["unexpected_percent"] = total
    else:
        considered = element - missing
        nonmissing = unexpected / considered * 100 if considered else None
        res.update(missing_count=missing, missing_percent=missing / element * 100 if element else None,
                   unexpected_percent_total=total, unexpected_percent_nonmissing=nonmissing,
                   unexpected_percent=nonmissing)  # fmt: skip
    hashable = [tuple(v.values()) if isinstance(v, dict) else v for v in values]
    try:
        res["partial_unexpected_counts"] = [{"value": k, "count": n} for k, n in
                                            sorted(Counter(hashable).most_common(PARTIAL), key=lambda x: (-x[1], x[0]))]  # fmt: skip
    except TypeError:
        res["partial_unexpected_counts"] = [{"error": "partial_exception_counts requires a hashable type"}]
    if indexes is not None:
        res["partial_unexpected_index_list"] = indexes


def _combine_unique(target, config, chunks, rows: int) -> None:
    """Rows whose key occurs more than once in the whole batch (GX counts every occurrence)."""
    import numpy as np
    import pandas as pd

    cols = [config.kwargs["column"]] if "column" in config.kwargs else list(config.kwargs["column_list"])
    hashes, considered, offset = np.empty(rows, dtype="uint64"), np.zeros(rows, dtype=bool), 0
    for df in chunks(cols):
        keep = df[cols].notna().any(axis=1).to_numpy() if len(cols) > 1 else df[cols[0]].notna().to_numpy()
        hashes[offset : offset + len(df)] = pd.util.hash_pandas_object(df[cols], index=False).to_numpy()
        considered[offset : offset + len(df)] = keep
        offset += len(df)
    repeated = pd.Series(hashes[considered]).duplicated(keep=False).to_numpy()
    candidate = np.zeros(rows, dtype=bool)
    candidate[np.flatnonzero(considered)[repeated]] = True
    del hashes
    found, offset = [], 0
    for df in chunks(cols):  # exact: only rows whose hash repeats are compared by value
        mask = candidate[offset : offset + len(df)]
        if mask.any():
            found.append(df.loc[mask, cols].set_axis(np.flatnonzero(mask) + offset))
        offset += len(df)
    dup = pd.concat(found) if found else pd.DataFrame(columns=cols)
    dup = dup[dup.duplicated(keep=False)]
    element, kept = rows, int(considered.sum())
    values = dup[cols[0]].head(PARTIAL).tolist() if len(cols) == 1 else dup.head(PARTIAL).to_dict("records")
    target.success = kept == 0 or element == 0 or len(dup) == 0
    _map_result(target, element, len(dup), element - kept, values, dup.index[:PARTIAL].tolist())


def _combine_moments(target, config, moments: _Moments) -> None:
    value = moments.mean if config.type == "expect_column_mean_to_be_between" else moments.stdev()
    if moments.n == 0:
        value = None
    target.result = {**(target.result or {}), "observed_value": value}
    target.success = _within(value, config.kwargs)
