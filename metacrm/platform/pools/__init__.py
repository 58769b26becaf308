"""Public pools (公海池, `pool` metadata): entry, claims with limits, assignment, release,
protection periods and the recycle sweep.

Decisions where the contract is open:
- Entry: a new record that nobody in particular owns and that matches a pool's `entry`
  filter (no filter = every record of the object) enters it: no owner at all (the platform
  created it, or the input said "owner": null), or an owner only by default when an admin
  created it or it came from an import. A user's own new record (owner by default) stays
  theirs, and an explicit owner always wins. An unowned record outside any pool enters on
  update too. When several pools match, the lowest `priority` wins, then the pool name
  (alphabetical). Auto-assignment (`round_robin`: a counter in
  mc_sequence; `load_balanced`: the user with the fewest open records) hands the record
  straight to a user of `assignment.users` (falling back to the pool if there is none).
- Held records (`max_held`): non-deleted records of the pool's object the user owns,
  except closed ones: a `status` or `stage` picklist value that is converted, won, lost,
  closed, disqualified… (or an option with `"closed": true` or forecast_category
  closed / omitted). `max_per_day` counts claims per UTC day (a counter in mc_sequence).
  Overrides: a user's override beats a department's, which beats a role's; pool admins
  and system admins are exempt from every limit.
- Protection: a claim (or assignment from the pool) protects the record for
  `default_days`; a qualifying follow-up extends it to max(current, now + extend_days),
  capped at owner_since + max_days; an admin reassignment keeps owner_since and
  protected_until. Recycle rules skip protected records. GET /records/{object}/{id}/recycle
  gives the computed recycle date.
- Recycle rules read `last_activity_at` as "the last follow-up, or since the owner got
  the record" (coalesced with owner_since), so a record never followed up is recycled too.
- The sweep is set-based (one UPDATE ... RETURNING per batch + one history executemany),
  not per-record system_update calls: it writes the same columns and history rows, but
  after_save hooks (workflow triggers) do not run for recycles.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ...metadata.model import is_valid_name, label_text
from ...metadata.registry import Registry
from .. import db
from ..clock import utcnow
from ..computed import next_sequence
from ..errors import BadRequest, Conflict, Forbidden, NotFound
from ..filters import FilterContext, FilterError, compile_predicate, compile_sql, referenced_fields
from ..records import RecordService
from ..security import Access, Principal
from ..storage import UtcDateTime

log = logging.getLogger(__name__)

HOOK_ORDER = 650
SWEEP_BATCH = 5000
CLOSED_VALUES = frozenset({
    "converted", "disqualified", "won", "lost", "closed", "closed_won", "closed_lost", "invalid", "dead",
})
STATUS_FIELDS = ("status", "stage")
CLAIM_ACTIONS = ("claim", "release", "recycle", "assign", "reassign")


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


def _entry_matches(pool: Pool, obj, record: dict, ctx: FilterContext | None = None) -> bool:
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
        if _entry_matches(pool, obj, record, ctx):
            return pool
    return None


# --- people --------------------------------------------------------------------------------
#
# Nothing here may call runtime.compiled() or runtime.directory() inside a transaction: on
# SQLite those open a second connection whose BEGIN IMMEDIATE would wait for our own lock.

_DEPARTMENTS: dict[int, tuple[Any, dict[str, str]]] = {}


class People:
    """Resolves `principals` specs (departments by name or id, with their sub-departments;
    roles; users by id or username) against one directory."""

    def __init__(self, directory, tables, reading: Callable[[], Any]):
        self.directory = directory
        self.tables = tables
        self.reading = reading

    @classmethod
    def of(cls, runtime) -> People:
        """Outside a transaction."""
        return cls(runtime.directory(), runtime.compiled().tables, runtime.reading)

    @classmethod
    def within(cls, service: RecordService, conn: sa.Connection) -> People:
        """Inside a save: the service's directory and tables, the saving connection."""
        return cls(service.access.directory, service.compiled.tables, lambda: nullcontext(conn))

    def _department_index(self) -> dict[str, str]:
        cached = _DEPARTMENTS.get(id(self.directory))
        if cached is not None and cached[0] is self.directory:
            return cached[1]
        table = self.tables["department"]
        with self.reading() as conn:
            rows = conn.execute(sa.select(table.c.id, table.c.name).where(table.c.deleted_at.is_(None))).fetchall()
        index: dict[str, str] = {}
        for row in rows:
            index[row.id] = row.id
            index.setdefault(row.name, row.id)
        if len(_DEPARTMENTS) > 32:
            _DEPARTMENTS.clear()
        _DEPARTMENTS[id(self.directory)] = (self.directory, index)
        return index

    def department_ids(self, names: Iterable[str]) -> set[str]:
        index = self._department_index()
        found: set[str] = set()
        for name in names:
            if name in index:
                found |= self.directory.subtree(index[name])
        return found

    def contains(self, spec: dict | None, principal: Principal) -> bool:
        if not spec or principal.user_id is None:
            return False
        if set(spec.get("roles") or []) & set(principal.roles):
            return True
        users = set(spec.get("users") or [])
        if principal.user_id in users or principal.username in users:
            return True
        departments = spec.get("departments") or []
        return bool(departments and principal.department
                    and principal.department in self.department_ids(departments))

    def users(self, spec: dict | None) -> list[str]:
        """Active users among `spec`, sorted by id (assignment candidates)."""
        if not spec:
            return []
        candidates: set[str] = set()
        if spec.get("roles"):
            candidates |= self.directory.users_with_roles(set(spec["roles"]))
        if spec.get("departments"):
            candidates |= self.directory.users_in(self.department_ids(spec["departments"]))
        users_t = self.tables["user"]
        named = list(spec.get("users") or [])
        conditions = []
        if candidates:
            conditions.append(users_t.c.id.in_(sorted(candidates)))
        if named:
            conditions.append(users_t.c.id.in_(named))
            conditions.append(users_t.c.username.in_(named))
        if not conditions:
            return []
        with self.reading() as conn:
            rows = conn.execute(
                sa.select(users_t.c.id).where(sa.or_(*conditions), users_t.c.deleted_at.is_(None),
                                              users_t.c.active.isnot(False)).order_by(users_t.c.id)
            ).fetchall()
        return [row.id for row in rows]


