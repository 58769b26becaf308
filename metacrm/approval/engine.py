"""Approval processes: submit, decide, recall, the record lock, timeouts.

State lives in mc_approval_request (one row per submission) and mc_approval_task (one row
per approver per opening of a step, `round` numbering the openings). Every decision locks
the request row (PostgreSQL) or holds SQLite's write lock, and changes the task and the
request with conditional UPDATEs, so two decisions can never both count.

The trail (submitted, each decision, the outcome) goes to the record's history with the
action "approval"; the on_submit / on_approve / on_reject / on_recall actions run through
the workflow action runner, their field updates as `system_update`s marked "approval",
which the lock lets through.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from ..metadata.model import label_text
from ..platform import filters, notifications
from ..platform.actions import WorkflowAction, actions
from ..platform.clock import utcnow
from ..platform.errors import Conflict, Forbidden, Locked, NotFound
from ..platform.records import RecordService, new_id
from ..platform.security import Access, Principal
from ..workflow.actions import ActionContext, bound_service, register_approval_people, run_actions
from ..workflow.people import People
from . import approvers as approver_rules
from .tables import TABLES, delegate, request, task

log = logging.getLogger("metacrm.approval")

PENDING, APPROVED, REJECTED, RECALLED = "pending", "approved", "rejected", "recalled"
T_PENDING, T_APPROVED, T_REJECTED, T_NO_RESPONSE, T_DELEGATED = (
    "pending", "approved", "rejected", "no_response", "delegated")


# --- helpers ------------------------------------------------------------------------------


def processes_for(registry: Any, object_name: str) -> list[dict]:
    docs = registry.for_object("approval_process", object_name)
    return sorted(docs, key=lambda d: (int(d.get("order", 0)), d["name"]))


def _objects_with_processes(compiled: Any) -> frozenset:
    found = compiled.cache.get("approval.objects")
    if found is None:
        found = frozenset(d.get("object") for d in compiled.registry.of_kind("approval_process"))
        compiled.cache["approval.objects"] = found
    return found


def _holds(flt: Any, obj: Any, record: dict, principal: Principal) -> bool:
    if not flt:
        return True
    ctx = filters.FilterContext.current(principal.user_id, principal.department)
    return filters.compile_predicate(flt, obj.all_fields, ctx)(record)


def _load(conn: sa.Connection, request_id: str, for_update: bool = False):
    query = sa.select(request).where(request.c.id == str(request_id))
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).first()


def _tasks(conn: sa.Connection, request_id: str) -> list:
    return conn.execute(sa.select(task).where(task.c.request_id == request_id).order_by(task.c.id)).fetchall()


def _pending_for_record(conn: sa.Connection, object_name: str, record_id: str):
    return conn.execute(
        sa.select(request).where(request.c.object == object_name, request.c.record_id == str(record_id),
                                 request.c.status == PENDING)
    ).first()


def _step_label(step: dict) -> str:
    return label_text(step.get("label"), fallback=step["name"])


def _names(people: People, user_ids: list[str]) -> str:
    out = []
    for uid in user_ids:
        user = people.get(uid)
        out.append((user.get("display_name") or user["username"]) if user else uid)
    return ", ".join(out) or "nobody"


def _record_title(obj: Any, record: dict) -> str:
    name = record.get(obj.name_field) if obj.name_field else None
    return f"{obj.display_label()} {name or record.get('id')}"


class _Flow:
    """One transaction's work on one request: the pieces submit / decide / recall share."""

    def __init__(self, runtime: Any, principal: Principal, tx: Any, base: Any = None):
        self.runtime = runtime
        self.principal = principal
        self.tx = tx
        self.conn = tx.conn
        self.service = bound_service(base, runtime, tx, principal, "approval")
        self.registry = self.service.registry
        self.people = People(runtime, tx.conn, self.service.compiled)

    def history(self, obj: Any, record_id: str, note: str) -> None:
        self.service.write_history(self.conn, obj.name, record_id, "approval", {}, note)

    def record(self, obj: Any, record_id: str) -> dict:
        record = self.service.fetch(self.conn, obj, record_id)
        if record is None:
            raise NotFound(f"No {obj.name} record with that id.", code="record_not_found")
        return record

    def open_step(self, req: Any, process: dict, obj: Any, record: dict, step_index: int, round_no: int,
                  approver_ids: list[str] | None = None, escalated: bool = False) -> list[str]:
        """Create the tasks of a step (delegation applied) and ask the approvers."""
        step = process["steps"][step_index]
        ids = approver_ids if approver_ids is not None else approver_rules.resolve(
            step["approver"], record, obj, self.people)
        if not ids:
            ids = self.people.with_role("admin")
            self.history(obj, record["id"], f"Step {_step_label(step)} has no approver; it goes to the admins.")
        now = utcnow()
        deciders = approver_rules.with_delegation(self.conn, ids, self.people)
        if deciders:
            self.conn.execute(task.insert(), [{
                "request_id": req.id, "step_index": step_index, "step_name": step["name"], "round": round_no,
                "approver": decider, "delegated_from": for_whom, "status": T_PENDING, "created_at": now, "escalated": escalated,
            } for decider, for_whom in deciders])
        chosen = [d for d, _ in deciders]
        self.ask(req.id, round_no, obj, record, process, step, chosen, req.submitter)
        return chosen

    def ask(self, request_id: str, round_no: int, obj: Any, record: dict, process: dict, step: dict,
            users: list[str], submitter: str | None, suffix: str = "ask") -> None:
        if not users:
            return
        title = _record_title(obj, record)
        body = (f"{_names(self.people, [submitter]) if submitter else 'The system'} asks for your approval of "
                f"{title} ({label_text(process.get('label'), fallback=process['name'])}, step {_step_label(step)}).")
        from ..platform import outbox

        outbox.enqueue(self.tx, "notify", {
            "users": users, "subject": f"Approval requested: {title}", "body": body, "object": obj.name,
            "record_id": record["id"], "event": "approval_requested", "request": request_id,
        }, key=f"ap:{request_id}:r{round_no}:{suffix}", runtime=self.runtime)

    def tell_submitter(self, req: Any, obj: Any, record: dict, outcome: str, comment: str | None) -> None:
        if not req.submitter or req.submitter == self.principal.user_id:
            return
        from ..platform import outbox

        title = _record_title(obj, record)
        body = f"Your approval request for {title} was {outcome} by {_names(self.people, [self.principal.user_id])}."
        if comment:
            body += f" Comment: {comment}"
        outbox.enqueue(self.tx, "notify", {
            "users": [req.submitter], "subject": f"Approval {outcome}: {title}", "body": body, "object": obj.name,
            "record_id": record["id"], "event": f"approval_{outcome}", "request": req.id,
        }, key=f"ap:{req.id}:{outcome}", runtime=self.runtime)

    def run_event(self, event: str, req: Any, process: dict, obj: Any, record: dict, comment: str | None,
                  approvers: list[str], key: str) -> dict:
        actions = process.get(f"on_{event}") or []
        if not actions:
            return record
        actx = ActionContext(self.runtime, self.tx, obj, record, self.principal, event=event, key_base=key,
                             source="approval", comment=comment, submitter=req.submitter, approvers=approvers,
                             request_id=req.id, history_action="approval", rule=f"{process['name']}.on_{event}",
                             base=self.service)
        run_actions(actx, actions)
        return actx.record


