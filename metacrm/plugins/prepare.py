"""Before any write: a plugin's code, checked, with what installing it would put in place.

Every operation first checks everything it can without writing (the manifest, the metacrm
version, dependencies, the bundle, name clashes, and a trial run of setup() against a
scratch runtime to see that what the manifest declares is really registered); a plugin that
fails any of them is refused with every problem at once, and nothing is applied.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from packaging.version import Version

from ..metadata.bundle import Bundle, MetaIssue, load_bundle
from ..metadata.registry import Registry
from ..metadata.validate import BUILTIN_ACTIONS, EXTRA_ACTIONS
from ..platform.actions import actions
from ..platform.errors import BadRequest, MetadataInvalid, NotFound
from ..platform.hooks import Hooks
from . import loader, store
from .api import PluginContext
from .manifest import Manifest, PluginInvalid, parse_manifest

log = logging.getLogger("metacrm.plugins")


class _TrialRuntime:
    """The real runtime for reading, with its own hooks, sweeps and extensions, so a trial
    setup() registers nothing that the process would run."""

    def __init__(self, runtime: Any):
        self._runtime = runtime
        self.hooks = Hooks()
        self.sweeps: list = []
        self.extensions: dict = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runtime, name)


@dataclass
class Prepared:
    """A plugin's code, checked, with what installing it would put in place."""

    candidate: loader.Candidate
    manifest: Manifest
    documents: list[dict]
    sources: dict
    ctx: PluginContext
    warnings: list[str] = field(default_factory=list)
    added_actions: set[str] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.manifest.name

    def registered(self, kind: str) -> list:
        return [r.key for r in self.ctx.registered if r.kind == kind]

    def summary(self) -> dict:
        hooks: dict[str, list[str]] = {}
        for r in self.ctx.registered:
            if r.kind in ("before_save", "after_save"):
                hooks.setdefault(r.kind, []).extend(sorted(r.key) if r.key else ["*"])
        return {
            "hooks": hooks,
            "record_actions": [f"{o}.{n}" for o, n in self.registered("record_action")],
            "workflow_actions": self.registered("workflow_action"),
            "jobs": self.registered("job"),
            "blueprint": bool(self.registered("blueprint")),
            "tables": self.registered("table"),
            "extends": {obj: [f["name"] for f in fields] for obj, fields in self.manifest.extends.items()},
            "documents": [f"{d['kind']}/{d['name']}" for d in self.documents],
        }


def prepare(runtime: Any, name: str, rows: dict[str, store.PluginRow], live: Registry) -> Prepared:
    candidate = loader.find(name)
    if candidate is None:
        raise NotFound(f"No plugin named {name!r} is available: install its Python package first "
                       f"(it must declare an entry point {name} in the group {loader.ENTRY_POINT_GROUP}).",
                       code="unknown_plugin", plugin=name)
    code = candidate.load()
    manifest = parse_manifest(code.raw_manifest, expected_name=name)
    manifest.check_compatible()
    problems: list[str] = []
    row = rows.get(name)
    if row is not None and row.origin and row.origin != candidate.source:
        problems.append(f"the installed plugin {name!r} came from {row.origin}; {candidate.source} also calls "
                        f"itself {name!r} (another package owns the name)")
    for req in manifest.depends:
        dep = rows.get(req.name)
        if dep is None or not dep.active:
            problems.append(f"it needs the plugin {req.name!r}, which is not installed: install it first")
        elif req.specifier and not req.specifier.contains(Version(dep.version), prereleases=True):
            problems.append(f"it needs {req}, but {req.name} {dep.version} is installed")

    bundle = Bundle()
    if manifest.bundle:
        bundle = load_bundle(code.root / manifest.bundle, namespace=name)
        if bundle.issues:
            raise MetadataInvalid([MetaIssue(f"{name}/{i.source}", i.path, i.message) for i in bundle.issues])
    documents, sources = [], {}
    for doc in bundle.documents:
        key = (doc["kind"], doc["name"])
        if doc.get("plugin") not in (None, name):
            problems.append(f"{key[0]}/{key[1]} says it belongs to the plugin {doc.get('plugin')!r}")
        live_doc = live.get(*key)
        if live_doc is not None and live_doc.get("plugin") != name:
            owner = live_doc.get("plugin")
            problems.append(f"{key[0]}/{key[1]} already exists and belongs to "
                            + (f"the plugin {owner!r}" if owner else "the installation (not to this plugin)"))
        documents.append(dict(doc, plugin=name))
        sources[key] = f"{name}/{bundle.sources[key]}"
    own = {(d["kind"], d["name"]) for d in documents}
    for obj in manifest.extends:
        if ("object", obj) in own:
            problems.append(f"extends.{obj}: the plugin's own object takes its fields directly")
        elif live.get("object", obj) is None:
            problems.append(f"extends.{obj}: there is no object {obj!r} to extend")

    ctx, added = _trial_setup(runtime, code, manifest, problems)
    prepared = Prepared(candidate, manifest, documents, sources, ctx, list(manifest.warnings), added)
    _check_declarations(prepared, problems)
    _check_action_clashes(runtime, prepared, rows, problems)
    if problems:
        _forget_actions(prepared.added_actions)
        raise PluginInvalid(name, problems)
    return prepared


