"""The batch path (imports, bulk loads): every row validated and hooked like a single save,
then the good rows written with one executemany and their history with another."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ...metadata.model import ObjectDef
from .. import db
from ..clock import utcnow
from ..errors import CrmError
from ..runtime import Tx
from .context import SaveContext
from .unique import unique_guard


class BatchCreate:
    """create_many of RecordService (mixed into it; uses its coerce, hooks and history)."""

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
                    self.check_owner(ctx)
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


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
