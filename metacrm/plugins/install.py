"""Install, upgrade and uninstall plugins: validate, show the diff, apply in one step.

Every operation first checks everything it can without writing (prepare.py: the manifest, the
metacrm version, dependencies, the bundle, name clashes, and a trial run of setup() against a
scratch runtime to see that what the manifest declares is really registered), then makes
the metadata change with `apply_change` (plan.py: all of it or none of it: documents, tables
and columns in one transaction), then records the plugin in `mc_plugin` (which bumps the
metadata version, so every process re-syncs its hooks). Uninstall archives, or purges
(uninstall.py); listing.py and settings.py read what is there.

This module is the face the CLI, the admin API and the admin pages call (`install.<fn>`).
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from packaging.version import Version

from .. import __version__ as METACRM_VERSION
from ..platform.clock import utcnow
from ..platform.errors import Conflict, NotFound
from . import loader, store
from .api import Registration
from .listing import list_plugins, show
from .manifest import PERMISSIONS, PluginInvalid, parse_manifest
from .plan import _applied, _apply, _live, _loaded_actions, _requirements, _result, _rows, metadata_change
from .prepare import _check_grants, _forget_actions, prepare
from .settings import set_settings, settings
from .uninstall import uninstall

log = logging.getLogger("metacrm.plugins")


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
        result = _apply(runtime, live, documents, deletes, sources, dry_run, plugin=name)
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
        result = _apply(runtime, live, documents, deletes, sources, dry_run, plugin=name)
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
