"""Reading requests: a request as JSON (with its steps and decisions in detail), one request
for someone involved, the caller's queue, and a record's current submitter and approvers
(for workflow recipients)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..platform.errors import NotFound
from ..platform.security import Access, Principal
from .processes import step_label
from .state import PENDING, T_APPROVED, T_DELEGATED, T_PENDING, T_REJECTED, is_involved, load, tasks_of
from .tables import request, task


def iso(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value is not None else None


def request_json(conn: sa.Connection, req: Any, registry: Any, detail: bool = False, tasks: list | None = None) -> dict:
    tasks = tasks if tasks is not None else tasks_of(conn, req.id)
    current = [t for t in tasks if t.round == req.round and t.status != T_DELEGATED]
    chain = list(req.chain or [])
    out = {
        "id": req.id,
        "process": req.process,
        "object": req.object,
        "record": req.record_id,
        "status": req.status,
        "step": req.step_name,
        "step_number": chain.index(req.step_index) + 1 if req.step_index in chain else None,
        "approvers": [t.approver for t in current],
        "submitter": req.submitter,
        "submitted_at": iso(req.submitted_at),
        "decided_at": iso(req.decided_at),
        "comment": req.comment,
    }
    if not detail:
        return out
    process = registry.get("approval_process", req.process) or {"steps": []}
    steps = []
    for index, step in enumerate(process.get("steps") or []):
        step_tasks = [t for t in tasks if t.step_index == index]
        last_round = max((t.round for t in step_tasks), default=None)
        last = [t for t in step_tasks if t.round == last_round]
        if index not in chain:
            status = "skipped"
        elif req.status == PENDING and index == req.step_index:
            status = "pending"
        elif any(t.status == T_REJECTED for t in last):
            status = "rejected"
        elif any(t.status == T_APPROVED for t in last):
            status = "approved"
        elif last:
            status = "closed"
        else:
            status = "not_reached"
        steps.append({"name": step["name"], "label": step_label(step), "number": index + 1,
                      "mode": step.get("mode", "any"), "status": status,
                      "approvers": [t.approver for t in last if t.status != T_DELEGATED]})
    out["steps"] = steps
    out["decisions"] = [{
        "step": t.step_name, "approver": t.approver, "on_behalf_of": t.delegated_from, "status": t.status,
        "decided_at": iso(t.decided_at), "comment": t.comment,
    } for t in tasks if t.status != T_PENDING]
    out["tasks"] = [{"id": t.id, "step": t.step_name, "round": t.round, "approver": t.approver,
                     "on_behalf_of": t.delegated_from, "status": t.status, "created_at": iso(t.created_at)}
                    for t in tasks]
    return out


def get_request(runtime: Any, principal: Principal, request_id: str) -> dict:
    compiled = runtime.compiled()
    registry = compiled.registry
    is_admin = Access(registry, principal, runtime.directory()).is_admin
    with runtime.reading() as conn:
        req = load(conn, request_id)
        if req is None:
            raise NotFound("No approval request with that id.", code="request_not_found")
        tasks = tasks_of(conn, req.id)
        allowed = principal.user_id == req.submitter or is_involved(tasks, principal.user_id) or is_admin
        if not allowed:
            raise NotFound("No approval request with that id.", code="request_not_found")
        out = request_json(conn, req, registry, detail=True, tasks=tasks)
        _add_titles(compiled, conn, [out])
        _conceal(registry, principal, [out])
        return out


def queue(runtime: Any, principal: Principal, as_submitter: bool = False, limit: int = 200) -> list[dict]:
    """Requests awaiting the caller's decision (or, as submitter, the caller's own)."""
    compiled = runtime.compiled()
    with runtime.reading() as conn:
        if as_submitter:
            rows = conn.execute(sa.select(request).where(request.c.submitter == principal.user_id)
                                .order_by(request.c.submitted_at.desc()).limit(limit)).fetchall()
        else:
            rows = conn.execute(
                sa.select(request).join(task, sa.and_(task.c.request_id == request.c.id,
                                                      task.c.round == request.c.round))
                .where(task.c.approver == principal.user_id, task.c.status == T_PENDING,
                       request.c.status == PENDING)
                .order_by(request.c.submitted_at).limit(limit)
            ).fetchall()
        items = [request_json(conn, row, compiled.registry) for row in rows]
        _add_titles(compiled, conn, items)
        _conceal(compiled.registry, principal, items)
        return items


def _conceal(registry: Any, principal: Principal, items: list[dict]) -> None:
    """A transfer request (a process with purpose ownership_transfer) tells its submitter
    nothing about the record they asked for (no id, no name) until it is approved and theirs."""
    for item in items:
        doc = registry.get("approval_process", item["process"]) or {}
        if (doc.get("purpose") == "ownership_transfer" and item.get("submitter") == principal.user_id
                and item["status"] != "approved"):
            item["record"] = None
            item.pop("record_name", None)


def _add_titles(compiled: Any, conn: sa.Connection, items: list[dict]) -> None:
    by_object: dict[str, list[dict]] = {}
    for item in items:
        by_object.setdefault(item["object"], []).append(item)
    for object_name, group in by_object.items():
        if not compiled.registry.has_object(object_name):
            continue
        obj = compiled.registry.object(object_name)
        if not obj.name_field or obj.name_field not in compiled.tables[object_name].c:
            continue
        table = compiled.tables[object_name]
        names = dict(conn.execute(sa.select(table.c.id, table.c[obj.name_field])
                                  .where(table.c.id.in_([i["record"] for i in group]))).fetchall())
        for item in group:
            item["record_name"] = names.get(item["record"])


def current_people(conn: sa.Connection, object_name: str, record_id: str | None) -> tuple[str | None, list[str]]:
    """(submitter, current approvers) of a record's latest request, for workflow recipients."""
    if not record_id:
        return None, []
    req = conn.execute(sa.select(request).where(request.c.object == object_name, request.c.record_id == record_id)
                       .order_by(request.c.submitted_at.desc()).limit(1)).first()
    if req is None:
        return None, []
    tasks = tasks_of(conn, req.id)
    return req.submitter, [t.approver for t in tasks if t.round == req.round and t.status != T_DELEGATED]
