"""Install, upgrade and uninstall plugins: validate, show the diff, apply in one step.

Every operation first checks everything it can without writing (the manifest, the metacrm
version, dependencies, the bundle, name clashes, and a trial run of setup() against a
scratch runtime to see that what the manifest declares is really registered), then makes
the metadata change with `apply_change` (all of it or none of it: documents, tables and
columns in one transaction), then records the plugin in `mc_plugin` (which bumps the
metadata version, so every process re-syncs its hooks).

Ownership: a plugin's documents carry `"plugin": <name>` and are named `<name>__*`; the
fields it adds to other objects (manifest `extends`) are named `<name>__*`, so the live
metadata itself says what belongs to whom.

Uninstall archives: the plugin's documents are deleted and its fields taken off other
objects, but storage never drops a table or column for that (see platform/storage.py), so
the data stays and a reinstall brings it back. `purge` drops them for good.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from packaging.version import Version

from .. import __version__ as METACRM_VERSION
from ..metadata.bundle import Bundle, MetaIssue, load_bundle
from ..metadata.registry import Registry
from ..metadata.validate import BUILTIN_ACTIONS, EXTRA_ACTIONS
from ..platform import db, metastore
from ..platform.actions import actions
from ..platform.apply import ApplyResult, apply_change
from ..platform.clock import utcnow
from ..platform.errors import BadRequest, Conflict, CrmError, MetadataInvalid, NotFound
from ..platform.hooks import Hooks
from ..platform.storage import StorageDiff, index_name
from . import loader, store
from .api import PluginContext, Registration
from .manifest import PERMISSIONS, Manifest, PluginInvalid, parse_manifest

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


# --- checks -----------------------------------------------------------------------------------


def _rows(runtime: Any) -> dict[str, store.PluginRow]:
    with runtime.reading() as conn:
        return store.read_all(conn)


def _live(runtime: Any) -> Registry:
    with runtime.reading() as conn:
        return metastore.load_registry(conn)


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


# --- the metadata change ------------------------------------------------------------------------


def _owned(name: str, fname: Any) -> bool:
    return isinstance(fname, str) and fname.startswith(f"{name}__")


def metadata_change(live: Registry, name: str, prepared: Prepared | None, row: store.PluginRow | None):
    """(documents to apply, deletes, sources, archived fields) taking the live metadata from what
    the plugin has now (its row, plus anything stamped with its name) to what `prepared` ships."""
    new_docs = prepared.documents if prepared else []
    sources = dict(prepared.sources) if prepared else {}
    new_keys = {(d["kind"], d["name"]) for d in new_docs}
    old_keys = set(row.documents) if row else set()
    old_keys |= {key for key, doc in live.documents.items() if doc.get("plugin") == name}
    deletes = [key for key in sorted(old_keys - new_keys) if key in live.documents]
    documents = list(new_docs)
    wanted_fields = prepared.manifest.extends if prepared else {}
    archived: dict[str, list[str]] = {}
    for key, doc in sorted(live.documents.items()):
        if key[0] != "object" or key in old_keys or key in new_keys:
            continue
        wanted = {f["name"]: f for f in wanted_fields.get(key[1], [])}
        if not wanted and not any(_owned(name, f.get("name")) for f in doc.get("fields") or []):
            continue
        fields = []
        for fdoc in doc.get("fields") or []:
            if not _owned(name, fdoc.get("name")):
                fields.append(fdoc)
            elif fdoc["name"] in wanted:
                fields.append(wanted.pop(fdoc["name"]))
            else:
                archived.setdefault(key[1], []).append(fdoc["name"])
        fields.extend(wanted.values())
        if fields != doc.get("fields"):
            documents.append(dict(doc, fields=fields))
            sources[key] = f"{name}: extends.{key[1]}"
    return documents, deletes, sources, archived


def _apply(runtime: Any, live: Registry, documents: list[dict], deletes: list, sources: dict, dry_run: bool,
           validate: bool = False):
    """apply_change, skipped when there is nothing to change (a plugin without metadata) unless
    `validate` asks to re-check the live metadata (an uninstall that removes workflow actions)."""
    if not documents and not deletes and not validate:
        empty = {"added": [], "changed": [], "removed": []}
        return ApplyResult(live.version, not dry_run, {"documents": empty, "storage": StorageDiff().as_dict()})
    bundle = Bundle(documents=documents, sources=sources)
    return apply_change(runtime, bundle, deletes=deletes, dry_run=dry_run)


def _applied(prepared: Prepared, previous: dict | None) -> dict:
    previous = previous or {}
    return {
        "documents": [[d["kind"], d["name"]] for d in prepared.documents],
        "fields": {obj: [f["name"] for f in fields] for obj, fields in prepared.manifest.extends.items()},
        "tables": sorted(set(prepared.registered("table")) | set(previous.get("tables", []))),
        "workflow_actions": prepared.registered("workflow_action"),
        "record_actions": [list(k) for k in prepared.registered("record_action")],
        "archived_documents": previous.get("archived_documents", []),
        "archived_fields": previous.get("archived_fields", {}),
    }


def _result(action: str, name: str, prepared: Prepared | None, apply_result: Any, dry_run: bool, **extra) -> dict:
    out = {
        "plugin": name,
        "action": action,
        "dry_run": dry_run,
        "applied": not dry_run,
        "metadata_version": apply_result.version if apply_result is not None else None,
        "diff": apply_result.diff if apply_result is not None else {},
    }
    if prepared is not None:
        out.update(version=str(prepared.manifest.version), registers=prepared.summary(),
                   warnings=prepared.warnings)
    out.update(extra)
    return out


def _check_grants(manifest: Manifest, grant: Any) -> list[str]:
    grant = sorted(set(grant or []))
    for perm in grant:
        if perm not in manifest.permissions:
            raise BadRequest(f"Plugin {manifest.name!r} does not ask for the permission {perm!r}"
                             + (f" (it asks for: {', '.join(manifest.permissions)})" if manifest.permissions
                                else " (it asks for none)"), code="plugin_permission", plugin=manifest.name)
    return grant


# --- operations ---------------------------------------------------------------------------------


def install(runtime: Any, name: str, grant: Any = (), dry_run: bool = False) -> dict:
    """Install `name`: refused with a clear error, nothing applied, unless everything checks."""
    rows, live = _rows(runtime), _live(runtime)
    row = rows.get(name)
    if row is not None and row.status == store.INSTALLED:
        raise Conflict(f"Plugin {name!r} {row.version} is already installed; use upgrade.",
                       code="plugin_installed", plugin=name)
    prepared = prepare(runtime, name, rows, live)
    try:
        granted = _check_grants(prepared.manifest, grant)
        documents, deletes, sources, _ = metadata_change(live, name, prepared, row)
        result = _apply(runtime, live, documents, deletes, sources, dry_run)
        if not dry_run:
            now = utcnow()
            new_row = store.PluginRow(name, str(prepared.manifest.version), store.INSTALLED, True,
                                      prepared.candidate.source, now, now, granted, prepared.manifest.raw,
                                      _applied(prepared, row.applied if row else None))
            with runtime.transaction() as tx:
                if prepared.ctx.metadata.tables:
                    prepared.ctx.metadata.create_all(tx.conn, checkfirst=True)
                written = store.write(tx.conn, new_row, new=row is None, expect_version=row.version if row else None)
                if not written:
                    raise Conflict(f"Plugin {name!r} was changed meanwhile; try again.", code="plugin_busy")
    except sa.exc.IntegrityError:
        _forget_actions(prepared.added_actions)
        raise Conflict(f"Plugin {name!r} was installed meanwhile.", code="plugin_installed", plugin=name) from None
    except Exception:
        _forget_actions(prepared.added_actions)
        raise
    if dry_run:
        _forget_actions(prepared.added_actions)
    else:
        loader.sync(runtime)
    return _result("install", name, prepared, result, dry_run, from_version=row.version if row else None,
                   permissions={"requested": prepared.manifest.permissions, "granted": granted})


def upgrade(runtime: Any, name: str, grant: Any = (), dry_run: bool = False) -> dict:
    """Apply the difference between the installed version and the plugin's current code."""
    rows, live = _rows(runtime), _live(runtime)
    row = rows.get(name)
    if row is None or row.status != store.INSTALLED:
        raise NotFound(f"Plugin {name!r} is not installed; use install.", code="plugin_not_installed", plugin=name)
    prepared = prepare(runtime, name, rows, live)
    new_version = prepared.manifest.version
    try:
        if new_version < Version(row.version):
            raise Conflict(f"Plugin {name!r} {row.version} is installed; the available code is the older "
                           f"{new_version}. Downgrades are not supported: install {row.version} or newer.",
                           code="plugin_downgrade", plugin=name)
        for other, other_row in rows.items():
            for req in _requirements(other_row):
                if other != name and other_row.active and req.name == name and req.specifier \
                        and not req.specifier.contains(new_version, prereleases=True):
                    raise Conflict(f"The plugin {other!r} needs {req}; upgrading {name} to {new_version} would "
                                   "break it.", code="plugin_required_by", plugin=name, required_by=[other])
        granted = sorted((set(row.granted) & set(prepared.manifest.permissions)) | set(_check_grants(
            prepared.manifest, grant)))
        documents, deletes, sources, archived = metadata_change(live, name, prepared, row)
        result = _apply(runtime, live, documents, deletes, sources, dry_run)
        if not dry_run:
            applied = _applied(prepared, row.applied)
            applied["archived_documents"] = sorted({tuple(k) for k in applied["archived_documents"]}
                                                   | {k for k in deletes if k[0] == "object"})
            applied["archived_documents"] = [list(k) for k in applied["archived_documents"]]
            for obj, names in archived.items():
                applied["archived_fields"].setdefault(obj, [])
                applied["archived_fields"][obj] = sorted(set(applied["archived_fields"][obj]) | set(names))
            new_row = store.PluginRow(name, str(new_version), store.INSTALLED, row.enabled, prepared.candidate.source,
                                      row.installed_at, utcnow(), granted, prepared.manifest.raw, applied)
            with runtime.transaction() as tx:
                if prepared.ctx.metadata.tables:
                    prepared.ctx.metadata.create_all(tx.conn, checkfirst=True)
                if not store.write(tx.conn, new_row, expect_version=row.version):
                    raise Conflict(f"Plugin {name!r} was changed meanwhile; try again.", code="plugin_busy")
    except Exception:
        _forget_actions(prepared.added_actions - _loaded_actions(runtime))
        raise
    if dry_run:
        _forget_actions(prepared.added_actions - _loaded_actions(runtime))
    else:
        loader.sync(runtime)
    return _result("upgrade", name, prepared, result, dry_run, from_version=row.version,
                   permissions={"requested": prepared.manifest.permissions, "granted": granted})


