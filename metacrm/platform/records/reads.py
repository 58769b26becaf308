"""Reading records: rows to typed records, typed records to JSON (hidden fields left out), one
record by id, and filtered, sorted, keyset-paged lists; each answers only what the caller may
read, and a record it may not read is a 404, like one that does not exist."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ...metadata.model import ObjectDef
from .. import schemas
from ..errors import BadRequest, NotFound
from .cursor import decode_cursor, encode_cursor, keyset_after, order_clauses, parse_sort

MAX_LIMIT = 500
DEFAULT_LIMIT = 50


class RecordReads:
    """The reads of RecordService (mixed into it; uses its access, tables and connections)."""

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
            if only is not None and name not in only and name not in ("id", "version"):  # always: PATCH needs it
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
        record = self.get_record(object_name, record_id, deleted=deleted)
        with self._reading() as conn:
            self.viewer_rollups(conn, obj, [record])
        return self.to_json(obj, record)

    def viewer_rollups(self, conn: sa.Connection, obj: ObjectDef, records: list[dict]) -> None:
        """A rollup read by someone who may not read every child counts (sums, ...) only the
        children they may read: the stored value is the platform's total over every child, so
        an account's "Opportunities" shown to its new owner after a hand-over would otherwise
        count the closed deals that stayed with the previous owner. One GROUP BY per rollup
        field per page of records; formulas over a changed rollup are recomputed with it.
        (Filtering and sorting by a rollup still use the stored total.)"""
        rollups = [f for f in obj.fields.values() if f.type == "rollup" and f.child_object
                   and self.registry.has_object(f.child_object) and f.child_field]
        ids = [r["id"] for r in records if r.get("id")]
        if not rollups or not ids:
            return
        from .. import filters as flt
        from ..computed import coerce_result, compute_formulas

        changed: set[str] = set()
        for fdef in rollups:
            child = self.registry.object(fdef.child_object)
            if self.access.owners_in_scope(self.access.scope(child.name, "read")) is None:
                continue  # the caller reads every child: the stored total is theirs
            ctable = self.table(child.name)
            key = ctable.c[fdef.child_field]
            measure = (sa.func.count() if fdef.function == "count"
                       else getattr(sa.func, fdef.function)(ctable.c[fdef.agg_field]))
            conditions = [key.in_(ids), ctable.c.deleted_at.is_(None), self.access.row_filter(child.name, "read", ctable)]
            if fdef.agg_filter:
                conditions.append(flt.compile_sql(fdef.agg_filter, ctable, child.all_fields, flt.FilterContext.current()))
            found = dict(conn.execute(sa.select(key, measure).where(*conditions).group_by(key)).all())
            empty = 0 if fdef.function in ("count", "sum") else None
            for record in records:
                raw = found.get(record.get("id"))
                value = coerce_result(raw if raw is not None else empty, fdef.result_type, fdef.scale)
                if record.get(fdef.name) != value:
                    record[fdef.name] = value
                    changed.add(record["id"])
        if changed and any(f.type == "formula" for f in obj.fields.values()):
            for record in records:
                if record.get("id") in changed:
                    compute_formulas(obj, record)

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
        from .. import filters as flt

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
        if action != "read":  # an export (like a report) is a read path: never beyond the read scope
            query = query.where(self.access.row_filter(obj.name, "read", table))
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
            self.viewer_rollups(conn, obj, records)
        next_cursor = encode_cursor(records[-1], order, visible_fields) if len(rows) > limit and records else None
        return [self.to_json(obj, r, fields) for r in records], next_cursor
