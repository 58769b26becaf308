"""Plugins: manifests, discovery (entry points), the public hook API (`metacrm.plugins.api`),
install / upgrade / uninstall, and the built-in lead-to-cash plugin. `register(runtime)` loads
the installed plugins and follows changes; the feature adds the admin REST routes and pages,
the `metacrm plugin` commands, and serves plugin blueprints under /api/v1/x/<plugin>/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..platform.features import Feature
from . import admin_api, cli, loader, pages

HERE = Path(__file__).resolve().parent


def seed_demo(runtime: Any) -> str:
    """The demo company of the built-in lead-to-cash plugin (installed first if it is not)."""
    from .lead_to_cash.demo import seed_demo as seed

    return seed(runtime)


def register(runtime: Any) -> None:
    from .lead_to_cash import analytics_pages, convert_pages, erp_pages, forecast_pages

    loader.register(runtime)
    runtime.features.add(FEATURE)
    runtime.features.add(erp_pages.FEATURE)  # the ERP link's admin page (/admin/erp)
    runtime.features.add(forecast_pages.FEATURE)  # the manager's forecast page (/forecast)
    runtime.features.add(analytics_pages.FEATURE)  # ROI, win / loss, aging, commission pages (/analytics/...)
    runtime.features.add(convert_pages.FEATURE)  # the conversion dialog and "create from" buttons


FEATURE = Feature("plugins", api=admin_api.routes, pages=pages.routes, nav=pages.NAV, templates=HERE / "templates",
                  messages=HERE / "messages", openapi=admin_api.openapi_paths, cli=cli.register_cli,
                  on_app=loader.mount_blueprints, demo=seed_demo)
