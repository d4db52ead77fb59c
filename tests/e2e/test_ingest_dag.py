"""Ingestion through Airflow: a real week end to end, and a corrupted batch that must be stopped."""

from __future__ import annotations

import contextlib
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from include.foundation.links import viewer_path
from include.foundation.settings import Settings
from include.foundation.storage import PipelinePaths, interval_name, parse_partition_key
from tests.airflow_helpers import plugin, run_dag, run_note, task_states
from tests.factories import demo_yaml
from tests.smtp_inbox import smtp_server

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
WEEK1 = "20130101T0000Z_20130108T0000Z"


@pytest.fixture
def stack():
    with contextlib.ExitStack() as s:
        yield s


def test_real_week_ingested_validated_published(airflow_db, flights_cfg, data_root):
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    dr = run_dag("flights_delay__ingest", logical_date=datetime(2013, 1, 8, tzinfo=UTC), run_conf={})
    assert str(dr.state) == "success", task_states(dr)
    assert task_states(dr) == {"ingest": "success", "validate": "success", "publish": "success"}
    paths = PipelinePaths(data_root, flights_cfg.name)
    assert WEEK1 in paths.curated_partitions()
    rows = len(pd.read_parquet(paths.curated(WEEK1)))
    assert rows > 5000
    assert run_note(dr) == f"2013-01-01--2013-01-07: {rows:,} rows published", run_note(
        dr
    )  # the run list says it
    with create_session() as session:
        events = [e for e in session.query(AssetEvent).all() if e.asset.name == "flights_delay.curated"]
    assert events and events[-1].extra["partition"] == WEEK1


