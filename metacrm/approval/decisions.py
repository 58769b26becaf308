"""Deciding a request: approve or reject as one of the current step's approvers (on to the
next step, back to the previous one, or the outcome), and the submitter's recall."""

from __future__ import annotations

from typing import Any

from ..platform.clock import utcnow
from ..platform.errors import Conflict, Forbidden, NotFound
from ..platform.records import RecordService
from ..platform.security import Access, Principal
from .flow import Flow, display_names, record_title
from .processes import step_label
from .state import (
    APPROVED,
    PENDING,
    RECALLED,
    REJECTED,
    T_APPROVED,
    T_PENDING,
    T_REJECTED,
    close_round,
    finish,
    is_involved,
    load,
    move,
    tasks_of,
)
from .tables import task
from .views import request_json


def decide(runtime: Any, principal: Principal, request_id: str, decision: str, comment: str | None = None) -> dict:
    """approve or reject as one of the current step's approvers."""
    if decision not in ("approve", "reject"):
        raise NotFound("No such decision.")
    base = RecordService(runtime, principal, source="approval")
    with runtime.transaction() as tx:
        flow = Flow(runtime, principal, tx, base)
        req = load(tx.conn, request_id, for_update=True)
        if req is None:
            raise NotFound("No approval request with that id.", code="request_not_found")
        tasks = tasks_of(tx.conn, req.id)
        involved = is_involved(tasks, principal.user_id) or principal.user_id == req.submitter
        if not involved and not flow.service.access.is_admin:
            raise Forbidden("Only an approver of the current step may decide.", code="not_an_approver")
        if req.status != PENDING:
            raise Conflict(f"This request is already {req.status}.", code="already_decided", status=req.status)
        if req.submitter and principal.user_id == req.submitter:
            raise Forbidden("No one approves or rejects their own request.", code="own_request")
        mine = [t for t in tasks if t.round == req.round and t.approver == principal.user_id]
        my_task = next((t for t in mine if t.status == T_PENDING), None)
        if my_task is None:
            if mine:
                raise Conflict("You have already decided this step.", code="already_decided")
            if any(t.approver == principal.user_id and t.round < req.round for t in tasks):
                # an approver of a step someone else decided a moment ago (a race): stale, not forbidden
                raise Conflict("This step was decided meanwhile; the request has moved on.",
                               code="already_decided", step=req.step_name)
            raise Forbidden("Only an approver of the current step may decide.", code="not_an_approver")
        # The approve scope (or, where the roles say nothing about approving the object, the read
        # scope) must reach the record's owner: being named by a process is not enough. A delegate
        # decides with the authority of the approver they stand in for.
        access = _authority(flow, my_task)
        target = flow.record(flow.service.obj(req.object), req.record_id)
        if not access.allows_row(req.object, access.effective_action(req.object, "approve"), target):
            raise Forbidden("You may not decide approvals on this record.", code="approve_not_allowed")
        now = utcnow()
        status = T_APPROVED if decision == "approve" else T_REJECTED
        if tx.conn.execute(
            task.update().where(task.c.id == my_task.id, task.c.status == T_PENDING)
            .values(status=status, decided_at=now, comment=comment)
        ).rowcount != 1:
            raise Conflict("This step was decided meanwhile.", code="already_decided")
        process = flow.registry.get("approval_process", req.process)
        if process is None:
            raise Conflict(f"The approval process {req.process!r} no longer exists.", code="process_missing")
        obj = flow.service.obj(req.object)
        record = flow.record(obj, req.record_id)
        step = process["steps"][req.step_index]
        who = display_names(flow.people, [principal.user_id])
        said = f" Comment: {comment}" if comment else ""
        round_tasks = [t for t in tasks if t.round == req.round]
        if decision == "approve":
            others = [t for t in round_tasks if t.status == T_PENDING and t.id != my_task.id]
            if step.get("mode", "any") == "all" and others:
                flow.history(obj, record["id"], f"Step {step_label(step)}: approved by {who}; waiting for "
                                                f"{display_names(flow.people, [t.approver for t in others])}.{said}")
                return request_json(tx.conn, load(tx.conn, req.id), flow.registry)
            close_round(tx.conn, req, now)
            chain = list(req.chain or [])
            position = chain.index(req.step_index) if req.step_index in chain else len(chain) - 1
            if position + 1 < len(chain):
                move(tx.conn, req, chain[position + 1], process)
                nxt = process["steps"][chain[position + 1]]
                flow.history(obj, record["id"], f"Step {step_label(step)}: approved by {who}.{said}")
                approvers = flow.open_step(load(tx.conn, req.id), process, obj, record, chain[position + 1],
                                           req.round + 1)
                flow.history(obj, record["id"], f"Step {step_label(nxt)}: waiting for "
                                                f"{display_names(flow.people, approvers)}.")
            else:
                finish(tx.conn, req, APPROVED, now)
                flow.history(obj, record["id"], f"Step {step_label(step)}: approved by {who}. Request approved.{said}")
                record = flow.run_event("approve", req, process, obj, record, comment,
                                        [t.approver for t in round_tasks], f"ap:{req.id}:approve")
                flow.tell_submitter(req, obj, record, "approved", comment)
        else:
            close_round(tx.conn, req, now)
            chain = list(req.chain or [])
            position = chain.index(req.step_index) if req.step_index in chain else 0
            if step.get("on_reject") == "previous" and position > 0:
                back = chain[position - 1]
                move(tx.conn, req, back, process)
                flow.history(obj, record["id"], f"Step {step_label(step)}: rejected by {who}; back to step "
                                                f"{step_label(process['steps'][back])}.{said}")
                flow.open_step(load(tx.conn, req.id), process, obj, record, back, req.round + 1)
            else:
                finish(tx.conn, req, REJECTED, now)
                flow.history(obj, record["id"], f"Step {step_label(step)}: rejected by {who}. Request rejected.{said}")
                record = flow.run_event("reject", req, process, obj, record, comment,
                                        [t.approver for t in round_tasks], f"ap:{req.id}:reject")
                flow.tell_submitter(req, obj, record, "rejected", comment)
        return request_json(tx.conn, load(tx.conn, req.id), flow.registry)


