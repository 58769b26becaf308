"""Finding plugins, and loading the installed ones into each process.

Discovery: the entry point group `metacrm.plugins` (an installed package declares
`name = module` or `name = module:object`), the built-in plugins below, and modules
registered by path (`register_module`, for tests and local development). All three give
the same `Candidate`; loading is one code path whatever the origin.

Loading: `register(runtime)` (a BUILTIN_MODULE, called when a runtime is built) reads
`mc_plugin` and calls `setup(PluginContext(...))` for every installed, enabled plugin.
Whenever the runtime's metadata version moves (every install / upgrade / uninstall bumps
it), the loader re-reads `mc_plugin` (one small query) and loads or unloads what changed,
so every process follows. A plugin whose package is gone, does not import or whose setup()
raises is logged and skipped; it never stops the server.

HTTP: `mount_blueprints(app)` puts one dispatcher in front of the app that serves
/api/v1/x/<plugin>/... from the plugin's *current* blueprint (a small Flask app per plugin,
rebuilt when the plugin is reloaded), so installs and uninstalls are visible without a
restart, although Flask cannot register blueprints once an app has served a request.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..platform.actions import actions
from . import store
from .api import PluginContext, PluginFailed
from .manifest import Manifest, PluginInvalid, parse_manifest

log = logging.getLogger("metacrm.plugins")

ENTRY_POINT_GROUP = "metacrm.plugins"
# Plugins shipped inside metacrm; discovered like entry points, installed by `metacrm init`.
BUILTIN_PLUGINS = {"lead_to_cash": "metacrm.plugins.lead_to_cash"}
# Plugins registered from a module path (tests, development): name -> "module[:object]".
_REGISTERED: dict[str, str] = {}


# --- discovery ----------------------------------------------------------------------------


@dataclass
class Code:
    """A plugin's imported code: the object with MANIFEST and setup(), and its folder."""

    obj: Any
    module: Any
    root: Path

    @property
    def raw_manifest(self) -> Any:
        return getattr(self.obj, "MANIFEST", None)

    def setup(self, ctx: PluginContext) -> None:
        self.obj.setup(ctx)


@dataclass
class Candidate:
    name: str
    target: str  # "module" or "module:object"
    origin: str  # builtin | entry_point | module
    distribution: str | None = None
    conflicts: list[str] = field(default_factory=list)

    @property
    def source(self) -> str:
        return self.distribution or self.target

    def load(self) -> Code:
        """Import the plugin; PluginInvalid if it does not import or lacks MANIFEST / setup."""
        if self.conflicts:
            raise PluginInvalid(self.name, [f"several packages provide a plugin named {self.name!r}: "
                                            + ", ".join([self.source, *self.conflicts])])
        module_name, _, attr = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
            obj = module
            for part in filter(None, attr.split(".")):
                obj = getattr(obj, part)
        except Exception as exc:
            message = (f"its {self.origin.replace('_', ' ')} {self.name} = {self.target} does not import: "
                       f"{type(exc).__name__}: {exc}")
            raise PluginInvalid(self.name, [message]) from exc
        problems = []
        if getattr(obj, "MANIFEST", None) is None:
            problems.append(f"{self.target} has no MANIFEST")
        if not callable(getattr(obj, "setup", None)):
            problems.append(f"{self.target} has no setup(ctx) function")
        if problems:
            raise PluginInvalid(self.name, problems)
        return Code(obj, module, Path(module.__file__).resolve().parent)


def register_module(module: str, name: str | None = None) -> str:
    """Make a plugin discoverable from a module path (`pkg.mod` or `pkg.mod:obj`) without a
    package install; returns its name. Without `name`, the module is imported to read it."""
    if name is None:
        code = Candidate("?", module, "module").load()
        name = (code.raw_manifest or {}).get("name") if isinstance(code.raw_manifest, dict) else None
        if not isinstance(name, str):
            raise PluginInvalid(module, ["its MANIFEST has no name"])
    _REGISTERED[name] = module
    return name


