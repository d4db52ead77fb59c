"""Time, one way: every timestamp the loop compares is UTC.

Stored columns are naive UTC (GX type checks and Parquet readers agree on it); dates from configs
and run params become aware UTC datetimes; comparisons of the two go through these functions.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def utc(ts: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken as UTC."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def utc_midnight(d: date | None) -> datetime | None:
    """The start of a day, aware UTC (None stays None)."""
    return None if d is None else datetime(d.year, d.month, d.day, tzinfo=UTC)


def naive_utc(ts: datetime) -> pd.Timestamp:
    """The naive UTC timestamp a stored column is compared with."""
    import pandas as pd

    return pd.Timestamp(utc(ts)).tz_localize(None)


def to_naive_utc(values, fmt: str | None = None) -> pd.Series:
    """A column parsed as naive UTC timestamps; what cannot be parsed becomes NaT.

    Text is read by its declared strftime ``fmt``, or else as ISO 8601 only: ``02/01/2013`` is
    never guessed into a day or a month (pandas would take the first value's reading for all)."""
    import pandas as pd

    values = values if isinstance(values, pd.Series) else pd.Series(values)
    if pd.api.types.is_datetime64_any_dtype(values):
        return pd.to_datetime(values, utc=True).dt.tz_localize(None)
    return pd.to_datetime(values, format=fmt or "ISO8601", utc=True, errors="coerce").dt.tz_localize(None)


AMBIGUOUS_DATE = r"^\s*\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b"  # 02/01/2013: 2 January or 1 February?
