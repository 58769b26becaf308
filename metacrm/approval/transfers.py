"""Transfer requests after a registration (报备) conflict.

A rep whose new lead or account is blocked by a duplicate rule because another rep holds the
matching record learns the holder's name (dedup.visibility) and may ask for the record:
POST /transfer-requests with the blocked payload (or the id of a record they can read). The
request is an approval request on the held record, decided by a process whose `purpose` is
`ownership_transfer` (the default metadata: the current owner's manager); a plain submit never
picks such a process. Approving runs the process's `transfer_to_submitter` action, which moves
the record (and its `transfer_with_parent` children) to the requester through the platform's
write path, so owner eligibility holds at the moment of the decision; rejecting leaves it.

Until the record is theirs the requester learns nothing about it but its holder's name: the
answers here carry no record id or field unless the requester may read the record.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..platform.errors import BadRequest, Conflict, NotFound, OwnerRefused
from ..platform.records import RecordService
from ..platform.security import Principal
from .flow import display_names
from .processes import processes_for
from .state import PENDING
from .submission import submit
from .tables import request
from .views import iso

PURPOSE = "ownership_transfer"


def _readable(svc: RecordService, conn: sa.Connection, object_name: str, record_id: str) -> bool:
    access = svc.access
    if access.is_admin:
        return True
    if access.scope(object_name, "read") == "none":
        return False
    table = svc.table(object_name)
    return conn.execute(sa.select(table.c.id).where(
        table.c.id == record_id, table.c.deleted_at.is_(None),
        access.row_filter(object_name, "read", table))).first() is not None


def _targets(runtime: Any, principal: Principal, body: dict) -> tuple[RecordService, list[tuple[str, str]]]:
    """(object, id) of the records the caller asks for: the blocking matches of a payload held
    by someone else, or one record by id that the caller can read."""
    from ..platform.dedup import DuplicateFinder
    from ..platform.dedup.keys import ensure_keyed

    svc = RecordService(runtime, principal, source="api")
    object_name = body.get("object")
    if not isinstance(object_name, str) or not object_name:
        raise BadRequest("Name the object: {\"object\": \"lead\", \"record\": {...}}.",
                         fields={"object": ["Required."]})
    obj = svc.obj(object_name)
    access = svc.access
    if not (access.can(obj.name, "read") or access.can(obj.name, "create")):
        raise NotFound(f"Unknown object {obj.name!r}.", code="unknown_object")
    record, record_id = body.get("record"), body.get("id")
    if (record is None) == (record_id is None):
        raise BadRequest("Send either the blocked record ({\"record\": {...}}) or {\"id\": ...}.",
                         fields={"record": ["Send record or id."]})
    with svc.transaction() as tx:
        if record_id is not None:
            if not isinstance(record_id, str) or not _readable(svc, tx.conn, obj.name, record_id):
                raise NotFound(f"No {obj.name} record with that id.", code="record_not_found")
            table = svc.table(obj.name)
            owner = tx.conn.execute(sa.select(table.c.owner).where(table.c.id == record_id)).scalar() \
                if "owner" in table.c else None
            if not owner or owner == principal.user_id:
                raise Conflict("This record is not held by someone else: nothing to ask for.",
                               code="no_transfer_needed")
            return svc, [(obj.name, record_id)]
        if not isinstance(record, dict):
            raise BadRequest("record must be a JSON object.", fields={"record": ["Not an object."]})
        ensure_keyed(tx, svc.runtime, svc.compiled)
        values = svc.coerce(obj, record, creating=True, conn=tx.conn)
        current = {name: None for name in obj.all_fields}
        current.update(values)
        current["id"] = None
        finder = DuplicateFinder(svc.runtime, svc.compiled, obj.name)
        found = finder.find(tx.conn, current)
        ids = sorted({(m["object"], m["id"]) for matches in found.values() for m in matches})
        held = []
        for target_object, target_id in ids:
            table = svc.table(target_object)
            if "owner" not in table.c:
                continue
            owner = tx.conn.execute(sa.select(table.c.owner).where(
                table.c.id == target_id, table.c.deleted_at.is_(None))).scalar()
            if owner and owner != principal.user_id:
                held.append((target_object, target_id))
    if not held:
        raise Conflict("No matching record held by someone else: nothing to ask for.", code="no_transfer_needed")
    return svc, held


def _own_pending(conn: sa.Connection, registry: Any, object_name: str, record_id: str, user_id: str) -> Any:
    names = [d["name"] for d in processes_for(registry, object_name, PURPOSE)]
    if not names:
        return None
    return conn.execute(sa.select(request.c.id).where(
        request.c.object == object_name, request.c.record_id == record_id, request.c.submitter == user_id,
        request.c.status == PENDING, request.c.process.in_(names))).first()


def _answer(svc: RecordService, conn: sa.Connection, req: dict, owner_name: str | None) -> dict:
    out = {"id": req["id"], "object": req["object"], "status": req["status"], "owner_name": owner_name,
           "submitted_at": req.get("submitted_at"), "decided_at": req.get("decided_at")}
    if _readable(svc, conn, req["object"], req["record"]):
        out["record"] = req["record"]
    return out


def create(runtime: Any, principal: Principal, body: dict) -> list[dict]:
    """File a transfer request for each record the payload is blocked by; the requests."""
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.", code="bad_body")
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise BadRequest("comment must be a string.", fields={"comment": ["Not a string."]})
    if not principal.user_id:
        raise Conflict("Only a user can ask for a record.", code="no_requester")
    svc, targets = _targets(runtime, principal, body)
    system = RecordService(runtime, Principal.system(), source="approval")
    out = []
    with runtime.transaction() as tx:
        for object_name, record_id in targets:
            process = next(iter(processes_for(svc.registry, object_name, PURPOSE)), None)
            if process is None:
                raise Conflict(f"No approval process decides transfer requests for {object_name} records.",
                               code="transfer_not_available")
            if _own_pending(tx.conn, svc.registry, object_name, record_id, principal.user_id):
                raise Conflict("You have already asked for this record; the request is pending.",
                               code="transfer_pending")
            refusal = svc.owner_refusal(tx.conn, object_name, principal.user_id)
            if refusal:
                raise OwnerRefused(refusal, user=principal.user_id)
            table = svc.table(object_name)
            owner = tx.conn.execute(sa.select(table.c.owner).where(table.c.id == record_id)).scalar()
            from ..workflow.people import People

            owner_name = display_names(People(runtime, tx.conn, svc.compiled), [owner]) if owner else None
            req = submit(runtime, principal, object_name, record_id, tx=tx, process=process["name"],
                         comment=comment, check_access=False, base=system, purpose=PURPOSE)
            out.append(_answer(svc, tx.conn, req, owner_name))
    return out


def mine(runtime: Any, principal: Principal) -> list[dict]:
    """The caller's transfer requests, newest first."""
    svc = RecordService(runtime, principal, source="api")
    names = [d["name"] for d in svc.registry.of_kind("approval_process") if d.get("purpose") == PURPOSE]
    if not names or not principal.user_id:
        return []
    from ..workflow.people import People

    with svc.transaction() as tx:
        rows = tx.conn.execute(sa.select(request).where(
            request.c.submitter == principal.user_id, request.c.process.in_(names))
            .order_by(request.c.submitted_at.desc(), request.c.id)).fetchall()
        people = People(runtime, tx.conn, svc.compiled)
        out = []
        for row in rows:
            table = svc.table(row.object)
            owner = tx.conn.execute(sa.select(table.c.owner).where(table.c.id == row.record_id)).scalar()
            if row.status == "approved":
                owner_name = None  # it is the caller's now
            else:
                owner_name = display_names(people, [owner]) if owner else None
            out.append(_answer(svc, tx.conn, {"id": row.id, "object": row.object, "record": row.record_id,
                                              "status": row.status, "submitted_at": iso(row.submitted_at),
                                              "decided_at": iso(row.decided_at)}, owner_name))
        return out


def transfer_action(ctx: Any, params: dict) -> None:
    """The `transfer_to_submitter` workflow action (an ownership_transfer process's on_approve):
    the record and its hand-over children go to the request's submitter."""
    if not ctx.submitter:
        return
    before = ctx.record.get("owner")
    moved = ctx.service().system_update(ctx.obj.name, ctx.record["id"], {"owner": ctx.submitter},
                                        action="transfer", note=f"transfer request approved: from owner {before} "
                                                                f"to {ctx.submitter}")
    if moved is not None:
        ctx.record = moved
