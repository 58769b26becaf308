"""Claims (with their limits), assignment by pool admins and release back to the pool; each
record in its own transaction."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from .. import db
from ..clock import utcnow
from ..computed import next_sequence
from ..errors import BadRequest, Conflict, Forbidden, OwnerRefused
from ..records import RecordService
from ..security import Principal
from .definitions import Pool, held_count, pool_for_record, protection_end
from .people import People, is_pool_admin, limits_for, visible_pool


def _failure(record_id: str, code: str, message: str, **extra: Any) -> dict:
    return {"id": record_id, "code": code, "message": message, **extra}


def _lock_user(conn: sa.Connection, users: sa.Table, user_id: str) -> None:
    """Serialise one user's claims (limits are check-then-write): a row lock on PostgreSQL;
    SQLite's BEGIN IMMEDIATE already serialises writers."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(users.c.id).where(users.c.id == user_id).with_for_update())


def _last_release(conn: sa.Connection, object_name: str, record_id: str) -> datetime | None:
    h = db.history
    return conn.execute(
        sa.select(sa.func.max(h.c.at)).where(
            h.c.object == object_name, h.c.record_id == record_id, h.c.action.in_(("release", "recycle"))
        )
    ).scalar()


def _day_counter(pool: Pool, user_id: str, now: datetime) -> str:
    return f"pool:{pool.name}:claims:{user_id}:{now.date().isoformat()}"


def _claim_one(svc: RecordService, pool: Pool, record_id: str, limits: dict, exempt: bool) -> dict | None:
    me = svc.principal.user_id
    with svc.transaction() as tx:
        conn = tx.conn
        _lock_user(conn, svc.table("user"), me)
        obj = svc.obj(pool.object)
        table = svc.table(obj.name)
        record = svc.fetch(conn, obj, record_id)
        if record is None or record.get("pool") != pool.name or record.get("owner") is not None:
            return _failure(record_id, "not_in_pool", "The record is not in this pool (it may have been claimed).")
        now = utcnow()
        if not exempt:
            days = limits.get("reclaim_cooldown_days")
            if days and record.get("previous_owner") == me:
                left = _last_release(conn, obj.name, record_id)
                until = left + timedelta(days=days) if left else None
                if until and until > now:
                    return _failure(
                        record_id, "reclaim_cooldown",
                        f"You gave this record up on {left:%Y-%m-%d}; you may claim it again from "
                        f"{until:%Y-%m-%d %H:%M} UTC.", until=until.isoformat(timespec="seconds") + "Z",
                    )
            held_limit = limits.get("max_held")
            if held_limit is not None:
                held = held_count(conn, obj, table, me)
                if held >= held_limit:
                    return _failure(record_id, "max_held",
                                    f"You already hold {held} open {obj.name} record(s); the limit is {held_limit}.")
            day_limit = limits.get("max_per_day")
            if day_limit is not None:
                name = _day_counter(pool, me, now)
                claimed = conn.execute(sa.select(db.sequence.c.value).where(db.sequence.c.name == name)).scalar() or 0
                if claimed >= day_limit:
                    return _failure(record_id, "max_per_day",
                                    f"You have claimed {claimed} record(s) from this pool today; the limit is "
                                    f"{day_limit} per day.")
        values = {"owner": me, "pool": None, "owner_since": now, "protected_until": protection_end(pool, now)}
        result = svc.system_update(
            obj.name, record_id, values, where=(table.c.pool == pool.name) & table.c.owner.is_(None),
            action="claim", note=f"claimed from pool {pool.name}",
        )
        if result is None:
            return _failure(record_id, "not_in_pool", "The record is not in this pool (it may have been claimed).")
        if limits.get("max_per_day") is not None:
            next_sequence(conn, _day_counter(pool, me, now))
    return None


def claim(runtime, principal: Principal, pool_name: str, ids: list) -> dict:
    """{"claimed": [ids], "failed": [{"id", "code", "message"}]}; each id in its own transaction."""
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise BadRequest("ids must be a non-empty list of record ids.", fields={"ids": ["Required."]})
    pool, access, people = visible_pool(runtime, principal, pool_name)
    if principal.user_id is None:
        raise BadRequest("Only a user can claim records.", code="no_user")
    # The claim scope (or, where the roles say nothing about claiming, the read scope): a claimed
    # record becomes the caller's own, so any scope but none allows it. Membership alone does not.
    if access.scope(pool.object, access.effective_action(pool.object, "claim")) == "none":
        raise Forbidden(f"You may not claim {pool.object} records.", code="claim_not_allowed")
    exempt = is_pool_admin(people, access, pool)
    limits = limits_for(people, pool, principal)
    svc = RecordService(runtime, principal, source="pool")
    claimed, failed = [], []
    for record_id in dict.fromkeys(ids):
        failure = _claim_one(svc, pool, record_id, limits, exempt)
        if failure is None:
            claimed.append(record_id)
        else:
            failed.append(failure)
    return {"claimed": claimed, "failed": failed}


