"""Reports: `report` metadata and ad-hoc aggregates run as ONE SQL aggregate over an object's
table, within the caller's scope; plus plugin reports (fn(service, params) -> dict).

- scope.py: who may report on what (the `report` scope of the caller's roles, else `read`, and
  never beyond the read scope or the fields the caller may read);
- periods.py: date buckets (month, quarter...) in SQL and in Python;
- aggregates.py: the ad-hoc aggregate (group by, measures, filter, sort) and its parsing;
- saved.py: report documents and plugin reports, listed and run, and their chart data;
- api.py: /api/v1/reports and /api/v1/aggregate;
- pages.py: the Reports page and a report's run page with its exports; builder.py: the report builder.
"""

from __future__ import annotations

from .aggregates import aggregate
from .periods import period_key
from .saved import list_reports, run_report
from .scope import (
    can_report,
    report_action,
    report_hidden,
    report_owners,
    require_report,
    require_visible,
    scope_condition,
)

__all__ = ["FEATURE", "aggregate", "can_report", "list_reports", "period_key", "register", "report_action",
           "report_hidden", "report_owners", "require_report", "require_visible", "run_report", "scope_condition"]


def register(runtime) -> None:
    runtime.features.add(FEATURE)
    # the home page asks for the user's composed dashboard through this (the core names no feature)
    runtime.extensions["home_dashboard"] = dashboards.composed_widgets


from pathlib import Path

from ..features import Feature
from . import api, builder, dashboards, pages  # noqa: F401 - builder and dashboards add their pages to pages.routes

HERE = Path(__file__).resolve().parent
FEATURE = Feature("reports", api=api.routes, openapi=api.openapi_paths, pages=pages.routes, nav=pages.NAV,
                  templates=HERE / "templates", messages=HERE / "messages")
