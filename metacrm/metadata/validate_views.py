"""Cross-document checks of `view` documents (saved list views and kanban boards)."""

from __future__ import annotations

from .registry import Registry
from .validate import CHECKERS, Report, _field, _filter, _object

NUMBER_TYPES = ("integer", "decimal", "currency", "percent")
UNSORTABLE_TYPES = ("multipicklist", "textarea", "password")


def check_view(registry: Registry, doc: dict, report: Report) -> None:
    """A saved view: every field it names exists on its object and fits its use."""
    obj = _object(registry, doc.get("object"), "/object", report)
    if obj is None:
        return
    for index, name in enumerate(doc.get("columns") or []):
        fdef = _field(obj, name, f"/columns/{index}", report)
        if fdef is not None and fdef.type == "password":
            report(f"/columns/{index}", f"{name} is a password field and is never listed")
    _filter(obj, doc.get("filter"), "/filter", report)
    for part in (doc.get("sort") or "").split(","):
        name = part.lstrip("-")
        if not name:
            continue
        fdef = obj.all_fields.get(name)
        if fdef is None:
            report("/sort", f"{obj.name} has no field {name!r}")
        elif fdef.value_type in UNSORTABLE_TYPES:
            report("/sort", f"{name} is a {fdef.value_type} field and cannot be sorted by")
    if doc.get("kanban_field") is not None:
        fdef = _field(obj, doc["kanban_field"], "/kanban_field", report)
        if fdef is not None and fdef.type != "picklist":
            report("/kanban_field", f"{fdef.name} is not a picklist field (a board needs one column per value)")
    if doc.get("sum_field") is not None:
        fdef = _field(obj, doc["sum_field"], "/sum_field", report)
        if fdef is not None and fdef.value_type not in NUMBER_TYPES:
            report("/sum_field", f"{fdef.name} is not a number or currency field")
    for key in ("roles", "default_for_roles"):
        for index, role in enumerate(doc.get(key) or []):
            if role != "*" and role not in registry.roles:
                report(f"/{key}/{index}", f"unknown role {role!r}")
            elif role == "*" and key == "default_for_roles":
                report(f"/{key}/{index}", "name the roles this view opens first for ('*' is not allowed here)")
    if doc.get("owner") is not None:
        for key in ("roles", "default_for_roles"):
            if doc.get(key):
                report(f"/{key}", f"a personal view (with 'owner') is not shared: leave out {key!r}")
    else:
        shared = set(doc.get("roles") or [])
        for index, role in enumerate(doc.get("default_for_roles") or []):
            if "*" not in shared and role not in shared and role in registry.roles:
                report(f"/default_for_roles/{index}", f"role {role!r} is not one of the roles the view is shared with")


CHECKERS["view"] = check_view
