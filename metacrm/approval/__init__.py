"""Approval processes: entry conditions, steps and approvers, request state, record locks,
delegation and timeouts. `register(runtime)` adds the lock hook, the timeout sweep, the REST
routes and the inbox pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..platform.features import Feature
from . import api, engine, pages

HERE = Path(__file__).resolve().parent


def register(runtime: Any) -> None:
    engine.register(runtime)
    runtime.features.add(FEATURE)


FEATURE = Feature("approval", api=api.routes, pages=pages.routes, nav=pages.NAV, templates=HERE / "templates",
                  messages=HERE / "messages", openapi=api.openapi_paths)
