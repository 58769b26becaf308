"""Applying the rules: the before_save hook on the one write path, and the API's check.

The entry path picks a rule's action (`on_create`, `on_update`, `on_import`): block raises
DuplicateBlocked, warn adds `ctx.warnings`, report (import) makes the row a "duplicate".
Every answer names only matches the caller may read (visibility.redact): another match is
"a matching record exists that you cannot see", without id or name, and still blocks.
"""

from __future__ import annotations

from ..errors import BadRequest, DuplicateBlocked, NotFound
from .keys import ensure_keyed, spec_key
from .matching import DuplicateFinder, lock_keys
from .rules import plan_for
from .visibility import any_hidden, redact


def _message(matches: list[dict], obj_name: str) -> str:
    rules = sorted({m["rule"] for m in matches})
    if any_hidden(matches):
        named = [m for m in matches if not m.get("hidden")]
        also = f" and {len(named)} other record(s)" if named else ""
        owners = sorted({name for m in matches for name in m.get("owners") or ()})
        held = (f"; it is held by {', '.join(owners)}: you may ask for a transfer "
                f"(POST /api/v1/transfer-requests with this record)") if owners else ""
        return (f"This {obj_name} record duplicates a matching record that exists but that you cannot see{also} "
                f"(duplicate rule {', '.join(rules)}){held}.")
    return (f"This {obj_name} record duplicates {len(matches)} existing record(s) "
            f"(duplicate rule {', '.join(rules)}).")


def before_save(ctx) -> None:
    if ctx.op not in ("create", "update"):
        return
    plan = plan_for(ctx.registry)
    specs = plan.specs.get(ctx.obj.name)
    if not specs:
        return
    runtime, compiled = ctx.service.runtime, ctx.service.compiled
    ensure_keyed(ctx.tx, runtime, compiled)
    region = runtime.config.phone_region or "CN"
    for spec in specs.values():
        if ctx.op == "create" or ctx.changed(spec.field):
            value = ctx.record.get(spec.field)
            key = spec_key(spec, value, region)
            ctx.record[spec.column] = "" if key is None and value is not None else key
    rules = plan.rules.get(ctx.obj.name)
    if not rules or ctx.source == "system" or ctx.options.get("system_action") or ctx.options.get("dedup") is False:
        return
    applicable = []
    for rule in rules:
        mode = rule.mode(ctx.op, ctx.source)
        if mode == "none":
            continue
        if ctx.op == "update" and not any(ctx.changed(name) for name in rule.fields()):
            continue
        applicable.append((rule, mode))
    if not applicable:
        return
    finder = ctx.options.get("dedup_batch")
    batch = isinstance(finder, DuplicateFinder) and finder.object == ctx.obj.name
    chosen = [rule for rule, _ in applicable]
    if not batch:
        finder = DuplicateFinder(runtime, compiled, ctx.obj.name)
    probes = finder.probes(ctx.record, chosen)
    if not batch:
        lock_keys(ctx.conn, finder.lock_ids(probes))
    exclude = [ctx.record["id"]] if ctx.op == "update" else []
    found = finder.find(ctx.conn, ctx.record, rules=chosen, exclude_ids=exclude, with_seen=batch, probes=probes)
    refused, reported, warned = [], [], []
    own = finder.remembered if batch else ()
    for rule, mode in applicable:
        matches = found.get(rule.name)
        if matches:
            matches = redact(ctx.access, ctx.conn, ctx.service.compiled.tables, matches, own)
            {"block": refused, "report": reported}.get(mode, warned).extend(matches)
    if refused or reported:
        extra = {"import_status": "error" if refused else "duplicate"} if ctx.source == "import" else {}
        raise DuplicateBlocked(_message(refused + reported, ctx.obj.name), duplicates=refused + reported, **extra)
    if warned:
        ctx.warnings.append({"code": "possible_duplicate", "message": _message(warned, ctx.obj.name),
                             "duplicates": warned})
    if batch:
        finder.remember(ctx.record, probes)


def check(service, object_name: str, *, record: dict | None = None, record_id: str | None = None) -> list[dict]:
    """Matches of a payload or of an existing record under every active rule of the object."""
    obj = service.obj(object_name)
    access = service.access
    if not (access.can(obj.name, "read") or access.can(obj.name, "create")):
        raise NotFound(f"Unknown object {obj.name!r}.", code="unknown_object")
    with service.transaction() as tx:
        ensure_keyed(tx, service.runtime, service.compiled)
        if record_id is not None:
            current = service.get_record(obj.name, str(record_id))
        else:
            if not isinstance(record, dict):
                raise BadRequest("Send the record to check as a JSON object, or {\"id\": ...}.")
            values = service.coerce(obj, record, creating=True, conn=tx.conn)
            current = {name: None for name in obj.all_fields}
            current.update(values)
        finder = DuplicateFinder(service.runtime, service.compiled, obj.name)
        found = finder.find(tx.conn, current, exclude_ids=[current["id"]] if current.get("id") else [])
        return [match for matches in found.values()
                for match in redact(access, tx.conn, service.compiled.tables, matches)]
