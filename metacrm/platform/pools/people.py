"""Who is in a pool: `principals` specs resolved against the directory, pool members and
admins, and the claim limits that apply to one user.

Nothing here may call runtime.compiled() or runtime.directory() inside a transaction: on
SQLite those open a second connection whose BEGIN IMMEDIATE would wait for our own lock."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import nullcontext
from typing import Any

import sqlalchemy as sa

from ..errors import NotFound
from ..records import RecordService
from ..security import Access, Principal
from .definitions import Pool, get_pool

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
        if spec.get("roles") and spec.get("departments"):
            # roles and departments together mean "holders of these roles in these units"
            # (hardware reps), not every rep in the company plus everyone in hardware
            candidates = self.directory.users_with_roles(set(spec["roles"])) & \
                self.directory.users_in(self.department_ids(spec["departments"]))
        elif spec.get("roles"):
            candidates |= self.directory.users_with_roles(set(spec["roles"]))
        elif spec.get("departments"):
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