def unregister_module(name: str) -> None:
    _REGISTERED.pop(name, None)


def _add(found: dict[str, Candidate], candidate: Candidate) -> None:
    existing = found.get(candidate.name)
    if existing is None:
        found[candidate.name] = candidate
    elif existing.target != candidate.target:
        existing.conflicts.append(candidate.source)
    elif candidate.origin == "entry_point":  # the same code: prefer the packaged description
        candidate.conflicts = existing.conflicts
        found[candidate.name] = candidate


def discover() -> dict[str, Candidate]:
    """Every plugin this process could load, by name (nothing is imported but built-ins' specs)."""
    found: dict[str, Candidate] = {}
    for name, module in BUILTIN_PLUGINS.items():
        try:
            spec = importlib.util.find_spec(module)
            present = spec is not None and spec.origin is not None  # a bare folder is not a plugin
        except (ImportError, ValueError):
            present = False
        if present:
            _add(found, Candidate(name, module, "builtin", "metacrm"))
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(getattr(ep, "dist", None), "name", None)
        _add(found, Candidate(ep.name, ep.value, "entry_point", dist))
    for name, module in _REGISTERED.items():
        _add(found, Candidate(name, module, "module"))
    return dict(sorted(found.items()))


def find(name: str) -> Candidate | None:
    return discover().get(name)


# --- per-process state --------------------------------------------------------------------


@dataclass
class LoadedPlugin:
    name: str
    version: str  # as installed (mc_plugin)
    code_version: str
    granted: frozenset
    ctx: PluginContext

    @property
    def key(self) -> tuple:
        return (self.version, self.granted)


class LoaderState:
    def __init__(self) -> None:
        self.loaded: dict[str, LoadedPlugin] = {}
        self.errors: dict[str, str] = {}
        self.lock = threading.RLock()
        self.seen_version: int | None = None
        self.local = threading.local()


def state(runtime: Any) -> LoaderState:
    return runtime.extensions.setdefault("plugins", LoaderState())


def register(runtime: Any) -> None:
    """Create mc_plugin, load the installed plugins, follow changes."""
    st = state(runtime)
    try:
        store.ensure_table(runtime.engine)
        sync(runtime, ddl=True)
    except Exception:  # a database that is not there yet must not stop `metacrm init`
        log.warning("cannot load plugins now (database not ready?)", exc_info=True)
    _watch_versions(runtime, st)


def _watch_versions(runtime: Any, st: LoaderState) -> None:
    """Re-sync when the metadata version moves: through Runtime.version_listeners if the
    runtime has them, else by wrapping this runtime's compiled()."""
    listeners = getattr(runtime, "version_listeners", None)
    if isinstance(listeners, list):
        listeners.append(lambda compiled: _version_moved(runtime, st, compiled.registry.version))
        return
    original = runtime.compiled

    def compiled(force: bool = False):
        result = original(force)
        if result.registry.version != st.seen_version:
            _version_moved(runtime, st, result.registry.version)
        return result

    compiled.__wrapped__ = original  # type: ignore[attr-defined]
    runtime.compiled = compiled


def _version_moved(runtime: Any, st: LoaderState, version: int) -> None:
    if getattr(st.local, "busy", False):
        return
    with st.lock:
        if st.seen_version == version:
            return
        st.seen_version = version
        st.local.busy = True
        try:
            sync(runtime)
        except Exception:
            log.exception("plugin re-sync failed; the plugins loaded before stay loaded")
        finally:
            st.local.busy = False


# --- loading and unloading ------------------------------------------------------------------


