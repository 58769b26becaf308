"""Who is who, as automation needs it: users by id or username, managers, role holders,
department heads. Read fresh from the user table (in the caller's transaction), not from
the per-process directory cache, because an approval chain must not pick a stale manager.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa


class People:
    def __init__(self, runtime: Any, conn: sa.Connection, compiled: Any = None):
        self.runtime = runtime
        self.conn = conn
        self.compiled = compiled or runtime.compiled()
        self.users_t = self.compiled.tables["user"]
        self._by_id: dict[str, dict | None] = {}
        self._all: dict[str, dict] | None = None

    def _row(self, row: Any) -> dict:
        roles = row.roles
        if isinstance(roles, str):
            try:
                roles = json.loads(roles)
            except ValueError:
                roles = [roles]
        return {"id": row.id, "username": row.username, "display_name": row.display_name, "email": row.email,
                "manager": row.manager, "department": row.department, "roles": list(roles or []),
                "active": bool(row.active) if row.active is not None else True}

    def _columns(self):
        t = self.users_t
        return [t.c.id, t.c.username, t.c.display_name, t.c.email, t.c.manager, t.c.department, t.c.roles,
                t.c.active]

    def all(self) -> dict[str, dict]:
        if self._all is None:
            t = self.users_t
            rows = self.conn.execute(sa.select(*self._columns()).where(t.c.deleted_at.is_(None))).fetchall()
            self._all = {r.id: self._row(r) for r in rows}
            self._by_id.update(self._all)
        return self._all

    def get(self, user_id: str | None) -> dict | None:
        """The user (active or not); None if there is no such user."""
        if not user_id:
            return None
        if user_id not in self._by_id:
            t = self.users_t
            row = self.conn.execute(
                sa.select(*self._columns()).where(t.c.id == str(user_id), t.c.deleted_at.is_(None))
            ).first()
            self._by_id[user_id] = self._row(row) if row is not None else None
        return self._by_id[user_id]

    def active(self, user_id: str | None) -> bool:
        user = self.get(user_id)
        return bool(user and user["active"])

    def resolve(self, ref: str | None) -> str | None:
        """A user id from an id or a username."""
        if not ref:
            return None
        if self.get(ref) is not None:
            return ref
        t = self.users_t
        row = self.conn.execute(
            sa.select(t.c.id).where(t.c.username == ref, t.c.deleted_at.is_(None))
        ).first()
        return row.id if row else None

    def manager_of(self, user_id: str | None) -> str | None:
        user = self.get(user_id)
        return user["manager"] if user else None

    def manager_chain(self, user_id: str | None, levels: int) -> list[str]:
        chain, seen, current = [], {user_id}, user_id
        for _ in range(max(levels, 1)):
            current = self.manager_of(current)
            if not current or current in seen:
                break
            seen.add(current)
            chain.append(current)
        return chain

    def with_role(self, role: str) -> list[str]:
        return sorted(uid for uid, u in self.all().items() if u["active"] and role in u["roles"])

    def department_head(self, department_id: str | None) -> str | None:
        if not department_id:
            return None
        t = self.compiled.tables["department"]
        row = self.conn.execute(
            sa.select(t.c.head).where(t.c.id == str(department_id), t.c.deleted_at.is_(None))
        ).first()
        return row.head if row else None

    def only_active(self, user_ids: list[str | None]) -> list[str]:
        return [uid for uid in dict.fromkeys(u for u in user_ids if u) if self.active(uid)]

    def info(self, user_id: str | None) -> dict:
        """What a template sees as `user`."""
        user = self.get(user_id) if user_id else None
        if user is None:
            return {"id": user_id, "username": "system" if not user_id else user_id, "display_name": "System"}
        return {k: user[k] for k in ("id", "username", "display_name", "email")}