# --- submit -------------------------------------------------------------------------------


def submit(runtime: Any, principal: Principal, object_name: str, record_id: str, *, tx: Any = None,
           process: str | None = None, comment: str | None = None, check_access: bool = True,
           base: Any = None) -> dict:
    """Open an approval request for a record; the request as JSON."""
    if tx is None:
        base = base or RecordService(runtime, principal, source="approval")
        with runtime.transaction() as own:
            return submit(runtime, principal, object_name, record_id, tx=own, process=process, comment=comment,
                          check_access=check_access, base=base)
    flow = _Flow(runtime, principal, tx, base)
    svc = flow.service
    obj = svc.obj(object_name)
    if check_access:
        visible = svc.get_record(object_name, record_id)  # 404 unless the caller may read it
        if not (svc.access.can(obj.name, "edit") and svc.access.allows_row(obj.name, "edit", visible)):
            raise Forbidden(f"You may not submit this {obj.name} record for approval.")
    record = svc.fetch(tx.conn, obj, record_id, for_update=True)
    if record is None:
        raise NotFound(f"No {obj.name} record with that id.", code="record_not_found")
    existing = _pending_for_record(tx.conn, obj.name, record["id"])
    if existing is not None:
        raise Conflict("This record already has a pending approval request.", code="approval_pending",
                       request=existing.id)
    candidates = processes_for(flow.registry, obj.name)
    if process:
        candidates = [d for d in candidates if d["name"] == process]
    chosen = next((d for d in candidates if _holds(d.get("entry"), obj, record, principal)), None)
    if chosen is None:
        raise Conflict("This record meets no approval process's entry condition.", code="approval_not_required")
    chain = [i for i, step in enumerate(chosen["steps"]) if _holds(step.get("when"), obj, record, principal)]
    now = utcnow()
    req_id = new_id()
    first = chain[0] if chain else None
    values = {
        "id": req_id, "process": chosen["name"], "object": obj.name, "record_id": record["id"],
        "status": PENDING if chain else APPROVED, "step_index": first,
        "step_name": chosen["steps"][first]["name"] if chain else None, "round": 1, "chain": chain,
        "submitter": principal.user_id, "submitted_at": now, "decided_at": None if chain else now, "comment": comment,
        "pending_key": f"{obj.name}:{record['id']}" if chain else None,
    }
    try:
        with tx.conn.begin_nested():
            tx.conn.execute(request.insert().values(**values))
    except sa.exc.IntegrityError:
        raise Conflict("This record already has a pending approval request.", code="approval_pending") from None
    req = _load(tx.conn, req_id)
    process_label = label_text(chosen.get("label"), fallback=chosen["name"])
    who = _names(flow.people, [principal.user_id]) if principal.user_id else "the system"
    note = f"Submitted for approval ({process_label}) by {who}." + (f" Comment: {comment}" if comment else "")
    if not chain:
        flow.history(obj, record["id"], note + " No step applies: approved.")
        record = flow.run_event("submit", req, chosen, obj, record, comment, [], f"ap:{req_id}:submit")
        flow.run_event("approve", req, chosen, obj, record, comment, [], f"ap:{req_id}:approve")
        return request_json(tx.conn, _load(tx.conn, req_id), flow.registry)
    step = chosen["steps"][first]
    ids = approver_rules.resolve(step["approver"], record, obj, flow.people)
    if not ids:
        raise Conflict(f"Step {_step_label(step)!r} of {process_label} has no approver for this record "
                       f"(e.g. its owner has no manager).", code="no_approver", step=step["name"])
    flow.history(obj, record["id"], note)
    approvers = flow.open_step(req, chosen, obj, record, first, 1, ids)
    flow.history(obj, record["id"], f"Step {_step_label(step)}: waiting for {_names(flow.people, approvers)}.")
    flow.run_event("submit", req, chosen, obj, record, comment, approvers, f"ap:{req_id}:submit")
    return request_json(tx.conn, _load(tx.conn, req_id), flow.registry)


