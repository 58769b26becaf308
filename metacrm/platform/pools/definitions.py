"""Pool documents (`pool` metadata) and what they say about one record: which pool's
population it belongs to (the first matching entry by priority), when a claim's protection
ends, and which records are still open (counted as "held")."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ...metadata.registry import Registry
from ..errors import NotFound
from ..filters import FilterContext, FilterError, compile_predicate

CLOSED_VALUES = frozenset({
    "converted", "disqualified", "won", "lost", "closed", "closed_won", "closed_lost", "invalid", "dead",
})
STATUS_FIELDS = ("status", "stage")


# --- pool documents ------------------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    name: str
    object: str
    priority: int
    entry: Any
    members: dict
    admins: dict
    claim: dict
    protection: dict
    strategy: str
    assign_users: dict | None
    recycle: tuple
    warn_days: int
    label: Any
    doc: dict = field(compare=False, repr=False)

    @classmethod
    def from_doc(cls, doc: dict) -> Pool:
        assignment = doc.get("assignment") or {}
        return cls(
            name=doc["name"], object=doc["object"], priority=int(doc.get("priority", 0)),
            entry=doc.get("entry") or None, members=doc.get("members") or {}, admins=doc.get("admins") or {},
            claim=doc.get("claim") or {}, protection=doc.get("protection") or {},
            strategy=assignment.get("strategy", "manual"), assign_users=assignment.get("users"),
            recycle=tuple(doc.get("recycle") or []), warn_days=int(doc.get("warn_before_recycle_days") or 0),
            label=doc.get("label") or doc["name"], doc=doc,
        )

    @property
    def sort_key(self) -> tuple:
        return (self.priority, self.name)


_POOLS: dict[int, tuple[Registry, dict[str, list[Pool]]]] = {}


def pools_by_object(registry: Registry) -> dict[str, list[Pool]]:
    """{object: [pools in priority order]} for a registry (cached; registries are immutable)."""
    cached = _POOLS.get(id(registry))
    if cached is not None and cached[0] is registry:
        return cached[1]
    found: dict[str, list[Pool]] = {}
    for doc in registry.of_kind("pool"):
        if doc.get("object") in registry.objects:
            found.setdefault(doc["object"], []).append(Pool.from_doc(doc))
    for pools in found.values():
        pools.sort(key=lambda p: p.sort_key)
    if len(_POOLS) > 16:
        _POOLS.clear()
    _POOLS[id(registry)] = (registry, found)
    return found


def all_pools(registry: Registry) -> list[Pool]:
    return sorted((p for pools in pools_by_object(registry).values() for p in pools), key=lambda p: p.name)


def get_pool(registry: Registry, name: str) -> Pool:
    for pool in all_pools(registry):
        if pool.name == name:
            return pool
    raise NotFound(f"No pool named {name!r}.", code="unknown_pool")


def entry_matches(pool: Pool, obj, record: dict, ctx: FilterContext | None = None) -> bool:
    if not pool.entry:
        return True
    try:
        return compile_predicate(pool.entry, obj.all_fields, ctx or FilterContext.current())(record)
    except FilterError:
        return False


def pool_for_record(registry: Registry, obj, record: dict) -> Pool | None:
    """The pool whose population the record belongs to: the first matching entry by priority."""
    ctx = FilterContext.current()
    for pool in pools_by_object(registry).get(obj.name, []):
        if entry_matches(pool, obj, record, ctx):
            return pool
    return None


def protection_end(pool: Pool, start: datetime) -> datetime | None:
    """When a claim (or an assignment from the pool) made at `start` stops protecting the record."""
    days = pool.protection.get("default_days")
    if pool.protection.get("max_days") is not None and days:
        days = min(days, pool.protection["max_days"])
    return start + timedelta(days=days) if days else None


# --- open / held records -------------------------------------------------------------------


def closed_values(obj) -> tuple[str | None, list[str]]:
    """(status field, its closed values): records in those states are not "held"."""
    for name in STATUS_FIELDS:
        fdef = obj.fields.get(name)
        if fdef is not None and fdef.type == "picklist":
            values = [
                str(opt["value"]) for opt in fdef.options
                if str(opt["value"]) in CLOSED_VALUES or opt.get("closed") is True
                or opt.get("forecast_category") in ("closed", "omitted")
            ]
            return name, values
    return None, []


def open_condition(obj, table: sa.Table):
    field_name, values = closed_values(obj)
    if not field_name or not values:
        return sa.true()
    column = table.c[field_name]
    return sa.or_(column.is_(None), column.not_in(values))


def held_count(conn: sa.Connection, obj, table: sa.Table, user_id: str) -> int:
    return conn.execute(
        sa.select(sa.func.count()).select_from(table).where(
            table.c.owner == user_id, table.c.deleted_at.is_(None), open_condition(obj, table)
        )
    ).scalar() or 0