def _loaded_actions(runtime: Any) -> set[str]:
    return set(actions(runtime).workflow)


def _requirements(row: store.PluginRow) -> list:
    from packaging.requirements import InvalidRequirement, Requirement

    out = []
    for item in row.manifest.get("depends") or []:
        try:
            out.append(Requirement(str(item)))
        except InvalidRequirement:
            log.warning("plugin %s: ignoring the malformed dependency %r", row.name, item)
    return out


def uninstall(runtime: Any, name: str, purge: bool = False, dry_run: bool = False) -> dict:
    """Remove the plugin's documents, fields, rules and hooks; keep its data unless `purge`."""
    rows, live = _rows(runtime), _live(runtime)
    row = rows.get(name)
    if row is None:
        raise NotFound(f"Plugin {name!r} is not installed.", code="plugin_not_installed", plugin=name)
    if row.status == store.ARCHIVED and not purge:
        raise Conflict(f"Plugin {name!r} is already uninstalled (its data is archived); use purge to drop it.",
                       code="plugin_archived", plugin=name)
    dependents = sorted(n for n, r in rows.items() if n != name and r.status == store.INSTALLED
                        and any(req.name == name for req in _requirements(r)))
    if dependents:
        raise Conflict(f"Plugin {name!r} cannot be uninstalled: {', '.join(dependents)} depend"
                       f"{'s' if len(dependents) == 1 else ''} on it; uninstall "
                       f"{'it' if len(dependents) == 1 else 'them'} first.",
                       code="plugin_required_by", plugin=name, required_by=dependents)
    documents, deletes, sources, archived = metadata_change(live, name, None, row)
    # Its workflow actions disappear with it: a rule still using one must stop the uninstall.
    removed_actions = {a for a in row.applied.get("workflow_actions", []) if a in EXTRA_ACTIONS}
    EXTRA_ACTIONS.difference_update(removed_actions)
    try:
        result = _apply(runtime, live, documents, deletes, sources, dry_run, validate=bool(removed_actions))
    except Exception:
        EXTRA_ACTIONS.update(removed_actions)
        raise
    drops = _purge_plan(runtime, row, deletes, archived) if purge else {}
    if dry_run:
        EXTRA_ACTIONS.update(removed_actions)
        return _result("uninstall", name, None, result, True, version=row.version, purge=drops)
    if purge:
        with runtime.transaction() as tx:
            _purge(tx.conn, drops)
            store.delete_settings(tx.conn, name)
            store.delete(tx.conn, name)
    else:
        applied = dict(row.applied)
        applied["archived_documents"] = sorted({tuple(k) for k in applied.get("archived_documents", [])}
                                               | {k for k in deletes if k[0] == "object"})
        applied["archived_documents"] = [list(k) for k in applied["archived_documents"]]
        fields = dict(applied.get("archived_fields", {}))
        for obj, names in archived.items():
            fields[obj] = sorted(set(fields.get(obj, [])) | set(names))
        applied["archived_fields"] = fields
        row.status, row.applied = store.ARCHIVED, applied
        with runtime.transaction() as tx:
            store.write(tx.conn, row)
    loader.unload(runtime, name)
    loader.sync(runtime)
    return _result("uninstall", name, None, result, False, version=row.version, purge=drops)