def submit_action(ctx: Any, params: dict) -> None:
    """The `submit_for_approval` workflow action (params: `process`, optional): submit the
    record in the saving transaction, as the rule's principal, without the edit check."""
    submit(ctx.runtime, ctx.principal, ctx.obj.name, ctx.record["id"], tx=ctx.tx,
           process=params.get("process"), comment=f"submitted by {ctx.rule or ctx.event}",
           check_access=False, base=ctx.base)


# --- decisions ----------------------------------------------------------------------------


def _involved(tasks: list, user_id: str | None) -> bool:
    return any(t.approver == user_id or t.delegated_from == user_id for t in tasks)


def decide(runtime: Any, principal: Principal, request_id: str, decision: str, comment: str | None = None) -> dict:
    """approve or reject as one of the current step's approvers."""
    if decision not in ("approve", "reject"):
        raise NotFound("No such decision.")
    base = RecordService(runtime, principal, source="approval")
    with runtime.transaction() as tx:
        flow = _Flow(runtime, principal, tx, base)
        req = _load(tx.conn, request_id, for_update=True)
        if req is None:
            raise NotFound("No approval request with that id.", code="request_not_found")
        tasks = _tasks(tx.conn, req.id)
        involved = _involved(tasks, principal.user_id) or principal.user_id == req.submitter
        if not involved and not flow.service.access.is_admin:
            raise Forbidden("Only an approver of the current step may decide.", code="not_an_approver")
        if req.status != PENDING:
            raise Conflict(f"This request is already {req.status}.", code="already_decided", status=req.status)
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
        who = _names(flow.people, [principal.user_id])
        said = f" Comment: {comment}" if comment else ""
        round_tasks = [t for t in tasks if t.round == req.round]
        if decision == "approve":
            others = [t for t in round_tasks if t.status == T_PENDING and t.id != my_task.id]
            if step.get("mode", "any") == "all" and others:
                flow.history(obj, record["id"], f"Step {_step_label(step)}: approved by {who}; waiting for "
                                                f"{_names(flow.people, [t.approver for t in others])}.{said}")
                return request_json(tx.conn, _load(tx.conn, req.id), flow.registry)
            _close_round(tx.conn, req, now)
            chain = list(req.chain or [])
            position = chain.index(req.step_index) if req.step_index in chain else len(chain) - 1
            if position + 1 < len(chain):
                _move(tx.conn, req, chain[position + 1], process)
                nxt = process["steps"][chain[position + 1]]
                flow.history(obj, record["id"], f"Step {_step_label(step)}: approved by {who}.{said}")
                approvers = flow.open_step(_load(tx.conn, req.id), process, obj, record, chain[position + 1],
                                           req.round + 1)
                flow.history(obj, record["id"], f"Step {_step_label(nxt)}: waiting for "
                                                f"{_names(flow.people, approvers)}.")
            else:
                _finish(tx.conn, req, APPROVED, now)
                flow.history(obj, record["id"], f"Step {_step_label(step)}: approved by {who}. Request approved.{said}")
                record = flow.run_event("approve", req, process, obj, record, comment,
                                        [t.approver for t in round_tasks], f"ap:{req.id}:approve")
                flow.tell_submitter(req, obj, record, "approved", comment)
        else:
            _close_round(tx.conn, req, now)
            chain = list(req.chain or [])
            position = chain.index(req.step_index) if req.step_index in chain else 0
            if step.get("on_reject") == "previous" and position > 0:
                back = chain[position - 1]
                _move(tx.conn, req, back, process)
                flow.history(obj, record["id"], f"Step {_step_label(step)}: rejected by {who}; back to step "
                                                f"{_step_label(process['steps'][back])}.{said}")
                flow.open_step(_load(tx.conn, req.id), process, obj, record, back, req.round + 1)
            else:
                _finish(tx.conn, req, REJECTED, now)
                flow.history(obj, record["id"], f"Step {_step_label(step)}: rejected by {who}. Request rejected.{said}")
                record = flow.run_event("reject", req, process, obj, record, comment,
                                        [t.approver for t in round_tasks], f"ap:{req.id}:reject")
                flow.tell_submitter(req, obj, record, "rejected", comment)
        return request_json(tx.conn, _load(tx.conn, req.id), flow.registry)


