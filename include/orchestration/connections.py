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
from collections.abc import Iterator
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


class SqlQueryFailed(PermanentError):
    """The database refused the query itself (a missing table or column, a bad parameter, a type
    mismatch): the same query fails the same way on every try, so it is not retried."""


# sqlite3 reports a missing table and a syntax error as OperationalError, as it does a locked file
_SQLITE_PERMANENT = (
    "no such table",
    "no such column",
    "syntax error",
    "no such function",
    "ambiguous column",
)


def classify_sql_error(exc: Exception) -> Exception:
    """:class:`SqlQueryFailed` for what a retry cannot heal; anything else (a lost connection, a
    timeout, a locked database) is returned as it is and retried with back-off."""
    import sqlalchemy.exc as sa_exc

    permanent = isinstance(exc, sa_exc.ProgrammingError | sa_exc.DataError | sa_exc.IntegrityError
                           | sa_exc.NotSupportedError | sa_exc.ArgumentError | sa_exc.NoSuchTableError)  # fmt: skip
    permanent = permanent or (
        isinstance(exc, sa_exc.StatementError) and not isinstance(exc, sa_exc.DBAPIError)
    )  # e.g. "A value is required for bind parameter 'x'": raised before the database is asked
    orig = getattr(exc, "orig", None)
    text = str(orig or exc).lower()
    permanent = permanent or (
        isinstance(exc, sa_exc.OperationalError) and any(w in text for w in _SQLITE_PERMANENT)
    )
    # PostgreSQL's SQLSTATE (psycopg: sqlstate, psycopg2: pgcode): data (22), integrity (23), a
    # write in the read-only transaction (25006), syntax or access (42), unsupported (0A)
    state = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
    permanent = permanent or state[:2] in ("22", "23", "42", "0A") or state == "25006"
    if not permanent:
        return exc
    first = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
    return SqlQueryFailed(f"the database refused the query ({type(exc).__name__}): {first}")


def _read_only(con) -> None:
    """Make this transaction unable to write, on the databases that can say so."""
    import sqlalchemy as sa

    dialect = con.dialect.name
    if dialect in ("postgresql", "mysql", "mariadb", "oracle"):
        con.execute(sa.text("SET TRANSACTION READ ONLY"))
    elif dialect == "sqlite":
        con.execute(sa.text("PRAGMA query_only = ON"))


def read_sql(conn_id: str, query: str, parameters: dict[str, Any]) -> pd.DataFrame:
    """The rows of ``query`` with ``parameters`` bound (never formatted into the SQL): exactly one
    read-only statement per try, in a transaction that is read-only where the database supports
    it and is always rolled back, never committed."""
    import pandas as pd

    frames = list(read_sql_chunks(conn_id, query, parameters, None))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def read_sql_chunks(
    conn_id: str, query: str, parameters: dict[str, Any], chunk_rows: int | None
) -> Iterator[pd.DataFrame]:
    """:func:`read_sql`, ``chunk_rows`` rows at a time (None: all at once) through a server-side
    cursor where the database has one (PostgreSQL), so a result larger than memory never is in
    it whole. At least one (possibly empty) frame, with the result's columns."""
    import pandas as pd
    import sqlalchemy as sa
    import sqlalchemy.exc as sa_exc

    from include.foundation.config import read_only_query_problem

    problem = read_only_query_problem(query)  # checked at load too: here it guards every caller
    if problem:
        raise SqlQueryFailed(f"source.query {problem}")
    engine = sql_engine(conn_id)
    try:
        with engine.connect() as con:
            tx = con.begin()
            try:
                _read_only(con)
                if chunk_rows is None:
                    yield pd.read_sql(sa.text(query), con, params=parameters)
                    return
                streamed = con.execution_options(stream_results=True, max_row_buffer=chunk_rows)
                seen = False
                for chunk in pd.read_sql(sa.text(query), streamed, params=parameters, chunksize=chunk_rows):
                    seen = True
                    yield chunk
                if not seen:  # no rows: pandas yields nothing; the columns come from the query itself
                    yield pd.read_sql(sa.text(query), con, params=parameters)
            finally:
                tx.rollback()
                if con.dialect.name == "sqlite":
                    con.execute(sa.text("PRAGMA query_only = OFF"))  # the pooled connection as it was
    except sa_exc.SQLAlchemyError as exc:
        raise classify_sql_error(exc) from exc
    finally:
        engine.dispose()


read_sql.in_chunks = read_sql_chunks  # type: ignore[attr-defined]  # what fetch_chunks streams through
