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