def _authority(flow: _Flow, my_task: Any) -> Access:
    """Whose rights a decision on this task is judged by: the delegator's for a delegated task."""
    access = flow.service.access
    if not my_task.delegated_from:
        return access
    info = access.directory.users.get(my_task.delegated_from) or {}
    principal = Principal(user_id=my_task.delegated_from, username=my_task.delegated_from,
                          roles=frozenset(info.get("roles") or []), department=info.get("department"),
                          manager=info.get("manager"))
    return Access(flow.registry, principal, access.directory)


def _close_round(conn: sa.Connection, req: Any, now: Any) -> None:
    conn.execute(task.update().where(task.c.request_id == req.id, task.c.round == req.round,
                                     task.c.status == T_PENDING).values(status=T_NO_RESPONSE, decided_at=now))


def _move(conn: sa.Connection, req: Any, step_index: int, process: dict) -> None:
    moved = conn.execute(
        request.update().where(request.c.id == req.id, request.c.status == PENDING, request.c.round == req.round)
        .values(step_index=step_index, step_name=process["steps"][step_index]["name"], round=req.round + 1)
    ).rowcount
    if moved != 1:
        raise Conflict("This request was decided meanwhile.", code="already_decided")


def _finish(conn: sa.Connection, req: Any, status: str, now: Any) -> None:
    done = conn.execute(
        request.update().where(request.c.id == req.id, request.c.status == PENDING, request.c.round == req.round)
        .values(status=status, decided_at=now, pending_key=None)
    ).rowcount
    if done != 1:
        raise Conflict("This request was decided meanwhile.", code="already_decided")


