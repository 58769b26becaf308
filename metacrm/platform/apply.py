"""Apply = validate the whole change, diff it against what is live, and make it live in
one transaction (documents, version and DDL together): all of it or none of it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..metadata.bundle import Bundle, MetaIssue
from ..metadata.registry import Registry
from ..metadata.validate import validate_change
from . import metastore, schemas
from .errors import MetadataInvalid, StaleVersion
from .runtime import Runtime
from .storage import Tables, apply_storage, compared, folds_case, plan_storage

MAX_OFFENDING_ROWS = 20
log = logging.getLogger(__name__)


class _DryRun(Exception):
    """Raised inside the transaction to roll back a dry run."""


@dataclass
class ApplyResult:
    version: int
    applied: bool
    diff: dict
    # kind/name -> the document's version after this change (what the next write must send)
    documents: dict[str, str] | None = None

    def as_dict(self) -> dict:
        return {"version": self.version, "applied": self.applied, "dry_run": not self.applied, "diff": self.diff,
                "documents": self.documents or {}}


def check_expected(live: Registry, expected: dict[tuple[str, str], str]) -> None:
    """A write that says which version of a document it started from is refused when that
    document has changed since (or was created / deleted): 409 stale_version, nothing changed."""
    stale = []
    for (kind, name), version in sorted(expected.items()):
        current = metastore.document_version(live.get(kind, name))
        if version != "*" and version != current or version == "*" and current == metastore.ABSENT:
            stale.append({"document": f"{kind}/{name}", "sent": version, "current": current})
    if stale:
        names = ", ".join(s["document"] for s in stale)
        raise StaleVersion(f"Someone changed {names} since you loaded it; reload it and make your change again.",
                           stale=stale)


def document_diff(live: Registry, new: Registry) -> dict:
    added, changed, removed = [], [], []
    for key, doc in sorted(new.documents.items()):
        old = live.documents.get(key)
        if old is None:
            added.append(f"{key[0]}/{key[1]}")
        elif json.dumps(old, sort_keys=True) != json.dumps(doc, sort_keys=True):
            changed.append(f"{key[0]}/{key[1]}")
    for key in sorted(set(live.documents) - set(new.documents)):
        removed.append(f"{key[0]}/{key[1]}")
    return {"added": added, "changed": changed, "removed": removed}


def check_conversions(conn: sa.Connection, live: Registry, new: Registry, storage_diff) -> list[MetaIssue]:
    """A type change that existing data cannot take is refused, naming the offending rows."""
    issues = []
    old_tables = Tables.of(live)
    for change in storage_diff.changed_columns:
        name = change.table[len("rec_"):]
        obj = new.objects.get(name)
        fdef = obj.all_fields.get(change.column) if obj else None
        if fdef is None or name not in live.objects:
            continue
        field = schemas.marshmallow_field(fdef)
        old_fdef = live.objects[name].all_fields.get(change.column) or fdef
        column = old_tables[name].c[change.column]
        table = old_tables[name]
        bad, more = [], False
        for row in conn.execute(sa.select(table.c.id, column).where(column.isnot(None)).order_by(table.c.id)):
            try:
                field.deserialize(_candidate(old_fdef, row[1]))
            except Exception as exc:  # noqa: BLE001 - any refusal by the new field means "cannot convert"
                if len(bad) >= MAX_OFFENDING_ROWS:
                    more = True
                    break
                bad.append(f"{row.id} ({_shown(old_fdef, row[1])}: {_reason(exc)})")
        if bad:
            index = next(i for i, f in enumerate(obj.doc.get("fields", [])) if f.get("name") == change.column)
            if old_fdef.type != fdef.type:
                key, target = "type", fdef.type
            elif old_fdef.scale != fdef.scale:
                key, target = "scale", f"{fdef.type} with scale {fdef.scale}"
            else:
                key, target = "precision", f"{fdef.type} with precision {fdef.precision}"

            issues.append(MetaIssue(
                f"object/{name}", f"/fields/{index}/{key}",
                f"field {change.column!r} of {name}: existing data cannot become {target}; "
                f"rows {', '.join(bad)}{' and more' if more else ''}",
            ))
    return issues


def _shown(fdef, raw) -> str:
    text = str(schemas.from_storage(fdef, raw))
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _reason(exc: Exception) -> str:
    messages = getattr(exc, "messages", None)
    if isinstance(messages, list) and messages:
        return str(messages[0])
    return "not convertible"


def _candidate(old_fdef, raw):
    """A stored value as input for the new field's validation."""
    value = schemas.from_storage(old_fdef, raw)
    return value if isinstance(value, (str, bool, list)) else str(value)


def convert_columns(conn: sa.Connection, live: Registry, new: Registry, storage_diff) -> list[tuple]:
    """Read the values of columns whose type changes, typed for the new field."""
    saved = []
    old_tables = Tables.of(live)
    for change in storage_diff.changed_columns:
        name = change.table[len("rec_"):]
        fdef = new.objects[name].all_fields[change.column]
        old_fdef = live.objects[name].all_fields.get(change.column) or fdef
        field = schemas.marshmallow_field(fdef)
        table = old_tables[name]
        rows = []
        for row in conn.execute(sa.select(table.c.id, table.c[change.column]).where(table.c[change.column].isnot(None))):
            value = field.deserialize(_candidate(old_fdef, row[1]))
            rows.append((row.id, schemas.to_storage(fdef, value)))
        conn.execute(table.update().where(table.c[change.column].isnot(None)).values({change.column: None}))
        saved.append((name, change.column, rows))
    return saved


