"""The search index: one row per (record, searchable field) in `mc_search_entry`, kept current
by the write path (an after_save hook), with a trigram index beside it.

- SQLite: an FTS5 table with the trigram tokenizer over the entries (external content, kept in
  step by triggers), so a query matches any 3-character piece of a value: substrings, Chinese
  names and, by ranking on shared trigrams, typos.
- PostgreSQL: a GIN index with pg_trgm's gin_trgm_ops on lower(body) (LIKE and word similarity
  use it). Without the extension (no rights to create it) the same queries run unindexed.

Which fields are searched is metadata: the fields marked `"searchable": true`. When that set changes (a metadata change), the `search.reindex` sweep rebuilds the
object's entries; `metacrm search reindex` does it by hand.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

import sqlalchemy as sa

from ...metadata.model import ObjectDef
from .. import db

log = logging.getLogger(__name__)

TEXT_TYPES = frozenset({"text", "textarea", "email", "phone", "url", "autonumber"})
MAX_VALUE = 500  # characters of one value that are indexed
BATCH = 1000

entry = sa.Table(
    "mc_search_entry",
    db.system_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("object", sa.String(64), nullable=False),
    sa.Column("record_id", sa.String(32), nullable=False),
    sa.Column("field", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Index("ix_mc_search_entry_record", "object", "record_id"),
)

SQLITE_DDL = (
    ("CREATE VIRTUAL TABLE IF NOT EXISTS mc_search_fts USING fts5("
     "body, content='mc_search_entry', content_rowid='id', tokenize='trigram')"),
    ("CREATE TRIGGER IF NOT EXISTS mc_search_entry_ai AFTER INSERT ON mc_search_entry BEGIN "
     "INSERT INTO mc_search_fts(rowid, body) VALUES (new.id, new.body); END"),
    ("CREATE TRIGGER IF NOT EXISTS mc_search_entry_ad AFTER DELETE ON mc_search_entry BEGIN "
     "INSERT INTO mc_search_fts(mc_search_fts, rowid, body) VALUES ('delete', old.id, old.body); END"),
)


def ensure(engine: sa.Engine) -> bool:
    """Create the entry table and its trigram index if missing. Returns whether a trigram index
    is in place (False on PostgreSQL without pg_trgm)."""
    db.system_metadata.create_all(engine, tables=[entry], checkfirst=True)
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            for statement in SQLITE_DDL:
                conn.exec_driver_sql(statement)
        return True
    if engine.dialect.name == "postgresql":
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except sa.exc.DBAPIError:
            log.warning("pg_trgm is not available: search runs without a trigram index")
        with engine.begin() as conn:
            schema = trgm_schema(conn)
            if schema:
                # The extension lives in one schema of the database (often public) that may not be on
                # this connection's search_path (a schema per org or per test): name it.
                conn.exec_driver_sql(
                    "CREATE INDEX IF NOT EXISTS ix_mc_search_entry_trgm ON mc_search_entry "
                    f"USING gin (lower(body) {quote_ident(schema)}.gin_trgm_ops)")
        return bool(schema)
    return False


def trgm_schema(conn: sa.Connection) -> str | None:
    """The schema pg_trgm is installed in (None when it is not)."""
    return conn.exec_driver_sql(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_trgm'").scalar()


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def searchable_fields(obj: ObjectDef) -> list[str]:
    """The object's text-like fields marked `searchable`, name field first."""
    names = [n for n, f in obj.fields.items() if f.raw.get("searchable") and f.value_type in TEXT_TYPES]
    return sorted(names, key=lambda n: n != obj.name_field)


def signature(obj: ObjectDef) -> str:
    return hashlib.sha1(",".join(searchable_fields(obj)).encode()).hexdigest()[:16]


_NOT_DIGIT = re.compile(r"\D+")


def entries_of(obj: ObjectDef, record: dict, fields: list[str]) -> list[dict]:
    rows = []
    for name in fields:
        value = record.get(name)
        if value in (None, ""):
            continue
        body = str(value)[:MAX_VALUE]
        rows.append({"object": obj.name, "record_id": record["id"], "field": name, "body": body})
        if obj.fields[name].value_type == "phone":
            digits = _NOT_DIGIT.sub("", body)
            if digits and digits != body:  # "+86 138-0013-8000" is found by "13800138000" too
                rows.append({"object": obj.name, "record_id": record["id"], "field": name, "body": digits})
    return rows


def write(conn: sa.Connection, obj: ObjectDef, record: dict, *, fresh: bool = False) -> None:
    fields = searchable_fields(obj)
    if not fields:
        return
    if not fresh:
        conn.execute(entry.delete().where(entry.c.object == obj.name, entry.c.record_id == record["id"]))
    rows = entries_of(obj, record, fields)
    if rows:
        conn.execute(entry.insert(), rows)


def remove(conn: sa.Connection, object_name: str, record_id: str) -> None:
    conn.execute(entry.delete().where(entry.c.object == object_name, entry.c.record_id == record_id))


def reindex_object(conn: sa.Connection, obj: ObjectDef, table: sa.Table) -> int:
    """Rebuild one object's entries from its live rows; returns the number of records read."""
    conn.execute(entry.delete().where(entry.c.object == obj.name))
    fields = searchable_fields(obj)
    if not fields:
        return 0
    columns = [table.c.id] + [table.c[n] for n in fields if n in table.c]
    count, last = 0, ""
    while True:
        rows = conn.execute(sa.select(*columns).where(table.c.deleted_at.is_(None), table.c.id > last)
                            .order_by(table.c.id).limit(BATCH)).mappings().all()
        if not rows:
            return count
        batch: list[dict] = []
        for row in rows:
            batch.extend(entries_of(obj, dict(row), fields))
        if batch:
            conn.execute(entry.insert(), batch)
        count += len(rows)
        last = rows[-1]["id"]


def changed_searchable(ctx: Any, fields: list[str]) -> bool:
    return ctx.op != "update" or any(ctx.changed(n) for n in fields)
