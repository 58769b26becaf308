"""The periodic recycle sweep: warn the owners of records about to return to their pool,
then recycle them, set-based in batches (the package docstring says why, and what that
means for after_save hooks)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import sqlalchemy as sa

from ...metadata.model import is_valid_name
from ...metadata.registry import Registry
from .. import db
from ..clock import utcnow
from ..filters import FilterContext, FilterError, compile_sql
from ..storage import UtcDateTime
from .definitions import Pool, all_pools, pools_by_object

log = logging.getLogger(__name__)

SWEEP_BATCH = 5000


class _View:
    """A table whose last_activity_at reads coalesce(last_activity_at, owner_since), for
    compile_sql (which only looks columns up by name)."""

    def __init__(self, table: sa.Table):
        self.name = table.name
        self.c = dict(table.c.items())
        self.c["last_activity_at"] = sa.func.coalesce(table.c.last_activity_at, table.c.owner_since)


def _population(pool: Pool, obj, table: sa.Table, registry: Registry, ctx: FilterContext):
    """Owned records of the pool's population: its entry, and no higher-priority pool's."""
    conditions = [table.c.owner.isnot(None), table.c.pool.is_(None), table.c.deleted_at.is_(None)]
    if pool.entry:
        conditions.append(compile_sql(pool.entry, table, obj.all_fields, ctx))
    for other in pools_by_object(registry).get(pool.object, []):
        if other is pool or other.name == pool.name:
            break
        if not other.entry:
            return sa.false()
        conditions.append(sa.not_(compile_sql(other.entry, table, obj.all_fields, ctx)))
    return sa.and_(*conditions)


def recycle_rule(runtime, pool: Pool, rule: dict, *, batch_size: int = SWEEP_BATCH,
                 now: datetime | None = None) -> int:
    """Apply one recycle rule set-based, in batches: owner NULL, pool set, previous_owner =
    the old owner, history "recycle" with the rule's reason."""
    compiled = runtime.compiled()
    registry = compiled.registry
    obj = registry.object(pool.object)
    table = compiled.tables[pool.object]
    now = now or utcnow()
    ctx = FilterContext(now, now.date())
    due = sa.and_(
        _population(pool, obj, table, registry, ctx),
        sa.or_(table.c.protected_until.is_(None), table.c.protected_until <= now),
        compile_sql(rule["when"], _View(table), obj.all_fields, ctx),
    )
    reason = rule.get("reason") or "recycled"
    new_values = {"previous_owner": table.c.owner, "owner": None, "pool": pool.name, "owner_since": None,
                  "protected_until": None, "updated_at": now, "updated_by": None, "version": table.c.version + 1}
    total, last = 0, ""
    while True:
        with runtime.transaction() as tx:
            ids = _recycle_batch(tx.conn, obj.name, table, pool.name, due, last, batch_size, new_values, now, reason)
        total += len(ids)
        if len(ids) < batch_size:
            return total
        last = max(ids)


_HISTORY_COLUMNS = ["object", "record_id", "at", "user_id", "action", "changes", "note"]


def _quoted(name: str):
    if not is_valid_name(name):
        raise ValueError(f"not a metadata name: {name!r}")
    return sa.literal_column(f"'{name}'")


def _changes(dialect: str, old_owner, pool_name: str):
    """{"owner": [old owner, null], "pool": [null, pool]} built by the database."""
    build_object, build_array = (
        (sa.func.json_build_object, sa.func.json_build_array) if dialect == "postgresql"
        else (sa.func.json_object, sa.func.json_array)
    )
    return build_object(_quoted("owner"), build_array(old_owner, sa.null()),
                        _quoted("pool"), build_array(sa.null(), _quoted(pool_name)))


def _recycle_batch(conn: sa.Connection, object_name: str, table: sa.Table, pool_name: str, due, last: str,
                   batch_size: int, new_values: dict, now: datetime, reason: str) -> list[str]:
    """One batch: the history rows and the UPDATE, both computed by the database.

    PostgreSQL: one statement (locked rows are skipped, so a concurrent claim wins);
    SQLite: INSERT ... SELECT then UPDATE of the same rows under the writer lock.
    """
    history = db.history
    at = sa.literal(now, UtcDateTime())
    note = sa.cast(sa.literal(reason, sa.Text()), sa.Text())
    if conn.dialect.name == "postgresql":
        picked = (sa.select(table.c.id).where(due, table.c.id > last).order_by(table.c.id).limit(batch_size)
                  .with_for_update(skip_locked=True).cte("picked"))
        updated = (table.update().where(table.c.id == picked.c.id, due).values(**new_values)
                   .returning(table.c.id.label("rid"), table.c.previous_owner.label("old_owner")).cte("updated"))
        rows = sa.select(_quoted(object_name), updated.c.rid, at, sa.null(), _quoted("recycle"),
                         _changes("postgresql", updated.c.old_owner, pool_name), note)
        return list(conn.execute(history.insert().from_select(_HISTORY_COLUMNS, rows)
                                 .returning(history.c.record_id)).scalars())
    picked = sa.select(table.c.id).where(due, table.c.id > last).order_by(table.c.id).limit(batch_size)
    rows = sa.select(_quoted(object_name), table.c.id, at, sa.null(), _quoted("recycle"),
                     _changes(conn.dialect.name, table.c.owner, pool_name), note).where(
        table.c.id.in_(picked.scalar_subquery()))
    conn.execute(history.insert().from_select(_HISTORY_COLUMNS, rows))
    return list(conn.execute(table.update().where(table.c.id.in_(picked.scalar_subquery()))
                             .values(**new_values).returning(table.c.id)).scalars())


