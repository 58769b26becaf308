"""Computed fields on the write path: autonumbers, formulas (Jinja2 sandbox, stored),
rollups (kept current when children change), and the parent's last_activity_at.
"""

from __future__ import annotations

import functools
import logging
import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from jinja2.sandbox import ImmutableSandboxedEnvironment

from . import db
from .clock import utcnow
from .errors import OutOfRange
from .storage import WIDE
from .sums import run_exact, sum_columns, sum_value

log = logging.getLogger(__name__)
SANDBOX = ImmutableSandboxedEnvironment()
COUNTER_RE = re.compile(r"\{(0+)\}")


def next_sequence(conn: sa.Connection, name: str) -> int:
    """An atomic counter (row lock on PostgreSQL, the write lock on SQLite)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(db.sequence).values(name=name, value=1)
    stmt = stmt.on_conflict_do_update(index_elements=["name"], set_={"value": db.sequence.c.value + 1})
    conn.execute(stmt)
    return int(conn.execute(sa.select(db.sequence.c.value).where(db.sequence.c.name == name)).scalar())


def format_autonumber(fmt: str, counter: int, now: datetime) -> str:
    text = fmt.replace("{YYYY}", f"{now.year:04d}").replace("{YY}", f"{now.year % 100:02d}")
    text = text.replace("{MM}", f"{now.month:02d}").replace("{DD}", f"{now.day:02d}")
    return COUNTER_RE.sub(lambda m: f"{counter:0{len(m.group(1))}d}", text)


def period_key(fmt: str, now: datetime) -> str:
    """Counters restart when the format's date part changes (Q-{YYYY}-{0000} restarts yearly)."""
    return format_autonumber(COUNTER_RE.sub("", fmt), 0, now)


def autonumber_hook(ctx) -> None:
    if ctx.op != "create":
        return
    for fdef in ctx.obj.fields.values():
        if fdef.type == "rollup" and fdef.function in ("count", "sum") and ctx.record.get(fdef.name) is None:
            ctx.record[fdef.name] = coerce_result(0, fdef.result_type, fdef.scale)
    now = utcnow()
    for fdef in ctx.obj.fields.values():
        if fdef.type == "autonumber" and not ctx.record.get(fdef.name):
            fmt = fdef.format or "{0000}"
            counter = next_sequence(ctx.conn, f"{ctx.obj.name}.{fdef.name}.{period_key(fmt, now)}")
            ctx.record[fdef.name] = format_autonumber(fmt, counter, now)


INT64 = 2**63


def out_of_range(fdef, value: Any) -> str | None:
    """Why a computed value cannot be stored in `fdef` (None if it fits): integers are 64-bit,
    decimals have at most precision - scale digits before the point."""
    if isinstance(value, bool) or value is None:
        return None
    result_type = fdef.result_type
    if result_type == "integer" and isinstance(value, int) and not -INT64 <= value < INT64:
        return "The result is beyond a 64-bit integer."
    if result_type in ("decimal", "currency", "percent") and isinstance(value, Decimal) and value.is_finite():
        scale = fdef.scale if fdef.scale is not None else 2
        digits = (fdef.precision or 18) - scale
        if value and value.adjusted() + 1 > digits:
            return f"The result has more than {digits} digits before the point."
    return None


def require_fits(obj, fdef, value: Any, cause: str | None = None) -> None:
    """Refuse (422 value_out_of_range naming the field) a computed value its field cannot hold."""
    reason = out_of_range(fdef, value)
    if reason:
        where = f"{obj.name}.{fdef.name}"
        raise OutOfRange(f"{where} would be out of range: {reason}", fields={cause or fdef.name: [
            f"{reason} ({where})" if cause else reason]}, object=obj.name, field=fdef.name)


def coerce_result(value: Any, result_type: str | None, scale: int | None) -> Any:
    if value is None or value == "":
        return None
    try:
        if result_type in ("decimal", "currency", "percent"):
            number = Decimal(str(value))
            # a wide context: a sum past 28 digits is quantized, not turned into None silently
            return number.quantize(Decimal(1).scaleb(-(scale if scale is not None else 2)), context=WIDE)
        if result_type == "integer":
            return int(Decimal(str(value)))
        if result_type == "boolean":
            return bool(value)
        if result_type == "date":
            return value if isinstance(value, date) else date.fromisoformat(str(value))
        if result_type == "datetime":
            return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return str(value)
    except (InvalidOperation, ValueError, TypeError):
        return None


class Num(Decimal):
    """A Decimal that accepts float literals from formulas (1.13 is read as Decimal('1.13')),
    so money stays exact instead of failing or drifting through float."""

    def _wrap(op):
        def method(self, other):
            if isinstance(other, float):
                other = Decimal(repr(other))
            result = getattr(Decimal, op)(self, other)
            return Num(result) if isinstance(result, Decimal) else result

        return method

    for _op in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
                "__rtruediv__", "__floordiv__", "__mod__", "__pow__"):
        locals()[_op] = _wrap(_op)
    del _op, _wrap


def _formula_value(value: Any) -> Any:
    return Num(value) if isinstance(value, Decimal) else value


@functools.lru_cache(maxsize=1024)
def _compile(expression: str):
    return SANDBOX.compile_expression(expression, undefined_to_none=True)


