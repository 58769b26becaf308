"""Date buckets: the text key of a date or datetime for a period (`2025-03-31`, for weeks
the Monday `2025-03-24`, `2025-03`, `2025-Q1`, `2025`), computed in SQL with expressions that
agree on SQLite and PostgreSQL (`period_of`, for GROUP BY), and the same key in Python
(`period_key`, for plugin reports)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

PERIODS = ("day", "week", "month", "quarter", "year")


class _period(FunctionElement):
    """The text bucket of a date / datetime column for a period, on both dialects (one subclass
    per period, so SQLAlchemy's statement cache tells them apart)."""

    type = sa.String()
    name = "period_of"
    inherit_cache = True
    period = "month"


_PERIOD_CLASSES = {p: type(f"period_{p}", (_period,), {"period": p, "inherit_cache": True}) for p in PERIODS}


def period_of(column: Any, period: str) -> _period:
    if period not in PERIODS:
        raise ValueError(period)
    return _PERIOD_CLASSES[period](column)


@compiles(_period)
def _period_sqlite(element: _period, compiler: Any, **kw: Any) -> str:
    col = compiler.process(element.clauses, **kw)
    if element.period == "day":
        return f"strftime('%Y-%m-%d', {col})"
    if element.period == "week":
        return f"date({col}, 'weekday 0', '-6 days')"
    if element.period == "month":
        return f"strftime('%Y-%m', {col})"
    if element.period == "year":
        return f"strftime('%Y', {col})"
    return f"(strftime('%Y', {col}) || '-Q' || ((CAST(strftime('%m', {col}) AS INTEGER) + 2) / 3))"


@compiles(_period, "postgresql")
def _period_pg(element: _period, compiler: Any, **kw: Any) -> str:
    col = compiler.process(element.clauses, **kw)
    if element.period == "day":
        return f"to_char({col}, 'YYYY-MM-DD')"
    if element.period == "week":
        return f"to_char(date_trunc('week', {col}), 'YYYY-MM-DD')"
    if element.period == "month":
        return f"to_char({col}, 'YYYY-MM')"
    if element.period == "year":
        return f"to_char({col}, 'YYYY')"
    return f"to_char({col}, 'YYYY-\"Q\"Q')"


def period_key(value: date | datetime | None, period: str) -> str | None:
    """The same bucket computed in Python (plugin reports use it)."""
    if value is None:
        return None
    if period == "day":
        return value.strftime("%Y-%m-%d")
    if period == "week":
        day = value.date() if isinstance(value, datetime) else value
        return date.fromordinal(day.toordinal() - day.weekday()).isoformat()
    if period == "month":
        return f"{value.year:04d}-{value.month:02d}"
    if period == "year":
        return f"{value.year:04d}"
    if period == "quarter":
        return f"{value.year:04d}-Q{(value.month + 2) // 3}"
    raise ValueError(period)
