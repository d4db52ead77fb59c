"""SQL reads through Airflow connections: the adapter a ``sql`` source is given
(:data:`include.stages.sources.SqlReader`).

The connection (host, login, password, database) comes from Airflow: its metadata database, an
``AIRFLOW_CONN_<ID>`` variable or a secrets backend; the pipeline file names only its id. The
provider's hook for the connection type (``postgres``, ``sqlite``, ``mysql``, ... from the
common-sql family) makes the SQLAlchemy engine; a connection type without a provider hook is read
through SQLAlchemy with the driver its ``extra`` names (``{"sqlalchemy_driver": "mysql+pymysql"}``),
so any database SQLAlchemy can reach works. The query's ``:start``/``:end`` are bound by
SQLAlchemy (``sqlalchemy.text``) as parameters, the same way on every database.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from include.foundation.errors import PermanentError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


class ConnectionUnusable(PermanentError):
    """The Airflow connection is missing or no SQLAlchemy engine can be made from it."""


def sql_engine(conn_id: str):
    """A SQLAlchemy engine for Airflow connection ``conn_id`` (see the module docstring)."""
    import sqlalchemy as sa
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException: named, not retried
        raise ConnectionUnusable(
            f"Airflow connection {conn_id!r} is not defined (add it in Admin -> Connections, as "
            f"AIRFLOW_CONN_{conn_id.upper()} or in the secrets backend): {exc}"
        ) from exc
    driver = conn.extra_dejson.get("sqlalchemy_driver")
    if not driver:
        try:
            hook = conn.get_hook()
        except Exception as exc:
            raise ConnectionUnusable(
                f"Airflow connection {conn_id!r} has type {conn.conn_type!r}, which no installed provider reads; "
                "install its provider (e.g. apache-airflow-providers-mysql) or set the connection's extra "
                '{"sqlalchemy_driver": "<dialect+driver>"}'
            ) from exc
        if not hasattr(hook, "get_sqlalchemy_engine"):
            raise ConnectionUnusable(
                f"Airflow connection {conn_id!r} ({conn.conn_type}) is not a SQL database"
            )
        return hook.get_sqlalchemy_engine()
    url = sa.URL.create(driver, username=conn.login or None, password=conn.password or None,
                        host=conn.host or None, port=conn.port, database=conn.schema or None)  # fmt: skip
    return sa.create_engine(url)


def read_sql(conn_id: str, query: str, parameters: dict[str, Any]) -> pd.DataFrame:
    """The rows of ``query`` with ``parameters`` bound (never formatted into the SQL)."""
    import pandas as pd
    import sqlalchemy as sa

    engine = sql_engine(conn_id)
    try:
        with engine.connect() as con:
            return pd.read_sql(sa.text(query), con, params=parameters)
    finally:
        engine.dispose()
