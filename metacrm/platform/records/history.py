"""Record history: one row per save (create, update, delete, restore, or a platform action such
as a claim), holding the tracked fields' changes as [old, new] JSON values; owner and pool are
always tracked."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ...metadata.model import FieldDef, ObjectDef
from .. import db, schemas
from ..clock import utcnow
from .context import SaveContext

ALWAYS_TRACKED = ("owner", "pool")


class RecordHistory:
    """The history of RecordService (mixed into it): reading it back, and writing its rows."""

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
