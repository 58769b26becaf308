"""Which approval process applies to a record: an object's processes in (order, name) order,
their entry conditions and their steps' `when` conditions, and step labels."""

from __future__ import annotations

from typing import Any

from ..metadata.model import label_text
from ..platform import filters
from ..platform.security import Principal


def processes_for(registry: Any, object_name: str, purpose: str | None = None) -> list[dict]:
    """The object's processes for `purpose` (None: the ordinary ones; "ownership_transfer":
    those that decide transfer requests, which a plain submit never picks)."""
    docs = [d for d in registry.for_object("approval_process", object_name) if d.get("purpose") == purpose]
    return sorted(docs, key=lambda d: (int(d.get("order", 0)), d["name"]))


def objects_with_processes(compiled: Any) -> frozenset:
    found = compiled.cache.get("approval.objects")
    if found is None:
        found = frozenset(d.get("object") for d in compiled.registry.of_kind("approval_process"))
        compiled.cache["approval.objects"] = found
    return found


def holds(flt: Any, obj: Any, record: dict, principal: Principal) -> bool:
    if not flt:
        return True
    ctx = filters.FilterContext.current(principal.user_id, principal.department)
    return filters.compile_predicate(flt, obj.all_fields, ctx)(record)


def step_label(step: dict) -> str:
    return label_text(step.get("label"), fallback=step["name"])
