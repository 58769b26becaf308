"""The public plugin hook API: the only surface a plugin (third-party or built-in) uses.

A plugin package exposes, through the entry point group `metacrm.plugins`, a module or
object with:

    MANIFEST = {"name": "erp", "version": "1.0.0", "metacrm": ">=0.1,<1",
                "bundle": "metadata",            # folder inside the package, optional
                "permissions": ["elevated"],     # optional
                "depends": ["other_plugin"]}     # optional
    def setup(ctx: PluginContext) -> None: ...   # register hooks, actions, jobs, routes

(see manifest.py for every key, docs/plugins.md for the guide). Hooks receive explicit
contexts (the record, the user, a connection on the same transaction), never globals.

Security: every service a plugin gets is bound to the acting user (SaveContext.service,
the service passed to record actions, ctx.service() in a blueprint), so a plugin cannot
read or write what that user cannot. ctx.system_service() acts as the platform and works
only when the admin granted the manifest's `elevated` permission.

setup() may run more than once per process (a trial run when installing checks that the
manifest's declarations are honoured); it must only register things.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from itertools import count
from typing import Any

import sqlalchemy as sa

from ..platform.actions import RecordAction, WorkflowAction, actions
from ..platform.errors import CrmError, Forbidden, PluginFailed  # PluginFailed re-exported
from ..platform.outbox import Skip  # re-exported: an outbox handler raises it to drop a row for good

log = logging.getLogger("metacrm.plugins")
__all__ = ["PluginContext", "PluginFailed", "Registration", "Skip"]


@dataclass(frozen=True)
class Registration:
    """One thing setup() registered (the installer compares these with the manifest)."""

    kind: str  # before_save after_save record_action workflow_action job blueprint report widget outbox table
    key: Any  # objects (frozenset, None = all) | (object, action) | name


class PluginContext:
    def __init__(self, runtime: Any, name: str, elevated: Any = False, *, granted: Any = (),
                 manifest: dict | None = None):
        self.runtime = runtime
        self.name = name
        if isinstance(elevated, (list, tuple, set, frozenset)):  # the granted permissions themselves
            granted, elevated = frozenset(granted) | frozenset(elevated), False
        self.granted = frozenset(granted) | ({"elevated"} if elevated else frozenset())
        self.elevated = "elevated" in self.granted
        self.manifest = manifest or {}
        self.blueprints: list = []
        self.registered: list[Registration] = []
        self.metadata = sa.MetaData()  # the plugin's own tables (define_table)
        self.outbox_handlers: dict[str, Callable] = {}
        self.log = logging.getLogger(f"metacrm.plugins.{name}")
        self._seq = count(1)

    # --- hooks on the record service -------------------------------------------------------

    def _hook_name(self, kind: str, fn: Callable) -> str:
        # The sequence number keeps two hooks built by one factory (same __qualname__) apart.
        return f"plugin.{self.name}.{kind}.{next(self._seq)}.{getattr(fn, '__qualname__', repr(fn))}"

    def before_save(self, objects: str | list[str] | None, fn: Callable, order: int = 200,
                    ops: list[str] | None = None) -> None:
        """fn(ctx: SaveContext): validate (raise ValidationFailed with fields) or derive values."""
        self._save_hook("before_save", objects, fn, order, ops)

    def after_save(self, objects: str | list[str] | None, fn: Callable, order: int = 200,
                   ops: list[str] | None = None) -> None:
        """fn(ctx: SaveContext): runs in the same transaction after the row is written."""
        self._save_hook("after_save", objects, fn, order, ops)

    def _save_hook(self, event: str, objects: Any, fn: Callable, order: int, ops: list[str] | None) -> None:
        names = _objects(objects)
        label = f"{event} hook {getattr(fn, '__name__', 'hook')}"
        self.runtime.hooks.register(event, _guard(self.name, label, fn), name=self._hook_name(event, fn),
                                    order=order, objects=names, ops=ops)
        self.registered.append(Registration(event, frozenset(names) if names else None))

    # --- actions ----------------------------------------------------------------------------

    def record_action(self, object_name: str, name: str, fn: Callable, label: Any = None,
                      permission: str = "edit", dialog: str | None = None) -> None:
        """fn(service, record, params) -> dict, served at POST /records/{object}/{id}/actions/{name}.

        `service` is bound to the caller and to the action's transaction; `record` is the
        typed record without the fields hidden from the caller; `permission` is the record
        access the caller needs (read / edit / delete ...) or a role permission name; `dialog`
        a web endpoint (taking `record_id`) the detail page's button opens to ask for the
        parameters first.
        """
        actions(self.runtime).add_record_action(RecordAction(
            name=name, object=object_name, fn=_guard(self.name, f"record action {name}", fn), label=label,
            plugin=self.name, permission=permission, dialog=dialog,
        ))
        self.registered.append(Registration("record_action", (object_name, name)))

    def workflow_action(self, name: str, fn: Callable, description: str = "") -> None:
        """fn(ctx, params): usable from workflow_rule / approval_process metadata as {"action": name}.

        ctx.service() inside it is bound to the user whose change fired the rule (the platform
        itself for scheduled triggers) unless the plugin holds `elevated`.
        """
        plugin = self

        def run(actx: Any, params: dict) -> Any:
            return fn(actx if plugin.elevated else _ActingUserContext(actx), params)

        run.__qualname__ = getattr(fn, "__qualname__", name)
        actions(self.runtime).add_workflow_action(
            WorkflowAction(name=name, fn=_guard(self.name, f"workflow action {name}", run), plugin=self.name,
                           description=description)
        )
        self.registered.append(Registration("workflow_action", name))

    def job(self, name: str, fn: Callable) -> None:
        """fn(runtime) -> str: a periodic job run by `metacrm sweep` and the timers.

        A job has no acting user: to touch records it needs ctx.system_service() (elevated).
        """
        full = f"{self.name}.{name}"
        self.runtime.sweeps[:] = [(n, f) for n, f in self.runtime.sweeps if n != full]
        self.runtime.sweeps.append((full, _guard(self.name, f"job {name}", fn, detail=True)))
        self.registered.append(Registration("job", name))

    def report(self, name: str, fn: Callable, label: Any = None) -> None:
        """fn(service, params: dict) -> dict: served at GET /api/v1/reports/{name}."""
        self.runtime.extensions.setdefault("plugin_reports", {})[name] = {
            "fn": _guard(self.name, f"report {name}", fn), "label": label or name, "plugin": self.name
        }
        self.registered.append(Registration("report", name))

    def blueprint(self, bp: Any) -> None:
        """A Flask blueprint served under /api/v1/x/{plugin}/ (authenticated like the API;
        g.principal is the caller, ctx.service() a record service bound to them)."""
        self.blueprints.append(bp)
        self.runtime.extensions.setdefault("plugin_blueprints", []).append((self.name, bp))
        self.registered.append(Registration("blueprint", getattr(bp, "name", repr(bp))))

    def dashboard_widget(self, name: str, fn: Callable) -> None:
        """fn(service) -> chart spec, shown on the home dashboard (see docs/web.md)."""
        wrapped = _guard(self.name, f"dashboard widget {name}", fn)
        wrapped.plugin = self.name  # type: ignore[attr-defined]
        self.runtime.extensions.setdefault("dashboard_widgets", {})[name] = wrapped
        self.registered.append(Registration("widget", name))

    # --- side effects after commit (the outbox) -------------------------------------------

    def outbox_handler(self, topic: str, fn: Callable) -> None:
        """fn(payload) runs after commit for every ctx.enqueue(tx, topic, ...) row, with retries
        and backoff; it must be idempotent with payload["_key"]. Raise to retry later."""
        from ..platform import outbox

        self.outbox_handlers[topic] = fn
        outbox.register_handler(self.topic(topic), _outbox_dispatcher(self.name, topic))
        self.registered.append(Registration("outbox", topic))

    def topic(self, topic: str) -> str:
        return f"plugin.{self.name}.{topic}"

    def enqueue(self, tx: Any, topic: str, payload: dict, key: str | None = None) -> bool:
        """Write an outbox row in the saving transaction (a SaveContext or Tx); sent after commit,
        never if the transaction rolls back. The same key twice is one row."""
        from ..platform import outbox

        tx = getattr(tx, "tx", tx)
        return outbox.enqueue(tx, self.topic(topic), payload, key, runtime=self.runtime)

    # --- data access -------------------------------------------------------------------------

    @property
    def principal(self) -> Any:
        """The caller of the current HTTP request (None outside one)."""
        try:
            from flask import g, has_request_context
        except ImportError:  # pragma: no cover
            return None
        return getattr(g, "principal", None) if has_request_context() else None

    def service(self, principal: Any = None, tx: Any = None) -> Any:
        """A RecordService bound to `principal` (default: the caller of this request), on `tx`
        (a Tx, or a SaveContext: then on the saving transaction)."""
        principal = principal or self.principal
        if principal is None:
            raise Forbidden(f"Plugin {self.name!r} has no acting user here; it needs ctx.system_service().",
                            code="plugin_no_user", plugin=self.name)
        return self._bound(principal, tx)

    def system_service(self, tx: Any = None) -> Any:
        """A RecordService acting as the platform, on `tx` (a Tx or a SaveContext): only with the
        `elevated` permission granted. In a hook pass the SaveContext: ctx.system_service(save)."""
        from ..platform.security import Principal

        if not self.elevated:
            raise Forbidden(
                f"Plugin {self.name!r} needs the 'elevated' permission for this; an admin grants it with "
                f"`metacrm plugin install {self.name} --grant elevated` (or upgrade).",
                code="plugin_not_elevated", plugin=self.name,
            )
        principal = Principal(user_id=None, username=f"plugin:{self.name}", roles=frozenset({"admin"}),
                              is_system=True)
        return self._bound(principal, tx)

    def _bound(self, principal: Any, tx: Any) -> Any:
        from ..platform.records import RecordService
        from ..platform.security import Access

        saving = getattr(tx, "service", None)
        if isinstance(saving, RecordService):
            # Inside a save: derive from the saving service (same metadata version, same
            # transaction), so no new connection is opened while this transaction holds
            # SQLite's write lock.
            service = copy.copy(saving)
            service.principal, service.source, service._tx = principal, f"plugin:{self.name}", tx.tx
            service.access = Access(saving.registry, principal, saving.access.directory)
            return service
        return RecordService(self.runtime, principal, tx=getattr(tx, "tx", tx), source=f"plugin:{self.name}")

    def transaction(self) -> Any:
        return self.runtime.transaction()

    def define_table(self, name: str, *columns: Any, **kwargs: Any) -> sa.Table:
        """The plugin's own table `mcx_<plugin>_<name>` (idempotency keys, sync state...): created
        by install / upgrade, dropped by `uninstall --purge`. Not a record object."""
        full = f"mcx_{self.name}_{name}"
        if len(full) > 63:
            raise ValueError(f"table name {full!r} is too long")
        if full in self.metadata.tables:
            return self.metadata.tables[full]
        table = sa.Table(full, self.metadata, *columns, **kwargs)
        self.registered.append(Registration("table", full))
        return table

    # --- settings ------------------------------------------------------------------------------

    def setting(self, key: str, default: Any = None) -> Any:
        """A setting: its environment variable (manifest settings.<key>.env) if set, else the value
        an admin stored (`metacrm plugin set`), else the default."""
        from . import store

        spec = (self.manifest.get("settings") or {}).get(key) or {}
        env = spec.get("env")
        if env and os.environ.get(env):
            return os.environ[env]
        with self.runtime.reading() as conn:
            value = store.get_setting(conn, self.name, key)
        if value is not None:
            return value
        return default if default is not None else spec.get("default")

    def set_setting(self, key: str, value: Any) -> None:
        from . import store

        with self.runtime.transaction() as tx:
            store.set_setting(tx.conn, self.name, key, value)


class _ActingUserContext:
    """A workflow ActionContext whose service() is bound to the acting user, not the platform."""

    def __init__(self, actx: Any):
        object.__setattr__(self, "_actx", actx)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._actx, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._actx, name, value)

    def service(self) -> Any:
        from ..platform.records import RecordService

        actx = self._actx
        return RecordService(actx.runtime, actx.principal, tx=actx.tx, source=getattr(actx, "source", "workflow"))


def _outbox_dispatcher(plugin: str, topic: str) -> Callable:
    """The outbox calls handlers by topic, process-wide; this finds the handler of the plugin
    as loaded in the draining runtime, and skips rows of a plugin that is no longer there."""

    def dispatch(runtime: Any, payload: dict) -> Any:
        state = runtime.extensions.get("plugins")
        loaded = state.loaded.get(plugin) if state is not None else None
        fn = loaded.ctx.outbox_handlers.get(topic) if loaded is not None else None
        if fn is None:
            raise Skip(f"plugin {plugin!r} is not installed in this process")
        return _guard(plugin, f"outbox handler {topic}", fn, detail=True)(payload)

    return dispatch


def _objects(objects: str | list[str] | None) -> list[str] | None:
    if objects is None or objects == "*":
        return None
    return [objects] if isinstance(objects, str) else list(objects)


def _guard(plugin: str, hook: str, fn: Callable, detail: bool = False) -> Callable:
    """A plugin that raises never corrupts data: the error propagates (so the save's transaction
    rolls back), and it names the plugin and the hook. CrmErrors (a validation refusal, a
    permission denial) keep their status; anything else is a PluginFailed (500). The exception's
    own text goes to the log, and into the message only where admins read it (`detail`: jobs,
    outbox rows), never to API callers."""

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CrmError as exc:
            exc.extra.setdefault("plugin", plugin)
            raise
        except Exception as exc:
            if isinstance(exc, Skip):
                raise
            log.exception("plugin %s failed in %s", plugin, hook)
            if detail:
                raise PluginFailed(f"Plugin {plugin!r} failed in {hook}: {type(exc).__name__}: {exc}",
                                   plugin=plugin, hook=hook) from exc
            raise PluginFailed(f"Plugin {plugin!r} failed in {hook} ({type(exc).__name__}); its changes were "
                               "rolled back and the error was logged.", plugin=plugin, hook=hook) from exc

    wrapped.__qualname__ = getattr(fn, "__qualname__", repr(fn))
    wrapped.__name__ = getattr(fn, "__name__", "plugin_fn")
    wrapped.__wrapped__ = fn  # type: ignore[attr-defined]
    return wrapped
