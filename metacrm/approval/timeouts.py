"""Step timeouts: the "approval_timeouts" sweep reminds or escalates approvers who have not
decided in time."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..platform.clock import utcnow
from ..platform.records import RecordService
from ..platform.security import Principal
from . import approvers as approver_rules
from .flow import Flow, display_names
from .processes import step_label
from .state import PENDING, T_PENDING, close_round, load, move, tasks_of
from .tables import request, task


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
                current = load(tx.conn, req.id, for_update=True)
                if current is None or current.status != PENDING or current.round != req.round:
                    continue
                late = [t for t in tasks_of(tx.conn, req.id) if t.round == req.round and t.status == T_PENDING
                        and t.created_at <= now - limit]
                if not late:
                    continue
                flow = Flow(runtime, Principal.system(), tx, base)
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
                targets = approver_rules.not_the_submitter(
                    approver_rules.resolve(timeout.get("escalate_to"), record, obj, flow.people), req.submitter)
                if not targets:
                    continue
                close_round(tx.conn, current, now)
                move(tx.conn, current, req.step_index, process)
                flow.history(obj, record["id"], f"Step {step_label(step)}: no decision in time; escalated to "
                                                f"{display_names(flow.people, targets)}.")
                flow.open_step(load(tx.conn, req.id), process, obj, record, req.step_index, req.round + 1,
                               targets, escalated=True)
                escalated += 1
    return f"{reminded} reminded, {escalated} escalated"
