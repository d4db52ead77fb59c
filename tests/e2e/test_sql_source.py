"""A SQL source through an Airflow connection, against the real PostgreSQL on loopback.

The test creates a database of its own (dropped at the end) holding a synthetic orders table,
defines the Airflow connection as ``AIRFLOW_CONN_CT_WAREHOUSE`` (the pipeline file names only its
id), and runs the ingest DAG: each week is read with the interval bound as query parameters,
validated and published; a repeat leaves the published week alone; a week the producer spoiled
in the database is quarantined with its report while the earlier weeks stay as they were; asked
back before the fix it is quarantined again, after the fix it is re-admitted and published, each
decision recorded beside the report it replaces.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import timedelta

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from include.foundation.settings import Settings
from tests.airflow_helpers import run_dag, task_states
from tests.factories import KIND_START, kind_table, kind_yaml

pytestmark = pytest.mark.e2e
NAME = "delivery_sql"
QUERY = "SELECT * FROM deliveries WHERE ordered_at >= :start AND ordered_at < :end ORDER BY order_id"


def _pg(sql: str, dbname: str = "postgres", rows=None) -> None:
    import psycopg2
    import psycopg2.extras

    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=dbname)
    conn.autocommit = True
    with conn.cursor() as cur:
        if rows is None:
            cur.execute(sql)
        else:
            psycopg2.extras.execute_values(cur, sql, rows)
    conn.close()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, airflow_db):
    db = f"ct_sql_{uuid.uuid4().hex[:10]}"
    _pg(f"CREATE DATABASE {db}")
    table = kind_table("regression", 3)
    _pg("CREATE TABLE deliveries (ordered_at timestamptz NOT NULL, order_id bigint PRIMARY KEY, "
        "distance_km double precision, items integer, region text, minutes double precision)", db)  # fmt: skip
    rows = [(pd.Timestamp(r.ordered_at).to_pydatetime(), int(r.order_id), float(r.distance_km), int(r.items),
             r.region, float(r.minutes)) for r in table.itertuples()]  # fmt: skip
    _pg("INSERT INTO deliveries VALUES %s", db, rows)
    raw = kind_yaml("regression")
    # a page of 120 rows: a week (about 300) is read through a server-side cursor, written and
    # validated a chunk at a time (the paths a batch larger than memory takes)
    raw.update(
        name=NAME,
        source={"kind": "sql", "conn_id": "ct_warehouse", "query": QUERY},
        limits={"chunk_rows": 120},
    )
    folder = tmp_path_factory.mktemp("sql_pipelines")
    (folder / f"{NAME}.yaml").write_text(yaml.safe_dump(raw))
    mp = pytest.MonkeyPatch()
    mp.setenv("CT_PIPELINES_DIR", str(folder))
    mp.setenv("AIRFLOW_CONN_CT_WAREHOUSE", f"postgresql://postgres@127.0.0.1:5432/{db}")
    yield db, table
    mp.undo()
    _pg(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def ingest(week: int, **conf):
    when = (KIND_START + timedelta(weeks=week)).replace(tzinfo=pd.Timestamp(0, tz="UTC").tzinfo)
    return run_dag(f"{NAME}__ingest", logical_date=when, run_conf=conf)


def test_sql_source_through_an_airflow_connection(warehouse):
    from include.foundation.storage import PipelinePaths, file_digest

    db, table = warehouse
    assert "postgres" not in yaml.safe_dump(kind_yaml("regression"))  # no credentials in the config
    paths = PipelinePaths(Settings.from_env().data_root, NAME)
    for week in (1, 2):
        dr = ingest(week)
        assert str(dr.state) == "success", task_states(dr)
    first, second = paths.curated_partitions()
    published = pd.concat([pd.read_parquet(paths.curated(k)) for k in (first, second)])
    two_weeks = table[
        pd.to_datetime(table["ordered_at"]) < pd.Timestamp(KIND_START + timedelta(weeks=2), tz="UTC")
    ]
    assert sorted(published["order_id"]) == sorted(two_weeks["order_id"])  # every row once, none else
    assert published["ordered_at"].dt.tz is None  # stored as naive UTC, like every source
    assert pq.ParquetFile(paths.curated(first)).metadata.num_row_groups > 1  # written a page at a time

    digest = file_digest(paths.curated(first))
    dr = ingest(1)  # the same week again: left as published
    assert task_states(dr)["ingest"] == "skipped", task_states(dr)
    assert file_digest(paths.curated(first)) == digest

    week3 = KIND_START + timedelta(weeks=2)
    _pg(f"UPDATE deliveries SET minutes = -5 WHERE ordered_at >= '{week3:%Y-%m-%d}' AND order_id % 7 = 0", db)
    dr = ingest(3)
    assert str(dr.state) == "failed" and task_states(dr)["validate"] == "failed", task_states(dr)
    assert paths.curated_partitions() == [first, second]  # nothing published; earlier weeks intact
    [key] = [k for k in os.listdir(paths.base / "quarantine") if k.startswith(f"{week3:%Y%m%d}")]
    [report] = paths.quarantine_reports(key)
    assert "minutes" in report.read_text()
    assert file_digest(paths.curated(first)) == digest

    # asked back before the producer fixed it: validated again, quarantined again, recorded
    start = week3.date().isoformat()
    dr = ingest(4, batch_start=start, readmit=True, reason="asked too early")
    assert task_states(dr)["validate"] == "failed", task_states(dr)
    [early] = (report.parent).glob("readmission-*.json")
    record = json.loads(early.read_text())
    assert record["outcome"] == "quarantined again" and record["reason"] == "asked too early"

    _pg("UPDATE deliveries SET minutes = 30 WHERE minutes < 0", db)  # the producer's fix
    dr = ingest(4, batch_start=start, readmit=True, reason="producer corrected the minutes")
    assert str(dr.state) == "success", task_states(dr)
    assert paths.curated_partitions() == [first, second, key]
    assert file_digest(paths.curated(first)) == digest  # append-only: earlier weeks untouched
    fixed = pd.read_parquet(paths.curated(key))
    assert (fixed["minutes"] > 0).all() and len(fixed) == (
        pd.to_datetime(table["ordered_at"])
        .dt.tz_localize(None)
        .between(week3, week3 + timedelta(days=7), "left")
    ).sum()
    records = [json.loads(p.read_text()) for p in paths.base.glob(f"quarantine/{key}/*/readmission-*.json")]
    [done] = [r for r in records if r["outcome"] == "published"]
    assert done["reason"] == "producer corrected the minutes" and done["requested_by"] == "dag_test"
    assert done["replaces_report"] and done["published"] == str(paths.curated(key)) and done["decided_at"]

    dr = ingest(4, batch_start=start, readmit=True, reason="again")  # published: nothing to re-admit
    assert task_states(dr)["ingest"] == "failed", task_states(dr)


def test_readmit_command_triggers_the_ingest_dag_with_the_request(warehouse, monkeypatch):
    """``make readmit`` checks the interval is quarantined, then triggers the ingest DAG through
    Airflow's CLI with the conf as one argument (no shell)."""
    from scripts import readmit

    calls = []
    monkeypatch.setattr(readmit, "find_pipeline", lambda directory, name: _cfg())
    argv = ["--pipeline", NAME, "--interval", "2030-01-01", "--reason", "x"]
    assert (
        readmit.main(argv, run=lambda cmd, check: calls.append(cmd)) == 2 and not calls
    )  # nothing quarantined
    assert readmit.trigger_command("p__ingest", {"reason": "it's; rm -rf"}) == [
        "airflow", "dags", "trigger", "p__ingest", "--conf", '{"reason": "it\'s; rm -rf"}'
    ]  # fmt: skip


