"""Exact sums on both databases, whatever their size.

PostgreSQL sums integers and numerics as `numeric`, which does not overflow. SQLite sums 64-bit
integers and stops with "integer overflow" past 2^63 - and SQLite keeps decimals as scaled
integers (storage.ExactDecimal), so a column of money near its precision reaches that after a
few rows. Then the sum is asked again, split exactly in two: SUM(v / 2^32) and SUM(v % 2^32)
(SQLite's integer division and remainder both truncate towards zero, so v = q * 2^32 + r for
every row), each far from overflowing, and Python adds q * 2^32 + r without limit. The fast
single SUM stays the normal path; only an overflowing query pays for the second.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Context, Decimal
from typing import Any, TypeVar

import sqlalchemy as sa

from .storage import ExactDecimal

SPLIT = 2**32
EXACT = Context(prec=200)  # enough digits for any sum of 38-digit numbers
T = TypeVar("T")


def overflowed(exc: BaseException) -> bool:
    """SQLite's answer to a SUM beyond 64 bits."""
    return isinstance(exc, sa.exc.OperationalError) and "integer overflow" in str(exc.orig or exc).lower()


def sum_columns(column: sa.ColumnElement, label: str, split: bool) -> list[Any]:
    """The SELECT columns that sum `column` as `label` (plus `label`_hi when split)."""
    if not split:
        return [sa.func.sum(column).label(label)]
    raw = sa.type_coerce(column, sa.BigInteger())  # the stored integers, scaled for decimals
    return [sa.func.sum(raw.op("/")(SPLIT), type_=sa.BigInteger()).label(f"{label}_hi"),
            sa.func.sum(raw.op("%")(SPLIT), type_=sa.BigInteger()).label(label)]


def sum_value(row: Mapping, label: str, column: sa.ColumnElement) -> Any:
    """The sum from a row of a query built with `sum_columns` (None when no row had a value)."""
    hi_key = f"{label}_hi"
    if hi_key not in row:
        return row[label]
    high, low = row[hi_key], row[label]
    if high is None and low is None:
        return None
    total = int(high or 0) * SPLIT + int(low or 0)
    if isinstance(column.type, ExactDecimal):
        return Decimal(total).scaleb(-column.type.scale, context=EXACT)
    return total


def run_exact(conn: sa.Connection, build: Callable[[bool], T], run: Callable[[T], Any]) -> Any:
    """`run(build(False))`, and on SQLite's integer overflow `run(build(True))` with split sums
    (in a savepoint-free second statement: the failed one changed nothing)."""
    try:
        return run(build(False))
    except sa.exc.OperationalError as exc:
        if not overflowed(exc):
            raise
    return run(build(True))