def recall(runtime: Any, principal: Principal, request_id: str, comment: str | None = None) -> dict:
    base = RecordService(runtime, principal, source="approval")
    with runtime.transaction() as tx:
        flow = _Flow(runtime, principal, tx, base)
        req = _load(tx.conn, request_id, for_update=True)
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
        pending = [t.approver for t in _tasks(tx.conn, req.id) if t.round == req.round and t.status == T_PENDING]
        _close_round(tx.conn, req, now)
        _finish(tx.conn, req, RECALLED, now)
        obj = flow.service.obj(req.object)
        record = flow.record(obj, req.record_id)
        flow.history(obj, record["id"], f"Recalled by {_names(flow.people, [principal.user_id])}."
                     + (f" Comment: {comment}" if comment else ""))
        if process:
            flow.run_event("recall", req, process, obj, record, comment, pending, f"ap:{req.id}:recall")
            step = process["steps"][req.step_index] if req.step_index is not None else {"name": "-"}
            from ..platform import outbox

            if pending:
                outbox.enqueue(tx, "notify", {
                    "users": pending, "subject": f"Approval recalled: {_record_title(obj, record)}",
                    "body": f"The approval request for {_record_title(obj, record)} (step {_step_label(step)}) "
                            f"was recalled by its submitter.", "object": obj.name, "record_id": record["id"],
                    "event": "approval_recalled", "request": req.id,
                }, key=f"ap:{req.id}:recalled", runtime=runtime)
        return request_json(tx.conn, _load(tx.conn, req.id), flow.registry)


# --- delegation ---------------------------------------------------------------------------


def get_delegation(runtime: Any, user_id: str) -> dict:
    with runtime.reading() as conn:
        row = conn.execute(sa.select(delegate).where(delegate.c.user_id == user_id)).first()
    if row is None:
        return {"delegate_to": None, "until": None, "active": False}
    now = utcnow()
    return {"delegate_to": row.delegate_to, "until": _iso(row.until),
            "active": row.until is None or row.until > now}


def set_delegation(runtime: Any, principal: Principal, delegate_to: str | None, until: Any) -> dict:
    """Route the caller's approvals to someone else until `until` (None: until revoked)."""
    from ..platform.errors import ValidationFailed

    user_id = principal.user_id
    if user_id is None:
        raise Forbidden("Only users can delegate approvals.")
    base = RecordService(runtime, principal, source="approval")
    with runtime.transaction() as tx:
        people = People(runtime, tx.conn, base.compiled)
        tx.conn.execute(delegate.delete().where(delegate.c.user_id == user_id))
        if delegate_to is None:
            return {"delegate_to": None, "until": None, "active": False}
        target = people.resolve(delegate_to)
        if target is None or not people.active(target):
            raise ValidationFailed("No such active user.", fields={"delegate_to": ["No such active user."]})
        if target == user_id:
            raise ValidationFailed("You cannot delegate to yourself.", fields={"delegate_to": ["Yourself."]})
        now = utcnow()
        if until is not None and until <= now:
            raise ValidationFailed("The end of the delegation must be in the future.",
                                   fields={"until": ["Must be in the future."]})
        tx.conn.execute(delegate.insert().values(user_id=user_id, delegate_to=target, until=until, created_at=now))
        _hand_over(runtime, principal, tx, people, target, base)
    return get_delegation(runtime, user_id)


