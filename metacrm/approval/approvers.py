"""Who decides a step: approver rules resolved against the record, then delegation."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..platform.clock import utcnow
from ..workflow.people import People
from .tables import delegate

MAX_DELEGATION_HOPS = 5


def resolve(spec: Any, record: dict, obj: Any, people: People) -> list[str]:
    """Active user ids for an approver rule (or a list of them)."""
    found: list[str | None] = []
    for rule in spec if isinstance(spec, list) else [spec]:
        if not isinstance(rule, dict):
            continue
        if "user" in rule:
            found.append(people.resolve(rule["user"]))
        elif "role" in rule:
            found.extend(people.with_role(rule["role"]))
        elif "manager_of" in rule:
            found.append(people.manager_of(record.get(rule["manager_of"])))
        elif "manager_chain" in rule:
            found.extend(people.manager_chain(record.get(rule["manager_chain"]), int(rule.get("levels", 1))))
        elif "department_head" in rule:
            found.append(people.department_head(_department(rule["department_head"], record, obj, people)))
    return people.only_active(found)


def not_the_submitter(ids: list[str], submitter: str | None) -> list[str]:
    """No one approves their own request: the submitter is never one of its approvers."""
    return [i for i in ids if i != submitter] if submitter else list(ids)


def _department(ref: str, record: dict, obj: Any, people: People) -> str | None:
    """A department field of the record, a user field (that user's department), or an id."""
    fdef = obj.all_fields.get(ref)
    if fdef is not None:
        value = record.get(ref)
        if fdef.type == "user":
            user = people.get(value)
            return user["department"] if user else None
        return value
    return ref


def delegations(conn: sa.Connection) -> dict[str, str]:
    """user -> delegate, for delegations in force now."""
    now = utcnow()
    rows = conn.execute(
        sa.select(delegate.c.user_id, delegate.c.delegate_to).where(
            sa.or_(delegate.c.until.is_(None), delegate.c.until > now)
        )
    ).fetchall()
    return {r.user_id: r.delegate_to for r in rows}


def with_delegation(conn: sa.Connection, approvers: list[str], people: People,
                    submitter: str | None = None) -> list[tuple[str, str | None]]:
    """(who decides, for whom) per approver: an away approver's delegate decides instead. A
    delegation to the request's submitter does not count (no one approves their own request):
    the chain stops before them."""
    table = delegations(conn)
    result: list[tuple[str, str | None]] = []
    seen_deciders: set[str] = set()
    for approver in not_the_submitter(approvers, submitter):
        current, hops = approver, 0
        while current in table and hops < MAX_DELEGATION_HOPS:
            nxt = table[current]
            if nxt == approver or not people.active(nxt) or (submitter and nxt == submitter):
                break
            current, hops = nxt, hops + 1
        if current in seen_deciders:
            continue
        seen_deciders.add(current)
        result.append((current, approver if current != approver else None))
    return result