def _trial_setup(runtime: Any, code: loader.Code, manifest: Manifest, problems: list[str]):
    trial = _TrialRuntime(runtime)
    ctx = PluginContext(trial, manifest.name, granted=manifest.permissions, manifest=manifest.raw)
    before = set(EXTRA_ACTIONS)
    try:
        code.setup(ctx)
    except Exception as exc:
        log.warning("plugin %s: setup() failed in the trial run", manifest.name, exc_info=True)
        problems.append(f"setup() failed: {type(exc).__name__}: {exc}")
    return ctx, set(EXTRA_ACTIONS) - before


def _check_declarations(prepared: Prepared, problems: list[str]) -> None:
    """What the manifest declares must be registered by setup() (a declaration pointing to
    nothing is refused); what setup() registers undeclared is reported as a warning."""
    m, regs = prepared.manifest, prepared.ctx.registered

    def hook_covers(event: str, obj: str) -> bool:
        return any(r.kind == event and (r.key is None or (obj != "*" and obj in r.key)) for r in regs)

    for event, objects in m.hooks.items():
        for obj in objects:
            if not hook_covers(event, obj):
                where = "every object" if obj == "*" else repr(obj)
                problems.append(f"the manifest declares a {event} hook on {where} but setup() registered none")
    declared_actions = {(o, n) for o, names in m.record_actions.items() for n in names}
    registered_actions = set(prepared.registered("record_action"))
    for obj, action in sorted(declared_actions - registered_actions):
        problems.append(f"the manifest declares the record action {obj}.{action} but setup() registered none")
    for kind, declared in (("workflow_action", m.workflow_actions), ("job", m.jobs)):
        got = set(prepared.registered(kind))
        for item in declared:
            if item not in got:
                problems.append(f"the manifest declares the {kind.replace('_', ' ')} {item!r} "
                                "but setup() registered none")
        for item in sorted(got - set(declared)):
            prepared.warnings.append(f"setup() registers the {kind.replace('_', ' ')} {item!r} "
                                     "that the manifest does not declare")
    if m.blueprint and not prepared.registered("blueprint"):
        problems.append("the manifest declares a blueprint but setup() registered none")
    if prepared.registered("blueprint") and not m.blueprint:
        prepared.warnings.append("setup() registers a blueprint that the manifest does not declare")
    for obj, action in sorted(registered_actions - declared_actions):
        prepared.warnings.append(f"setup() registers the record action {obj}.{action} that the manifest "
                                 "does not declare")
    for r in regs:
        if r.kind in ("before_save", "after_save"):
            objs = sorted(r.key) if r.key else ["*"]
            if not all(hook_covers_declared(m, r.kind, o) for o in objs):
                prepared.warnings.append(f"setup() registers a {r.kind} hook on {', '.join(objs)} that the "
                                         "manifest does not declare")


def hook_covers_declared(m: Manifest, event: str, obj: str) -> bool:
    declared = m.hooks.get(event, [])
    return "*" in declared or obj in declared


def _check_action_clashes(runtime: Any, prepared: Prepared, rows: dict, problems: list[str]) -> None:
    name = prepared.name
    live_actions = actions(runtime)
    for action in prepared.registered("workflow_action"):
        if action in BUILTIN_ACTIONS:
            problems.append(f"the workflow action {action!r} is a built-in action")
            continue
        if not action.startswith(f"{name}__"):
            problems.append(f"the workflow action {action!r} must be named '{name}__<action>' "
                            "(metadata calls plugin actions by that name)")
            continue
        owner = getattr(live_actions.workflow.get(action), "plugin", None)
        owner = owner or next((n for n, r in rows.items() if n != name and r.active
                               and action in r.applied.get("workflow_actions", [])), None)
        if owner and owner != name:
            problems.append(f"the workflow action {action!r} already belongs to the plugin {owner!r}")
    for obj, action in prepared.registered("record_action"):
        current = live_actions.record.get((obj, action))
        owner = current.plugin if current is not None else None
        owner = owner or next((n for n, r in rows.items() if n != name and r.active
                               and [obj, action] in r.applied.get("record_actions", [])), None)
        if owner and owner != name:
            problems.append(f"the record action {obj}.{action} already belongs to the plugin {owner!r}")


def _forget_actions(names: set[str]) -> None:
    EXTRA_ACTIONS.difference_update(names)


def _check_grants(manifest: Manifest, grant: Any) -> list[str]:
    grant = sorted(set(grant or []))
    for perm in grant:
        if perm not in manifest.permissions:
            raise BadRequest(f"Plugin {manifest.name!r} does not ask for the permission {perm!r}"
                             + (f" (it asks for: {', '.join(manifest.permissions)})" if manifest.permissions
                                else " (it asks for none)"), code="plugin_permission", plugin=manifest.name)
    return grant
