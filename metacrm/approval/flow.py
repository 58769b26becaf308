"""One transaction's work on one request, shared by submit, decide, recall, delegation and
the timeouts: history notes, opening a step, asking the approvers, telling the submitter, and
running a process event's actions.

The trail (submitted, each decision, the outcome) goes to the record's history with the
action "approval"; the on_submit / on_approve / on_reject / on_recall actions run through
the workflow action runner, their field updates as `system_update`s marked "approval",
which the lock lets through.
"""

from __future__ import annotations

from typing import Any

from ..metadata.model import label_text
from ..platform.clock import utcnow
from ..platform.errors import NotFound
from ..platform.security import Principal
from ..workflow.actions import ActionContext, bound_service, run_actions
from ..workflow.people import People
from . import approvers as approver_rules
from .processes import step_label
from .state import T_PENDING
from .tables import task


def display_names(people: People, user_ids: list[str]) -> str:
    out = []
    for uid in user_ids:
        user = people.get(uid)
        out.append((user.get("display_name") or user["username"]) if user else uid)
    return ", ".join(out) or "nobody"


def record_title(obj: Any, record: dict) -> str:
    name = record.get(obj.name_field) if obj.name_field else None
    return f"{obj.display_label()} {name or record.get('id')}"


class Flow:
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
        ids = approver_rules.not_the_submitter(ids, req.submitter)
        if not ids:
            ids = approver_rules.not_the_submitter(self.people.with_role("admin"), req.submitter)
            self.history(obj, record["id"], f"Step {step_label(step)} has no approver; it goes to the admins.")
        now = utcnow()
        deciders = approver_rules.with_delegation(self.conn, ids, self.people, req.submitter)
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
        title = record_title(obj, record)
        body = (f"{display_names(self.people, [submitter]) if submitter else 'The system'} asks for your approval of "
                f"{title} ({label_text(process.get('label'), fallback=process['name'])}, step {step_label(step)}).")
        from ..platform import outbox

        outbox.enqueue(self.tx, "notify", {
            "users": users, "subject": f"Approval requested: {title}", "body": body, "object": obj.name,
            "record_id": record["id"], "event": "approval_requested", "request": request_id,
        }, key=f"ap:{request_id}:r{round_no}:{suffix}", runtime=self.runtime)

    def tell_submitter(self, req: Any, obj: Any, record: dict, outcome: str, comment: str | None) -> None:
        if not req.submitter or req.submitter == self.principal.user_id:
            return
        from ..platform import outbox

        title = record_title(obj, record)
        body = f"Your approval request for {title} was {outcome} by {display_names(self.people, [self.principal.user_id])}."
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