def is_pool_admin(people: People, access: Access, pool: Pool) -> bool:
    return access.is_admin or people.contains(pool.admins, access.principal)


def is_member(people: People, access: Access, pool: Pool) -> bool:
    return is_pool_admin(people, access, pool) or people.contains(pool.members, access.principal)


def visible_pool(runtime, principal: Principal, name: str) -> tuple[Pool, Access, People]:
    """The pool, if the principal is one of its members or admins (404 otherwise)."""
    people = People.of(runtime)
    access = Access(runtime.registry(), principal, people.directory)
    pool = get_pool(access.registry, name)
    if not is_member(people, access, pool):
        raise NotFound(f"No pool named {name!r}.", code="unknown_pool")
    return pool, access, people


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


def limits_for(people: People, pool: Pool, principal: Principal) -> dict:
    """max_per_day, max_held and reclaim_cooldown_days for a user, overrides applied."""
    claim = pool.claim
    limits = {k: claim.get(k) for k in ("max_per_day", "max_held", "reclaim_cooldown_days")}
    best_level, chosen = 0, {}
    for override in claim.get("overrides") or []:
        level = 0
        if override.get("user") in (principal.user_id, principal.username):
            level = 3
        elif override.get("department") and principal.department and principal.department in people.department_ids(
            [override["department"]]
        ):
            level = 2
        elif override.get("role") in principal.roles:
            level = 1
        if level == 0 or level < best_level:
            continue
        if level > best_level:
            best_level, chosen = level, {}
        for key in ("max_per_day", "max_held"):
            if key in override:
                chosen[key] = max(chosen.get(key, override[key]), override[key])
    limits.update(chosen)
    return limits


# --- entry (before_save) ------------------------------------------------------------------


def _protection_end(pool: Pool, start: datetime) -> datetime | None:
    days = pool.protection.get("default_days")
    if pool.protection.get("max_days") is not None and days:
        days = min(days, pool.protection["max_days"])
    return start + timedelta(days=days) if days else None


def pick_user(ctx, pool: Pool) -> str | None:
    """The user auto-assignment hands a new record to, or None (then it stays in the pool)."""
    cache = ctx.tx.__dict__.setdefault("pool_candidates", {})  # one lookup per transaction (imports)
    if pool.name not in cache:
        cache[pool.name] = People.within(ctx.service, ctx.conn).users(pool.assign_users or pool.members)
    candidates = cache[pool.name]
    if not candidates:
        return None
    if pool.strategy == "round_robin":
        turn = next_sequence(ctx.conn, f"pool:{pool.name}:round_robin")
        return candidates[(turn - 1) % len(candidates)]
    table = ctx.table
    counts = dict(ctx.conn.execute(
        sa.select(table.c.owner, sa.func.count()).where(
            table.c.owner.in_(candidates), table.c.deleted_at.is_(None), open_condition(ctx.obj, table)
        ).group_by(table.c.owner)
    ).fetchall())
    return min(candidates, key=lambda uid: (counts.get(uid, 0), uid))


def _enter(ctx, pool: Pool) -> None:
    record = ctx.record
    now = utcnow()
    if pool.strategy in ("round_robin", "load_balanced"):
        user = pick_user(ctx, pool)
        if user is not None:
            record.update(owner=user, pool=None, owner_since=now, protected_until=_protection_end(pool, now))
            ctx.notes.append(("assign", {"owner": [None, user]},
                              f"assigned by pool {pool.name} ({pool.strategy.replace('_', ' ')})"))
            return
    record.update(owner=None, pool=pool.name, owner_since=None, protected_until=None)