def check_unique(conn: sa.Connection, new: Registry, storage_diff, live: Registry | None = None) -> list[MetaIssue]:
    """Making a field unique (or a unique field an email, which compares with A-Z folded) is
    refused while live records share a value, naming the values and the rows that hold them."""
    issues = []
    for table_name, column_name in storage_diff.new_indexes:
        name = table_name[len("rec_"):]
        obj = new.objects.get(name)
        fdef = obj.fields.get(column_name) if obj else None
        if fdef is None or not fdef.unique or table_name in storage_diff.new_tables:
            continue
        if any(t == table_name and c == column_name for t, c, _ in storage_diff.new_columns):
            continue
        table = Tables.of(new)[name]
        column = compared(table.c[column_name], fdef)
        alive = sa.and_(table.c[column_name].isnot(None), table.c.deleted_at.is_(None))
        shared = conn.execute(
            sa.select(column, sa.func.count()).where(alive)
            .group_by(column).having(sa.func.count() > 1).order_by(column).limit(MAX_OFFENDING_ROWS)
        ).all()
        if shared:
            holders: dict = {}
            for row in conn.execute(sa.select(column, table.c.id, table.c[column_name]).where(
                    alive, column.in_([value for value, _ in shared])).order_by(table.c.id)):
                holders.setdefault(row[0], []).append(f"{row.id} ({row[2]!r})" if fdef.type == "email" else row.id)
            index = next(i for i, f in enumerate(obj.doc.get("fields", [])) if f.get("name") == column_name)
            values = "; ".join(f"{value!r} ({count} records: {', '.join(holders.get(value, []))})"
                               for value, count in shared)
            same = " (case aside)" if folds_case(fdef) else ""
            before = live.objects[name].fields.get(column_name) if live and name in live.objects else None
            key = "type" if before is not None and before.unique and before.type != fdef.type else "unique"
            issues.append(MetaIssue(f"object/{name}", f"/fields/{index}/{key}",
                                    f"field {column_name!r} of {name}: live records share values{same}, so the "
                                    f"field cannot be unique: {values}"))
    return issues


def apply_change(
    runtime: Runtime,
    bundle: Bundle,
    deletes: list[tuple[str, str]] | None = None,
    dry_run: bool = False,
    expected: dict[tuple[str, str], str] | None = None,
    reverts: int | None = None,
) -> ApplyResult:
    """`expected` maps (kind, name) to the document version the caller loaded ("absent" for a
    document it creates, "*" for any existing one); checked under the apply lock. `reverts`:
    the change log entry this change reverts (platform/changelog.py records who and what)."""
    if bundle.issues:
        raise MetadataInvalid(bundle.issues)
    deletes = deletes or []
    result: dict[str, Any] = {}
    try:
        with runtime.transaction() as tx:
            conn = tx.conn
            metastore.lock_version(conn)
            live = metastore.load_registry(conn)
            check_expected(live, expected or {})
            new, issues = validate_change(live, bundle.documents, deletes, bundle.sources)
            if issues:
                raise MetadataInvalid(issues)
            storage_diff = plan_storage(conn, live, new)
            conversion_issues = check_conversions(conn, live, new, storage_diff) + check_unique(conn, new, storage_diff, live)
            # checks a feature registers for what its documents name in the data (e.g. the users and
            # departments of assignment rules): runtime.extensions["apply_checks"][name] =
            # fn(conn, live, documents, sources) -> [MetaIssue]
            for _name, check in sorted((runtime.extensions.get("apply_checks") or {}).items()):
                conversion_issues += check(conn, live, bundle.documents, bundle.sources)
            if conversion_issues:
                raise MetadataInvalid(conversion_issues)
            diff = {"documents": document_diff(live, new), "storage": storage_diff.as_dict()}
            result["diff"] = diff
            result["version"] = live.version
            result["live"], result["new"] = live, new
            touched = [(d["kind"], d["name"]) for d in bundle.documents] + list(deletes) + list(expected or {})
            result["documents"] = {f"{k}/{n}": metastore.document_version(new.get(k, n)) for k, n in touched}
            if dry_run:
                raise _DryRun()
            saved = convert_columns(conn, live, new, storage_diff)
            apply_storage(conn, new, storage_diff)
            new_tables = Tables.of(new)
            for name, column, rows in saved:
                table = new_tables[name]
                for record_id, value in rows:
                    conn.execute(table.update().where(table.c.id == record_id).values({column: value}))
            changed = [doc for doc in bundle.documents if live.get(doc["kind"], doc["name"]) != doc]
            result["version"] = metastore.write_documents(
                conn, changed, deletes, bundle.sources, storage=diff["storage"], reverts=reverts,
            ) if (changed or deletes or not storage_diff.empty) else live.version
    except _DryRun:
        return ApplyResult(result["version"], False, result["diff"], result["documents"])
    runtime.invalidate()
    run_after_apply(runtime, result.get("live"), result.get("new"))
    return ApplyResult(result["version"], True, result["diff"], result["documents"])


def run_after_apply(runtime: Runtime, live: Registry | None, new: Registry | None) -> None:
    """Work a committed apply causes (e.g. re-keying records for a changed duplicate rule).
    Each callback is idempotent; a failure is logged, never undoes the apply."""
    if live is None or new is None:
        return
    for name, callback in sorted((runtime.extensions.get("after_apply") or {}).items()):
        try:
            callback(runtime, live, new)
        except Exception:
            log.exception("after-apply step %s failed; it runs again on the next apply", name)
