"""Who may report on what. A report is a read path: it counts only rows the caller may both
report on and read, and shows, groups, measures or filters only fields visible to the caller
under both rights.

- `report_action`: "report" where one of the caller's roles says what it may report on the
  object, else "read" (so a role that says nothing about reporting reports on what it reads).
- `scope_condition`: the SQL condition of the rows a report may count — the report scope AND the
  read scope (a report right wider than the read right gives nothing more; a report right
  without any read right gives nothing at all, so such an object is not reportable).
- `report_hidden` / `require_visible`: the fields hidden under either right (formulas and
  rollups over a hidden field are hidden too, see security.Access.field_access); a report that
  needs one is refused with 403 `hidden_field` naming it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from ..errors import Forbidden, NotFound


def report_action(service, object_name: str) -> str:
    """'report' if one of the caller's roles says what it may report on the object, else 'read'."""
    registry = service.registry
    for role_name in service.principal.roles:
        role = registry.roles.get(role_name) or {}
        if "report" in ((role.get("objects") or {}).get(object_name) or {}):
            return "report"
    return "read"


def can_report(service, object_name: str) -> bool:
    if not service.registry.has_object(object_name):
        return False
    access = service.access
    return (access.scope(object_name, report_action(service, object_name)) != "none"
            and access.scope(object_name, "read") != "none")


def require_report(service, object_name: str) -> None:
    """404 (the object is unknown to the caller) without read, 403 without the report right."""
    if can_report(service, object_name):
        return
    if not service.registry.has_object(object_name) or service.access.scope(object_name, "read") == "none":
        raise NotFound(f"Unknown object {object_name!r}.", code="unknown_object")
    raise Forbidden(f"You may not report on {object_name} records.")


def scope_condition(service, object_name: str, table: sa.Table) -> Any:
    """The rows a report may count: within the report scope and the read scope."""
    access = service.access
    action = report_action(service, object_name)
    condition = access.row_filter(object_name, "read", table)
    if action != "read":
        condition = sa.and_(condition, access.row_filter(object_name, action, table))
    return condition


def report_owners(service, object_name: str) -> set[str] | None:
    """The owners whose records a report may count (None: every record)."""
    access = service.access
    read = access.owners_in_scope(access.scope(object_name, "read"))
    report = access.owners_in_scope(access.scope(object_name, report_action(service, object_name)))
    if read is None:
        return report
    if report is None:
        return read
    return read & report


def report_hidden(service, object_name: str) -> set[str]:
    access = service.access
    return access.hidden_fields(object_name, "read") | access.hidden_fields(
        object_name, report_action(service, object_name))


def require_visible(service, object_name: str, fields: Iterable[str]) -> None:
    """403 hidden_field naming the first field of `fields` the caller may not see."""
    hidden = report_hidden(service, object_name)
    for name in fields:
        if name in hidden:
            raise Forbidden(f"The report uses the field {object_name}.{name}, which you cannot see.",
                            code="hidden_field", fields={f"{object_name}.{name}": ["Hidden from you."]})
