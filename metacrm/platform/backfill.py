"""Derived values of existing records after a metadata change.

A formula or rollup is stored with its record and kept current by the write path
(computed.py). A field that is new — or whose definition changed (expression, result type,
child object, function, filter …) — would otherwise stay empty, or wrong, on every record
saved before the change, until someone happens to save it again. After each committed apply
(`after_apply` in apply.py) this computes those fields for every existing record:

- a rollup with one GROUP BY over the child table, then one UPDATE per parent that has
  children (and the empty value — 0 for count / sum — for the others);
- a formula (and every formula of an object whose rollups were just recomputed, since a
  formula may read them) over the records in keyset pages of BATCH, one executemany each.

These are derived values, not edits: no version bump, no `updated_at`, no history, no
workflow — the same as a formula computed on read in Salesforce. A value a field cannot hold
(an overflowing result) is stored as empty for that record, logged, and never blocks the
apply. Idempotent: running it twice writes the same values.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from ..metadata.registry import Registry
from . import computed
from .errors import CrmError
from .sums import run_exact, sum_columns, sum_value

log = logging.getLogger(__name__)

BATCH = 1000
FORMULA_KEYS = ("expression", "result_type", "scale")
ROLLUP_KEYS = ("child_object", "child_field", "function", "agg_field", "agg_filter", "result_type", "scale")


def _signature(fdef, keys: tuple[str, ...]) -> tuple:
    return tuple(repr(getattr(fdef, key, None)) for key in keys)


def _changed(live: Registry, new: Registry) -> dict[str, tuple[list, list]]:
    """{object: (rollups, formulas)} whose values existing records must get again."""
    out: dict[str, tuple[list, list]] = {}
    changed_children: set[str] = set()
    for name, obj in new.objects.items():
        old = live.objects.get(name)
        if old is None:
            continue  # a new object has no records yet
        for fdef in obj.fields.values():
            before = old.fields.get(fdef.name)
            if fdef.type == "rollup" and fdef.child_object in new.objects:
                keys, slot = ROLLUP_KEYS, 0
            elif fdef.type == "formula" and fdef.expression:
                keys, slot = FORMULA_KEYS, 1
            else:
                continue
            if before is None or before.type != fdef.type or _signature(before, keys) != _signature(fdef, keys):
                out.setdefault(name, ([], []))[slot].append(fdef)
        # a child's field that a rollup reads changed type: its parents' totals are redone too
        if any(name in (f.child_object for f in parent.fields.values() if f.type == "rollup")
               for parent in new.objects.values()):
            for fname, fdef in obj.fields.items():
                before = old.fields.get(fname)
                if before is not None and before.type != fdef.type:
                    changed_children.add(name)
    for parent_name, parent in new.objects.items():
        if parent_name not in live.objects:
            continue
        for fdef in parent.fields.values():
            if fdef.type == "rollup" and fdef.child_object in changed_children:
                rollups = out.setdefault(parent_name, ([], []))[0]
                if fdef not in rollups:
                    rollups.append(fdef)
    for name, (rollups, formulas) in out.items():
        if rollups:  # formulas may read the recomputed totals
            formulas[:] = [f for f in new.objects[name].fields.values() if f.type == "formula" and f.expression]
    return out


def _rollup_totals(conn: sa.Connection, tables, registry: Registry, fdef) -> dict[Any, Any]:
    from .filters import FilterContext, compile_sql

    child = registry.objects[fdef.child_object]
    table = tables[child.name]
    key = table.c[fdef.child_field]
    conditions = [key.is_not(None), table.c.deleted_at.is_(None)]
    if fdef.agg_filter:
        conditions.append(compile_sql(fdef.agg_filter, table, child.all_fields, FilterContext.current()))
    if fdef.function == "count":
        query = sa.select(key, sa.func.count().label("total")).where(*conditions).group_by(key)
        return {row[0]: row[1] for row in conn.execute(query)}
    column = table.c[fdef.agg_field]
    if fdef.function == "sum":
        return run_exact(conn, lambda split: sa.select(key, *sum_columns(column, "total", split))
                         .where(*conditions).group_by(key),
                         lambda query: {row[fdef.child_field]: sum_value(row, "total", column)
                                        for row in conn.execute(query).mappings()})
    measure = getattr(sa.func, fdef.function)(column).label("total")
    return {row[0]: row[1] for row in conn.execute(sa.select(key, measure).where(*conditions).group_by(key))}


def _fitted(obj, fdef, value: Any) -> Any:
    value = computed.coerce_result(value, fdef.result_type, fdef.scale)
    if computed.out_of_range(fdef, value):
        log.warning("backfill: %s.%s cannot hold %r; left empty", obj.name, fdef.name, value)
        return None
    return value


def _backfill_rollup(runtime, registry: Registry, obj, fdef) -> int:
    tables = runtime.compiled().tables
    ptable = tables[obj.name]
    empty = computed.coerce_result(0, fdef.result_type, fdef.scale) if fdef.function in ("count", "sum") else None
    with runtime.transaction() as tx:
        totals = _rollup_totals(tx.conn, tables, registry, fdef)
        tx.conn.execute(ptable.update().values({fdef.name: empty}))
        rows = [{"_id": parent_id, "_value": _fitted(obj, fdef, value)} for parent_id, value in totals.items()]
        for first in range(0, len(rows), BATCH):
            tx.conn.execute(ptable.update().where(ptable.c.id == sa.bindparam("_id"))
                            .values({fdef.name: sa.bindparam("_value")}), rows[first:first + BATCH])
    return len(totals)


def _backfill_formulas(runtime, obj, formulas: list) -> int:
    from .records import RecordService
    from .security import Principal

    service = RecordService(runtime, Principal.system(), source="system")
    table = runtime.compiled().tables[obj.name]
    names = [f.name for f in formulas]
    done, after = 0, None
    while True:
        with runtime.transaction() as tx:
            query = sa.select(table).where(table.c.deleted_at.is_(None)).order_by(table.c.id).limit(BATCH)
            if after is not None:
                query = query.where(table.c.id > after)
            page = tx.conn.execute(query).fetchall()
            if not page:
                return done
            updates = []
            for row in page:
                record = service.row_to_record(obj, row)
                stored = {name: record.get(name) for name in names}  # compute_formulas writes into record
                try:
                    values = computed.compute_formulas(obj, record)
                except CrmError:  # one result too large for its field: keep the others, leave it empty
                    values = {}
                    for fdef in formulas:
                        try:
                            values.update(computed.compute_formulas(_only(obj, fdef), dict(record)))
                        except CrmError:
                            values[fdef.name] = None
                changed = {name: values.get(name) for name in names}
                if changed != stored:
                    updates.append({"_id": row.id, **{f"_v_{name}": value for name, value in changed.items()}})
            if updates:
                tx.conn.execute(table.update().where(table.c.id == sa.bindparam("_id"))
                                .values({name: sa.bindparam(f"_v_{name}") for name in names}), updates)
            done += len(updates)
            after = page[-1].id


class _only:
    """The object seen with one formula field only (to compute the others past a failing one)."""

    def __init__(self, obj, fdef):
        self.name, self.fields = obj.name, {fdef.name: fdef}


def after_apply(runtime, live: Registry, new: Registry) -> None:
    for name, (rollups, formulas) in _changed(live, new).items():
        obj = new.objects[name]
        for fdef in rollups:
            count = _backfill_rollup(runtime, new, obj, fdef)
            log.info("backfill: %s.%s recomputed for %d parent(s)", name, fdef.name, count)
        if formulas:
            count = _backfill_formulas(runtime, obj, formulas)
            log.info("backfill: %d %s record(s) got new formula values", count, name)


def register(runtime) -> None:
    runtime.extensions.setdefault("after_apply", {})["derived_values"] = after_apply
