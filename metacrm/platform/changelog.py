"""The metadata change log: every metadata change, by every path, with who, when, how and each
document's body before and after, written in the transaction of the change itself
(metastore.write_documents calls `record`), so the log can never disagree with the metadata.

Who made a change is worked out once, here: an explicit `acting(...)` block (the CLI, boot
seeding, plugin install / uninstall), else the principal of the Flask request that runs it (the
REST API and the admin pages, including pages other modules add later), else "system".

A revert applies the bodies from before an entry (a document, or all of the entry's) as a new
change of its own (`reverts` = the entry), through `apply_change`, so storage follows the normal
apply rules; it is refused as stale when a document changed after the entry.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from . import db
from .clock import utcnow
from .errors import BadRequest, NotFound, StaleVersion

SYSTEM = "system"
MAX_LIMIT, DEFAULT_LIMIT = 200, 50
MAX_ID = 2**31 - 1  # the largest id an INTEGER column holds on PostgreSQL


@dataclass(frozen=True)
class Actor:
    user: str  # a user id, or "system"
    via: str  # api, web, cli, boot, plugin, system
    plugin: str | None = None


_overrides: ContextVar[dict | None] = ContextVar("metacrm_change_actor", default=None)


@contextmanager
def acting(user: str | None = None, via: str | None = None, plugin: str | None = None) -> Iterator[None]:
    """Changes made inside this block are recorded with these values (the ones not given are
    inherited from an enclosing block, then from the request)."""
    outer = _overrides.get() or {}
    inner = {k: v for k, v in (("user", user), ("via", via), ("plugin", plugin)) if v is not None}
    token = _overrides.set({**outer, **inner})
    try:
        yield
    finally:
        _overrides.reset(token)


def current_actor() -> Actor:
    user, via = SYSTEM, SYSTEM
    try:
        from flask import g, has_request_context, request
    except ImportError:  # pragma: no cover - flask is a dependency
        has_request_context = None  # type: ignore[assignment]
    if has_request_context is not None and has_request_context():
        principal = g.get("principal") or g.get("web_principal")
        if principal is not None and principal.user_id:
            user = principal.user_id
        via = "api" if request.path.startswith("/api/") else "web"
    overrides = _overrides.get() or {}
    return Actor(overrides.get("user", user), overrides.get("via", via), overrides.get("plugin"))


def _dumps(doc: dict | None) -> str | None:
    return None if doc is None else json.dumps(doc, ensure_ascii=False, sort_keys=False)


def _loads(text: str | None) -> dict | None:
    return None if text is None else json.loads(text)


def record(conn: sa.Connection, version: int, changes: list[tuple[str, str, dict | None, dict | None]],
           storage: dict | None = None, reverts: int | None = None) -> int | None:
    """Log one applied change: (kind, name, before, after) per document (None = absent).
    Documents whose body did not change are left out; nothing at all changed logs nothing."""
    rows = []
    for kind, name, before, after in changes:
        if before == after:
            continue
        action = "added" if before is None else "removed" if after is None else "changed"
        rows.append({"kind": kind, "name": name, "action": action, "before": _dumps(before), "after": _dumps(after)})
    storage = storage if storage and any(storage.values()) else None
    if not rows and not storage:
        return None
    actor = current_actor()
    change_id = conn.execute(db.meta_change.insert().values(
        version=version, at=utcnow(), actor=actor.user[:64], via=actor.via[:16],
        plugin=actor.plugin[:64] if actor.plugin else None, reverts=reverts, storage=storage,
    )).inserted_primary_key[0]
    if rows:
        conn.execute(db.meta_change_document.insert(), [{"change_id": change_id, **row} for row in rows])
    return change_id


# --- reading ------------------------------------------------------------------------------------


def encode_cursor(change_id: int) -> str:
    return base64.urlsafe_b64encode(f"c{change_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("c") or not text[1:].isdigit() or not 0 < int(text[1:]) <= MAX_ID:
            raise ValueError(cursor)
        return int(text[1:])
    except ValueError:
        raise BadRequest("The cursor is not valid for the change log; use next_cursor as it was returned.",
                         code="bad_cursor", parameter="cursor") from None


def check_parameter(value: str | None, parameter: str) -> str | None:
    """A filter value from the query string: text a database can compare (PostgreSQL refuses NUL)."""
    if value is not None and ("\x00" in value or len(value) > 200):
        raise BadRequest(f"{parameter} must be text of at most 200 characters, without NUL characters.",
                         code="bad_parameter", parameter=parameter)
    return value


def parse_document(value: str) -> tuple[str, str]:
    check_parameter(value, "document")
    kind, sep, name = value.partition("/")
    if not sep or not kind or not name:
        raise BadRequest(f"document must be kind/name (e.g. object/account), not {value!r}.",
                         code="bad_parameter", parameter="document")
    return kind, name


@dataclass
class Filters:
    kind: str | None = None
    document: tuple[str, str] | None = None
    user: str | None = None


def list_changes(conn: sa.Connection, filters: Filters, limit: int = DEFAULT_LIMIT,
                 cursor: str | None = None) -> tuple[list[dict], str | None]:
    """Newest first, keyset-paged by id; each entry names its documents (not their bodies)."""
    t, d = db.meta_change, db.meta_change_document
    query = sa.select(t).order_by(t.c.id.desc()).limit(limit + 1)
    if cursor:
        query = query.where(t.c.id < decode_cursor(cursor))
    if filters.user:
        query = query.where(t.c.actor == filters.user)
    if filters.kind or filters.document:
        inner = sa.select(d.c.change_id).where(d.c.change_id == t.c.id)
        if filters.kind:
            inner = inner.where(d.c.kind == filters.kind)
        if filters.document:
            inner = inner.where(d.c.kind == filters.document[0], d.c.name == filters.document[1])
        query = query.where(sa.exists(inner))
    rows = conn.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    documents: dict[int, list[dict]] = {row.id: [] for row in rows}
    if rows:
        for doc in conn.execute(sa.select(d.c.change_id, d.c.kind, d.c.name, d.c.action)
                                .where(d.c.change_id.in_(list(documents)))
                                .order_by(d.c.change_id, d.c.kind, d.c.name)):
            documents[doc.change_id].append({"kind": doc.kind, "name": doc.name, "action": doc.action})
    items = [_entry(row, documents[row.id]) for row in rows]
    return items, encode_cursor(rows[-1].id) if more else None


def _entry(row: Any, documents: list[dict]) -> dict:
    storage = row.storage
    if isinstance(storage, str):
        storage = json.loads(storage)
    return {"id": row.id, "version": row.version, "at": row.at, "user": row.actor, "via": row.via,
            "plugin": row.plugin, "reverts": row.reverts, "storage": storage or {}, "documents": documents}


def get_change(conn: sa.Connection, change_id: int) -> dict:
    """One entry with each document's body before and after."""
    t, d = db.meta_change, db.meta_change_document
    row = conn.execute(sa.select(t).where(t.c.id == change_id)).first() if 0 < change_id <= MAX_ID else None
    if row is None:
        raise NotFound(f"No metadata change {change_id}.", code="unknown_change")
    docs = [{"kind": r.kind, "name": r.name, "action": r.action, "before": _loads(r.before), "after": _loads(r.after)}
            for r in conn.execute(sa.select(d).where(d.c.change_id == change_id).order_by(d.c.kind, d.c.name))]
    return _entry(row, docs)