def _purge_plan(runtime: Any, row: store.PluginRow, deletes: list, archived: dict) -> dict:
    """The tables and columns `purge` drops (those that exist)."""
    objects = {n for k, n in deletes if k == "object"}
    objects |= {n for k, n in (tuple(x) for x in row.applied.get("archived_documents", [])) if k == "object"}
    columns: dict[str, set[str]] = {}
    for source in (row.fields, row.applied.get("archived_fields", {}), archived):
        for obj, names in source.items():
            columns.setdefault(obj, set()).update(names)
    with runtime.reading() as conn:
        inspector = sa.inspect(conn)
        tables = [f"rec_{n}" for n in sorted(objects) if inspector.has_table(f"rec_{n}")]
        tables += [t for t in row.tables if inspector.has_table(t)]
        drop_columns = {}
        for obj, names in sorted(columns.items()):
            table = f"rec_{obj}"
            if obj in objects or not inspector.has_table(table):
                continue
            present = {c["name"] for c in inspector.get_columns(table)}
            wanted = sorted(c for n in names for c in (n, f"{n}__object") if c in present)
            if wanted:
                drop_columns[table] = wanted
    return {"tables": tables, "columns": drop_columns, "history_of": sorted(objects)}


def _purge(conn: sa.Connection, plan: dict) -> None:
    ops = Operations(MigrationContext.configure(conn))
    inspector = sa.inspect(conn)
    for table in plan.get("tables", []):
        ops.drop_table(table)
    for table, columns in plan.get("columns", {}).items():
        indexes = {ix["name"] for ix in inspector.get_indexes(table)}
        for column in columns:
            name = index_name(table, column)
            if name in indexes:
                ops.drop_index(name, table_name=table)
        if conn.dialect.name == "sqlite":
            with ops.batch_alter_table(table) as batch:
                for column in columns:
                    batch.drop_column(column)
        else:
            for column in columns:
                ops.drop_column(table, column)
    if plan.get("history_of"):
        conn.execute(db.history.delete().where(db.history.c.object.in_(plan["history_of"])))


