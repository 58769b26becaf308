"""Submitting a record for approval: the first process whose entry condition holds, the chain
of its steps whose `when` holds, and the first step's approvers asked. Also the
`submit_for_approval` workflow action, which register(runtime) adds to the action registry
(workflow does not import approval)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..metadata.model import label_text
from ..platform.clock import utcnow
from ..platform.errors import Conflict, Forbidden, NotFound
from ..platform.records import RecordService, new_id
from ..platform.security import Principal
from . import approvers as approver_rules
from .flow import Flow, display_names
from .processes import holds, processes_for, step_label
from .state import APPROVED, PENDING, load, pending_for_record
from .tables import request
from .views import request_json


def submit(runtime: Any, principal: Principal, object_name: str, record_id: str, *, tx: Any = None,
           process: str | None = None, comment: str | None = None, check_access: bool = True,
           base: Any = None, seeded: bool = False, purpose: str | None = None) -> dict:
    """Open an approval request for a record; the request as JSON.

    `seeded` (seed_approved: the demo company, test fixtures, data migrations) records the
    request as approved without asking anyone, running on_submit and on_approve, so the
    record reaches the approved state through the engine and its history says so."""
    if tx is None:
        base = base or RecordService(runtime, principal, source="approval")
        with runtime.transaction() as own:
            return submit(runtime, principal, object_name, record_id, tx=own, process=process, comment=comment,
                          check_access=check_access, base=base, seeded=seeded, purpose=purpose)
    flow = Flow(runtime, principal, tx, base)
    svc = flow.service
    obj = svc.obj(object_name)
    if check_access:
        visible = svc.get_record(object_name, record_id)  # 404 unless the caller may read it
        if not (svc.access.can(obj.name, "edit") and svc.access.allows_row(obj.name, "edit", visible)):
            raise Forbidden(f"You may not submit this {obj.name} record for approval.")
    record = svc.fetch(tx.conn, obj, record_id, for_update=True)
    if record is None:
        raise NotFound(f"No {obj.name} record with that id.", code="record_not_found")
    existing = pending_for_record(tx.conn, obj.name, record["id"])
    if existing is not None:
        raise Conflict("This record already has a pending approval request.", code="approval_pending",
                       request=existing.id)
    candidates = processes_for(flow.registry, obj.name, purpose)
    if process:
        candidates = [d for d in candidates if d["name"] == process]
    chosen = next((d for d in candidates if holds(d.get("entry"), obj, record, principal)), None)
    if chosen is None:
        raise Conflict("This record meets no approval process's entry condition.", code="approval_not_required")
    chain = [] if seeded else [i for i, step in enumerate(chosen["steps"])
                               if holds(step.get("when"), obj, record, principal)]
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
    req = load(tx.conn, req_id)
    process_label = label_text(chosen.get("label"), fallback=chosen["name"])
    who = display_names(flow.people, [principal.user_id]) if principal.user_id else "the system"
    note = f"Submitted for approval ({process_label}) by {who}." + (f" Comment: {comment}" if comment else "")
    if not chain:
        flow.history(obj, record["id"], note + (" Recorded as approved without its steps (seeded data)."
                                                if seeded else " No step applies: approved."))
        record = flow.run_event("submit", req, chosen, obj, record, comment, [], f"ap:{req_id}:submit")
        flow.run_event("approve", req, chosen, obj, record, comment, [], f"ap:{req_id}:approve")
        return request_json(tx.conn, load(tx.conn, req_id), flow.registry)
    step = chosen["steps"][first]
    resolved = approver_rules.resolve(step["approver"], record, obj, flow.people)
    ids = approver_rules.not_the_submitter(resolved, principal.user_id)
    if not ids:
        why = ("you would approve your own request" if resolved else "e.g. its owner has no manager")
        raise Conflict(f"Step {step_label(step)!r} of {process_label} has no approver for this record "
                       f"({why}).", code="no_approver", step=step["name"])
    flow.history(obj, record["id"], note)
    approvers = flow.open_step(req, chosen, obj, record, first, 1, ids)
    flow.history(obj, record["id"], f"Step {step_label(step)}: waiting for {display_names(flow.people, approvers)}.")
    flow.run_event("submit", req, chosen, obj, record, comment, approvers, f"ap:{req_id}:submit")
    return request_json(tx.conn, load(tx.conn, req_id), flow.registry)


def seed_approved(runtime: Any, principal: Principal, object_name: str, record_id: str, *,
                  process: str | None = None, comment: str | None = "seeded", tx: Any = None) -> dict:
    """Record an approval that happened elsewhere (demo data, fixtures, migrated history)."""
    return submit(runtime, principal, object_name, record_id, tx=tx, process=process, comment=comment,
                  check_access=False, seeded=True)


def submit_action(ctx: Any, params: dict) -> None:
    """The `submit_for_approval` workflow action (params: `process`, optional): submit the
    record in the saving transaction, as the rule's principal, without the edit check."""
    submit(ctx.runtime, ctx.principal, ctx.obj.name, ctx.record["id"], tx=ctx.tx,
           process=params.get("process"), comment=f"submitted by {ctx.rule or ctx.event}",
           check_access=False, base=ctx.base)
