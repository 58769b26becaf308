"""Cross-reference checks of `report` documents (moved out of validate.py, which keeps the checker
table): the object, the filter, the groups (own fields, or `lookup.field` of a single-target lookup's
parent), the measures (sum / avg of numbers, min / max of numbers and dates) and `shared_with` roles."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Report = Callable[[str, str], None]
Registry = Any


def check_report(registry: Registry, doc: dict, report: Report) -> None:
    from .validate import _field, _filter, _object

    obj = _object(registry, doc.get("object"), "/object", report)
    _filter(obj, doc.get("filter"), "/filter", report)
    for index, group in enumerate(doc.get("group_by") or []):
        name = group.get("field") if isinstance(group, dict) else group
        if isinstance(name, str) and "." in name and obj is not None:  # a parent's field: lookup.field
            lookup_name, _, parent_field = name.partition(".")
            lookup = _field(obj, lookup_name, f"/group_by/{index}", report)
            if lookup is None:
                continue
            if lookup.type != "lookup" or len(lookup.target or []) != 1:
                report(f"/group_by/{index}", f"{lookup_name} is not a lookup to one object")
            elif lookup.target[0] in registry.objects:
                _field(registry.objects[lookup.target[0]], parent_field, f"/group_by/{index}", report)
            continue
        _field(obj, name, f"/group_by/{index}", report)
    numbers = ("integer", "decimal", "currency", "percent")
    for index, measure in enumerate(doc.get("measures") or []):
        if measure.get("function") != "count":
            fdef = _field(obj, measure.get("field"), f"/measures/{index}/field", report)
            dates = ("date", "datetime") if measure.get("function") in ("min", "max") else ()
            if fdef is not None and fdef.value_type not in numbers + dates:
                report(f"/measures/{index}/field", f"{fdef.name} is not a number field")
    for index, role in enumerate(doc.get("shared_with") or []):
        if role not in registry.roles:
            report(f"/shared_with/{index}", f"unknown role {role!r}")
