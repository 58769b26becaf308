"""Who is asking and what they may do: principals, passwords, tokens, role scopes and
field access. The record service asks this module on every read and write.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from werkzeug.security import check_password_hash, generate_password_hash

from ..metadata.registry import Registry
from . import db
from .clock import utcnow

SCOPES = ("none", "own", "department", "subtree", "all")
SCOPE_RANK = {name: rank for rank, name in enumerate(SCOPES)}
ACTIONS = ("create", "read", "edit", "delete", "export", "report", "claim", "approve")
TOKEN_TTL = timedelta(hours=12)

# A fixed hash to compare against when the user does not exist, so a login's timing does
# not tell which usernames exist.
_DUMMY_HASH = generate_password_hash("not-a-real-password", method="scrypt")


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def verify_password(stored: str | None, password: str) -> bool:
    if not stored:
        check_password_hash(_DUMMY_HASH, password)
        return False
    return check_password_hash(stored, password)


def hash_token(token: str) -> str:
    # Tokens are 256-bit random strings, so a fast hash is enough to make a stolen table useless.
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    user_id: str | None
    username: str
    roles: frozenset[str] = frozenset()
    department: str | None = None
    manager: str | None = None
    locale: str = "en"
    is_system: bool = False

    @classmethod
    def system(cls) -> Principal:
        """The platform acting for itself (sweeps, workflows): full access, logged as such."""
        return cls(user_id=None, username="system", roles=frozenset({"admin"}), is_system=True)


@dataclass
class Directory:
    """Users and departments, as scope checks need them (cached briefly per process)."""

    users: dict[str, dict] = field(default_factory=dict)  # id -> {roles, department, manager, active}
    departments: dict[str, str | None] = field(default_factory=dict)  # id -> parent id

    def subtree(self, department: str | None) -> set[str]:
        if not department:
            return set()
        children: dict[str, list[str]] = {}
        for dept, parent in self.departments.items():
            if parent:
                children.setdefault(parent, []).append(dept)
        found, stack = set(), [department]
        while stack:
            current = stack.pop()
            if current in found:
                continue
            found.add(current)
            stack.extend(children.get(current, []))
        return found

    def users_in(self, departments: set[str]) -> set[str]:
        return {uid for uid, info in self.users.items() if info.get("department") in departments}

    def users_with_roles(self, roles: set[str]) -> set[str]:
        return {uid for uid, info in self.users.items() if roles & set(info.get("roles") or [])}

    def reports_of(self, user_id: str) -> set[str]:
        """Everyone below a user in the reporting line (manager field), transitively."""
        below: dict[str, list[str]] = {}
        for uid, info in self.users.items():
            if info.get("manager"):
                below.setdefault(info["manager"], []).append(uid)
        found, stack = set(), list(below.get(user_id, []))
        while stack:
            current = stack.pop()
            if current in found:
                continue
            found.add(current)
            stack.extend(below.get(current, []))
        return found


class Access:
    """One principal's rights under one registry."""

    def __init__(self, registry: Registry, principal: Principal, directory: Directory):
        self.registry = registry
        self.principal = principal
        self.directory = directory
        self._roles = [registry.roles[name] for name in principal.roles if name in registry.roles]
        self._field_cache: dict[tuple[str, str, str], str] = {}

    @property
    def is_admin(self) -> bool:
        return self.principal.is_system or any(role.get("admin") for role in self._roles)

    def has_permission(self, permission: str) -> bool:
        return self.is_admin or any(permission in (role.get("permissions") or []) for role in self._roles)

    def scope(self, object_name: str, action: str) -> str:
        if self.is_admin:
            return "all"
        best = "none"
        for role in self._roles:
            granted = ((role.get("objects") or {}).get(object_name) or {}).get(action, "none")
            if SCOPE_RANK.get(granted, 0) > SCOPE_RANK[best]:
                best = granted
        return best

    def can(self, object_name: str, action: str) -> bool:
        return self.scope(object_name, action) != "none"

    def owners_in_scope(self, scope: str) -> set[str] | None:
        """The owners whose records `scope` reaches; None means every record."""
        me = self.principal.user_id
        if scope == "all":
            return None
        if scope == "none" or me is None:
            return set()
        owners = {me}
        # The hierarchy follows the organisation: a caller reaches the people who report to
        # them (the manager chain, transitively) and the holders of roles below theirs *within
        # the caller's own department subtree* -- never every holder of a lower role in the
        # company. A caller without a department reaches lower roles only through the chain.
        below_roles: set[str] = set()
        for role in self._roles:
            below_roles |= self.registry.role_descendants(role["name"])
        unit = self.directory.subtree(self.principal.department)
        if below_roles and unit:
            owners |= self.directory.users_with_roles(below_roles) & self.directory.users_in(unit)
        owners |= self.directory.reports_of(me)
        if scope == "department" and self.principal.department:
            owners |= self.directory.users_in({self.principal.department})
        elif scope == "subtree" and self.principal.department:
            owners |= self.directory.users_in(self.directory.subtree(self.principal.department))
        return owners

    def row_filter(self, object_name: str, action: str, table: sa.Table) -> Any:
        """A SQL condition selecting the rows `action` may touch (True for all)."""
        owners = self.owners_in_scope(self.scope(object_name, action))
        if owners is None:
            return sa.true()
        if not owners:
            return sa.false()
        return table.c.owner.in_(sorted(owners))

    def allows_row(self, object_name: str, action: str, record: dict) -> bool:
        owners = self.owners_in_scope(self.scope(object_name, action))
        return owners is None or record.get("owner") in owners

    def effective_action(self, object_name: str, action: str) -> str:
        """`action` if one of the caller's roles says what it may do with it on the object, else
        "read": reports, claims and approvals by roles that say nothing about them fall back to
        the read scope (so `"report": "none"` refuses, an absent entry means "as read")."""
        for role in self._roles:
            if action in ((role.get("objects") or {}).get(object_name) or {}):
                return action
        return "read"

    def field_access(self, object_name: str, field_name: str, action: str = "read") -> str:
        """'edit', 'read_only' or 'hidden': the most generous answer among the user's roles that
        grant `action` on the object — and a computed field (formula, rollup) is hidden wherever
        one of the fields it is computed from is hidden (derived.dependencies): `weighted_amount`
        over a hidden `amount` is hidden too. Every path that asks "may this role see field X"
        asks here, so reads, filters, sorts, exports, history, search and reports agree."""
        if self.is_admin:
            return "edit"
        key = (object_name, field_name, action)
        cache = self._field_cache
        if key not in cache:
            cache[key] = "hidden"  # while resolving: a formula cycle does not recurse forever
            cache[key] = self._effective_field_access(object_name, field_name, action)
        return cache[key]

    def _effective_field_access(self, object_name: str, field_name: str, action: str) -> str:
        from .derived import dependencies

        own = self._own_field_access(object_name, field_name, action)
        if own == "hidden":
            return own
        for dep_object, dep_field in dependencies(self.registry, object_name, field_name):
            dep_action = action if dep_object == object_name else self.effective_action(dep_object, action)
            if self.field_access(dep_object, dep_field, dep_action) == "hidden":
                return "hidden"
        return own

    def _own_field_access(self, object_name: str, field_name: str, action: str) -> str:
        best = "hidden"
        rank = {"hidden": 0, "read_only": 1, "edit": 2}
        granting = [
            role
            for role in self._roles
            if ((role.get("objects") or {}).get(object_name) or {}).get(action, "none") != "none"
        ]
        for role in granting:
            setting = ((role.get("fields") or {}).get(object_name) or {}).get(field_name, "edit")
            if rank.get(setting, 2) > rank[best]:
                best = setting
        return best

    def hidden_fields(self, object_name: str, action: str = "read") -> set[str]:
        obj = self.registry.object(object_name)
        return {name for name in obj.all_fields if self.field_access(object_name, name, action) == "hidden"}


# --- tokens -------------------------------------------------------------------------------


def issue_token(conn: sa.Connection, user_id: str, label: str | None = None) -> tuple[str, datetime]:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    expires = now + TOKEN_TTL
    conn.execute(
        db.auth_token.insert().values(
            token_hash=hash_token(token), user_id=user_id, created_at=now, expires_at=expires, label=label
        )
    )
    return token, expires


def revoke_token(conn: sa.Connection, token: str) -> bool:
    result = conn.execute(
        db.auth_token.update()
        .where(db.auth_token.c.token_hash == hash_token(token), db.auth_token.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return result.rowcount > 0


def token_user(conn: sa.Connection, token: str) -> str | None:
    row = conn.execute(
        sa.select(db.auth_token.c.user_id, db.auth_token.c.expires_at, db.auth_token.c.revoked_at).where(
            db.auth_token.c.token_hash == hash_token(token)
        )
    ).first()
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        return None
    return row.user_id


def principal_from_row(row: Any) -> Principal:
    roles: Iterable[str] = row["roles"] or []
    return Principal(
        user_id=row["id"],
        username=row["username"],
        roles=frozenset(roles),
        department=row.get("department"),
        manager=row.get("manager"),
        locale=row.get("locale") or "en",
    )
