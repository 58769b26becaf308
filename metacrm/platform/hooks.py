"""Hook points on the one write path. Pools, dedup, workflows, approvals and plugins
register here instead of being called by name from the record service.

Events:
- before_save(ctx): may change ctx.record, raise a CrmError to refuse the save.
- after_save(ctx): runs in the same transaction after the row is written.
Both see ctx.op in {"create", "update", "delete", "restore"}.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

EVENTS = ("before_save", "after_save")


@dataclass(order=True)
class Hook:
    order: int
    name: str
    fn: Callable = field(compare=False)
    objects: frozenset[str] | None = field(default=None, compare=False)
    ops: frozenset[str] | None = field(default=None, compare=False)


class Hooks:
    def __init__(self) -> None:
        self._hooks: dict[str, list[Hook]] = {event: [] for event in EVENTS}

    def register(
        self,
        event: str,
        fn: Callable,
        *,
        name: str | None = None,
        order: int = 100,
        objects: list[str] | None = None,
        ops: list[str] | None = None,
    ) -> None:
        if event not in self._hooks:
            raise ValueError(f"unknown hook event {event!r}")
        hook_name = name or getattr(fn, "__qualname__", repr(fn))
        self._hooks[event] = [h for h in self._hooks[event] if h.name != hook_name]
        self._hooks[event].append(
            Hook(order, hook_name, fn, frozenset(objects) if objects else None, frozenset(ops) if ops else None)
        )
        self._hooks[event].sort()

    def unregister(self, name_prefix: str) -> None:
        for event in self._hooks:
            self._hooks[event] = [h for h in self._hooks[event] if not h.name.startswith(name_prefix)]

    def run(self, event: str, ctx: Any) -> None:
        for hook in self._hooks[event]:
            if hook.objects is not None and ctx.obj.name not in hook.objects:
                continue
            if hook.ops is not None and ctx.op not in hook.ops:
                continue
            hook.fn(ctx)