def sync(runtime: Any, ddl: bool = False) -> None:
    """Make this process's loaded plugins match mc_plugin (installed and enabled rows).

    `ddl` creates missing plugin tables (only where no transaction of this thread is open:
    at runtime build; installs create them anyway)."""
    st = state(runtime)
    with runtime.reading() as conn:
        rows = store.read_all(conn)
    wanted = {name: row for name, row in rows.items() if row.active}
    with st.lock:
        for name in list(st.loaded):
            row = wanted.get(name)
            if row is None or st.loaded[name].key != (row.version, frozenset(row.granted)):
                unload(runtime, name)
        for name in list(st.errors):
            if name not in wanted:
                st.errors.pop(name, None)
        candidates = None
        for name in dependency_order(wanted):
            if name in st.loaded:
                continue
            if candidates is None:
                candidates = discover()
            load(runtime, wanted[name], candidates.get(name), ddl=ddl)


def dependency_order(rows: dict[str, store.PluginRow]) -> list[str]:
    """Names with every plugin after the plugins it depends on (cycles: input order)."""
    from packaging.requirements import InvalidRequirement, Requirement

    deps = {}
    for name, row in rows.items():
        names = []
        for item in row.manifest.get("depends") or []:
            try:
                names.append(Requirement(str(item)).name)
            except InvalidRequirement:
                log.warning("plugin %s: ignoring the malformed dependency %r", name, item)
        deps[name] = [d for d in names if d in rows]
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered or name in visiting:
            return
        visiting.add(name)
        for dep in deps.get(name, []):
            visit(dep)
        visiting.discard(name)
        ordered.append(name)

    for name in sorted(rows):
        visit(name)
    return ordered


def load(runtime: Any, row: store.PluginRow, candidate: Candidate | None, ddl: bool = False) -> bool:
    """Load one installed plugin into this process; False (logged) if it cannot be."""
    st = state(runtime)
    name = row.name
    if candidate is None:
        return _failed(st, name, f"plugin {name!r} is installed but no package provides it any more "
                                 f"(entry point {ENTRY_POINT_GROUP}:{name} is gone); skipped")
    try:
        code = candidate.load()
        manifest = parse_manifest(code.raw_manifest, expected_name=name)
    except PluginInvalid as exc:
        return _failed(st, name, f"plugin {name!r} cannot be loaded: {exc.message}")
    if str(manifest.version) != row.version:
        log.warning("plugin %s: the code is version %s but %s is installed; run `metacrm plugin upgrade %s`",
                    name, manifest.version, row.version, name)
    ctx = PluginContext(runtime, name, granted=row.granted, manifest=manifest.raw)
    try:
        code.setup(ctx)
    except Exception as exc:
        unload(runtime, name, ctx)
        log.exception("plugin %s: setup() failed", name)
        return _failed(st, name, f"plugin {name!r}: setup() failed: {type(exc).__name__}: {exc}")
    if ddl and ctx.metadata.tables:
        try:
            ctx.metadata.create_all(runtime.engine, checkfirst=True)
        except Exception:
            log.exception("plugin %s: cannot create its tables", name)
    st.loaded[name] = LoadedPlugin(name, row.version, str(manifest.version), frozenset(row.granted), ctx)
    st.errors.pop(name, None)
    log.info("plugin %s %s loaded", name, row.version)
    return True


def _failed(st: LoaderState, name: str, message: str) -> bool:
    if st.errors.get(name) != message:
        log.error(message)
    st.errors[name] = message
    return False


def unload(runtime: Any, name: str, ctx: PluginContext | None = None) -> None:
    """Remove everything a plugin registered in this process."""
    st = state(runtime)
    loaded = st.loaded.pop(name, None)
    ctx = ctx or (loaded.ctx if loaded else None)
    runtime.hooks.unregister(f"plugin.{name}.")
    actions(runtime).remove_plugin(name)
    if ctx is not None:
        jobs = {f"{name}.{r.key}" for r in ctx.registered if r.kind == "job"}
        runtime.sweeps[:] = [(n, f) for n, f in runtime.sweeps if n not in jobs]
    blueprints = runtime.extensions.get("plugin_blueprints")
    if blueprints is not None:
        blueprints[:] = [(n, bp) for n, bp in blueprints if n != name]
    reports = runtime.extensions.get("plugin_reports")
    if reports is not None:
        for key in [k for k, v in reports.items() if v.get("plugin") == name]:
            del reports[key]
    widgets = runtime.extensions.get("dashboard_widgets")
    if widgets is not None:
        for key in [k for k, fn in widgets.items() if getattr(fn, "plugin", None) == name]:
            del widgets[key]