def compute_formulas(obj, record: dict, cause: str | None = None) -> dict:
    """The formula fields' values for `record` (a broken formula gives None, never an error; a
    result its field cannot store refuses the save, 422 naming the field, or `cause`)."""
    values = {}
    for fdef in obj.fields.values():
        if fdef.type != "formula" or not fdef.expression:
            continue
        try:
            compiled = _compile(fdef.expression)
            env = {k: _formula_value(v) for k, v in record.items() if k.isidentifier()}
            value = compiled(record=env, **env)
        except Exception as exc:  # noqa: BLE001 - a broken formula must not block saving the record
            log.warning("formula %s.%s failed: %s", obj.name, fdef.name, exc)
            value = None
        values[fdef.name] = record[fdef.name] = coerce_result(value, fdef.result_type, fdef.scale)
        require_fits(obj, fdef, record[fdef.name], cause)
    return values


def formula_hook(ctx) -> None:
    if ctx.op in ("create", "update"):
        compute_formulas(ctx.obj, ctx.record)


def rollup_definitions(registry, child_name: str) -> list[tuple[Any, Any]]:
    """(parent object, rollup field) pairs that aggregate `child_name`."""
    found = []
    for parent in registry.objects.values():
        for fdef in parent.fields.values():
            if fdef.type == "rollup" and fdef.child_object == child_name:
                found.append((parent, fdef))
    return found


def rollup_hook(ctx) -> None:
    from .filters import FilterContext, compile_sql

    cache = ctx.service.compiled.cache
    definitions = cache.get(("rollups", ctx.obj.name))
    if definitions is None:
        definitions = cache[("rollups", ctx.obj.name)] = rollup_definitions(ctx.registry, ctx.obj.name)
    if not definitions:
        return
    tables = ctx.service.compiled.tables
    child_table = tables[ctx.obj.name]
    for parent, fdef in definitions:
        parent_ids = {ctx.record.get(fdef.child_field)}
        if ctx.old:
            parent_ids.add(ctx.old.get(fdef.child_field))
        parent_ids.discard(None)
        for parent_id in parent_ids:
            conditions = [child_table.c[fdef.child_field] == parent_id, child_table.c.deleted_at.is_(None)]
            if fdef.agg_filter:
                conditions.append(compile_sql(fdef.agg_filter, child_table, ctx.obj.all_fields, FilterContext.current()))
            if fdef.function == "count":
                value = ctx.conn.execute(sa.select(sa.func.count()).where(*conditions)).scalar()
            elif fdef.function == "sum":  # exact past 2^63 on SQLite too (sums.py)
                column = child_table.c[fdef.agg_field]
                value = run_exact(ctx.conn, lambda split, c=column, w=conditions: sa.select(
                    *sum_columns(c, "total", split)).where(*w),
                    lambda query, c=column: sum_value(ctx.conn.execute(query).mappings().first(), "total", c))
            else:
                measure = getattr(sa.func, fdef.function)(child_table.c[fdef.agg_field])
                value = ctx.conn.execute(sa.select(measure).where(*conditions)).scalar()
            value = coerce_result(value if value is not None else (0 if fdef.function in ("count", "sum") else None),
                                  fdef.result_type, fdef.scale)
            # a sum its field cannot hold refuses the child's save, naming the field (422)
            cause = fdef.agg_field if fdef.agg_field in ctx.obj.fields else None
            require_fits(parent, fdef, value, cause)
            ptable = tables[parent.name]
            ctx.conn.execute(ptable.update().where(ptable.c.id == parent_id).values({fdef.name: value}))
            # Formulas on the parent may read the rollup: recompute them with the new value.
            if any(f.type == "formula" for f in parent.fields.values()):
                row = ctx.conn.execute(sa.select(ptable).where(ptable.c.id == parent_id)).first()
                if row is not None:
                    record = ctx.service.row_to_record(parent, row)
                    formulas = compute_formulas(parent, record, cause)
                    ctx.conn.execute(ptable.update().where(ptable.c.id == parent_id).values(formulas))


def activity_hook(ctx) -> None:
    """Objects that declare `updates_last_activity` (e.g. activity.related_to) are follow-ups:
    saving one sets its parent's last_activity_at, which pool recycle rules read."""
    lookups = ctx.obj.doc.get("updates_last_activity") or []
    if ctx.op not in ("create", "update") or not lookups:
        return
    now = utcnow()
    tables = ctx.service.compiled.tables
    for name in lookups:
        fdef = ctx.obj.fields.get(name)
        target_id = ctx.record.get(name)
        if fdef is None or not target_id:
            continue
        target = ctx.record.get(f"{name}__object") or (fdef.target[0] if fdef.target else None)
        if target not in ctx.registry.objects:
            continue
        table = tables[target]
        ctx.conn.execute(table.update().where(table.c.id == target_id).values(last_activity_at=now))


def register(hooks) -> None:
    hooks.register("before_save", formula_hook, name="core.formula", order=800)
    hooks.register("before_save", autonumber_hook, name="core.autonumber", order=900)
    hooks.register("after_save", rollup_hook, name="core.rollup", order=10)
    hooks.register("after_save", activity_hook, name="core.activity", order=20)
