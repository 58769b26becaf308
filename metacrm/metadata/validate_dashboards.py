"""Cross-document checks of `dashboard` documents (home pages composed of saved reports)."""

from __future__ import annotations

from .registry import Registry
from .validate import CHECKERS, Report


def check_dashboard(registry: Registry, doc: dict, report: Report) -> None:
    """Every widget draws a saved report that exists; the roles exist; a personal dashboard
    (`owner`) is nobody's default."""
    reports = {d["name"] for d in registry.of_kind("report")}
    for index, widget in enumerate(doc.get("widgets") or []):
        name = widget.get("report") if isinstance(widget, dict) else None
        if name is not None and name not in reports:
            report(f"/widgets/{index}/report", f"no report named {name!r}")
    for index, role in enumerate(doc.get("for_roles") or []):
        if role not in registry.roles:
            report(f"/for_roles/{index}", f"unknown role {role!r}")
    if doc.get("owner") is not None and doc.get("for_roles"):
        report("/for_roles", "a personal dashboard (with 'owner') is nobody's default: leave out 'for_roles'")


CHECKERS["dashboard"] = check_dashboard