def _hand_over(runtime: Any, principal: Principal, tx: Any, people: People, target: str, base: Any) -> None:
    """The caller's open tasks move to the delegate (the old ones end `delegated`)."""
    rows = tx.conn.execute(
        sa.select(task, request.c.round.label("req_round"), request.c.process, request.c.object,
                  request.c.record_id, request.c.submitter)
        .join(request, request.c.id == task.c.request_id)
        .where(task.c.approver == principal.user_id, task.c.status == T_PENDING, request.c.status == PENDING,
               task.c.round == request.c.round)
    ).fetchall()
    flow = _Flow(runtime, principal, tx, base)
    now = utcnow()
    for row in rows:
        if tx.conn.execute(task.update().where(task.c.id == row.id, task.c.status == T_PENDING)
                           .values(status=T_DELEGATED, decided_at=now)).rowcount != 1:
            continue
        already = tx.conn.execute(sa.select(task.c.id).where(
            task.c.request_id == row.request_id, task.c.round == row.round, task.c.approver == target,
            task.c.status == T_PENDING)).first()
        if already is None:
            tx.conn.execute(task.insert().values(
                request_id=row.request_id, step_index=row.step_index, step_name=row.step_name, round=row.round,
                approver=target, delegated_from=row.delegated_from or principal.user_id, status=T_PENDING,
                created_at=now, escalated=row.escalated))
        process = flow.registry.get("approval_process", row.process)
        if process is None or not flow.registry.has_object(row.object):
            continue
        obj = flow.registry.object(row.object)
        record = flow.service.fetch(tx.conn, obj, row.record_id)
        if record is None:
            continue
        flow.history(obj, record["id"], f"{_names(people, [principal.user_id])} delegated the approval to "
                                        f"{_names(people, [target])}.")
        flow.ask(row.request_id, row.round, obj, record, process, process["steps"][row.step_index], [target],
                 row.submitter, suffix=f"delegated:{target}")


# --- the lock -----------------------------------------------------------------------------


def lock_hook(ctx: Any) -> None:
    """While a request is pending and the process locks, only admins (logged) and, if the
    process allows, the current approvers may change or delete the record."""
    if ctx.op not in ("update", "delete"):
        return
    if ctx.options.get("system_action") == "approval":
        return
    if ctx.obj.name not in _objects_with_processes(ctx.service.compiled):
        return
    req = _pending_for_record(ctx.conn, ctx.obj.name, ctx.old["id"])
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


# --- timeouts -----------------------------------------------------------------------------


