"""Approval processes: entry conditions, steps and approvers, request state, record locks,
delegation and timeouts. `register(runtime)` adds the lock hook, the timeout sweep, the
`submit_for_approval` workflow action and the resolver of a record's submitter and approvers
(workflow calls both through the runtime, never importing approval), the REST routes and the
inbox pages.

processes.py says which process and steps apply, state.py holds the request state and the
conditional updates that move it, flow.py one transaction's work on a request, submission.py
and decisions.py submit / approve / reject / recall, delegation.py, locks.py (the record lock), gates.py (what a process guards),
timeouts.py (reminders and escalation), views.py (requests as JSON, the queue), approvers.py
(who decides a step) and tables.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..platform import notifications
from ..platform.actions import WorkflowAction, actions
from ..platform.features import Feature
from ..workflow.actions import register_approval_people
from . import api, pages
from .decisions import decide, recall
from .gates import gate_error_text, gate_hook
from .locks import lock_hook, record_locked
from .submission import seed_approved, submit, submit_action
from .tables import TABLES
from .timeouts import timeouts_sweep
from .transfers import transfer_action
from .views import current_people, get_request, queue

__all__ = ["FEATURE", "decide", "get_request", "queue", "recall", "register", "seed_approved", "submit", "timeouts_sweep"]

HERE = Path(__file__).resolve().parent


def register(runtime: Any) -> None:
    notifications.ensure_tables(runtime.engine, TABLES)
    runtime.hooks.register("before_save", lock_hook, name="approval.lock", order=5)
    # changes to a record that are not saves of it (attaching or removing a file) are locked too
    runtime.extensions.setdefault("record_change_checks", {})["approval.lock"] = lock_hook
    # after the formulas (800) and the workflow rules' field updates (850): the gate judges the
    # record as it will be written, computed fields (a discount depth) and rule updates included
    runtime.hooks.register("before_save", gate_hook, name="approval.gate", order=880)
    if not any(name == "approval_timeouts" for name, _ in runtime.sweeps):
        runtime.sweeps.append(("approval_timeouts", timeouts_sweep))
    actions(runtime).add_workflow_action(WorkflowAction(
        "submit_for_approval", submit_action, description="Submit the record for approval"))
    actions(runtime).add_workflow_action(WorkflowAction(
        "transfer_to_submitter", transfer_action,
        description="Give the record to the approval request's submitter (transfer requests)"))
    register_approval_people(runtime, current_people)
    runtime.extensions.setdefault("web_error_texts", {})["approval_required"] = gate_error_text
    runtime.extensions.setdefault("web_error_texts", {})["duplicate"] = pages.duplicate_text
    runtime.extensions.setdefault("web_error_offers", {})["duplicate"] = pages.transfer_offers
    runtime.extensions["record_locked"] = record_locked  # the web's inline edit offers no pencil then
    runtime.features.add(FEATURE)


FEATURE = Feature("approval", api=api.routes, pages=pages.routes, nav=pages.NAV, templates=HERE / "templates",
                  messages=HERE / "messages", openapi=api.openapi_paths, record_buttons=pages.record_buttons,
                  record_banners=pages.record_banners)
