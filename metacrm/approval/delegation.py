"""Delegation while away: an approver routes their approvals to someone else until a time (or
until revoked); their open tasks move to the delegate at once."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..platform.clock import utcnow
from ..platform.errors import Forbidden
from ..platform.records import RecordService
from ..platform.security import Principal
from ..workflow.people import People
from .flow import Flow, display_names
from .state import PENDING, T_DELEGATED, T_PENDING
from .tables import delegate, request, task
from .views import iso


def get_delegation(runtime: Any, user_id: str) -> dict:
    with runtime.reading() as conn:
        row = conn.execute(sa.select(delegate).where(delegate.c.user_id == user_id)).first()
    if row is None:
        return {"delegate_to": None, "until": None, "active": False}
    now = utcnow()
    return {"delegate_to": row.delegate_to, "until": iso(row.until),
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
    flow = Flow(runtime, principal, tx, base)
    now = utcnow()
    for row in rows:
        if row.submitter == target:  # a delegation to the submitter does not count: the task stays
            continue
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
        flow.history(obj, record["id"], f"{display_names(people, [principal.user_id])} delegated the approval to "
                                        f"{display_names(people, [target])}.")
        flow.ask(row.request_id, row.round, obj, record, process, process["steps"][row.step_index], [target],
                 row.submitter, suffix=f"delegated:{target}")
