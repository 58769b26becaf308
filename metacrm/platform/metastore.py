"""The live metadata in the database: documents plus one version number."""

from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa

from ..metadata.registry import Registry
from . import db
from .clock import utcnow

ABSENT = "absent"  # the version of a document that does not exist (a write with it creates only)


def document_version(doc: dict | None) -> str:
    """A document's version: a digest of its content, so any change to it (by any server or
    path) makes every copy loaded before stale. Sent as the ETag and as `version`."""
    if doc is None:
        return ABSENT
    canonical = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:20]


def current_version(conn: sa.Connection) -> int:
    value = conn.execute(sa.select(db.meta_state.c.version).where(db.meta_state.c.id == 1)).scalar()
    return int(value or 0)


def load_registry(conn: sa.Connection) -> Registry:
    version = current_version(conn)
    docs = {}
    for row in conn.execute(sa.select(db.meta_document.c.kind, db.meta_document.c.name, db.meta_document.c.body)):
        docs[(row.kind, row.name)] = json.loads(row.body)
    return Registry(docs, version)


def lock_version(conn: sa.Connection) -> int:
    """Serialise applies: PostgreSQL row lock (SQLite's BEGIN IMMEDIATE already serialises)."""
    query = sa.select(db.meta_state.c.version).where(db.meta_state.c.id == 1)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    value = conn.execute(query).scalar()
    if value is None:
        # A fresh database: create the row (another server may do so at the same moment), then lock it.
        db.insert_ignore(conn, db.meta_state, {"id": 1, "version": 0, "updated_at": utcnow()}, ["id"])
        value = conn.execute(query).scalar()
    return int(value)


def write_documents(
    conn: sa.Connection, documents: list[dict], deletes: list[tuple[str, str]], sources: dict | None = None,
    *, storage: dict | None = None, reverts: int | None = None,
) -> int:
    """Store the changed documents and bump the version; returns the new version. The change log
    entry (who, when, each body before and after) is written here, in the same transaction, so
    no path can change metadata without it (`storage`: the storage diff; `reverts`: the entry
    a revert undoes)."""
    from . import changelog

    version = lock_version(conn) + 1
    now = utcnow()
    sources = sources or {}
    touched = list(dict.fromkeys([*deletes, *((d["kind"], d["name"]) for d in documents)]))
    before = _bodies(conn, touched)
    for kind, name in deletes:
        conn.execute(db.meta_document.delete().where(db.meta_document.c.kind == kind, db.meta_document.c.name == name))
    after: dict[tuple[str, str], dict | None] = {key: None for key in deletes}
    for doc in documents:
        key = (doc["kind"], doc["name"])
        after[key] = doc
        conn.execute(db.meta_document.delete().where(db.meta_document.c.kind == key[0], db.meta_document.c.name == key[1]))
        conn.execute(
            db.meta_document.insert().values(
                kind=key[0],
                name=key[1],
                body=json.dumps(doc, ensure_ascii=False, sort_keys=False),
                source=str(sources.get(key, ""))[:255],
                updated_at=now,
            )
        )
    conn.execute(db.meta_state.update().where(db.meta_state.c.id == 1).values(version=version, updated_at=now))
    changelog.record(conn, version, [(k, n, before.get((k, n)), after.get((k, n))) for k, n in touched],
                     storage=storage, reverts=reverts)
    return version


def _bodies(conn: sa.Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
    """The stored bodies of these documents (absent ones left out)."""
    out = {}
    t = db.meta_document
    for start in range(0, len(keys), 200):
        chunk = keys[start:start + 200]
        condition = sa.or_(*(sa.and_(t.c.kind == k, t.c.name == n) for k, n in chunk))
        for row in conn.execute(sa.select(t.c.kind, t.c.name, t.c.body).where(condition)):
            out[(row.kind, row.name)] = json.loads(row.body)
    return out
