"""The metadata change of an install, upgrade or uninstall, and what is recorded about it.

Ownership: a plugin's documents carry `"plugin": <name>` and are named `<name>__*`; the
fields it adds to other objects (manifest `extends`) are named `<name>__*`, so the live
metadata itself says what belongs to whom. The change is made with `apply_change` (all of it
or none of it: documents, tables and columns in one transaction).
"""

from __future__ import annotations

import logging
from typing import Any

from ..metadata.bundle import Bundle
from ..metadata.registry import Registry
from ..platform import changelog, metastore
from ..platform.actions import actions
from ..platform.apply import ApplyResult, apply_change
from ..platform.storage import StorageDiff
from . import store
from .prepare import Prepared

log = logging.getLogger("metacrm.plugins")


def _rows(runtime: Any) -> dict[str, store.PluginRow]:
    with runtime.reading() as conn:
        return store.read_all(conn)


def _live(runtime: Any) -> Registry:
    with runtime.reading() as conn:
        return metastore.load_registry(conn)


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
           validate: bool = False, plugin: str | None = None):
    """apply_change, skipped when there is nothing to change (a plugin without metadata) unless
    `validate` asks to re-check the live metadata (an uninstall that removes workflow actions)."""
    if not documents and not deletes and not validate:
        empty = {"added": [], "changed": [], "removed": []}
        return ApplyResult(live.version, not dry_run, {"documents": empty, "storage": StorageDiff().as_dict()})
    bundle = Bundle(documents=documents, sources=sources)
    with changelog.acting(plugin=plugin):  # the change log names the plugin (and the user who ran it)
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