def timeouts_sweep(runtime: Any) -> str:
    """Remind or escalate approvers who have not decided within a step's timeout."""
    from datetime import timedelta

    compiled = runtime.compiled()
    base = RecordService(runtime, Principal.system(), source="approval")
    reminded = escalated = 0
    now = utcnow()
    for process in compiled.registry.of_kind("approval_process"):
        timed = {i: s["timeout"] for i, s in enumerate(process.get("steps") or []) if s.get("timeout")}
        if not timed:
            continue
        with runtime.reading() as conn:
            requests = conn.execute(sa.select(request).where(
                request.c.process == process["name"], request.c.status == PENDING,
                request.c.step_index.in_(list(timed)))).fetchall()
        for req in requests:
            timeout = timed[req.step_index]
            limit = timedelta(days=timeout.get("days", 0), hours=timeout.get("hours", 0))
            with runtime.transaction() as tx:
                current = _load(tx.conn, req.id, for_update=True)
                if current is None or current.status != PENDING or current.round != req.round:
                    continue
                late = [t for t in _tasks(tx.conn, req.id) if t.round == req.round and t.status == T_PENDING
                        and t.created_at <= now - limit]
                if not late:
                    continue
                flow = _Flow(runtime, Principal.system(), tx, base)
                if not flow.registry.has_object(req.object):
                    continue
                obj = flow.registry.object(req.object)
                record = flow.service.fetch(tx.conn, obj, req.record_id)
                if record is None:
                    continue
                step = process["steps"][req.step_index]
                if timeout["action"] == "remind":
                    due = [t for t in late if t.reminded_at is None]
                    for t in due:
                        tx.conn.execute(task.update().where(task.c.id == t.id, task.c.reminded_at.is_(None))
                                        .values(reminded_at=now))
                    if due:
                        flow.ask(req.id, req.round, obj, record, process, step, [t.approver for t in due],
                                 req.submitter, suffix="remind")
                        reminded += len(due)
                    continue
                if any(t.escalated for t in late):
                    continue  # escalated once; the escalation's approvers now decide
                targets = approver_rules.resolve(timeout.get("escalate_to"), record, obj, flow.people)
                if not targets:
                    continue
                _close_round(tx.conn, current, now)
                _move(tx.conn, current, req.step_index, process)
                flow.history(obj, record["id"], f"Step {_step_label(step)}: no decision in time; escalated to "
                                                f"{_names(flow.people, targets)}.")
                flow.open_step(_load(tx.conn, req.id), process, obj, record, req.step_index, req.round + 1,
                               targets, escalated=True)
                escalated += 1
    return f"{reminded} reminded, {escalated} escalated"


# --- reading ------------------------------------------------------------------------------


def _iso(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value is not None else None


def request_json(conn: sa.Connection, req: Any, registry: Any, detail: bool = False, tasks: list | None = None) -> dict:
    tasks = tasks if tasks is not None else _tasks(conn, req.id)
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
        "submitted_at": _iso(req.submitted_at),
        "decided_at": _iso(req.decided_at),
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
        steps.append({"name": step["name"], "label": _step_label(step), "number": index + 1,
                      "mode": step.get("mode", "any"), "status": status,
                      "approvers": [t.approver for t in last if t.status != T_DELEGATED]})
    out["steps"] = steps
    out["decisions"] = [{
        "step": t.step_name, "approver": t.approver, "on_behalf_of": t.delegated_from, "status": t.status,
        "decided_at": _iso(t.decided_at), "comment": t.comment,
    } for t in tasks if t.status != T_PENDING]
    out["tasks"] = [{"id": t.id, "step": t.step_name, "round": t.round, "approver": t.approver,
                     "on_behalf_of": t.delegated_from, "status": t.status, "created_at": _iso(t.created_at)}
                    for t in tasks]
    return out


def get_request(runtime: Any, principal: Principal, request_id: str) -> dict:
    compiled = runtime.compiled()
    registry = compiled.registry
    is_admin = Access(registry, principal, runtime.directory()).is_admin
    with runtime.reading() as conn:
        req = _load(conn, request_id)
        if req is None:
            raise NotFound("No approval request with that id.", code="request_not_found")
        tasks = _tasks(conn, req.id)
        allowed = principal.user_id == req.submitter or _involved(tasks, principal.user_id) or is_admin
        if not allowed:
            raise NotFound("No approval request with that id.", code="request_not_found")
        out = request_json(conn, req, registry, detail=True, tasks=tasks)
        _add_titles(compiled, conn, [out])
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
        return items


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
    tasks = _tasks(conn, req.id)
    return req.submitter, [t.approver for t in tasks if t.round == req.round and t.status != T_DELEGATED]


def register(runtime: Any) -> None:
    notifications.ensure_tables(runtime.engine, TABLES)
    runtime.hooks.register("before_save", lock_hook, name="approval.lock", order=5)
    if not any(name == "approval_timeouts" for name, _ in runtime.sweeps):
        runtime.sweeps.append(("approval_timeouts", timeouts_sweep))
    actions(runtime).add_workflow_action(WorkflowAction(
        "submit_for_approval", submit_action, description="Submit the record for approval"))
    register_approval_people(runtime, current_people)