def test_corrupted_batch_is_quarantined_and_nothing_published(
    airflow_db, flights_cfg, data_root, tmp_path, monkeypatch, stack
):
    # A second pipeline fed through a landing folder, with one corrupted real week in it.
    raw = demo_yaml()
    raw.update(
        name="flights_landing",
        source={"kind": "landing_folder", "path": "landing", "pattern": "*.parquet", "format": "parquet"},
        notifications={"email": ["ml-team@example.com"], "smtp_conn_id": "smtp_test"},
    )
    inbox, smtp_uri = stack.enter_context(smtp_server())  # a real SMTP server receives the quarantine
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_TEST", smtp_uri)
    shutil.copy(ROOT / "include" / "pipelines" / "flights_delay.yaml", tmp_path)
    (tmp_path / "flights_landing.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("CT_PIPELINES_DIR", str(tmp_path))

    from include.stages.sources import fetch

    # the first week with its outcomes (this pipeline gets them with the inputs; flights_delay's come later)
    week = fetch(flights_cfg, *parse_partition_key(WEEK1), data_root / "flights_delay", "whole")
    assert len(week) == len(pd.read_parquet(PipelinePaths(data_root, "flights_delay").curated(WEEK1)))
    good_key = "20130108T0000Z_20130115T0000Z"
    landing = data_root / "flights_landing" / "landing"
    landing.mkdir(parents=True)
    week.assign(time_hour=week["time_hour"] + pd.Timedelta(days=7)).to_parquet(
        landing / "good.parquet", index=False
    )
    dr = run_dag("flights_landing__ingest", run_conf={"batch_start": "2013-01-08"})
    assert str(dr.state) == "success", task_states(dr)
    validated = next(ti for ti in dr.get_task_instances() if ti.task_id == "validate").xcom_pull(
        task_ids="validate"
    )
    assert Path(validated["data_docs_page"]).is_file()  # this validation's own Data Docs page
    assert plugin().task_links("flights_landing__ingest", "validate", validated, Settings.from_env()) == {
        "Validation result (Data Docs)": viewer_path(
            data_root, "flights_landing__ingest", validated["data_docs_page"]
        )
    }
    # the viewer serves that page with every CDN asset GX loads pointed at a local copy
    page = plugin().offline_html(Path(validated["data_docs_page"]).read_text(), "/ct-loop/static")
    assert not re.search(r'<(script|link|img)\b[^>]*(src|href)="https?://', page)
    assert len(re.findall(r'"/ct-loop/static/[^"]+"', page)) >= 10
    assert inbox.messages == []  # a passing batch is no news

    bad = week.assign(time_hour=week["time_hour"] + pd.Timedelta(days=14)).drop(columns=["carrier"])
    bad.loc[:4, "distance"] = -250
    (landing / "good.parquet").unlink()
    bad.to_parquet(landing / "bad.parquet", index=False)
    dr = run_dag("flights_landing__ingest", run_conf={"batch_start": "2013-01-15"})
    assert str(dr.state) == "failed"
    assert task_states(dr) == {"ingest": "success", "validate": "failed", "publish": "upstream_failed"}
    validate_ti = next(ti for ti in dr.get_task_instances() if ti.task_id == "validate")
    assert validate_ti.try_number == 1  # data errors are not retried

    paths = PipelinePaths(data_root, "flights_landing")
    bad_key = "20130115T0000Z_20130122T0000Z"
    qdir = paths.quarantine_reports(bad_key)[-1].parent
    report = yaml.safe_load((qdir / "validation_result.json").read_text())
    failed = {(f["expectation"], str(f["column"])) for f in report["failures"]}
    assert ("expect_column_to_exist", "carrier") in failed
    assert ("expect_column_values_to_be_between", "distance") in failed
    assert (qdir / "batch.parquet").exists() and not paths.raw(bad_key).exists()
    assert paths.curated_partitions() == [good_key]  # earlier data intact, bad batch not published

    # the failed task kept its details: its extra link opens the failed validation's Data Docs page
    kept = plugin()._task_result(validate_ti.key)
    assert kept["success"] is False and Path(kept["data_docs_page"]).is_file()
    # and the quarantine was mailed: which batch, which expectations, where the log is
    [mail] = inbox.wait(1)
    body = inbox.text(mail)
    assert "flights_landing: batch quarantined" in mail["Subject"] and mail["To"] == "ml-team@example.com"
    assert interval_name(bad_key) in body and "expect_column_to_exist(column=carrier" in body
    assert "/dags/flights_landing__ingest/runs/" in body and "/tasks/validate" in body

    # A published interval run again is a no-op that says so; the published batch is untouched.
    published = paths.curated(good_key).read_bytes()
    dr = run_dag("flights_landing__ingest", run_conf={"batch_start": "2013-01-08"})
    assert str(dr.state) == "success" and set(task_states(dr).values()) == {"skipped"}, task_states(dr)
    assert paths.curated(good_key).read_bytes() == published
    # With replace, the landing folder as it is now is ingested and validated before it replaces it.
    week.assign(time_hour=week["time_hour"] + pd.Timedelta(days=7)).head(3000).to_parquet(
        landing / "good.parquet", index=False
    )
    dr = run_dag("flights_landing__ingest", run_conf={"batch_start": "2013-01-08", "replace": True})
    assert str(dr.state) == "success", task_states(dr)
    out = next(ti for ti in dr.get_task_instances() if ti.task_id == "publish").xcom_pull(task_ids="publish")
    assert (out["replaced_rows"], out["rows"]) == (len(week), 3000)
    assert len(pd.read_parquet(paths.curated(good_key))) == 3000

    # Late rows: a new file with rows of the published week is quarantined, never half-ingested.
    late = week.assign(time_hour=week["time_hour"] + pd.Timedelta(days=7)).head(40)
    pd.concat([late, late.assign(time_hour=late["time_hour"] + pd.Timedelta(days=14))]).to_parquet(
        landing / "late.parquet", index=False
    )
    dr = run_dag("flights_landing__ingest", run_conf={"batch_start": "2013-01-22"})
    assert task_states(dr)["ingest"] == "failed"
    assert next(ti for ti in dr.get_task_instances() if ti.task_id == "ingest").try_number == 1
    assert not (landing / "late.parquet").exists() and len(pd.read_parquet(paths.curated(good_key))) == 3000
    [report] = (paths.base / "quarantine" / "landing").glob("late-*.parquet.error.json")
    assert yaml.safe_load(report.read_text())["late_rows"] == {good_key: 40}
    mail = inbox.wait(2)[1]
    assert f"holds 40 rows of intervals already published: {good_key} (40 rows)" in inbox.text(mail)


def test_overlapping_manual_batch_is_refused_and_windows_never_double(
    airflow_db, flights_cfg, data_root, tmp_path, monkeypatch
):
    """A manual batch over scheduled weeks once put ~6k flights into the data twice."""
    from include.foundation.storage import partition_key
    from include.stages.datasets import load_window

    raw = demo_yaml()
    raw["name"] = "flights_overlap"
    (tmp_path / "flights_overlap.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("CT_PIPELINES_DIR", str(tmp_path))
    for end in (datetime(2013, 1, 8, tzinfo=UTC), datetime(2013, 1, 15, tzinfo=UTC)):
        dr = run_dag("flights_overlap__ingest", logical_date=end, run_conf={})
        assert str(dr.state) == "success", task_states(dr)
    paths = PipelinePaths(data_root, "flights_overlap")
    before = paths.curated_partitions()

    dr = run_dag("flights_overlap__ingest", run_conf={"batch_start": "2013-01-04", "batch_days": 7})
    assert str(dr.state) == "failed" and task_states(dr)["ingest"] == "failed"
    ingest_ti = next(ti for ti in dr.get_task_instances() if ti.task_id == "ingest")
    assert ingest_ti.try_number == 1  # refused at once: retrying cannot help
    assert paths.curated_partitions() == before  # nothing published, earlier data intact

    # State written before the refusal existed: an overlapping partition published anyway.
    cfg = flights_cfg.model_copy(update={"name": "flights_overlap"})
    start, end = datetime(2013, 1, 1, tzinfo=UTC), datetime(2013, 1, 15, tzinfo=UTC)
    clean = load_window(cfg, paths, start, end)
    overlap = clean[(clean["time_hour"] >= "2013-01-04") & (clean["time_hour"] < "2013-01-11")]
    assert len(overlap) > 6000
    key = partition_key(datetime(2013, 1, 4, tzinfo=UTC), datetime(2013, 1, 11, tzinfo=UTC))
    paths.curated(key).parent.mkdir(parents=True)
    overlap.to_parquet(paths.curated(key), index=False)
    window = load_window(cfg, paths, start, end)
    assert len(window) == len(clean)  # the 6k repeated flights are counted once
    assert not window.duplicated(subset=["time_hour", "carrier", "flight", "origin"]).any()


def test_manual_run_with_the_form_left_as_is_continues_the_replay(airflow_db, flights_cfg, data_root):
    """A manual trigger without batch_start (a "now" logical date, far from 2013) ingests the next week."""
    paths = PipelinePaths(data_root, flights_cfg.name)
    assert paths.curated_partitions()[-1] == WEEK1
    dr = run_dag("flights_delay__ingest", run_conf={})
    assert str(dr.state) == "success", task_states(dr)
    assert paths.curated_partitions()[-1] == "20130108T0000Z_20130115T0000Z"
    assert all(ti.try_number == 1 for ti in dr.get_task_instances())
