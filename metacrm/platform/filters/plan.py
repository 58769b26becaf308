"""The per-leaf plan both compilers follow: a leaf reduced to a primitive (op, value), with
variables and relative dates resolved and text folded alike, so SQL and Python test the same thing."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from .parse import _DAYS, FilterContext, _Leaf, _Var

_SIMPLE_LOWER = {"\u0130": "i"}  # İ: Unicode's simple mapping (str.lower gives "i" + a combining dot)


def fold_case(text: str) -> str:
    """Unicode simple lower case, one character for one (Ä → ä, П → п, Σ → σ, not only A-Z), as
    the SQL side folds: PostgreSQL's lower() under a UTF-8 ctype, and on SQLite the `mc_lower`
    function db.py registers (SQLite's own lower() is ASCII-only). `contains` and `startswith`
    compare folded text, so SQL and Python filters agree."""
    if text.isascii():
        return text.lower()
    return "".join(_SIMPLE_LOWER.get(c) or (low if len(low := c.lower()) == 1 else c) for c in text)


def _resolve(value: Any, kind: str, ctx: FilterContext) -> Any:
    if not isinstance(value, _Var):
        return value
    if value.name == "$now":
        return ctx.now if kind == "datetime" else ctx.now.date()
    if value.name == "$today":
        return ctx.today if kind == "date" else datetime.combine(ctx.today, time())
    return ctx.user_id if value.name == "$user" else ctx.user_department


def _days_before(base: date, days: int) -> date:
    """base - days, clamped to the earliest representable moment (which nothing precedes)."""
    try:
        return base - timedelta(days=days)
    except OverflowError:
        return type(base).min


def _plan(leaf: _Leaf, ctx: FilterContext) -> tuple[str, Any]:
    """Reduce a leaf to a primitive (op, value) with variables and relative dates resolved.

    A variable that resolves to nothing (no user, no department) matches no value:
    eq/in/ordering are false, ne/nin are true, so an unset `$user` never means "is null".
    """
    op, kind = leaf.op, leaf.kind
    if op in _DAYS:
        base = ctx.now if kind == "datetime" else ctx.today
        start = _days_before(base, leaf.value)
        return ("lt", start) if op == "older_than_days" else ("between", (start, base))
    if op in ("is_null", "changed"):
        return op, leaf.value
    if op in ("in", "nin", "between"):
        values = tuple(_resolve(v, kind, ctx) for v in leaf.value)
        if op == "between":
            return ("false", None) if None in values else (op, values)
        values = tuple(v for v in values if v is not None)
        if not values:
            return ("false" if op == "in" else "true"), None
        return op, values
    value = _resolve(leaf.value, kind, ctx)
    if value is None:
        return ("true" if op == "ne" else "false"), None
    if op in ("contains", "startswith") and kind == "text":
        value = fold_case(value)
    return op, value
