"""The record service: the one write path for every object (ENGINEERING.md).

input -> coerce + validate -> permission and field access -> before-save hooks
(field updates, plugins, dedup, formulas, autonumbers) -> write with version check
-> history -> after-save hooks (rollups, triggers, approvals) -> commit -> side effects.

API, web forms, import, workflows, approvals and plugins all call this class; nothing
else writes record tables.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from ..metadata.model import SETTABLE_SYSTEM_FIELDS, FieldDef, ObjectDef
from ..metadata.registry import Registry, UnknownObject
from . import db, schemas
from .clock import today, utcnow
from .errors import BadRequest, Conflict, CrmError, Forbidden, NotFound, StaleVersion, ValidationFailed
from .runtime import Runtime, Tx
from .security import Access, Principal, hash_password

log = logging.getLogger(__name__)

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
ALWAYS_TRACKED = ("owner", "pool")


def new_id() -> str:
    """32 hex chars: a millisecond timestamp then random bits, so ids sort by creation."""
    return f"{int(time.time() * 1000):012x}{os.urandom(10).hex()}"


@dataclass
class SaveContext:
    service: RecordService
    tx: Tx
    registry: Registry
    obj: ObjectDef
    table: sa.Table
    op: str
    record: dict
    old: dict | None
    principal: Principal
    access: Access
    source: str
    input: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    options: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)  # extra history entries: (action, changes, note)

    @property
    def conn(self) -> sa.Connection:
        return self.tx.conn

    def changed(self, name: str) -> bool:
        if self.old is None:
            return self.record.get(name) is not None
        return self.old.get(name) != self.record.get(name)


class RecordService:
    """Record operations for one principal; one instance per request or job."""

    def __init__(self, runtime: Runtime, principal: Principal, tx: Tx | None = None, source: str = "api"):
        self.runtime = runtime
        self.principal = principal
        self.source = source
        self._tx = tx
        compiled = runtime.compiled()
        self.compiled = compiled
        self.registry = compiled.registry
        self.access = Access(self.registry, principal, runtime.directory())
        self._writable: dict[str, tuple[list[FieldDef], dict[str, str]]] = {}
        self._known_refs: dict[str, tuple[set, set]] | None = None  # batch: target -> (asked, found)

    # --- plumbing ------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        if self._tx is not None:
            yield self._tx
            return
        with self.runtime.transaction() as tx:
            self._tx = tx
            try:
                yield tx
            finally:
                self._tx = None

    @contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        if self._tx is not None:
            yield self._tx.conn
            return
        with self.runtime.reading() as conn:
            yield conn

    def obj(self, name: str) -> ObjectDef:
        try:
            return self.registry.object(name)
        except UnknownObject:
            raise NotFound(f"Unknown object {name!r}.", code="unknown_object") from None

    def table(self, name: str) -> sa.Table:
        return self.compiled.tables[name]

    def _require_object_access(self, obj: ObjectDef, action: str) -> None:
        if not self.access.can(obj.name, action):
            if not self.access.can(obj.name, "read"):
                raise NotFound(f"Unknown object {obj.name!r}.", code="unknown_object")
            raise Forbidden(f"You may not {action} {obj.name} records.")

    # --- reading -------------------------------------------------------------------------

    def row_to_record(self, obj: ObjectDef, row: Any) -> dict:
        mapping = row._mapping if hasattr(row, "_mapping") else row
        record = {}
        for name, fdef in obj.all_fields.items():
            if name in mapping:
                record[name] = schemas.from_storage(fdef, mapping[name])
            if fdef.polymorphic and f"{name}__object" in mapping:
                record[f"{name}__object"] = mapping[f"{name}__object"]
        return record

    def to_json(self, obj: ObjectDef, record: dict, only: list[str] | None = None) -> dict:
        hidden = self.access.hidden_fields(obj.name)
        out: dict[str, Any] = {}
        for name, fdef in obj.all_fields.items():
            if name in hidden or fdef.type == "password" or name not in record:
                continue
            if only is not None and name not in only and name != "id":
                continue
            out[name] = schemas.to_json_value(fdef, record[name])
            if fdef.polymorphic:
                out[f"{name}__object"] = record.get(f"{name}__object")
        return out

    def fetch(self, conn: sa.Connection, obj: ObjectDef, record_id: str, *, deleted: bool = False,
              for_update: bool = False) -> dict | None:
        """The raw record, ignoring permissions (callers check them)."""
        table = self.table(obj.name)
        query = sa.select(table).where(table.c.id == str(record_id))
        query = query.where(table.c.deleted_at.isnot(None) if deleted else table.c.deleted_at.is_(None))
        if for_update and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        return self.row_to_record(obj, row) if row is not None else None

    def _visible(self, obj: ObjectDef, record: dict | None, action: str = "read") -> dict:
        if record is None or not self.access.allows_row(obj.name, action, record):
            raise NotFound(f"No {obj.name} record with that id.", code="record_not_found")
        return record

    def get_record(self, object_name: str, record_id: str, *, deleted: bool = False) -> dict:
        """The typed record if the caller may read it (404 otherwise)."""
        obj = self.obj(object_name)
        self._require_object_access(obj, "read")
        with self._reading() as conn:
            return self._visible(obj, self.fetch(conn, obj, record_id, deleted=deleted))

    def get(self, object_name: str, record_id: str, *, deleted: bool = False) -> dict:
        obj = self.obj(object_name)
        return self.to_json(obj, self.get_record(object_name, record_id, deleted=deleted))

    def list(
        self,
        object_name: str,
        *,
        filter: Any = None,
        sort: str | None = None,
        fields: list[str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        deleted: bool = False,
        extra_where: Any = None,
        action: str = "read",
    ) -> tuple[list[dict], str | None]:
        from . import filters as flt

        obj = self.obj(object_name)
        self._require_object_access(obj, action)
        table = self.table(obj.name)
        hidden = self.access.hidden_fields(obj.name)
        visible_fields = {n: f for n, f in obj.all_fields.items() if n not in hidden and f.type != "password"}
        limit = DEFAULT_LIMIT if limit is None else limit
        if not isinstance(limit, int) or limit < 1 or limit > MAX_LIMIT:
            raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}.", fields={"limit": ["out of range"]})
        if fields:
            unknown = [name for name in fields if name not in visible_fields]
            if unknown:
                raise BadRequest("Unknown fields requested.", code="unknown_field",
                                 fields={name: ["Unknown field."] for name in unknown})
        order = parse_sort(sort or "-created_at", visible_fields)
        query = sa.select(table).where(
            table.c.deleted_at.isnot(None) if deleted else table.c.deleted_at.is_(None),
            self.access.row_filter(obj.name, action, table),
        )
        if extra_where is not None:
            query = query.where(extra_where)
        if filter not in (None, {}, ""):
            ctx = flt.FilterContext.current(self.principal.user_id, self.principal.department)
            try:
                query = query.where(flt.compile_sql(filter, table, visible_fields, ctx))
            except flt.FilterError as exc:
                raise BadRequest(f"Bad filter at {exc.path or '/'}: {exc.message}", code="bad_filter",
                                 path=exc.path) from None
        if cursor:
            query = query.where(keyset_after(table, order, decode_cursor(cursor, order, visible_fields)))
        query = query.order_by(*order_clauses(table, order)).limit(limit + 1)
        with self._reading() as conn:
            rows = conn.execute(query).fetchall()
        records = [self.row_to_record(obj, row) for row in rows[:limit]]
        next_cursor = encode_cursor(records[-1], order, visible_fields) if len(rows) > limit and records else None
        return [self.to_json(obj, r, fields) for r in records], next_cursor

    def history(self, object_name: str, record_id: str) -> list[dict]:
        obj = self.obj(object_name)
        if not self._deleted_visible(obj, record_id):
            self.get_record(object_name, record_id)  # 404 unless the caller may read it
        hidden = self.access.hidden_fields(obj.name)
        h = db.history
        with self._reading() as conn:
            rows = conn.execute(
                sa.select(h).where(h.c.object == obj.name, h.c.record_id == str(record_id)).order_by(h.c.id)
            ).fetchall()
        entries = []
        for row in rows:
            changes = {k: v for k, v in (row.changes or {}).items() if k not in hidden}
            if row.action == "update" and not changes and not row.note:
                continue
            entries.append({
                "id": row.id,
                "at": schemas.to_json_value(FieldDef("at", "datetime"), row.at),
                "user": row.user_id,
                "action": row.action,
                "changes": changes,
                "note": row.note,
            })
        return entries

    def _deleted_visible(self, obj: ObjectDef, record_id: str) -> bool:
        self._require_object_access(obj, "read")
        with self._reading() as conn:
            record = self.fetch(conn, obj, record_id, deleted=True)
        if record is None:
            return False
        self._visible(obj, record)
        return True

    # --- input ---------------------------------------------------------------------------

    def writable_fields(self, obj: ObjectDef, creating: bool) -> tuple[list[FieldDef], dict[str, str]]:
        """(fields the caller may set, {field: why not} for the others it might try)."""
        cached = self._writable.get(obj.name)
        if cached is None:
            cached = self._writable[obj.name] = self._compute_writable(obj)
        return cached[0], dict(cached[1])

    def _compute_writable(self, obj: ObjectDef) -> tuple[list[FieldDef], dict[str, str]]:
        allowed, refused = [], {}
        privileged = self.access.is_admin or self.principal.is_system
        for name, fdef in obj.all_fields.items():
            access = self.access.field_access(obj.name, name)
            if access == "hidden" and fdef.type != "password":
                continue  # reported as unknown: its existence is not the caller's business
            if fdef.system and name not in SETTABLE_SYSTEM_FIELDS:
                refused[name] = "This field is read-only."
            elif fdef.system:
                allowed.append(fdef)  # owner and record_type: checked in _prepare_create / update_record
            elif fdef.type in ("formula", "rollup", "autonumber"):
                refused[name] = "This field is computed."
            elif access == "read_only" or (fdef.read_only and not privileged):
                refused[name] = "This field is read-only."
            else:
                allowed.append(fdef)
        return allowed, refused

    def coerce(self, obj: ObjectDef, data: dict, *, creating: bool, conn: sa.Connection,
               old: dict | None = None) -> dict:
        """Validated, typed values from input; raises ValidationFailed with every field's errors.

        A lookup must name a record the caller may read (else "No such record.", the same answer
        as for an id that does not exist, so ids cannot be probed); on update, a lookup that keeps
        its current value (`old`) is not checked again."""
        if not isinstance(data, dict):
            raise BadRequest("The record must be a JSON object.")
        data = dict(data)
        data.pop("version", None) if not creating else None
        if not creating:
            data.pop("id", None)
        allowed, refused = self.writable_fields(obj, creating)
        errors: dict[str, list[str]] = {}
        for name in list(data):
            if name in refused:
                errors[name] = [refused.pop(name)]
                data.pop(name)
        key = (obj.name, tuple(f.name for f in allowed))
        schema = self.compiled.schemas.get(key)
        if schema is None:
            schema = schemas.build_schema(obj, allowed, sorted(self.registry.roles))
            self.compiled.schemas[key] = schema
        values, load_errors = schemas.load(schema, data, partial=True)
        for name, messages in load_errors.items():
            errors.setdefault(name, []).extend(
                "Unknown field." if m == "Unknown field." else m for m in messages
            )
        for name, value in list(values.items()):
            fdef = obj.all_fields[name]
            if fdef.is_reference and value is not None:
                if old is not None and value == old.get(name) and not isinstance(value, dict):
                    continue  # unchanged: an edit form sends every field back
                resolved = self._resolve_reference(conn, fdef, value)
                if resolved is None:
                    errors.setdefault(name, []).append("No such record.")
                else:
                    values[name] = resolved[0]
                    if fdef.polymorphic:
                        values[f"{name}__object"] = resolved[1]
            elif fdef.type == "password" and value is not None:
                values[name] = hash_password(value)
        if errors:
            raise ValidationFailed("Some fields are not valid.", fields=errors)
        return values

    def _resolve_reference(self, conn: sa.Connection, fdef: FieldDef, value: Any) -> tuple[str, str] | None:
        wanted_object = None
        if isinstance(value, dict):
            wanted_object, value = value.get("object"), value.get("id")
        if not isinstance(value, str) or not value or len(value) > 64:
            return None
        for target in fdef.target:
            if wanted_object and target != wanted_object:
                continue
            if not self.registry.has_object(target):
                continue
            known = self._known_refs.get(target) if self._known_refs else None
            if known is not None and value in known[0]:
                if value in known[1]:
                    return value, target
                continue
            table = self.table(target)
            found = conn.execute(
                sa.select(table.c.id).where(table.c.id == value, table.c.deleted_at.is_(None),
                                            self._readable(target, table))
            ).first()
            if found:
                return value, target
        return None

    def _readable(self, object_name: str, table: sa.Table) -> Any:
        """The rows a lookup may point at: those the caller can read (all, for the platform).
        Users and departments are the directory: anyone may name a colleague or a team."""
        if self.principal.is_system or self.access.is_admin or object_name in ("user", "department"):
            return sa.true()
        return self.access.row_filter(object_name, "read", table)

    def _defaults(self, obj: ObjectDef, record: dict) -> None:
        for name, fdef in obj.fields.items():
            if record.get(name) is None and fdef.default is not None and fdef.type not in ("formula", "rollup"):
                record[name] = resolve_default(fdef, fdef.default, self.principal)

    def _check_required(self, obj: ObjectDef, record: dict) -> None:
        missing = {
            name: ["This field is required."]
            for name, fdef in obj.fields.items()
            if fdef.required and record.get(name) in (None, "", [])
        }
        if missing:
            raise ValidationFailed("Some required fields are missing.", fields=missing)

    def _check_unique(self, conn: sa.Connection, obj: ObjectDef, record: dict, changed: list[str]) -> None:
        table = self.table(obj.name)
        errors = {}
        for name in changed:
            fdef = obj.fields.get(name)
            if fdef is None or not fdef.unique or record.get(name) is None:
                continue
            clash = conn.execute(
                sa.select(table.c.id).where(
                    table.c[name] == record[name], table.c.id != record["id"], table.c.deleted_at.is_(None)
                ).limit(1)
            ).first()
            if clash:
                errors[name] = ["This value is already used by another record."]
        if errors:
            raise ValidationFailed("Some values must be unique.", code="not_unique", fields=errors)

    def _unique_in_batch(self, conn: sa.Connection, obj: ObjectDef, good: list[SaveContext],
                         results: list[dict]) -> list[SaveContext]:
        """Unique fields across a batch: a value already used by a live record, or by an earlier
        row of the batch, makes the row an error (one query per unique field, not per row)."""
        unique = [name for name, fdef in obj.fields.items() if fdef.unique]
        if not unique or not good:
            return good
        table = self.table(obj.name)
        refused: dict[int, dict[str, list[str]]] = {}
        for name in unique:
            values = sorted({c.record[name] for c in good if c.record.get(name) is not None}, key=repr)
            used: set = set()
            for first in range(0, len(values), 500):
                used.update(conn.execute(sa.select(table.c[name]).where(
                    table.c[name].in_(values[first:first + 500]), table.c.deleted_at.is_(None))).scalars())
            seen: set = set()
            for ctx in good:
                value = ctx.record.get(name)
                if value is None:
                    continue
                if value in used or value in seen:
                    refused.setdefault(id(ctx), {})[name] = [
                        "This value is already used by another record." if value in used
                        else "An earlier row of this batch uses the same value."]
                else:
                    seen.add(value)
        if not refused:
            return good
        for position, result in enumerate(results):
            ctx = result.get("_ctx")
            if ctx is not None and id(ctx) in refused:
                results[position] = {"status": "error", **ValidationFailed(
                    "Some values must be unique.", code="not_unique", fields=refused[id(ctx)]).to_dict()}
        return [ctx for ctx in good if id(ctx) not in refused]

    # --- writing -------------------------------------------------------------------------

    def create(self, object_name: str, data: dict, **options: Any) -> dict:
        return self.to_json(self.obj(object_name), self.create_record(object_name, data, **options).record)

    def create_record(self, object_name: str, data: dict, **options: Any) -> SaveContext:
        obj = self.obj(object_name)
        self._require_object_access(obj, "create")
        with self.transaction() as tx:
            values = self.coerce(obj, data, creating=True, conn=tx.conn)
            ctx = self._prepare_create(tx, obj, values, data, options)
            self._write_create(ctx)
        return ctx

    def _prepare_create(self, tx: Tx, obj: ObjectDef, values: dict, data: dict, options: dict) -> SaveContext:
        now = utcnow()
        me = self.principal.user_id
        record = {name: None for name in obj.all_fields}
        record.update(values)
        if record.get("owner") and record["owner"] != me and self.access.scope(obj.name, "edit") != "all":
            raise ValidationFailed("You may not create records for another owner.",
                                   fields={"owner": ["Not allowed."]})
        if "owner" not in values and not options.get("no_owner"):
            record["owner"] = me
        if record["record_type"] is None and obj.record_types:
            record["record_type"] = obj.record_types[0]
        elif record["record_type"] is not None and record["record_type"] not in obj.record_types:
            raise ValidationFailed("Unknown record type.", fields={"record_type": ["Not one of this object's types."]})
        record.update(
            id=options.get("id") or new_id(),
            owner_since=now if record.get("owner") else None,
            created_at=now,
            created_by=me,
            updated_at=now,
            updated_by=me,
            version=1,
        )
        self._defaults(obj, record)
        ctx = SaveContext(self, tx, self.registry, obj, self.table(obj.name), "create", record, None,
                          self.principal, self.access, options.get("source", self.source), input=data,
                          options=options)
        return ctx

    def _write_create(self, ctx: SaveContext) -> None:
        obj = ctx.obj
        self.runtime.hooks.run("before_save", ctx)  # hooks may fill required fields
        self._check_required(obj, ctx.record)
        self._check_unique(ctx.conn, obj, ctx.record, list(obj.fields))
        # Parameters, not .values(): the compiled INSERT is cached instead of rebuilt per record.
        with unique_guard(obj):
            ctx.conn.execute(ctx.table.insert(), self._storage_row(obj, ctx.table, ctx.record))
        changes = {name: [None, self._history_value(obj, name, ctx.record[name])]
                   for name in self._tracked(obj) if ctx.record.get(name) is not None}
        self.write_history(ctx.conn, obj.name, ctx.record["id"], "create", changes)
        self._write_notes(ctx)
        self.runtime.hooks.run("after_save", ctx)
        self._after_write(ctx)

    def update(self, object_name: str, record_id: str, data: dict, version: int | None = None,
               **options: Any) -> dict:
        ctx = self.update_record(object_name, record_id, data, version=version, **options)
        return self.to_json(ctx.obj, ctx.record)

    def update_record(self, object_name: str, record_id: str, data: dict, version: int | None = None,
                      **options: Any) -> SaveContext:
        obj = self.obj(object_name)
        self._require_object_access(obj, "read")
        with self.transaction() as tx:
            old = self._visible(obj, self.fetch(tx.conn, obj, record_id))
            if not self.access.allows_row(obj.name, "edit", old):
                raise Forbidden(f"You may not edit this {obj.name} record.")
            if version is not None and int(version) != old["version"]:
                raise StaleVersion(
                    f"The record has changed since you read it (version {version}, now {old['version']}).",
                    current_version=old["version"],
                )
            values = self.coerce(obj, data, creating=False, conn=tx.conn, old=old)
            if "record_type" in values and values["record_type"] not in obj.record_types:
                raise ValidationFailed("Unknown record type.", fields={"record_type": ["Not one of this object's types."]})
            ctx = self._apply_update(tx, obj, old, values, data, options)
        return ctx

    def _apply_update(self, tx: Tx, obj: ObjectDef, old: dict, values: dict, data: dict,
                      options: dict) -> SaveContext:
        record = dict(old)
        record.update(values)
        ctx = SaveContext(self, tx, self.registry, obj, self.table(obj.name), "update", record, old,
                          self.principal, self.access, options.get("source", self.source), input=data,
                          options=options)
        self.runtime.hooks.run("before_save", ctx)
        self._check_required(obj, ctx.record)
        changed = [n for n in obj.all_fields if ctx.record.get(n) != old.get(n)]
        if not changed and not ctx.notes:
            return ctx
        now = utcnow()
        if ctx.record.get("owner") != old.get("owner"):
            ctx.record["owner_since"] = owner_since_after(old, ctx.record, now)
            ctx.record["previous_owner"] = old.get("owner") or old.get("previous_owner")
        ctx.record.update(updated_at=now, updated_by=self.principal.user_id, version=old["version"] + 1)
        self._check_unique(tx.conn, obj, ctx.record, changed)
        row = self._storage_row(obj, ctx.table, ctx.record)
        row.pop("id")
        with unique_guard(obj):
            result = tx.conn.execute(
                ctx.table.update()
                .where(ctx.table.c.id == old["id"], ctx.table.c.version == old["version"])
                .values(**row)
            )
        if result.rowcount != 1:
            raise StaleVersion("The record was changed by someone else meanwhile; read it again.")
        changes = {
            name: [self._history_value(obj, name, old.get(name)), self._history_value(obj, name, ctx.record.get(name))]
            for name in self._tracked(obj)
            if old.get(name) != ctx.record.get(name)
        }
        if changes:
            self.write_history(tx.conn, obj.name, old["id"], "update", changes)
        self._write_notes(ctx)
        self.runtime.hooks.run("after_save", ctx)
        self._after_write(ctx)
        return ctx

    def system_update(self, object_name: str, record_id: str, values: dict, *, where: Any = None,
                      action: str = "update", note: str | None = None, track: bool = True) -> dict | None:
        """A conditional update by the platform itself (claims, recycles, approvals).

        `where` narrows the UPDATE (e.g. owner IS NULL for a claim), so concurrent callers
        cannot both win. Returns the new record, or None if the condition did not hold.
        Runs the same hooks and history as any save.
        """
        obj = self.obj(object_name)
        with self.transaction() as tx:
            table = self.table(obj.name)
            old = self.fetch(tx.conn, obj, record_id, for_update=True)
            if old is None:
                return None
            record = dict(old)
            record.update(values)
            now = utcnow()
            if record.get("owner") != old.get("owner"):
                if "owner_since" not in values:
                    record["owner_since"] = owner_since_after(old, record, now)
                if "previous_owner" not in values:
                    record["previous_owner"] = old.get("owner") or old.get("previous_owner")
            record.update(updated_at=now, updated_by=self.principal.user_id, version=old["version"] + 1)
            ctx = SaveContext(self, tx, self.registry, obj, table, "update", record, old, self.principal,
                              self.access, "system", options={"system_action": action})
            self.runtime.hooks.run("before_save", ctx)
            row = self._storage_row(obj, table, ctx.record)
            row.pop("id")
            query = table.update().where(table.c.id == old["id"], table.c.version == old["version"])
            if where is not None:
                query = query.where(where)
            with unique_guard(obj):
                if tx.conn.execute(query.values(**row)).rowcount != 1:
                    return None
            changes = {
                name: [self._history_value(obj, name, old.get(name)), self._history_value(obj, name, ctx.record.get(name))]
                for name in (self._tracked(obj) if track else ALWAYS_TRACKED)
                if old.get(name) != ctx.record.get(name)
            }
            self.write_history(tx.conn, obj.name, old["id"], action, changes, note)
            self._write_notes(ctx)
            self.runtime.hooks.run("after_save", ctx)
            self._after_write(ctx)
            return ctx.record

    def delete(self, object_name: str, record_id: str) -> None:
        obj = self.obj(object_name)
        self._require_object_access(obj, "read")
        with self.transaction() as tx:
            old = self._visible(obj, self.fetch(tx.conn, obj, record_id))
            if not self.access.allows_row(obj.name, "delete", old):
                raise Forbidden(f"You may not delete this {obj.name} record.")
            self._soft_delete(tx, obj, old, set())

    def _soft_delete(self, tx: Tx, obj: ObjectDef, old: dict, seen: set) -> None:
        if (obj.name, old["id"]) in seen:
            return
        seen.add((obj.name, old["id"]))
        now = utcnow()
        record = dict(old, deleted_at=now, updated_at=now, updated_by=self.principal.user_id,
                      version=old["version"] + 1)
        ctx = SaveContext(self, tx, self.registry, obj, self.table(obj.name), "delete", record, old,
                          self.principal, self.access, self.source)
        self.runtime.hooks.run("before_save", ctx)
        for child, fdef in self.registry.children_of(obj.name):
            ctable = self.table(child.name)
            condition = sa.and_(ctable.c[fdef.name] == old["id"], ctable.c.deleted_at.is_(None))
            if fdef.system:
                continue
            if fdef.on_delete == "restrict":
                if tx.conn.execute(sa.select(ctable.c.id).where(condition).limit(1)).first():
                    raise Conflict(
                        f"Cannot delete: {child.name} records still refer to it through {fdef.name}.",
                        code="delete_restricted",
                    )
            elif fdef.on_delete == "cascade":
                for row in tx.conn.execute(sa.select(ctable).where(condition)).fetchall():
                    self._soft_delete(tx, child, self.row_to_record(child, row), seen)
            else:
                ids = [r.id for r in tx.conn.execute(sa.select(ctable.c.id).where(condition))]
                for child_id in ids:
                    self.system_update(child.name, child_id, {fdef.name: None}, note=f"{obj.name} deleted")
        result = tx.conn.execute(
            ctx.table.update()
            .where(ctx.table.c.id == old["id"], ctx.table.c.version == old["version"])
            .values(deleted_at=now, updated_at=now, updated_by=self.principal.user_id, version=old["version"] + 1)
        )
        if result.rowcount != 1:
            raise StaleVersion("The record was changed by someone else meanwhile; read it again.")
        self.write_history(tx.conn, obj.name, old["id"], "delete", {})
        self.runtime.hooks.run("after_save", ctx)
        self._after_write(ctx)

    def restore(self, object_name: str, record_id: str) -> dict:
        obj = self.obj(object_name)
        self._require_object_access(obj, "read")
        with self.transaction() as tx:
            old = self._visible(obj, self.fetch(tx.conn, obj, record_id, deleted=True))
            if not self.access.allows_row(obj.name, "delete", old):
                raise Forbidden(f"You may not restore this {obj.name} record.")
            now = utcnow()
            record = dict(old, deleted_at=None, updated_at=now, updated_by=self.principal.user_id,
                          version=old["version"] + 1)
            ctx = SaveContext(self, tx, self.registry, obj, self.table(obj.name), "restore", record, old,
                              self.principal, self.access, self.source)
            self.runtime.hooks.run("before_save", ctx)
            self._check_unique(tx.conn, obj, record, list(obj.fields))
            with unique_guard(obj):
                tx.conn.execute(
                    ctx.table.update().where(ctx.table.c.id == old["id"])
                    .values(deleted_at=None, updated_at=now, updated_by=self.principal.user_id,
                            version=record["version"])
                )
            self.write_history(tx.conn, obj.name, old["id"], "restore", {})
            self.runtime.hooks.run("after_save", ctx)
            self._after_write(ctx)
        return self.to_json(obj, record)

    # --- batch path ----------------------------------------------------------------------

    def create_many(self, object_name: str, rows: list[dict], **options: Any) -> list[dict]:
        """Validate every row, then insert the good ones with one executemany.

        Returns one result per row: {"status": "created", "id"} or {"status": "error", "fields"}.
        before_save hooks run per row (they are in-memory); the writes are set-based.
        A hook may mark a row as skipped by raising a CrmError (e.g. a duplicate).
        """
        obj = self.obj(object_name)
        self._require_object_access(obj, "create")
        results: list[dict] = []
        with self.transaction() as tx:
            self._known_refs = self._referenced(tx.conn, obj, rows)
            try:
                self._create_many(tx, obj, rows, results, options)
            finally:
                self._known_refs = None
        for result in results:
            result.pop("_ctx", None)
        return results

    def _referenced(self, conn: sa.Connection, obj: ObjectDef, rows: list[dict]) -> dict[str, tuple[set, set]]:
        """The lookup targets a batch names, checked with one query per target object instead
        of one per row: {target: (ids asked, ids that exist)}."""
        wanted: dict[str, set] = {}
        for fdef in obj.all_fields.values():
            if not fdef.is_reference:
                continue
            ids = {v for row in rows if isinstance(row, dict) and isinstance(v := row.get(fdef.name), str)
                   and 0 < len(v) <= 64}
            for target in fdef.target:
                if ids and self.registry.has_object(target):
                    wanted.setdefault(target, set()).update(ids)
        known = {}
        for target, ids in wanted.items():
            table, found, asked = self.table(target), set(), sorted(ids)
            for first in range(0, len(asked), 500):
                chunk = asked[first:first + 500]
                found.update(conn.execute(sa.select(table.c.id).where(
                    table.c.id.in_(chunk), table.c.deleted_at.is_(None),
                    self._readable(target, table))).scalars())
            known[target] = (ids, found)
        return known

    def _create_many(self, tx: Tx, obj: ObjectDef, rows: list[dict], results: list[dict], options: dict) -> None:
        good: list[SaveContext] = []
        for data in rows:
            try:
                with tx.conn.begin_nested() if options.get("savepoints") else _nullcontext():
                    values = self.coerce(obj, data, creating=True, conn=tx.conn)
                    ctx = self._prepare_create(tx, obj, values, data, {**options, "batch": True})
                    self.runtime.hooks.run("before_save", ctx)
                    self._check_required(obj, ctx.record)
                good.append(ctx)
                result = {"status": "created", "id": ctx.record["id"], "_ctx": ctx}
                if ctx.warnings:
                    result["warnings"] = ctx.warnings  # e.g. a `warn` duplicate rule: saved, matches kept
                results.append(result)
            except CrmError as exc:
                results.append({"status": exc.extra.get("import_status", "error"), **exc.to_dict()})
        good = self._unique_in_batch(tx.conn, obj, good, results)
        if good:
            table = self.table(obj.name)
            with unique_guard(obj):  # a concurrent save took a value meanwhile: the batch is refused
                tx.conn.execute(table.insert(), [self._storage_row(obj, table, c.record) for c in good])
            history_rows = []
            now = utcnow()
            for ctx in good:
                changes = {n: [None, self._history_value(obj, n, ctx.record[n])]
                           for n in self._tracked(obj) if ctx.record.get(n) is not None}
                history_rows.append({"object": obj.name, "record_id": ctx.record["id"], "at": now,
                                         "user_id": self.principal.user_id, "action": "create",
                                         "changes": changes, "note": options.get("note")})
            tx.conn.execute(db.history.insert(), history_rows)
            for ctx in good:
                self._write_notes(ctx)
                self.runtime.hooks.run("after_save", ctx)
                self._after_write(ctx)

    # --- helpers -------------------------------------------------------------------------

    def _storage_row(self, obj: ObjectDef, table: sa.Table, record: dict) -> dict:
        plan = self.compiled.cache.get(("storage_plan", obj.name))
        if plan is None:
            converted = [(n, f) for n, f in obj.all_fields.items() if n in table.c and f.value_type == "multipicklist"]
            skip = {c for c, _ in converted}
            plain = [column.name for column in table.c if column.name not in skip]
            plan = self.compiled.cache[("storage_plan", obj.name)] = (converted, plain)
        converted, plain = plan
        row = {name: record.get(name) for name in plain if name in record or name in obj.all_fields}
        for name, fdef in converted:
            row[name] = schemas.to_storage(fdef, record.get(name))
        return row

    def _tracked(self, obj: ObjectDef) -> list[str]:
        key = ("tracked", obj.name)
        names = self.compiled.cache.get(key)
        if names is None:
            names = [n for n in obj.track_history if n in obj.all_fields]
            names = self.compiled.cache[key] = names + [n for n in ALWAYS_TRACKED if n not in names]
        return names

    def _history_value(self, obj: ObjectDef, name: str, value: Any) -> Any:
        fdef = obj.all_fields.get(name)
        if fdef is None or fdef.type == "password":
            return None
        return schemas.to_json_value(fdef, value)

    def write_history(self, conn: sa.Connection, object_name: str, record_id: str, action: str,
                      changes: dict, note: str | None = None) -> None:
        conn.execute(db.history.insert(), {
            "object": object_name, "record_id": record_id, "at": utcnow(), "user_id": self.principal.user_id,
            "action": action, "changes": changes or {}, "note": note,
        })

    def _write_notes(self, ctx: SaveContext) -> None:
        for action, changes, note in ctx.notes:
            self.write_history(ctx.conn, ctx.obj.name, ctx.record["id"], action, changes, note)
        ctx.notes.clear()

    def _after_write(self, ctx: SaveContext) -> None:
        if ctx.obj.name in ("user", "department"):
            ctx.tx.after_commit(self.runtime.directory_changed)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@contextmanager
def unique_guard(obj: ObjectDef) -> Iterator[None]:
    """The database's unique index (live records) refused a write that the service's own check
    let through, i.e. a concurrent save took the value first: a 400 not_unique, not a 500."""
    try:
        yield
    except sa.exc.IntegrityError as exc:
        text = str(exc.orig or exc)
        unique = [name for name, fdef in obj.fields.items() if fdef.unique]
        named = [name for name in unique if f"_{name}" in text or f".{name}" in text] or unique
        if not unique:
            raise
        raise ValidationFailed("Some values must be unique.", code="not_unique",
                               fields={name: ["This value is already used by another record."] for name in named}
                               ) from None


def owner_since_after(old: dict, record: dict, now) -> Any:
    """owner_since after an owner change that does not name it: a record handed from one owner
    to another (admin reassignment, workflow action) keeps its clock, so pool protection and
    recycling are not restarted; a record that had no owner starts one; no owner, no clock.
    Claims and assignments from a pool set owner_since themselves."""
    if not record.get("owner"):
        return None
    if old.get("owner") and old.get("owner_since"):
        return old["owner_since"]
    return now


def resolve_default(fdef: FieldDef, default: Any, principal: Principal) -> Any:
    if default == "$today":
        return today()
    if default == "$now":
        return utcnow()
    if default == "$user":
        return principal.user_id
    if fdef.value_type in ("decimal", "currency", "percent"):
        return Decimal(str(default))
    if fdef.value_type == "date" and isinstance(default, str):
        return date.fromisoformat(default)
    return default


# --- sorting and keyset paging -----------------------------------------------------------


def parse_sort(sort: str, fields: dict[str, FieldDef]) -> list[tuple[str, bool]]:
    """'-amount,name' -> [('amount', True), ('name', False), ('id', False)]; names checked."""
    order = []
    for part in (p.strip() for p in sort.split(",")):
        if not part:
            continue
        descending = part.startswith("-")
        name = part.lstrip("-+")
        fdef = fields.get(name)
        if fdef is None or fdef.value_type in ("multipicklist", "textarea"):
            raise BadRequest(f"Cannot sort by {name!r}.", code="bad_sort", fields={"sort": [f"Unknown field {name!r}."]})
        if name != "id":
            order.append((name, descending))
    order.append(("id", order[-1][1] if order else False))
    return order


def order_clauses(table: sa.Table, order: list[tuple[str, bool]]) -> list:
    clauses = []
    for name, descending in order:
        column = table.c[name]
        clauses.append(column.desc().nulls_last() if descending else column.asc().nulls_first())
    return clauses


def keyset_after(table: sa.Table, order: list[tuple[str, bool]], values: list) -> Any:
    """Rows strictly after `values` in `order` (NULLs first ascending, last descending)."""
    ors = []
    for i, (name, descending) in enumerate(order):
        column, value = table.c[name], values[i]
        equal_before = [
            table.c[n].is_(None) if v is None else table.c[n] == v for (n, _), v in zip(order[:i], values[:i])
        ]
        if descending:
            after = sa.false() if value is None else sa.or_(column < value, column.is_(None))
        else:
            after = column.isnot(None) if value is None else column > value
        ors.append(sa.and_(*equal_before, after))
    return sa.or_(*ors)


def encode_cursor(record: dict, order: list[tuple[str, bool]], fields: dict[str, FieldDef]) -> str:
    values = [schemas.to_json_value(fields[name], record.get(name)) for name, _ in order]
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, order: list[tuple[str, bool]], fields: dict[str, FieldDef]) -> list:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        if not isinstance(values, list) or len(values) != len(order):
            raise ValueError("shape")
        return [parse_cursor_value(fields[name], value) for (name, _), value in zip(order, values)]
    except (ValueError, TypeError, KeyError):
        raise BadRequest("The cursor is not valid for this list (sort changed?).", code="bad_cursor") from None


def parse_cursor_value(fdef: FieldDef, value: Any) -> Any:
    if value is None:
        return None
    vtype = fdef.value_type
    if vtype in ("decimal", "currency", "percent"):
        return Decimal(str(value))
    if vtype == "datetime":
        return datetime.fromisoformat(str(value).replace("Z", ""))
    if vtype == "date":
        return date.fromisoformat(str(value))
    if vtype == "integer":
        return int(value)
    if vtype == "boolean":
        return bool(value)
    return str(value)
