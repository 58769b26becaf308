"""The record lock: a record with a pending request is read-only while its process locks."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..platform.errors import Locked
from .processes import objects_with_processes
from .state import T_PENDING, pending_for_record
from .tables import task


def lock_hook(ctx: Any) -> None:
    """While a request is pending and the process locks, only admins (logged) and, if the
    process allows, the current approvers may change or delete the record."""
    if ctx.op not in ("update", "delete"):
        return
    if ctx.options.get("system_action") == "approval":
        return
    if ctx.obj.name not in objects_with_processes(ctx.service.compiled):
        return
    req = pending_for_record(ctx.conn, ctx.obj.name, ctx.old["id"])
    if req is None:
        return
    process = ctx.registry.get("approval_process", req.process) or {}
    if process.get("lock_record", True) is False:
        return
    who = ctx.principal.username
    if ctx.access.is_admin:
        ctx.notes.append(("approval", {}, (f"Changed by {who} (admin override) while locked by a pending "
                                          f"approval request ({req.process}).")))
        return
    if process.get("approver_can_edit"):
        current = ctx.conn.execute(sa.select(task.c.id).where(
            task.c.request_id == req.id, task.c.round == req.round, task.c.status == T_PENDING,
            task.c.approver == ctx.principal.user_id)).first()
        if current is not None:
            ctx.notes.append(("approval", {}, f"Changed by the approver {who} while pending approval."))
            return
    raise Locked("The record is locked while its approval request is pending.", code="record_locked",
                 request=req.id)


def record_locked(service: Any, obj_name: str, record_id: str) -> bool:
    """Whether this user's changes to the record would be refused by the lock (the web's inline
    edit offers no pencil then): a pending request whose process locks, for a non-admin who is
    not one of its current approvers allowed to edit."""
    if service.access.is_admin or obj_name not in objects_with_processes(service.compiled):
        return False
    with service.runtime.reading() as conn:
        req = pending_for_record(conn, obj_name, record_id)
        if req is None:
            return False
        process = service.registry.get("approval_process", req.process) or {}
        if process.get("lock_record", True) is False:
            return False
        if process.get("approver_can_edit"):
            current = conn.execute(sa.select(task.c.id).where(
                task.c.request_id == req.id, task.c.round == req.round, task.c.status == T_PENDING,
                task.c.approver == service.principal.user_id)).first()
            if current is not None:
                return False
    return True