def _cfg():
    from include.foundation.config import PipelineConfig

    raw = kind_yaml("regression")
    # a page of 120 rows: a week (about 300) is read through a server-side cursor, written and
    # validated a chunk at a time (the paths a batch larger than memory takes)
    raw.update(
        name=NAME,
        source={"kind": "sql", "conn_id": "ct_warehouse", "query": QUERY},
        limits={"chunk_rows": 120},
    )
    return PipelineConfig.model_validate(raw)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM deliveries WHERE ordered_at >= :start AND ordered_at < :end; DELETE FROM deliveries; COMMIT",
        "WITH gone AS (DELETE FROM deliveries RETURNING *) SELECT * FROM gone WHERE ordered_at >= :start AND ordered_at < :end",
        "SELECT * INTO copied FROM deliveries WHERE ordered_at >= :start AND ordered_at < :end",
        "DELETE FROM deliveries WHERE ordered_at >= :start AND ordered_at < :end",
    ],
    ids=["second-statement", "writing-cte", "select-into", "dml"],
)
def test_a_query_that_writes_or_holds_two_statements_is_refused_at_load(query):
    from pydantic import ValidationError

    raw = kind_yaml("regression")
    raw.update(name=NAME, source={"kind": "sql", "conn_id": "ct_warehouse", "query": query})
    from include.foundation.config import PipelineConfig

    with pytest.raises(
        ValidationError, match="source.query (must be exactly one statement|may only read|must be a SELECT)"
    ):
        PipelineConfig.model_validate(raw)