def warn_owners(runtime, pool: Pool, rule: dict, *, batch_size: int = SWEEP_BATCH,
                now: datetime | None = None) -> int:
    """Notify owners (outbox topic "notify", one key per record and day) of records that the
    rule will recycle within warn_before_recycle_days."""
    if pool.warn_days <= 0:
        return 0
    compiled = runtime.compiled()
    registry = compiled.registry
    obj = registry.object(pool.object)
    table = compiled.tables[pool.object]
    now = now or utcnow()
    later = now + timedelta(days=pool.warn_days)
    view = _View(table)
    soon = sa.and_(
        _population(pool, obj, table, registry, FilterContext(now, now.date())),
        sa.or_(table.c.protected_until.is_(None), table.c.protected_until <= later),
        compile_sql(rule["when"], view, obj.all_fields, FilterContext(later, later.date())),
        sa.not_(sa.and_(
            sa.or_(table.c.protected_until.is_(None), table.c.protected_until <= now),
            compile_sql(rule["when"], view, obj.all_fields, FilterContext(now, now.date())),
        )),
    )
    name_field = obj.name_field if obj.name_field in table.c else "id"
    insert = _outbox_insert(runtime)
    total, last = 0, ""
    while True:
        with runtime.transaction() as tx:
            rows = tx.conn.execute(
                sa.select(table.c.id, table.c.owner, table.c[name_field].label("title"))
                .where(soon, table.c.id > last).order_by(table.c.id).limit(batch_size)
            ).fetchall()
            if rows:
                day = now.date().isoformat()
                tx.conn.execute(insert, [
                    {"key": f"pool_warn:{pool.name}:{row.id}:{day}", "topic": "notify", "created_at": now,
                     "status": "pending", "attempts": 0,
                     "payload": {
                         "users": [row.owner], "object": obj.name, "record_id": row.id, "pool": pool.name,
                         "subject": f"{obj.display_label()} {row.title} returns to the pool soon",
                         "body": f"{row.title} will go back to the pool {pool.name} within {pool.warn_days} day(s) "
                                 f"unless it is followed up: {rule.get('reason')}.",
                         "reason": rule.get("reason"), "recycle_by": later.date().isoformat(),
                     }}
                    for row in rows
                ])
                _kick_outbox(runtime, tx)
        total += len(rows)
        if len(rows) < batch_size:
            return total
        last = rows[-1].id


def _outbox_insert(runtime):
    if runtime.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(db.outbox).on_conflict_do_nothing(index_elements=["key"])


def _kick_outbox(runtime, tx) -> None:
    try:
        from .. import outbox
    except ImportError:  # the dispatcher is another module's; rows wait for it
        return
    box = getattr(outbox, "outbox", None)
    if callable(box):
        try:
            tx.after_commit(box(runtime).kick)
        except Exception:  # a missing dispatcher must not fail the sweep
            log.debug("no outbox dispatcher to kick", exc_info=True)


def recycle_sweep(runtime) -> str:
    """The periodic job: warn owners, then recycle, for every pool and rule."""
    now = utcnow()
    recycled: dict[str, int] = {}
    warned = 0
    for pool in all_pools(runtime.registry()):
        for rule in pool.recycle:
            try:
                warned += warn_owners(runtime, pool, rule, now=now)
                count = recycle_rule(runtime, pool, rule, now=now)
            except FilterError as exc:
                log.error("pool %s: recycle rule %r cannot run: %s", pool.name, rule.get("reason"), exc)
                continue
            if count:
                recycled[pool.name] = recycled.get(pool.name, 0) + count
    detail = ", ".join(f"{name}: {count}" for name, count in sorted(recycled.items()))
    return (f"recycled {sum(recycled.values())} record(s)" + (f" ({detail})" if detail else "")
            + f"; warned {warned} owner(s)")
