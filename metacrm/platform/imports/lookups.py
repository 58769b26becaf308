"""Lookups by name or by a unique key: an import column for a lookup field may hold the
target record's name (its object's `name_field`) or a unique field's value instead of its id.

`lookups` maps a lookup field to the target field its values are matched on ("id" is the
default: the record service checks ids itself). The match is exact (surrounding spaces
dropped), among the target records the caller may read, one query per lookup field per
1,000 distinct values. A value that matches no record, or several (a name two records share),
makes that row an error on that field; nothing else about the row is guessed.
"""

from __future__ import annotations

import sqlalchemy as sa

from ..errors import BadRequest, CrmError, ValidationFailed
from ..records import RecordService
from ..storage import compared, compared_value
from .parsing import Parsed

CHUNK = 1000
# Fixed sentences (the web translates them: msg.<text> in imports/messages); the row says the value.
NO_MATCH = "No record you can see has this value."
SEVERAL_MATCH = "Several records have this value: match by a unique key or the id."


def match_fields(service: RecordService, obj, field_name: str) -> list[str]:
    """The target fields a lookup column may be matched on: id, the name field, unique fields
    (the caller may see); empty for a field that is not a single-target lookup."""
    fdef = obj.all_fields.get(field_name)  # the owner (a system field) too
    if fdef is None or not fdef.is_reference or len(fdef.target) != 1:
        return []
    try:
        target = service.obj(fdef.target[0])
    except CrmError:
        return []
    if not service.access.can(target.name, "read"):
        return []
    hidden = service.access.hidden_fields(target.name)
    names = ["id"]
    for candidate in [target.name_field, *(n for n, f in target.fields.items() if f.unique)]:
        if candidate and candidate not in names and candidate not in hidden and candidate in target.all_fields \
                and target.all_fields[candidate].value_type in ("text", "email", "phone", "url", "integer"):
            names.append(candidate)
    if target.name == "user" and "username" in target.fields and "username" not in names:
        names.append("username")
    return names


def check_lookups(service: RecordService, obj, lookups: dict[str, str]) -> None:
    bad = {}
    for field_name, by in lookups.items():
        allowed = match_fields(service, obj, field_name)
        if not allowed:
            bad[f"lookup.{field_name}"] = ["Not a lookup field of a single object."]
        elif by not in allowed:
            bad[f"lookup.{field_name}"] = [f"Match by one of: {', '.join(allowed)}."]
    if bad:
        raise BadRequest("A lookup cannot be matched that way; nothing was imported.", code="bad_lookup",
                         fields=bad)


def resolve_lookups(service: RecordService, obj, parsed: Parsed, lookups: dict[str, str] | None) -> Parsed:
    """The rows with each matched lookup value replaced by the record's id (a row whose value
    matches none or several records becomes that row's error)."""
    lookups = {f: by for f, by in (lookups or {}).items() if by and by != "id"}
    if not lookups:
        return parsed
    check_lookups(service, obj, lookups)
    for field_name, by in lookups.items():
        if field_name not in parsed.columns:
            continue
        target = obj.all_fields[field_name].target[0]
        table = service.table(target)
        values = sorted({str(data[field_name]).strip() for _, data in parsed.rows
                         if isinstance(data, dict) and data.get(field_name) not in (None, "")})
        found: dict[str, list[str]] = {}
        target_field = service.obj(target).all_fields[by]
        column = compared(table.c[by], target_field)  # a case-insensitive unique email matches so too
        integer = target_field.value_type == "integer"
        with service.runtime.reading() as conn:
            for start in range(0, len(values), CHUNK):
                chunk = values[start:start + CHUNK]
                wanted = ([int(v) for v in chunk if v.lstrip("-").isdigit()] if integer
                          else [compared_value(v, target_field) for v in chunk])
                if not wanted:
                    continue
                query = sa.select(column, table.c.id).where(
                    column.in_(wanted), table.c.deleted_at.is_(None),
                    service.access.row_filter(target, "read", table))
                for value, record_id in conn.execute(query):
                    found.setdefault(str(value), []).append(record_id)
        rows = []
        for number, data in parsed.rows:
            raw = data.get(field_name) if isinstance(data, dict) else None
            if raw in (None, ""):
                rows.append((number, data))
                continue
            ids = found.get(str(compared_value(str(raw).strip(), target_field)), [])
            if len(ids) == 1:
                rows.append((number, {**data, field_name: ids[0]}))
                continue
            message = NO_MATCH if not ids else SEVERAL_MATCH
            rows.append((number, ValidationFailed("Some fields are not valid.", code="validation_failed",
                                                  fields={field_name: [message]})))
        parsed = Parsed(parsed.columns, rows, parsed.format, parsed.encoding, parsed.options)
    return parsed
