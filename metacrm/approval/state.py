"""Request state: the statuses, reading a request and its tasks, and the conditional UPDATEs
that move a request on.

State lives in mc_approval_request (one row per submission) and mc_approval_task (one row
per approver per opening of a step, `round` numbering the openings). Every decision locks
the request row (PostgreSQL) or holds SQLite's write lock, and changes the task and the
request with conditional UPDATEs, so two decisions can never both count.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..platform.errors import Conflict
from .tables import request, task

PENDING, APPROVED, REJECTED, RECALLED = "pending", "approved", "rejected", "recalled"
T_PENDING, T_APPROVED, T_REJECTED, T_NO_RESPONSE, T_DELEGATED = (
    "pending", "approved", "rejected", "no_response", "delegated")


def load(conn: sa.Connection, request_id: str, for_update: bool = False):
    query = sa.select(request).where(request.c.id == str(request_id))
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).first()


def tasks_of(conn: sa.Connection, request_id: str) -> list:
    return conn.execute(sa.select(task).where(task.c.request_id == request_id).order_by(task.c.id)).fetchall()


def pending_for_record(conn: sa.Connection, object_name: str, record_id: str):
    return conn.execute(
        sa.select(request).where(request.c.object == object_name, request.c.record_id == str(record_id),
                                 request.c.status == PENDING)
    ).first()


def is_involved(tasks: list, user_id: str | None) -> bool:
    return any(t.approver == user_id or t.delegated_from == user_id for t in tasks)


def close_round(conn: sa.Connection, req: Any, now: Any) -> None:
    conn.execute(task.update().where(task.c.request_id == req.id, task.c.round == req.round,
                                     task.c.status == T_PENDING).values(status=T_NO_RESPONSE, decided_at=now))


def move(conn: sa.Connection, req: Any, step_index: int, process: dict) -> None:
    moved = conn.execute(
        request.update().where(request.c.id == req.id, request.c.status == PENDING, request.c.round == req.round)
        .values(step_index=step_index, step_name=process["steps"][step_index]["name"], round=req.round + 1)
    ).rowcount
    if moved != 1:
        raise Conflict("This request was decided meanwhile.", code="already_decided")


def finish(conn: sa.Connection, req: Any, status: str, now: Any) -> None:
    done = conn.execute(
        request.update().where(request.c.id == req.id, request.c.status == PENDING, request.c.round == req.round)
        .values(status=status, decided_at=now, pending_key=None)
    ).rowcount
    if done != 1:
        raise Conflict("This request was decided meanwhile.", code="already_decided")
