"""Browsing: the pools a user belongs to (with counts and limits) and a pool's records."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ...metadata.model import label_text
from ..errors import BadRequest
from ..filters import referenced_fields
from ..records import RecordService
from ..security import Access, Principal
from .definitions import all_pools
from .people import People, is_member, is_pool_admin, limits_for, visible_pool


def list_pools(runtime, principal: Principal, locale: str = "en") -> list[dict]:
    people = People.of(runtime)
    access = Access(runtime.registry(), principal, people.directory)
    pools = [p for p in all_pools(access.registry) if is_member(people, access, p)]
    counts: dict[str, int] = {}
    tables = runtime.compiled().tables
    with runtime.reading() as conn:
        for object_name in sorted({p.object for p in pools}):
            table = tables[object_name]
            names = [p.name for p in pools if p.object == object_name]
            counts.update(conn.execute(
                sa.select(table.c.pool, sa.func.count()).where(
                    table.c.pool.in_(names), table.c.owner.is_(None), table.c.deleted_at.is_(None)
                ).group_by(table.c.pool)
            ).fetchall())
    return [
        {
            "name": p.name, "label": label_text(p.label, locale, p.name), "object": p.object,
            "priority": p.priority, "count": counts.get(p.name, 0), "admin": is_pool_admin(people, access, p),
            "strategy": p.strategy, "limits": limits_for(people, p, principal),
        }
        for p in pools
    ]


def list_records(runtime, principal: Principal, pool_name: str, *, filter: Any = None, sort: str | None = None,
                 fields: list[str] | None = None, limit: int | None = None,
                 cursor: str | None = None) -> tuple[list[dict], str | None]:
    """The pool's records for a member, even when the member's role reads only its own
    records; the member's hidden fields stay hidden (and cannot be filtered or sorted on)."""
    pool, access, _ = visible_pool(runtime, principal, pool_name)
    hidden = access.hidden_fields(pool.object)
    asked = set(referenced_fields(filter) if filter not in (None, "", {}) else set())
    asked |= {part.strip().lstrip("-+") for part in (sort or "").split(",") if part.strip()}
    asked |= set(fields or [])
    if asked & hidden:
        name = min(asked & hidden)
        raise BadRequest(f"Unknown field {name!r}.", code="unknown_field", fields={name: ["Unknown field."]})
    system = RecordService(runtime, Principal.system(), source="pool")
    table = system.table(pool.object)
    items, next_cursor = system.list(
        pool.object, filter=filter, sort=sort, fields=fields, limit=limit, cursor=cursor,
        extra_where=(table.c.pool == pool.name) & table.c.owner.is_(None),
    )
    return [{k: v for k, v in item.items() if k not in hidden} for item in items], next_cursor