def before_save(ctx) -> None:
    if ctx.op not in ("create", "update") or ctx.options.get("system_action") in CLAIM_ACTIONS:
        return
    pools = pools_by_object(ctx.registry).get(ctx.obj.name)
    if not pools:
        return
    record = ctx.record
    if ctx.op == "update":
        if record.get("owner") and record.get("pool"):
            record["pool"] = None  # given an owner by an edit: it leaves the pool
            return
        if record.get("owner") or record.get("pool"):
            return
    elif record.get("owner"):
        if "owner" in (ctx.input or {}):
            return  # an explicit owner keeps the record out of pools
        if not (ctx.access.is_admin or ctx.source == "import"):
            return  # a user's own new record (owner by default) stays theirs
    ctx_time = FilterContext.current()
    for pool in pools:
        if _entry_matches(pool, ctx.obj, record, ctx_time):
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


# --- claims, assignment, release ------------------------------------------------------------


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
        values = {"owner": me, "pool": None, "owner_since": now, "protected_until": _protection_end(pool, now)}
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
                    {"owner": target, "pool": None, "owner_since": now, "protected_until": _protection_end(pool, now)},
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


# --- browsing ------------------------------------------------------------------------------


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


# --- recycle dates ---------------------------------------------------------------------------


def _with_activity(record: dict) -> dict:
    """Recycle rules read last_activity_at as 'last follow-up, or since the owner got it'."""
    if record.get("last_activity_at") is None and record.get("owner_since") is not None:
        return dict(record, last_activity_at=record["owner_since"])
    return record


def _time_leaves(flt: Any) -> list[tuple[str, int]]:
    found = []
    if isinstance(flt, dict):
        for key, arg in flt.items():
            if key in ("all", "any") and isinstance(arg, list):
                for child in arg:
                    found += _time_leaves(child)
            elif key == "not":
                found += _time_leaves(arg)
            elif isinstance(arg, dict) and isinstance(arg.get("older_than_days"), int):
                found.append((key, arg["older_than_days"]))
    return found


def earliest_due(rule: dict, obj, record: dict, now: datetime) -> datetime | None:
    """When the rule's condition first holds for the record as it is now (None: not foreseeable)."""
    record = _with_activity(record)
    candidates = {now}
    for name, days in _time_leaves(rule.get("when")):
        value = record.get(name)
        if isinstance(value, datetime):
            candidates.add(value + timedelta(days=days, seconds=1))
        elif value is not None and hasattr(value, "toordinal"):
            candidates.add(datetime.combine(value + timedelta(days=days + 1), time()))
    for moment in sorted(c for c in candidates if c >= now):
        ctx = FilterContext(moment, moment.date())
        try:
            if compile_predicate(rule["when"], obj.all_fields, ctx)(record):
                return moment
        except FilterError:
            return None
    return None


def recycle_info(runtime, principal: Principal, object_name: str, record_id: str) -> dict:
    """The computed recycle date of a record the caller can read."""
    svc = RecordService(runtime, principal, source="api")
    record = svc.get_record(object_name, record_id)
    obj = svc.obj(object_name)
    pool = pool_for_record(svc.registry, obj, record)
    info = {"id": record["id"], "object": obj.name, "pool": pool.name if pool else None,
            "in_pool": record.get("pool"), "protected_until": _iso(record.get("protected_until")),
            "recycle_at": None, "reason": None}
    if pool is None or not record.get("owner"):
        return info
    now = utcnow()
    best: tuple[datetime, str] | None = None
    for rule in pool.recycle:
        due = earliest_due(rule, obj, record, now)
        if due is None:
            continue
        if record.get("protected_until") and record["protected_until"] > due:
            due = record["protected_until"]
        if best is None or due < best[0]:
            best = (due, rule.get("reason"))
    if best:
        info.update(recycle_at=_iso(best[0]), reason=best[1])
    return info


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


# --- the recycle sweep ---------------------------------------------------------------------


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


# --- registration --------------------------------------------------------------------------


def register(runtime) -> None:
    runtime.hooks.register("before_save", before_save, name="pools.entry", order=HOOK_ORDER)
    runtime.hooks.register("after_save", extend_protection, name="pools.protection", order=30)
    if not any(name == "pool_recycle" for name, _ in runtime.sweeps):
        runtime.sweeps.append(("pool_recycle", recycle_sweep))
    runtime.features.add(FEATURE)


from ..features import Feature
from . import api, pages

HERE = Path(__file__).resolve().parent
FEATURE = Feature("pools", api=api.routes, pages=pages.routes, nav=pages.NAV, templates=HERE / "templates",
                  messages=HERE / "messages", openapi=api.openapi_paths)