# --- reading ------------------------------------------------------------------------------------


def list_plugins(runtime: Any) -> list[dict]:
    """Installed, archived and available plugins, with what this process has loaded."""
    rows = _rows(runtime)
    candidates = loader.discover()
    st = loader.state(runtime)
    items = []
    for name in sorted(set(rows) | set(candidates)):
        row, candidate = rows.get(name), candidates.get(name)
        item: dict[str, Any] = {
            "name": name,
            "status": row.status if row else "available",
            "installed_version": row.version if row else None,
            "available_version": None,
            "enabled": row.enabled if row else None,
            "granted": row.granted if row else [],
            "origin": candidate.origin if candidate else None,
            "source": candidate.source if candidate else (row.origin if row else None),
            "loaded": name in st.loaded,
            "error": st.errors.get(name),
        }
        manifest = row.manifest if row else {}
        if candidate is not None:
            try:
                parsed = parse_manifest(candidate.load().raw_manifest, expected_name=name)
                manifest = parsed.raw
                item["available_version"] = str(parsed.version)
                item["compatible"] = parsed.supports()
            except (CrmError, TypeError, AttributeError) as exc:  # the list shows broken packages
                item["error"] = item["error"] or getattr(exc, "message", str(exc))
        elif row is not None:
            item["error"] = item["error"] or "its package is not installed any more"
        item.update(label=manifest.get("label") or name, description=manifest.get("description"),
                    permissions=list(manifest.get("permissions") or []),
                    depends=list(manifest.get("depends") or []), metacrm=manifest.get("metacrm"))
        items.append(item)
    return items


