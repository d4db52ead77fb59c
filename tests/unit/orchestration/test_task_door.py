"""The error policy meets Airflow in one place: permanent errors fail at once, others retry."""

from __future__ import annotations

import pytest

from include.foundation.errors import PermanentError
from include.orchestration.task_door import stage_call
from include.stages.datasets import NotEnoughData


def test_permanent_errors_fail_without_retry_and_others_pass_through():
    from airflow.sdk.exceptions import AirflowFailException

    @stage_call
    def task(kind: str, *, params=None):
        if kind == "permanent":
            raise NotEnoughData("12 rows")
        if kind == "transient":
            raise ConnectionError("tracking server down")
        return {"ok": params}

    with pytest.raises(AirflowFailException, match="NotEnoughData: 12 rows"):
        task("permanent")
    with pytest.raises(ConnectionError):  # left to the task's retries
        task("transient")
    assert task("fine", params=1) == {"ok": 1}
    assert task.__wrapped__.__name__ == "task"  # Airflow sees the task's own signature


@pytest.mark.parametrize("name", ["ConfigError", "NotEnoughData", "LineageError", "HoldoutOverlap", "DataValidationFailed",
                                  "SourceError", "OverlappingBatch", "PromotionConflict", "RollbackError", "EstimatorError"])  # fmt: skip
def test_every_permanent_error_kind_is_in_the_family(name):
    import include.foundation.config
    import include.stages.datasets
    import include.stages.ingest
    import include.stages.registry
    import include.stages.sources
    import include.stages.training
    import include.stages.validation

    modules = [include.foundation.config, include.stages.datasets, include.stages.ingest, include.stages.registry, include.stages.sources,
               include.stages.training, include.stages.validation]  # fmt: skip
    cls = next(getattr(m, name) for m in modules if hasattr(m, name))
    assert issubclass(cls, PermanentError)


def test_a_tracking_server_that_does_not_answer_is_named_and_retried(monkeypatch):
    import socket

    from mlflow import MlflowClient

    from include.foundation.tracking import TrackingServerUnavailable

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    uri = f"http://127.0.0.1:{port}"

    @stage_call
    def promote():
        MlflowClient(tracking_uri=uri).get_registered_model("m")

    with pytest.raises(
        TrackingServerUnavailable, match=f"MLflow tracking server {uri} did not answer"
    ) as err:
        promote()
    assert "retried with backoff" in str(err.value)
    assert not isinstance(err.value, PermanentError)  # keeps the task's retries

    @stage_call
    def broken():
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        broken()


def test_an_outage_without_a_message_is_still_named():
    from mlflow.exceptions import MlflowException

    from include.foundation.tracking import server_outage

    try:
        try:
            raise ConnectionRefusedError()  # no text at all
        except ConnectionRefusedError:
            raise MlflowException(
                "API request to http://mlflow:5000/api/2.0/mlflow/runs/get failed"
            ) from None
    except MlflowException as exc:
        err = exc
    err.__context__ = ConnectionRefusedError()
    assert server_outage(err) == ("http://mlflow:5000", "ConnectionRefusedError: ")


def test_sql_reader_names_a_missing_connection(monkeypatch):
    from include.orchestration.connections import ConnectionUnusable, read_sql

    monkeypatch.delenv("AIRFLOW_CONN_CT_NOWHERE", raising=False)
    with pytest.raises(ConnectionUnusable, match="'ct_nowhere' is not defined"):
        read_sql("ct_nowhere", "SELECT 1", {})


def test_sql_reader_reaches_any_sqlalchemy_database(tmp_path, monkeypatch):
    """A connection type no provider reads, with the driver named in its extra; :start/:end bound."""
    import json
    import sqlite3

    from include.orchestration.connections import read_sql

    db = tmp_path / "w.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE t (ts TEXT, v INT)")
        con.executemany(
            "INSERT INTO t VALUES (?, ?)", [("2024-01-01", 1), ("2024-01-05", 2), ("2024-02-01", 3)]
        )
    conn = {"conn_type": "generic", "schema": str(db), "extra": {"sqlalchemy_driver": "sqlite"}}
    monkeypatch.setenv("AIRFLOW_CONN_CT_ANY", json.dumps(conn))
    df = read_sql("ct_any", "SELECT * FROM t WHERE ts >= :start AND ts < :end",
                  {"start": "2024-01-02", "end": "2024-01-31"})  # fmt: skip
    assert df["v"].tolist() == [2]


def test_a_return_value_is_logged_as_a_one_line_gist():
    from include.orchestration.task_door import gist

    big = {"partition": "20130101T0000Z_20130108T0000Z", "rows": 6012, "drift_share": 0.2727272,
           "columns": {f"c{i}": {"score": i} for i in range(20)}, "reasons": []}  # fmt: skip
    line = gist(big)
    assert line == ("week=2013-01-01--2013-01-07, rows=6012, drift_share=0.2727, "
                    "columns=<20 items>, reasons=<0 items>")  # fmt: skip
    assert "\n" not in gist({"text": "x" * 1000}) and len(gist({"text": "x" * 1000})) == 300
