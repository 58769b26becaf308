"""Activities in the web UI: my tasks, the calendar, and logging a call / visit / note from a
record (pages.py). Logging goes through the record service, so the follow-up hooks
(computed.py's last_activity_at, the pools' protection) run as for any saved activity."""

from __future__ import annotations

from pathlib import Path

from ..features import Feature
from . import pages

__all__ = ["FEATURE", "register"]


def register(runtime) -> None:
    runtime.features.add(FEATURE)


HERE = Path(__file__).resolve().parent
FEATURE = Feature("activities", pages=pages.routes, nav=pages.NAV, templates=HERE / "templates",
                  messages=HERE / "messages", record_panels=pages.record_panels,
                  record_buttons=pages.record_buttons)