def change_for_version(conn: sa.Connection, version: int) -> int | None:
    t = db.meta_change
    return conn.execute(sa.select(sa.func.max(t.c.id)).where(t.c.version == version)).scalar()


def actors(conn: sa.Connection) -> list[str]:
    """Everyone who has changed metadata (for the log's user filter)."""
    t = db.meta_change
    return [r[0] for r in conn.execute(sa.select(t.c.actor).distinct().order_by(t.c.actor))]


# --- what changed, readably -----------------------------------------------------------------------


def summary(kind: str, before: dict | None, after: dict | None) -> list[tuple[str, str]]:
    """(what, names) pairs that say what an entry did to a document without reading the JSON:
    the fields added / removed / changed for an object, the top-level keys otherwise."""
    if before is None or after is None:
        return []
    out: list[tuple[str, str]] = []
    if kind == "object":
        old = {f.get("name"): f for f in before.get("fields") or [] if isinstance(f, dict)}
        new = {f.get("name"): f for f in after.get("fields") or [] if isinstance(f, dict)}
        for what, names in (("fields_added", [n for n in new if n not in old]),
                            ("fields_removed", [n for n in old if n not in new]),
                            ("fields_changed", [n for n in new if n in old and new[n] != old[n]])):
            if names:
                out.append((what, ", ".join(str(n) for n in names)))
        before = {k: v for k, v in before.items() if k != "fields"}
        after = {k: v for k, v in after.items() if k != "fields"}
    keys = [k for k in dict.fromkeys([*before, *after]) if before.get(k) != after.get(k)]
    if keys:
        out.append(("keys_changed", ", ".join(keys)))
    return out


# --- revert ---------------------------------------------------------------------------------------


@dataclass
class RevertPlan:
    change: dict
    documents: list[dict]
    deletes: list[tuple[str, str]]
    expected: dict[tuple[str, str], str]


def revert_plan(conn: sa.Connection, change_id: int, document: tuple[str, str] | None = None) -> RevertPlan:
    """What reverting an entry (one of its documents, or all of them) applies: each document's
    body from before the entry (a document the entry created is deleted), expected to be still
    as the entry left it (else the apply is refused as stale)."""
    from .metastore import document_version

    change = get_change(conn, change_id)
    docs = change["documents"]
    if document is not None:
        docs = [d for d in docs if (d["kind"], d["name"]) == document]
        if not docs:
            raise NotFound(f"Change {change_id} did not touch {document[0]}/{document[1]}.",
                           code="unknown_document", parameter="document")
    if not docs:
        raise BadRequest(f"Change {change_id} changed no document (storage only); there is nothing to revert.",
                         code="nothing_to_revert")
    documents, deletes, expected = [], [], {}
    for d in docs:
        key = (d["kind"], d["name"])
        expected[key] = document_version(d["after"])
        if d["before"] is None:
            deletes.append(key)
        else:
            documents.append(d["before"])
    return RevertPlan(change, documents, deletes, expected)


def revert(runtime: Any, change_id: int, document: tuple[str, str] | None = None, dry_run: bool = False):
    """Apply (or preview) a revert: an ApplyResult, recorded as a change with `reverts`."""
    from ..metadata.bundle import documents_bundle
    from .apply import apply_change

    with runtime.reading() as conn:
        plan = revert_plan(conn, change_id, document)
    try:
        return apply_change(runtime, documents_bundle(plan.documents), plan.deletes, dry_run=dry_run,
                            expected=plan.expected, reverts=change_id)
    except StaleVersion as exc:
        names = ", ".join(s["document"] for s in exc.extra.get("stale", []))
        raise StaleVersion(f"{names} changed after change {change_id}, so reverting it would undo that later "
                           "change too; nothing was changed. Revert the later changes first (newest first), or "
                           "edit the document.", stale=exc.extra.get("stale", [])) from None