def test_every_read_is_read_only_and_rolled_back(warehouse):
    """What the parser cannot see (a function that writes) is stopped by the read-only transaction."""
    from include.orchestration.connections import SqlQueryFailed, read_sql

    db, _ = warehouse
    _pg("CREATE SEQUENCE IF NOT EXISTS tickets", db)
    with pytest.raises(SqlQueryFailed, match="read-only transaction"):
        read_sql("ct_warehouse", "SELECT nextval('tickets') AS n WHERE :start < :end", _interval())


@pytest.mark.parametrize(
    ("query", "params", "says"),
    [
        ("SELECT * FROM nowhere WHERE t >= :start AND t < :end", None, 'relation "nowhere" does not exist'),
        (
            "SELECT * FROM deliveries WHERE region = :nope AND ordered_at >= :start",
            None,
            "bind parameter 'nope'",
        ),
        (
            "SELECT * FROM deliveries WHERE region >= :start AND region < :end",
            None,
            "operator does not exist",
        ),
    ],
    ids=["missing-table", "unknown-bind", "text-vs-timestamp"],
)
def test_sql_errors_that_cannot_heal_are_permanent(warehouse, query, params, says):
    from include.foundation.errors import PermanentError
    from include.orchestration.connections import read_sql

    with pytest.raises(PermanentError, match=says):
        read_sql("ct_warehouse", query, params or _interval())


def test_a_lost_connection_is_retried_not_permanent(monkeypatch):
    import sqlalchemy.exc as sa_exc

    from include.foundation.errors import PermanentError
    from include.orchestration.connections import read_sql

    monkeypatch.setenv("AIRFLOW_CONN_CT_DOWN", "postgresql://postgres@127.0.0.1:1/none")
    with pytest.raises(sa_exc.OperationalError) as err:
        read_sql("ct_down", "SELECT 1 AS x WHERE :start < :end", _interval())
    assert not isinstance(err.value, PermanentError)


def test_a_sqlite_read_is_read_only_too(tmp_path, monkeypatch):
    import sqlite3

    from include.orchestration.connections import SqlQueryFailed, read_sql

    path = tmp_path / "w.db"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE t (ts TEXT, x REAL)")
        con.execute("INSERT INTO t VALUES ('2013-01-02 00:00:00', 1.0)")
    monkeypatch.setenv("AIRFLOW_CONN_CT_LITE", f"sqlite:///{path}")
    rows = read_sql(
        "ct_lite",
        "SELECT * FROM t WHERE ts >= :start AND ts < :end",
        {"start": "2013-01-01", "end": "2013-01-08"},
    )
    assert len(rows) == 1
    with pytest.raises(SqlQueryFailed, match="no such table"):
        read_sql("ct_lite", "SELECT * FROM missing WHERE ts >= :start AND ts < :end", {"start": 1, "end": 2})


def _interval() -> dict:
    start = pd.Timestamp(KIND_START, tz="UTC").to_pydatetime()
    return {"start": start, "end": start + timedelta(days=7)}
