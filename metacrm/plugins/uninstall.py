"""Uninstall a plugin: archive it (the default) or purge it.

Uninstall archives: the plugin's documents are deleted and its fields taken off other
objects, but storage never drops a table or column for that (see platform/storage.py), so
the data stays and a reinstall brings it back. `purge` drops them for good.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from ..metadata.validate import EXTRA_ACTIONS
from ..platform import db
from ..platform.errors import Conflict, NotFound
from ..platform.storage import index_name
from . import loader, store
from .plan import _apply, _live, _requirements, _result, _rows, metadata_change


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
        result = _apply(runtime, live, documents, deletes, sources, dry_run, validate=bool(removed_actions),
                        plugin=name)
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
