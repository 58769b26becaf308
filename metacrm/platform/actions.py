"""Named actions that metadata can call: workflow actions (from workflow_rule and
approval_process metadata) and record actions (POST /records/{object}/{id}/actions/{name}).

Built-ins, the lead-to-cash plugin and third-party plugins register here; the workflow
engine and the actions endpoint look names up here, nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class WorkflowAction:
    """fn(ctx, params) where ctx is a workflow.ActionContext; runs inside the saving transaction."""

    name: str
    fn: Callable[..., Any]
    plugin: str | None = None
    description: str = ""


@dataclass
class RecordAction:
    """fn(service, record, params) -> dict; `object` is the object it applies to ('*' for any)."""

    name: str
    object: str
    fn: Callable[..., Any]
    label: Any = None
    plugin: str | None = None
    permission: str = "edit"  # the record access the caller needs
    # a web page (endpoint taking record_id) that asks for the action's parameters first: the
    # detail page's button opens it instead of running the action at once (lead conversion)
    dialog: str | None = None


@dataclass
class ActionRegistry:
    workflow: dict[str, WorkflowAction] = field(default_factory=dict)
    record: dict[tuple[str, str], RecordAction] = field(default_factory=dict)

    def add_workflow_action(self, action: WorkflowAction) -> None:
        from ..metadata.validate import EXTRA_ACTIONS

        self.workflow[action.name] = action
        EXTRA_ACTIONS.add(action.name)

    def add_record_action(self, action: RecordAction) -> None:
        self.record[(action.object, action.name)] = action

    def record_action(self, object_name: str, name: str) -> RecordAction | None:
        return self.record.get((object_name, name)) or self.record.get(("*", name))

    def remove_plugin(self, plugin: str) -> None:
        from ..metadata.validate import EXTRA_ACTIONS

        for name in [n for n, a in self.workflow.items() if a.plugin == plugin]:
            del self.workflow[name]
            EXTRA_ACTIONS.discard(name)
        for key in [k for k, a in self.record.items() if a.plugin == plugin]:
            del self.record[key]


def actions(runtime) -> ActionRegistry:
    return runtime.extensions.setdefault("actions", ActionRegistry())


# --- running record actions (shared by the REST API and the web pages) -----------------------


def allowed(service: Any, object_name: str, action: RecordAction, record: dict) -> bool:
    """The caller holds the action's permission: a record access checked on the row, or a
    role permission name."""
    from .security import ACTIONS

    permission = action.permission or "edit"
    if permission in ACTIONS:
        return service.access.can(object_name, permission) and service.access.allows_row(
            object_name, permission, record)
    return service.access.has_permission(permission)


def label(action: RecordAction, locale: str) -> str:
    text = action.label
    if isinstance(text, dict):
        return text.get(locale) or text.get("en") or next(iter(text.values()), action.name)
    return text or action.name.replace("_", " ").capitalize()


def available(service: Any, object_name: str, record: dict) -> list[RecordAction]:
    """The record actions the caller may run on this record (object-specific before '*')."""
    registry = actions(service.runtime).record
    found = []
    for (obj, name), action in sorted(registry.items()):
        if obj not in (object_name, "*") or (obj == "*" and (object_name, name) in registry):
            continue
        if allowed(service, object_name, action, record):
            found.append(action)
    return found


def run(service: Any, object_name: str, record_id: str, name: str, params: dict) -> Any:
    """Run one action in one transaction with the caller's service; 404 for an unknown object,
    record or action, 403 without the permission."""
    from .errors import Forbidden, NotFound

    service.obj(object_name)
    action = actions(service.runtime).record_action(object_name, name)
    if action is None:
        raise NotFound(f"{object_name} records have no action {name!r}.", code="unknown_action")
    with service.transaction():
        record = service.get_record(object_name, record_id)
        if not allowed(service, object_name, action, record):
            raise Forbidden(f"You may not run {name!r} on this {object_name} record.",
                            code="action_forbidden", action=name)
        hidden = service.access.hidden_fields(object_name)
        return action, action.fn(service, {k: v for k, v in record.items() if k not in hidden}, params)
