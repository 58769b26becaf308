"""Approvals that gate: what an approval process `guards`, enforced in the record write path.

A process's `guards` (see the approval_process schema) names
- `transitions`: field values a save may set only while the record has a current approval
  (`requires: submitted`: a pending request or a current approval); otherwise 409
  `approval_required` naming the process;
- `material_fields`, and `children` (a child line's change counts for its parent): a change
  after approval makes the approval no longer current (its request becomes `invalidated`), the
  `reset` values are set, and the history says why;
- `referenced_by`: records made from a guarded one (a contract from a quote) need the guarded
  record's current approval.
`when` limits the guard to matching records (as they are after the save).

"Current approval" is the engine's own state, never a field a user can type: the latest request
of that process for the record is `approved`. The hook is a before_save hook on every object, so
REST, web forms, imports, bulk creates, workflow actions, plugins and the approval's own
actions all pass through it; admins and the system principal too.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..metadata.model import label_text
from ..platform.errors import Conflict, Locked, ValidationFailed
from .processes import holds
from .state import APPROVED, PENDING
from .tables import request

INVALIDATED = "invalidated"


def plans(compiled: Any) -> dict:
    """object -> [(kind, process, spec)] for every guard that concerns saves of that object."""
    found = compiled.cache.get("approval.gates")
    if found is None:
        found = {}
        for doc in compiled.registry.of_kind("approval_process"):
            guards = doc.get("guards") or {}
            if not guards:
                continue
            found.setdefault(doc["object"], []).append(("own", doc, guards))
            for spec in guards.get("children") or []:
                found.setdefault(spec["object"], []).append(("child", doc, spec))
            for spec in guards.get("referenced_by") or []:
                found.setdefault(spec["object"], []).append(("reference", doc, spec))
        compiled.cache["approval.gates"] = found
    return found


def latest_request(conn: sa.Connection, process: str, object_name: str, record_id: str):
    return conn.execute(
        sa.select(request).where(request.c.process == process, request.c.object == object_name,
                                 request.c.record_id == str(record_id))
        .order_by(request.c.submitted_at.desc(), request.c.id.desc()).limit(1)
    ).first()


def is_current(conn: sa.Connection, process: str, object_name: str, record_id: str | None,
               requires: str = "approved") -> bool:
    if not record_id:
        return False
    latest = latest_request(conn, process, object_name, record_id)
    if latest is None:
        return False
    return latest.status == APPROVED or (requires == "submitted" and latest.status == PENDING)


def _label(process: dict) -> str:
    return label_text(process.get("label"), fallback=process["name"])


def _required(process: dict, obj: Any, what: str, **extra: Any) -> Conflict:
    return Conflict(f"{_label(process)} must approve this {obj.display_label()} record before {what}.",
                    code="approval_required", process=process["name"], **extra)


def gate_hook(ctx: Any) -> None:
    entries = plans(ctx.service.compiled).get(ctx.obj.name)
    if not entries:
        return
    for kind, process, spec in entries:
        if kind == "own" and ctx.op in ("create", "update", "restore"):
            _own(ctx, process, spec)
        elif kind == "child":
            _child(ctx, process, spec)
        elif kind == "reference" and ctx.op in ("create", "update", "restore"):
            _reference(ctx, process, spec)


def _own(ctx: Any, process: dict, guards: dict) -> None:
    obj, record, old = ctx.obj, ctx.record, ctx.old
    if ctx.op == "update":
        changed = [name for name in guards.get("material_fields") or [] if ctx.changed(name)]
        if changed and invalidate(ctx.conn, process, obj, old["id"], record, ctx.notes, f"{', '.join(changed)} changed"):
            ctx.warnings.append({"code": "approval_reset", "process": process["name"],
                                 "message": f"{', '.join(changed)} changed: {_label(process)} must approve it again."})
    for name, value in (guards.get("reset") or {}).items():
        if ctx.options.get("system_action") == "approval" or not ctx.changed(name) or record.get(name) == value:
            continue
        if ctx.op == "create" and record.get(name) == obj.all_fields[name].default:
            continue
        raise ValidationFailed(f"{obj.all_fields[name].display_label()} is set by {_label(process)}.",
                               code="approval_field", fields={name: ["Set by the approval process."]})
    applies = holds(guards.get("when"), obj, record, ctx.principal)
    for rule in guards.get("transitions") or []:
        name = rule["field"]
        value = record.get(name)
        if value is None or str(value) not in [str(v) for v in rule["to"]]:
            continue
        if ctx.op != "create" and not ctx.changed(name):
            continue
        before = None if ctx.op == "create" else old.get(name)
        if rule.get("from") and str(before) not in [str(v) for v in rule["from"]]:
            continue
        if not applies:
            continue
        requires = rule.get("requires", "approved")
        if is_current(ctx.conn, process["name"], obj.name, None if ctx.op == "create" else old["id"], requires):
            continue
        fdef = obj.all_fields[name]
        option = fdef.option(value) or {}
        shown = label_text(option.get("label"), fallback=str(value))
        raise _required(process, obj, f"{fdef.display_label()} becomes {shown}", field=name, value=value)


def invalidate(conn: sa.Connection, process: dict, obj: Any, record_id: str, record: dict, notes: list,
               why: str) -> bool:
    """A material change: the current approval (if any) stops counting and the reset values are set."""
    latest = latest_request(conn, process["name"], obj.name, record_id)
    if latest is None or latest.status != APPROVED:
        return False
    conn.execute(request.update().where(request.c.id == latest.id, request.c.status == APPROVED)
                 .values(status=INVALIDATED))
    reset = (process.get("guards") or {}).get("reset") or {}
    for name, value in reset.items():
        record[name] = value
    note = f"{_label(process)}: the approval is no longer current ({why}); the record must be approved again."
    notes.append(("approval", {}, note))
    return True


def _child(ctx: Any, process: dict, spec: dict) -> None:
    link = spec["field"]
    material = spec.get("material_fields")
    record, old = ctx.record, ctx.old or {}
    if ctx.op == "update" and not ctx.changed(link) and material is not None \
            and not any(ctx.changed(name) for name in material):
        return
    parent_obj = ctx.registry.object(process["object"])
    child_label = ctx.obj.display_label()
    for parent_id in {record.get(link), old.get(link)} - {None}:
        latest = latest_request(ctx.conn, process["name"], parent_obj.name, parent_id)
        if latest is None:
            continue
        if latest.status == PENDING:
            if process.get("lock_record", True) is False or ctx.access.is_admin:
                continue
            raise Locked(f"The {parent_obj.display_label()} is pending approval; its {child_label} records "
                         f"cannot change.", code="record_locked", request=latest.id)
        if latest.status != APPROVED:
            continue
        parent = ctx.service.fetch(ctx.conn, parent_obj, parent_id)
        if parent is None:
            continue
        why = f"a {child_label} record was {'changed' if ctx.op == 'update' else ctx.op + 'd'}"
        reset: dict = {}
        invalidate(ctx.conn, process, parent_obj, parent_id, reset, [], why)
        note = (f"{_label(process)}: the approval is no longer current ({why}); the record must be "
                f"approved again.")
        ctx.service.system_update(parent_obj.name, parent_id, reset, action="approval", note=note)


def _reference(ctx: Any, process: dict, spec: dict) -> None:
    link = spec["field"]
    target_id = ctx.record.get(link)
    if not target_id or (ctx.op == "update" and not ctx.changed(link)):
        return
    target_obj = ctx.registry.object(process["object"])
    target = ctx.service.fetch(ctx.conn, target_obj, target_id)
    if target is None:
        return
    if not holds((process.get("guards") or {}).get("when"), target_obj, target, ctx.principal):
        return
    if is_current(ctx.conn, process["name"], target_obj.name, target_id):
        return
    raise Conflict(f"{_label(process)} must approve the {target_obj.display_label()} before a "
                   f"{ctx.obj.display_label()} is made from it.", code="approval_required",
                   process=process["name"], field=link)


def gate_error_text(service: Any, exc: Any, locale: str) -> str:
    """approval_required in the reader's language, with the process's, field's and value's labels."""
    from ..platform.i18n import translate

    registry = service.registry
    process = registry.get("approval_process", exc.extra.get("process")) or {}
    process_label = label_text(process.get("label"), locale, exc.extra.get("process") or "")
    obj = registry.object(process["object"]) if process else None
    field, value = exc.extra.get("field"), exc.extra.get("value")
    if obj is not None and value is not None and field in obj.all_fields:
        fdef = obj.all_fields[field]
        option = fdef.option(value) or {}
        return translate(locale, "approvals.gate.transition", process=process_label,
                         field=fdef.display_label(locale), value=label_text(option.get("label"), locale, str(value)))
    target = obj.display_label(locale) if obj is not None else ""
    return translate(locale, "approvals.gate.reference", process=process_label, object=target)
