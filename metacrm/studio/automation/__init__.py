"""Admin studio → automation: forms for approval processes and workflow rules (issue 15).

- approvals.py: /admin/studio/approvals — an approval process's object, entry condition, ordered
  steps (approver, mode, condition, rejection, timeout), lock / recall / approver edits, and what
  it guards (transitions, material fields, child records, records made from it);
- workflows.py: /admin/studio/workflows — a workflow rule's trigger (create / update / a field
  changed / scheduled by a date field), condition and ordered actions with typed inputs;
- approval_steps.py: one step's inputs and the approver / timeout they make; actions.py: one
  action's inputs (workflow actions and a process's on_submit / on_approve / on_reject / on_recall);
- pages.py: the routes table and the two admin navigation links;
- common.py: the dry-run diff → apply flow (the raw editor's `apply_change`, the loaded version
  checked), validation issues placed beside their inputs, people and role choices.

Conditions use the simple condition form (platform/web/condition_rows.py); a condition the rows
cannot show (nested any / not, lists of values) is kept as JSON in an advanced box.
"""

from __future__ import annotations

from pathlib import Path

from ...platform.features import Feature
from . import approvals, workflows  # noqa: F401 - they add their pages to pages.routes
from .pages import NAV, routes

HERE = Path(__file__).resolve().parent
FEATURE = Feature("studio_automation", pages=routes, nav=NAV, templates=HERE / "templates",
                  messages=HERE / "messages")


def register(runtime) -> None:
    runtime.features.add(FEATURE)