def loaded(runtime: Any) -> dict[str, LoadedPlugin]:
    return dict(state(runtime).loaded)


# --- HTTP: /api/v1/x/<plugin>/... -------------------------------------------------------------

PREFIX = "/api/v1/x/"


class PluginDispatcher:
    """WSGI middleware: /api/v1/x/<plugin>/... goes to the plugin's current blueprint."""

    def __init__(self, wsgi_app: Any, app: Any):
        self.wsgi_app = wsgi_app
        self.app = app
        self._apps: dict[str, tuple[tuple, Any]] = {}
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith(PREFIX):
            sub = self.app_for(path[len(PREFIX):].split("/", 1)[0])
            if sub is not None:
                return sub(environ, start_response)
        return self.wsgi_app(environ, start_response)

    def app_for(self, name: str) -> Any:
        runtime = self.app.extensions["metacrm"]
        runtime.compiled()  # notices installs in other processes (re-sync)
        bps = [bp for n, bp in runtime.extensions.get("plugin_blueprints", []) if n == name]
        if not bps:
            return None
        key = tuple(id(bp) for bp in bps)
        cached = self._apps.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        with self._lock:
            cached = self._apps.get(name)
            if cached is None or cached[0] != key:
                cached = (key, self._build(name, bps, runtime))
                self._apps[name] = cached
        return cached[1]

    def _build(self, name: str, bps: list, runtime: Any) -> Any:
        from flask import Flask, jsonify, request
        from werkzeug.exceptions import HTTPException

        from ..platform.api import authenticate, handle_crm_error, handle_http_error
        from ..platform.errors import CrmError

        sub = Flask(f"metacrm_plugin_{name}")
        sub.config.update(self.app.config)
        sub.json.sort_keys = False
        sub.json.ensure_ascii = False
        sub.session_interface = self.app.session_interface
        for key, value in self.app.extensions.items():
            if key.startswith("metacrm"):
                sub.extensions[key] = value
        sub.extensions["metacrm"] = runtime
        sub.before_request(authenticate)
        sub.register_error_handler(CrmError, handle_crm_error)
        sub.register_error_handler(HTTPException, handle_http_error)

        @sub.errorhandler(Exception)
        def plugin_crashed(exc: Exception):
            log.error("plugin %s failed on %s %s", name, request.method, request.path, exc_info=exc)
            error = PluginFailed(f"Plugin {name!r} failed in route {request.endpoint or request.path} "
                                 f"({type(exc).__name__}); the error was logged.", plugin=name,
                                 hook=f"route {request.endpoint}")
            return jsonify({"error": error.to_dict()}), error.status

        for bp in bps:
            sub.register_blueprint(bp, url_prefix=f"{PREFIX}{name}" + (bp.url_prefix or ""))
        return sub


def mount_blueprints(app: Any) -> None:
    """Serve plugin blueprints under /api/v1/x/<plugin>/ on this app (call once, from create_app)."""
    if app.extensions.get("metacrm.plugin_dispatcher") is not None:
        return
    dispatcher = PluginDispatcher(app.wsgi_app, app)
    app.wsgi_app = dispatcher
    app.extensions["metacrm.plugin_dispatcher"] = dispatcher


__all__ = ["BUILTIN_PLUGINS", "Candidate", "Code", "Manifest", "discover", "find", "load", "loaded",
           "mount_blueprints", "register", "register_module", "sync", "unload", "unregister_module"]
