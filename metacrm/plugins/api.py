"""The public plugin hook API: the only surface a plugin (third-party or built-in) uses.

A plugin package exposes, through the entry point group `metacrm.plugins`, a module or
object with:

    MANIFEST = {"name": "erp", "version": "1.0.0", "metacrm": ">=0.1,<1",
                "bundle": "metadata",            # folder inside the package, optional
                "permissions": ["elevated"],     # optional
                "depends": ["other_plugin"]}     # optional
    def setup(ctx: PluginContext) -> None: ...   # register hooks, actions, jobs, routes

Hooks receive explicit contexts (the record, the user, a connection on the same
transaction), never globals.
"""

from __future__ import annotations

from typing import Any, Callable

from ..platform.actions import RecordAction, WorkflowAction, actions


class PluginContext:
    def __init__(self, runtime: Any, name: str, elevated: bool = False):
        self.runtime = runtime
        self.name = name
        self.elevated = elevated
        self.blueprints: list = []

    def _hook_name(self, kind: str, fn: Callable) -> str:
        return f"plugin.{self.name}.{kind}.{getattr(fn, '__qualname__', repr(fn))}"

    def before_save(self, objects: str | list[str] | None, fn: Callable, order: int = 200,
                    ops: list[str] | None = None) -> None:
        """fn(ctx: SaveContext): validate (raise ValidationFailed with fields) or derive values."""
        self.runtime.hooks.register("before_save", _guard(self.name, "before_save", fn),
                                    name=self._hook_name("before_save", fn), order=order,
                                    objects=_objects(objects), ops=ops)

    def after_save(self, objects: str | list[str] | None, fn: Callable, order: int = 200,
                   ops: list[str] | None = None) -> None:
        """fn(ctx: SaveContext): runs in the same transaction after the row is written."""
        self.runtime.hooks.register("after_save", _guard(self.name, "after_save", fn),
                                    name=self._hook_name("after_save", fn), order=order,
                                    objects=_objects(objects), ops=ops)

    def record_action(self, object_name: str, name: str, fn: Callable, label: Any = None,
                      permission: str = "edit") -> None:
        """fn(service, record, params) -> dict, served at POST /records/{object}/{id}/actions/{name}."""
        actions(self.runtime).add_record_action(
            RecordAction(name=name, object=object_name, fn=fn, label=label, plugin=self.name, permission=permission)
        )

    def workflow_action(self, name: str, fn: Callable, description: str = "") -> None:
        """fn(ctx, params): usable from workflow_rule / approval_process metadata as {"action": name}."""
        actions(self.runtime).add_workflow_action(
            WorkflowAction(name=name, fn=fn, plugin=self.name, description=description)
        )

    def job(self, name: str, fn: Callable) -> None:
        """fn(runtime) -> str: a periodic job run by `metacrm sweep` and the timers."""
        full = f"{self.name}.{name}"
        self.runtime.sweeps[:] = [(n, f) for n, f in self.runtime.sweeps if n != full]
        self.runtime.sweeps.append((full, fn))

    def report(self, name: str, fn: Callable, label: Any = None) -> None:
        """fn(service, params: dict) -> dict: served at GET /api/v1/reports/{name}."""
        self.runtime.extensions.setdefault("plugin_reports", {})[name] = {
            "fn": fn, "label": label or name, "plugin": self.name
        }

    def blueprint(self, bp: Any) -> None:
        """A Flask blueprint mounted under /api/v1/x/{plugin}/ by the app factory."""
        self.blueprints.append(bp)
        self.runtime.extensions.setdefault("plugin_blueprints", []).append((self.name, bp))

    def dashboard_widget(self, name: str, fn: Callable) -> None:
        """fn(service) -> chart spec, shown on the home dashboard (see docs/web.md)."""
        self.runtime.extensions.setdefault("dashboard_widgets", {})[name] = fn


def _objects(objects: str | list[str] | None) -> list[str] | None:
    if objects is None or objects == "*":
        return None
    return [objects] if isinstance(objects, str) else list(objects)


def _guard(plugin: str, hook: str, fn: Callable) -> Callable:
    """A plugin that raises never corrupts data: the save rolls back, and the error names
    the plugin and the hook."""
    from ..platform.errors import CrmError

    def wrapped(ctx):
        try:
            return fn(ctx)
        except CrmError as exc:
            exc.extra.setdefault("plugin", plugin)
            raise
        except Exception as exc:
            raise CrmError(f"Plugin {plugin!r} failed in {hook}: {exc}", code="plugin_error",
                           plugin=plugin, hook=hook) from exc

    wrapped.__qualname__ = getattr(fn, "__qualname__", repr(fn))
    return wrapped