def _authority(flow: Flow, my_task: Any) -> Access:
    """Whose rights a decision on this task is judged by: the delegator's for a delegated task."""
    access = flow.service.access
    if not my_task.delegated_from:
        return access
    info = access.directory.users.get(my_task.delegated_from) or {}
    principal = Principal(user_id=my_task.delegated_from, username=my_task.delegated_from,
                          roles=frozenset(info.get("roles") or []), department=info.get("department"),
                          manager=info.get("manager"))
    return Access(flow.registry, principal, access.directory)


def recall(runtime: Any, principal: Principal, request_id: str, comment: str | None = None) -> dict:
    base = RecordService(runtime, principal, source="approval")
    with runtime.transaction() as tx:
        flow = Flow(runtime, principal, tx, base)
        req = load(tx.conn, request_id, for_update=True)
        if req is None:
            raise NotFound("No approval request with that id.", code="request_not_found")
        if principal.user_id is None or principal.user_id != req.submitter:
            raise Forbidden("Only the submitter may recall a request.", code="not_the_submitter")
        process = flow.registry.get("approval_process", req.process) or {}
        if process.get("allow_recall", True) is False:
            raise Forbidden("This approval process does not allow recalls.", code="recall_not_allowed")
        if req.status != PENDING:
            raise Conflict(f"This request is already {req.status}.", code="already_decided", status=req.status)
        now = utcnow()
        pending = [t.approver for t in tasks_of(tx.conn, req.id) if t.round == req.round and t.status == T_PENDING]
        close_round(tx.conn, req, now)
        finish(tx.conn, req, RECALLED, now)
        obj = flow.service.obj(req.object)
        record = flow.record(obj, req.record_id)
        flow.history(obj, record["id"], f"Recalled by {display_names(flow.people, [principal.user_id])}."
                     + (f" Comment: {comment}" if comment else ""))
        if process:
            flow.run_event("recall", req, process, obj, record, comment, pending, f"ap:{req.id}:recall")
            step = process["steps"][req.step_index] if req.step_index is not None else {"name": "-"}
            from ..platform import outbox

            if pending:
                outbox.enqueue(tx, "notify", {
                    "users": pending, "subject": f"Approval recalled: {record_title(obj, record)}",
                    "body": f"The approval request for {record_title(obj, record)} (step {step_label(step)}) "
                            f"was recalled by its submitter.", "object": obj.name, "record_id": record["id"],
                    "event": "approval_recalled", "request": req.id,
                }, key=f"ap:{req.id}:recalled", runtime=runtime)
        return request_json(tx.conn, load(tx.conn, req.id), flow.registry)