def show(runtime: Any, name: str) -> dict:
    for item in list_plugins(runtime):
        if item["name"] == name:
            row = _rows(runtime).get(name)
            item["settings"] = settings(runtime, name)
            item["installed_at"] = row.installed_at.isoformat() + "Z" if row else None
            item["applied"] = row.applied if row else {}
            return item
    raise NotFound(f"No plugin named {name!r}.", code="unknown_plugin", plugin=name)


def _manifest_settings(runtime: Any, name: str) -> dict:
    row = _rows(runtime).get(name)
    candidate = loader.find(name)
    if candidate is not None:
        try:
            return dict(candidate.load().raw_manifest.get("settings") or {})
        except (CrmError, TypeError, AttributeError):
            log.debug("plugin %s: cannot read its settings from the code", name, exc_info=True)
    return dict((row.manifest if row else {}).get("settings") or {})


def settings(runtime: Any, name: str) -> dict:
    """Declared settings with their values (secrets masked) and where each value comes from."""
    import os

    spec = _manifest_settings(runtime, name)
    with runtime.reading() as conn:
        stored = store.get_settings(conn, name)
    out = {}
    for key in sorted(set(spec) | set(stored)):
        s = spec.get(key) or {}
        env = s.get("env")
        if env and os.environ.get(env):
            value, source = os.environ[env], f"env {env}"
        elif key in stored:
            value, source = stored[key], "stored"
        else:
            value, source = s.get("default"), "default"
        if s.get("secret") and value not in (None, ""):
            value = "********"
        out[key] = {"value": value, "source": source, "label": s.get("label") or key, "env": env,
                    "secret": bool(s.get("secret"))}
    return out


def set_settings(runtime: Any, name: str, values: dict) -> dict:
    spec = _manifest_settings(runtime, name)
    unknown = sorted(set(values) - set(spec))
    if unknown:
        raise BadRequest(f"Plugin {name!r} has no setting {', '.join(map(repr, unknown))}"
                         + (f" (it has: {', '.join(sorted(spec))})" if spec else ""),
                         code="unknown_setting", fields={k: ["Unknown setting."] for k in unknown})
    with runtime.transaction() as tx:
        for key, value in values.items():
            store.set_setting(tx.conn, name, key, value)
    return settings(runtime, name)


def install_builtins(runtime: Any) -> list[str]:
    """`metacrm init`: install the built-in plugins (trusted: every permission they ask for is
    granted), or upgrade them to the code's version; an uninstalled (archived) one stays so."""
    done = []
    rows = _rows(runtime)
    candidates = loader.discover()
    for name in loader.BUILTIN_PLUGINS:
        candidate = candidates.get(name)
        if candidate is None:
            log.info("built-in plugin %s is not present; skipped", name)
            continue
        try:
            code = candidate.load()
        except PluginInvalid as exc:
            if any("has no MANIFEST" in p for p in exc.problems):  # not a plugin (yet): nothing to install
                log.warning("built-in %s is not a plugin package yet (no MANIFEST); skipped", name)
                continue
            raise
        manifest = parse_manifest(code.raw_manifest, expected_name=name)
        row = rows.get(name)
        if row is None:
            install(runtime, name, grant=manifest.permissions)
            done.append(f"plugin {name} {manifest.version} installed")
        elif row.status == store.INSTALLED and row.version != str(manifest.version):
            upgrade(runtime, name, grant=manifest.permissions)
            done.append(f"plugin {name} upgraded {row.version} -> {manifest.version}")
    return done


__all__ = [
    "METACRM_VERSION",
    "PERMISSIONS",
    "Registration",
    "install",
    "install_builtins",
    "list_plugins",
    "prepare",
    "set_settings",
    "settings",
    "show",
    "uninstall",
    "upgrade",
]
