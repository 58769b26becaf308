"""Who may report on what: `access.row_filter(object, "report", table)` when one of the
caller's roles says what it may report on that object, else the read scope."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


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
    return service.access.scope(object_name, report_action(service, object_name)) != "none"


def scope_condition(service, object_name: str, table: sa.Table) -> Any:
    return service.access.row_filter(object_name, report_action(service, object_name), table)
