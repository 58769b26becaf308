"""Assignment rules (`assignment_rule` metadata): who a new record goes to, as ordered entries.

Salesforce's lead assignment rule, as metadata for any object: one active rule per object,
entries tried in order, the first whose `when` (the filter grammar) matches the new record
decides: a `user`, holders of a `role` (in a `department` subtree; round robin or load balanced
through the same picker pool auto-assignment uses, never past `max_held`), or a `pool` (the
record enters it, with that pool's own auto-assignment).

Where it runs: pools.hooks.before_save, on create only, for a record nobody chose an owner for
(no `owner` in the input, and the creator is an admin, an import or the platform): every create
path (API, web form, import rows, platform writes) goes through the record service and so
through that one hook. A user's own new record stays theirs, as it does for pool entry: the rule
routes what arrives, not what a rep types in for themselves.

What it does not do: a matching entry whose role has nobody with room (or nobody who may hold
the object) leaves the record as if no rule matched (its pool, or the creator) and says so in
the history; a named user who may not hold the object is refused by the write path's owner rule
(422 `owner_not_eligible`), not skipped: a rule that routes to the wrong person should be seen.

Validation: the document's shape (its JSON Schema), objects, fields, roles and pools (the
registry check in metadata.validate), and users and departments against the directory when the
rule is applied (`directory_issues`, called by platform.apply), once the organisation has
departments: the shipped defaults are applied before any department exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa

from ...metadata.bundle import MetaIssue
from ...metadata.registry import Registry
from ..clock import utcnow
from ..filters import FilterContext, FilterError, compile_predicate
from .definitions import all_pools, pool_for_record

KIND = "assignment_rule"


@dataclass(frozen=True)
class Entry:
    index: int
    name: str | None
    when: dict | None
    target: dict

    @property
    def label(self) -> str:
        return f"entry {self.index + 1}" + (f" ({self.name})" if self.name else "")


@dataclass(frozen=True)
class Rule:
    name: str
    object: str
    entries: tuple[Entry, ...]
    doc: dict = field(compare=False, repr=False)

    @classmethod
    def from_doc(cls, doc: dict) -> Rule:
        entries = tuple(Entry(i, e.get("name"), e.get("when") or None, e.get("assign_to") or {})
                        for i, e in enumerate(doc.get("entries") or []))
        return cls(doc["name"], doc["object"], entries, doc)


_RULES: dict[int, tuple[Registry, dict[str, Rule]]] = {}


def active_rules(registry: Registry) -> dict[str, Rule]:
    """{object: its active rule} (cached per registry; registries are immutable). Validation
    allows one active rule per object; should two slip in, the first by name wins."""
    cached = _RULES.get(id(registry))
    if cached is not None and cached[0] is registry:
        return cached[1]
    found: dict[str, Rule] = {}
    for doc in registry.of_kind(KIND):
        if doc.get("active", True) and doc.get("object") in registry.objects:
            found.setdefault(doc["object"], Rule.from_doc(doc))
    if len(_RULES) > 16:
        _RULES.clear()
    _RULES[id(registry)] = (registry, found)
    return found


def matching_entry(rule: Rule, obj, record: dict) -> Entry | None:
    ctx = FilterContext.current()
    for entry in rule.entries:
        if entry.when is None:
            return entry
        try:
            if compile_predicate(entry.when, obj.all_fields, ctx)(record):
                return entry
        except FilterError:
            continue  # a filter the live object no longer fits (validated at apply) matches nothing
    return None


def _user_id(ctx, name: str) -> str:
    """A user named by username or id; an unknown name is returned as is, and the owner rule
    then refuses it by name (the user was deleted since the rule was applied)."""
    cache = ctx.tx.__dict__.setdefault("rule_users", {})  # one lookup per transaction (imports)
    if name not in cache:
        users = ctx.service.table("user")
        row = ctx.conn.execute(sa.select(users.c.id).where(
            sa.or_(users.c.id == name, users.c.username == name), users.c.deleted_at.is_(None)).limit(1)).first()
        cache[name] = row.id if row else name
    return cache[name]


def apply_rule(ctx) -> bool:
    """Route a new record by its object's active rule; True if an entry placed it (an owner or
    a pool), False to leave it to pool entry / the creator as before."""
    rule = active_rules(ctx.registry).get(ctx.obj.name)
    if rule is None:
        return False
    entry = matching_entry(rule, ctx.obj, ctx.record)
    if entry is None:
        return False
    from .hooks import _enter, pick_holder  # the pool entry and picker this extends

    record, target = ctx.record, entry.target
    where = f"assignment rule {rule.name}, {entry.label}"
    if target.get("pool"):
        pool = next((p for p in all_pools(ctx.registry) if p.name == target["pool"] and p.object == ctx.obj.name),
                    None)
        if pool is None:
            return False  # validated at apply; a pool deleted since sends nothing anywhere
        _enter(ctx, pool)
        if record.get("owner") is None:
            ctx.notes.append(("assign", {"pool": [None, pool.name]}, f"put in pool {pool.name} by {where}"))
        return True
    if target.get("user"):
        user = _user_id(ctx, target["user"])
        strategy = None
    else:
        spec = {"roles": [target["role"]]}
        if target.get("department"):
            spec["departments"] = [target["department"]]
        limit = target.get("max_held")
        if limit is None:
            home = pool_for_record(ctx.registry, ctx.obj, record)
            limit = (home.claim or {}).get("max_held") if home else None
        strategy = target.get("strategy") or "round_robin"
        user = pick_holder(ctx, f"assignment_rule:{rule.name}:{entry.index}", strategy, spec, limit)
        if user is None:
            ctx.notes.append(("assign", {}, f"{where}: nobody holding role {target['role']}"
                              + (f" in {target['department']}" if target.get("department") else "")
                              + " has room; left as without a rule"))
            return False
    now = utcnow()
    record.update(owner=user, pool=None, owner_since=now, protected_until=None)
    how = f" ({strategy.replace('_', ' ')})" if strategy else ""
    ctx.notes.append(("assign", {"owner": [None, user]}, f"assigned by {where}{how}"))
    return True


# --- apply-time checks against the directory ----------------------------------------------------


def directory_issues(conn: sa.Connection, live: Registry, documents: Iterable[dict],
                     sources: dict) -> list[MetaIssue]:
    """Users and departments the changed assignment rules name must exist (live ones). Before
    the organisation has any department (a fresh install applying the defaults) departments
    cannot be checked and are not; unknown ones then simply match nobody."""
    docs = [d for d in documents if d.get("kind") == KIND]
    if not docs or "user" not in live.objects or "department" not in live.objects:
        return []
    from ..storage import Tables

    tables = Tables.of(live)
    users, departments = tables["user"], tables["department"]
    live_users = sa.and_(users.c.deleted_at.is_(None))
    known_departments = None
    issues = []
    for doc in docs:
        src = sources.get((KIND, str(doc.get("name"))), f"{KIND}/{doc.get('name')}")
        for index, entry in enumerate(doc.get("entries") or []):
            target = entry.get("assign_to") or {}
            path = f"/entries/{index}/assign_to"
            if isinstance(target.get("user"), str):
                name = target["user"]
                found = conn.execute(sa.select(users.c.id).where(
                    sa.or_(users.c.id == name, users.c.username == name), live_users).limit(1)).first()
                if found is None:
                    issues.append(MetaIssue(src, f"{path}/user", f"unknown user {name!r}"))
            if isinstance(target.get("department"), str):
                if known_departments is None:
                    known_departments = set()
                    for row in conn.execute(sa.select(departments.c.id, departments.c.name)
                                            .where(departments.c.deleted_at.is_(None))):
                        known_departments |= {row.id, row.name}
                if known_departments and target["department"] not in known_departments:
                    issues.append(MetaIssue(src, f"{path}/department",
                                            f"unknown department {target['department']!r}"))
    return issues
