"""Workflow rules: triggers (create, update, field changed, scheduled by date), conditions and
actions (set a field, create a record, notify, email, webhook, submit for approval), run on the
one write path. `register(runtime)` adds the hooks, the schedule sweep and the REST routes."""

from __future__ import annotations

from typing import Any

from ..platform.features import Feature
from . import api, engine


def register(runtime: Any) -> None:
    engine.register(runtime)
    runtime.features.add(FEATURE)


FEATURE = Feature("workflow", api=api.routes, openapi=api.openapi_paths)
