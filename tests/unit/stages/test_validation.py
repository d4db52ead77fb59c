from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from include.foundation.storage import PipelinePaths
from include.stages.ingest import ingest_batch, publish_batch
from include.stages.validation import DataValidationFailed, validate_batch, validate_frame

JAN1, JAN8 = datetime(2013, 1, 1, tzinfo=UTC), datetime(2013, 1, 8, tzinfo=UTC)


@pytest.fixture(scope="module")
def week(flights_cfg, tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("week")
    return pd.read_parquet(ingest_batch(flights_cfg, root, JAN1, JAN8)["uri"])


def test_real_week_passes(flights_cfg, week, tmp_path):
    summary, docs = validate_frame(flights_cfg, week, tmp_path)
    assert summary["success"], summary["failures"]
    assert summary["statistics"]["evaluated_expectations"] > 50
    assert docs.startswith("file://") and docs.endswith("index.html")


def _bad(week: pd.DataFrame, kind: str) -> pd.DataFrame:
    df = week.copy()
    if kind == "missing_column":
        return df.drop(columns=["distance"])
    if kind == "wrong_type":
        df["month"] = df["month"].astype(str)
    elif kind == "null":
        df.loc[:10, "carrier"] = None
    elif kind == "range":
        df.loc[:2, "distance"] = -100.0
    elif kind == "not_allowed":
        df.loc[:5, "origin"] = "BOS"
    elif kind == "duplicates":
        df = pd.concat([df, df.head(20)], ignore_index=True)
    elif kind == "too_few_rows":
        df = df.head(10)
    return df


@pytest.mark.parametrize(
    "kind, expectation, column",
    [
        ("missing_column", "expect_column_to_exist", "distance"),
        ("wrong_type", "expect_column_values_to_be_in_type_list", "month"),
        ("null", "expect_column_values_to_not_be_null", "carrier"),
        ("range", "expect_column_values_to_be_between", "distance"),
        ("not_allowed", "expect_column_values_to_be_in_set", "origin"),
        ("duplicates", "expect_compound_columns_to_be_unique", ["time_hour", "carrier", "flight", "origin"]),
        ("too_few_rows", "expect_table_row_count_to_be_between", None),
    ],
)
def test_each_failure_kind_is_named(flights_cfg, week, tmp_path, kind, expectation, column):
    summary, _ = validate_frame(flights_cfg, _bad(week, kind), tmp_path)
    assert not summary["success"]
    assert (expectation, column) in [(f["expectation"], f["column"]) for f in summary["failures"]]


def test_failed_batch_is_quarantined_with_report(flights_cfg, week, tmp_path):
    paths = PipelinePaths(tmp_path, flights_cfg.name)
    key = "20130101T0000Z_20130108T0000Z"
    paths.raw(key).parent.mkdir(parents=True)
    _bad(week, "range").to_parquet(paths.raw(key), index=False)
    with pytest.raises(DataValidationFailed) as err:
        validate_batch(flights_cfg, tmp_path, key)
    msg = str(err.value)
    assert "expect_column_values_to_be_between(column=distance" in msg and "e.g. [-100" in msg
    assert not paths.raw(key).exists()
    [report] = paths.quarantine_reports(key)
    assert (report.parent / "batch.parquet").exists() and report.parent.parent.name == key
    assert err.value.result["report"] == str(report)
    assert err.value.result["failures"][0]["column"] == "distance"
    assert paths.curated_partitions() == []
    # a retry cannot sneak the batch through
    with pytest.raises(DataValidationFailed, match="already quarantined"):
        validate_batch(flights_cfg, tmp_path, key)
    # the same interval re-ingested and failing again keeps both batches and both reports
    _bad(week, "range").head(500).to_parquet(paths.raw(key), index=False)
    with pytest.raises(DataValidationFailed):
        validate_batch(flights_cfg, tmp_path, key)
    assert [r.parent.parent.name for r in paths.quarantine_reports(key)] == [key, key]
    assert len({r.read_text() for r in paths.quarantine_reports(key)}) == 2


def test_good_batch_publishes(flights_cfg, week, tmp_path):
    paths = PipelinePaths(tmp_path, flights_cfg.name)
    key = "20130101T0000Z_20130108T0000Z"
    paths.raw(key).parent.mkdir(parents=True)
    week.to_parquet(paths.raw(key), index=False)
    summary = validate_batch(flights_cfg, tmp_path, key)
    assert summary["success"] and summary["rows"] == len(week)
    out = publish_batch(flights_cfg, tmp_path, key)
    assert paths.curated_partitions() == [key]
    assert pd.read_parquet(out["uri"]).equals(week)


@pytest.fixture(scope="module")
def outcomes(flights_cfg, tmp_path_factory) -> pd.DataFrame:
    """The first week's outcomes, as they arrive a week after its inputs (the demo's delay)."""
    from include.stages.sources import fetch

    return fetch(flights_cfg, JAN1, JAN8, tmp_path_factory.mktemp("outcomes") / "flights_delay", "outcomes")


def test_label_collapsing_to_one_class_is_stopped(flights_cfg, outcomes, tmp_path):
    """Every value in range, yet no flight late: the label share expectation catches it."""
    on_time = outcomes.assign(arr_delay=outcomes["arr_delay"].clip(upper=10))
    summary, _ = validate_frame(flights_cfg, on_time, tmp_path, "outcomes")
    assert not summary["success"]
    failed = [f for f in summary["failures"] if f["column"] == "arr_delay"]
    assert failed and "positive" in failed[0]["description"]
    assert validate_frame(flights_cfg, outcomes, tmp_path, "outcomes")[0]["success"]


def test_inputs_and_outcomes_that_arrive_apart_have_suites_of_their_own(flights_cfg, week, outcomes):
    from include.stages.validation import build_expectations

    def columns(part):
        return {getattr(e, "column", None) for e in build_expectations(flights_cfg, part)} - {None}

    def kinds(part):
        return {type(e).__name__ for e in build_expectations(flights_cfg, part)}

    late = {"dep_delay", "arr_delay", "air_time"}
    assert late.isdisjoint(week.columns) and not late & columns("inputs")  # the inputs: no outcome
    assert columns("outcomes") == late | {"time_hour", "carrier", "flight", "origin"}  # keys + outcomes
    assert "ExpectCompoundColumnsToBeUnique" in kinds("outcomes")  # a key twice would be a guess
    assert "ExpectTableRowCountToBeBetween" not in kinds("outcomes")
    assert columns("whole") == columns("inputs") | late
    assert list(outcomes.columns) == ["time_hour", "carrier", "flight", "origin", *sorted(late, key=[
        "dep_delay", "arr_delay", "air_time"].index)]  # fmt: skip


def _kind_week(kind: str) -> pd.DataFrame:
    from tests.factories import kind_table

    df = kind_table(kind, 1)
    ts = df.columns[0]
    return df.assign(**{ts: pd.to_datetime(df[ts]).dt.tz_localize(None)})


@pytest.mark.parametrize(
    "kind, spoil, expectation, column",
    [
        ("multiclass", lambda d: d.assign(team="billing"), "expect_column_values_to_be_in_set", "team"),
        ("multiclass", lambda d: d.assign(team=d["team"].where(d["team"] != "sales", "network")),
         "expect_column_values_to_be_in_set", "team"),  # a class below min_class_share
        ("regression", lambda d: d.assign(minutes=30.0), "expect_column_stdev_to_be_between", "minutes"),
        ("regression", lambda d: d.assign(minutes=(d["minutes"] + 180).clip(upper=399)),
         "expect_column_mean_to_be_between", "minutes"),
    ],
)  # fmt: skip
def test_each_target_kind_has_its_own_expectations(tmp_path, kind, spoil, expectation, column):
    """Multiclass: the declared classes, each at least min_class_share; regression: a target that
    is not constant and a mean inside target.mean_between."""
    from tests.factories import kind_cfg

    cfg, week = kind_cfg(kind), _kind_week(kind)
    summary, _ = validate_frame(cfg, week, tmp_path)
    assert summary["success"], summary["failures"]
    summary, _ = validate_frame(cfg, spoil(week), tmp_path)
    assert not summary["success"]
    assert (expectation, column) in [(f["expectation"], f["column"]) for f in summary["failures"]]


def test_data_docs_name_each_validation_by_its_week_and_pipeline(flights_cfg, week, tmp_path):
    """The run name is the batch's interval and the asset the pipeline, so a failed week can be
    found in Data Docs' list (not ``__none__`` / ``batches`` for every one)."""
    paths = PipelinePaths(tmp_path, flights_cfg.name)
    key = "20130101T0000Z_20130108T0000Z"
    paths.raw(key).parent.mkdir(parents=True)
    week.to_parquet(paths.raw(key), index=False)
    summary = validate_batch(flights_cfg, tmp_path, key)
    page = summary["data_docs_page"]
    assert "/2013-01-01--2013-01-07/" in page, page
    index = paths.gx_project / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    html = (
        index.read_text()
        if index.exists()
        else next(paths.gx_project.rglob("local_site/index.html")).read_text()
    )
    assert "2013-01-01--2013-01-07" in html and f"{flights_cfg.name}" in html and "__none__" not in html
    # a week's name is no date: GX would read "2013-01-22--2013-01-28" as one with a -28 h offset
    from include.stages.validation import validate_frame

    result, _ = validate_frame(flights_cfg, week, paths.gx_project, run_name="2013-01-22--2013-01-28")
    assert result["success"] and list(paths.gx_project.rglob("2013-01-22--2013-01-28"))  # its run, by name


def test_publish_refuses_a_batch_that_did_not_pass_validation(flights_cfg, week, tmp_path):
    """validate marked success by hand (or a batch rewritten after it passed): nothing is published."""
    from include.foundation.storage import UnvalidatedBatch

    paths = PipelinePaths(tmp_path, flights_cfg.name)
    key = "20130101T0000Z_20130108T0000Z"
    paths.raw(key).parent.mkdir(parents=True)
    week.to_parquet(paths.raw(key), index=False)
    with pytest.raises(
        UnvalidatedBatch, match="has not passed validation .was validate marked success by hand"
    ):
        publish_batch(flights_cfg, tmp_path, key)
    assert paths.curated_partitions() == []
    validate_batch(flights_cfg, tmp_path, key)
    _bad(week, "range").to_parquet(paths.raw(key), index=False)  # rewritten after it passed
    with pytest.raises(UnvalidatedBatch):
        publish_batch(flights_cfg, tmp_path, key)
    assert paths.curated_partitions() == []


def test_a_quarantined_interval_stays_quarantined_on_a_plain_re_run(flights_cfg, tmp_path):
    """A re-run or clear of the ingest run (the source fixed meanwhile) publishes nothing: only a
    re-admission with a reason does."""
    from include.stages.ingest import QuarantinedInterval

    paths = PipelinePaths(tmp_path, flights_cfg.name)
    start, end = datetime(2013, 1, 1, tzinfo=UTC), datetime(2013, 1, 8, tzinfo=UTC)
    key = ingest_batch(flights_cfg, tmp_path, start, end)["partition"]
    _bad(pd.read_parquet(paths.raw(key)), "range").to_parquet(paths.raw(key), index=False)  # what came in
    with pytest.raises(DataValidationFailed):
        validate_batch(flights_cfg, tmp_path, key)
    for replace in (False, True):
        with pytest.raises(
            QuarantinedInterval, match="is quarantined .*re-admit it with a reason.*readmit: true"
        ):
            ingest_batch(flights_cfg, tmp_path, start, end, replace=replace)
    assert not paths.raw(key).exists() and paths.curated_partitions() == []
    readmit = {"by": "ops", "reason": "producer re-exported the week", "run_id": "manual__readmit"}
    batch = ingest_batch(flights_cfg, tmp_path, start, end, readmit=readmit)
    assert batch["readmission"]["reason"] == "producer re-exported the week"
