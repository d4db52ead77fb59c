"""Outcomes that arrive later, through Airflow: collected a week after their inputs, validated
with their own GX suite, quarantined when bad, joined by key, and used by no step before then.

Its own pipeline (``flights_late``): the demo's replayed inputs, published without their outcome
columns, and outcome files that land a week later in a folder of their own (``labels.source``),
written here from the same flights so that a bad one can be made.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from tests.airflow_helpers import run_dag, run_note, task_states
from tests.factories import demo_pipeline_with_weeks

pytestmark = pytest.mark.e2e
NAME = "flights_late"
JAN1 = datetime(2013, 1, 1, tzinfo=UTC)
KEYS = ["time_hour", "carrier", "flight", "origin"]
OUTCOMES = ["dep_delay", "arr_delay", "air_time"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, airflow_db):
    from include.foundation.storage import PipelinePaths

    mp = pytest.MonkeyPatch()
    cfg, settings = demo_pipeline_with_weeks(
        tmp_path_factory.mktemp("late_pipelines"), NAME, 3, mp,
        training={"train_days": 7, "holdout_days": 7, "min_train_rows": 1000},
        labels={"delay_days": 7, "source": {"kind": "landing_folder", "path": "outcomes-landing",
                                             "format": "parquet", "pattern": "*.parquet"}},
    )  # fmt: skip
    paths = PipelinePaths(settings.data_root, NAME)
    (paths.base / "outcomes-landing").mkdir(parents=True, exist_ok=True)
    yield cfg, settings, paths
    mp.undo()


def flights(cfg, week: int) -> pd.DataFrame:
    from include.stages.sources import fetch

    start = JAN1 + timedelta(weeks=week)
    return fetch(cfg, start, start + timedelta(weeks=1), cfg_base(cfg), "whole")


def cfg_base(cfg):
    from include.foundation.settings import Settings
    from include.foundation.storage import PipelinePaths

    return PipelinePaths(Settings.from_env().data_root, cfg.name).base


def land(paths, name: str, df: pd.DataFrame) -> None:
    df.to_parquet(paths.base / "outcomes-landing" / name, index=False)


def collect(week: int, replace: bool = False):
    """A manual run collecting the outcomes of week ``week`` (0 = Jan 1-8)."""
    day = (JAN1 + timedelta(weeks=week)).date().isoformat()
    dr = run_dag(f"{NAME}__outcomes", run_conf={"interval": day, "interval_days": 7, "replace": replace})
    return dr, {t.task_id: t for t in dr.get_task_instances()}


def test_outcomes_arrive_later_are_validated_joined_and_used_only_once_arrived(pipeline):
    from include.stages.datasets import assemble, load_window

    cfg, settings, paths = pipeline
    weeks = paths.curated_partitions()
    inputs = pd.read_parquet(paths.curated(weeks[0]))
    assert not set(OUTCOMES) & set(inputs.columns)  # published without what is known only later

    # the outcomes of week 1 land: collected, validated with their own suite, published, joined
    truth = flights(cfg, 0)
    land(paths, "week1.parquet", truth[KEYS + OUTCOMES])
    dr, tis = collect(0)
    assert task_states(dr) == {"collect": "success", "validate": "success", "publish": "success"}
    published = tis["publish"].xcom_pull(task_ids="publish")
    assert published["joined"] == len(inputs) and published["unknown"] == published["unlabelled"] == 0
    assert run_note(dr) == f"outcomes of 2013-01-01--2013-01-07: {len(inputs):,} rows labelled", run_note(dr)
    assert list(pd.read_parquet(paths.outcomes(weeks[0])).columns) == KEYS + OUTCOMES
    assert tis["validate"].xcom_pull(task_ids="validate")["part"] == "outcomes"

    # every input row kept, with its outcome by key; week 2's are not in yet: unlabelled
    window = load_window(cfg, paths, JAN1, JAN1 + timedelta(weeks=2))
    assert len(window) == len(inputs) + len(pd.read_parquet(paths.curated(weeks[1])))
    by_key = window.set_index(KEYS)["arr_delay"]
    expected = truth.set_index(KEYS)["arr_delay"]
    assert by_key.loc[expected.index].equals(expected)  # the same value for the same flight
    assert window[window["time_hour"] >= pd.Timestamp("2013-01-08")]["arr_delay"].isna().all()

    # a duplicated key and an outcome out of range: quarantined with its report, not published
    bad = flights(cfg, 1)[KEYS + OUTCOMES]
    bad = pd.concat([bad, bad.head(3)], ignore_index=True)
    bad.loc[0, "arr_delay"] = 99999.0
    land(paths, "week2.parquet", bad)
    dr, tis = collect(1)
    assert task_states(dr)["validate"] == "failed" and task_states(dr)["publish"] == "upstream_failed"
    assert not paths.outcomes(weeks[1]).exists()
    [report] = paths.quarantine_reports(weeks[1], "outcomes")
    failed = {f["expectation"] for f in __import__("json").loads(report.read_text())["failures"]}
    assert {"expect_compound_columns_to_be_unique", "expect_column_values_to_be_between"} <= failed, failed
    assert paths.quarantine_reports(weeks[1]) == []  # the week's inputs are not the ones quarantined

    # the producer fixes it (and adds a flight never published): re-collected, the stranger reported
    (paths.base / "outcomes-landing" / "week2.parquet").unlink(missing_ok=True)
    fixed = flights(cfg, 1)[KEYS + OUTCOMES]
    stranger = fixed.head(1).assign(flight=99999)
    land(paths, "week2-fixed.parquet", pd.concat([fixed, stranger], ignore_index=True))
    dr, tis = collect(1)
    assert task_states(dr)["publish"] == "success", task_states(dr)
    published = tis["publish"].xcom_pull(task_ids="publish")
    assert published["unknown"] == 1 and published["joined"] == len(fixed)

    # a training for data up to Jan 22 (outcomes a week late: labelled up to Jan 15) uses weeks 1-2
    out = assemble(cfg, settings.data_root, datetime(2013, 1, 22, tzinfo=UTC), paths.training_dir("t"))
    assert out["holdout_window"][1].startswith("2013-01-15") and out["train"]["rows"] > 1000
    holdout = pd.read_parquet(out["holdout"]["uri"])
    assert holdout["arr_delay"].notna().all() and len(holdout) == fixed["arr_delay"].notna().sum()