def _active_user(users: sa.Table, conn: sa.Connection, user: Any) -> str:
    if not isinstance(user, str) or not user:
        raise BadRequest("user must be a user id or username.", fields={"user": ["Required."]})
    row = conn.execute(
        sa.select(users.c.id).where(sa.or_(users.c.id == user, users.c.username == user),
                                    users.c.deleted_at.is_(None), users.c.active.isnot(False))
    ).first()
    if row is None:
        raise BadRequest("No active user with that id or username.", fields={"user": ["Unknown or inactive user."]})
    return row.id


def assign(runtime, principal: Principal, pool_name: str, ids: list, user: Any) -> dict:
    """Pool admins hand pool records to a user (the protection clock starts), or reassign
    owned records of the pool's population (owner_since and protection are kept)."""
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise BadRequest("ids must be a non-empty list of record ids.", fields={"ids": ["Required."]})
    pool, access, people = visible_pool(runtime, principal, pool_name)
    if not is_pool_admin(people, access, pool):
        raise Forbidden("Only the pool's admins may assign its records.")
    svc = RecordService(runtime, principal, source="pool")
    with runtime.reading() as conn:
        target = _active_user(svc.table("user"), conn, user)
        refusal = svc.owner_refusal(conn, pool.object, target)
    if refusal:  # before any record moves (the write path would refuse each one anyway)
        raise OwnerRefused(refusal, fields={"user": [refusal]}, user=target)
    assigned, failed = [], []
    for record_id in dict.fromkeys(ids):
        with svc.transaction() as tx:
            obj = svc.obj(pool.object)
            table = svc.table(obj.name)
            record = svc.fetch(tx.conn, obj, record_id)
            now = utcnow()
            result = None
            if record is None:
                failed.append(_failure(record_id, "not_found", "No such record."))
                continue
            if record.get("pool") == pool.name and record.get("owner") is None:
                result = svc.system_update(
                    obj.name, record_id,
                    {"owner": target, "pool": None, "owner_since": now, "protected_until": protection_end(pool, now)},
                    where=(table.c.pool == pool.name) & table.c.owner.is_(None),
                    action="assign", note=f"assigned from pool {pool.name}",
                )
            elif record.get("owner") and pool_for_record(svc.registry, obj, record) == pool:
                result = svc.system_update(
                    obj.name, record_id,
                    {"owner": target, "owner_since": record.get("owner_since"),
                     "protected_until": record.get("protected_until")},
                    where=table.c.owner == record["owner"], action="reassign",
                    note=f"reassigned by a {pool.name} pool admin",
                )
            else:
                failed.append(_failure(record_id, "not_in_pool", "The record is neither in this pool nor owned in it."))
                continue
            if result is None:
                failed.append(_failure(record_id, "not_in_pool", "The record changed meanwhile; read it again."))
            else:
                assigned.append(record_id)
    return {"assigned": assigned, "failed": failed, "user": target}


def release(runtime, principal: Principal, object_name: str, record_id: str, reason: str | None) -> dict:
    """The owner (or a pool admin) returns a record to its pool, with a reason in history."""
    if reason is not None and not isinstance(reason, str):
        raise BadRequest("reason must be text.", fields={"reason": ["Not text."]})
    svc = RecordService(runtime, principal, source="pool")
    people = People.of(runtime)
    with svc.transaction():
        record = svc.get_record(object_name, record_id)
        obj = svc.obj(object_name)
        pool = pool_for_record(svc.registry, obj, record)
        if pool is None:
            raise Conflict("No pool takes this record.", code="no_pool")
        if record.get("owner") is None:
            raise Conflict("The record has no owner to release it.", code="not_owned")
        if record["owner"] != principal.user_id and not is_pool_admin(people, svc.access, pool):
            raise Forbidden("Only the owner or a pool admin may release this record.")
        table = svc.table(obj.name)
        note = f"released to pool {pool.name}" + (f": {reason.strip()}" if reason and reason.strip() else "")
        result = svc.system_update(
            obj.name, record_id, {"owner": None, "pool": pool.name, "owner_since": None, "protected_until": None},
            where=table.c.owner == record["owner"], action="release", note=note,
        )
        if result is None:
            raise Conflict("The record changed meanwhile; read it again.", code="stale_version")
        return svc.to_json(obj, result)
