"""The record-service hooks: entry into a pool (before_save, with auto-assignment) and the
protection a qualifying follow-up extends (after_save)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from ..clock import utcnow
from ..computed import next_sequence
from ..filters import FilterContext, FilterError, compile_predicate
from .definitions import Pool, entry_matches, open_condition, pool_for_record, pools_by_object, protection_end
from .people import People

HOOK_ORDER = 650
CLAIM_ACTIONS = ("claim", "release", "recycle", "assign", "reassign")


# --- entry (before_save) ------------------------------------------------------------------


def pick_user(ctx, pool: Pool) -> str | None:
    """The user auto-assignment hands a new record to, or None (then it stays in the pool)."""
    return pick_holder(ctx, f"pool:{pool.name}", pool.strategy, pool.assign_users or pool.members,
                       (pool.claim or {}).get("max_held"))


def pick_holder(ctx, key: str, strategy: str, spec: dict | None, limit: int | None) -> str | None:
    """One of the people `spec` names who may hold the record's object, by `strategy`
    (round_robin: the next in turn on the counter `key`; otherwise the one with the fewest open
    records), never someone already holding `limit` open records; None when nobody qualifies.
    Pool auto-assignment and assignment rules (role in a unit) both pick through here."""
    cache = ctx.tx.__dict__.setdefault("pool_candidates", {})  # one lookup per transaction (imports)
    if key not in cache:
        # only people who may hold the object: the write path would refuse anyone else
        cache[key] = [uid for uid in People.within(ctx.service, ctx.conn).users(spec)
                      if ctx.service.owner_refusal(ctx.conn, ctx.obj.name, uid) is None]
    candidates = cache[key]
    if not candidates:
        return None
    table = ctx.table
    counts = dict(ctx.conn.execute(
        sa.select(table.c.owner, sa.func.count()).where(
            table.c.owner.in_(candidates), table.c.deleted_at.is_(None), open_condition(ctx.obj, table)
        ).group_by(table.c.owner)
    ).fetchall())
    # an import's rows not inserted yet, per object (the same people may hold several objects)
    pending = ctx.tx.__dict__.setdefault("pool_pending", {}).setdefault(ctx.obj.name, {})
    if ctx.options.get("batch"):
        for uid, n in pending.items():
            counts[uid] = counts.get(uid, 0) + n
    if limit is not None:  # auto-assignment never hands anyone more than the limit lets them hold
        open_to = [uid for uid in candidates if counts.get(uid, 0) < limit]
    else:
        open_to = list(candidates)
    if not open_to:
        return None  # everyone is full
    chosen = None
    if strategy == "round_robin":
        turn = next_sequence(ctx.conn, f"{key}:round_robin")
        for step in range(len(candidates)):  # the next in turn who still has room
            uid = candidates[(turn - 1 + step) % len(candidates)]
            if uid in open_to:
                chosen = uid
                break
    else:
        chosen = min(open_to, key=lambda uid: (counts.get(uid, 0), uid))
    if ctx.options.get("batch"):
        pending[chosen] = pending.get(chosen, 0) + 1
    return chosen


def _enter(ctx, pool: Pool) -> None:
    record = ctx.record
    now = utcnow()
    if pool.strategy in ("round_robin", "load_balanced"):
        user = pick_user(ctx, pool)
        if user is not None:
            record.update(owner=user, pool=None, owner_since=now, protected_until=protection_end(pool, now))
            ctx.notes.append(("assign", {"owner": [None, user]},
                              f"assigned by pool {pool.name} ({pool.strategy.replace('_', ' ')})"))
            return
    record.update(owner=None, pool=pool.name, owner_since=None, protected_until=None)


def nobody_in_particular(ctx) -> bool:
    """A new record nobody chose an owner for: no owner at all (the platform made it), or an
    owner only by default when an admin made it or it came from an import. An explicit owner in
    the input (even null) and a user's own new record (owner by default) are a choice."""
    record = ctx.record
    if record.get("owner"):
        if "owner" in (ctx.input or {}):
            return False  # an explicit owner keeps the record out of pools and rules
        return bool(ctx.access.is_admin or ctx.source == "import")
    return True


def before_save(ctx) -> None:
    if ctx.op not in ("create", "update") or ctx.options.get("system_action") in CLAIM_ACTIONS:
        return
    record = ctx.record
    if ctx.op == "create" and "owner" not in (ctx.input or {}) and nobody_in_particular(ctx):
        from .assignment_rules import apply_rule  # one place for every create path

        if apply_rule(ctx):
            return
    pools = pools_by_object(ctx.registry).get(ctx.obj.name)
    if not pools:
        return
    if ctx.op == "update":
        if record.get("owner") and record.get("pool"):
            record["pool"] = None  # given an owner by an edit: it leaves the pool
            return
        if record.get("owner") or record.get("pool"):
            return
    elif not nobody_in_particular(ctx):
        return
    ctx_time = FilterContext.current()
    for pool in pools:
        if entry_matches(pool, ctx.obj, record, ctx_time):
            _enter(ctx, pool)
            return


# --- protection (after_save on follow-ups) --------------------------------------------------


def extend_protection(ctx) -> None:
    """A qualifying follow-up (a record of an object with `updates_last_activity`) extends the
    protection of the record it is about."""
    lookups = ctx.obj.doc.get("updates_last_activity") or []
    if ctx.op != "create" or not lookups:
        return
    now = utcnow()
    by_object = pools_by_object(ctx.registry)
    for name in lookups:
        fdef = ctx.obj.fields.get(name)
        target_id = ctx.record.get(name)
        if fdef is None or not target_id:
            continue
        target = ctx.record.get(f"{name}__object") or (fdef.target[0] if fdef.target else None)
        if target not in by_object or not any(p.protection.get("extend_days") for p in by_object[target]):
            continue
        target_obj = ctx.registry.object(target)
        table = ctx.service.compiled.tables[target]
        row = ctx.conn.execute(sa.select(table).where(table.c.id == target_id)).first()
        if row is None:
            continue
        record = ctx.service.row_to_record(target_obj, row)
        pool = pool_for_record(ctx.registry, target_obj, record)
        if pool is None or not record.get("owner") or not pool.protection.get("extend_days"):
            continue
        qualifying = pool.protection.get("qualifying_activity")
        if qualifying:
            try:
                if not compile_predicate(qualifying, ctx.obj.all_fields, FilterContext.current())(ctx.record):
                    continue
            except FilterError:
                continue
        current = record.get("protected_until")
        until = max(current or now, now + timedelta(days=pool.protection["extend_days"]))
        if pool.protection.get("max_days") is not None and record.get("owner_since"):
            until = min(until, record["owner_since"] + timedelta(days=pool.protection["max_days"]))
        if until != current:
            ctx.conn.execute(table.update().where(table.c.id == target_id).values(protected_until=until))
