"""In-app notifications and email, both delivered through the outbox.

A `notify` outbox row names its users; its handler inserts one `mc_notification` per user
with the key "<row key>:<user>", unique, so a row that runs twice (a worker killed
mid-batch) notifies once. An `email` row is sent through METACRM_SMTP_URL
(smtp://[user:password@]host:port, smtps:// for TLS); without it the row ends `skipped`.
"""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa

from .. import db, outbox
from ..clock import utcnow
from ..storage import UtcDateTime

log = logging.getLogger("metacrm.notifications")

notification = sa.Table(
    "mc_notification",
    db.system_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(250), nullable=False, unique=True),
    sa.Column("user_id", sa.String(32), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("read_at", UtcDateTime),
    sa.Column("subject", sa.String(300)),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("object", sa.String(64)),
    sa.Column("record_id", sa.String(32)),
    # a workflow message in every language it was written in, {locale: {subject, body}}: shown in
    # the reader's language when read, so a user who switches language reads the old ones in it too
    sa.Column("texts", sa.JSON),
    sa.Index("ix_mc_notification_user", "user_id", "read_at", "id"),
)

TABLES = [notification]


def ensure_tables(engine: sa.Engine, tables: list[sa.Table]) -> None:
    """Create a feature's system tables on a database initialised before the feature existed."""
    try:
        with engine.begin() as conn:
            if sa.inspect(conn).has_table(db.meta_state.name):
                db.system_metadata.create_all(conn, tables=tables, checkfirst=True)
                _add_missing_columns(conn, tables)
    except Exception:  # no database yet (e.g. `metacrm metadata validate`): init creates them
        log.debug("could not check the system tables", exc_info=True)


def _add_missing_columns(conn: sa.Connection, tables: list[sa.Table]) -> None:
    """A nullable column a newer version added to a system table that already exists."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    inspector = sa.inspect(conn)
    ops = None
    for table in tables:
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in have and column.nullable:
                ops = ops or Operations(MigrationContext.configure(conn))
                ops.add_column(table.name, sa.Column(column.name, column.type, nullable=True))


# --- delivery -----------------------------------------------------------------------------


def _insert(conn: sa.Connection):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(notification)


def _active_users(runtime: Any, user_ids: set[str]) -> dict[str, str]:
    """{user id: locale} of the active users among `user_ids`."""
    if not user_ids:
        return {}
    users = runtime.compiled().tables["user"]
    locale = users.c.locale if "locale" in users.c else sa.literal(None)
    with runtime.reading() as conn:
        return {row.id: row.locale or "en" for row in conn.execute(sa.select(users.c.id, locale.label("locale")).where(
            users.c.id.in_(sorted(user_ids)), users.c.deleted_at.is_(None),
            sa.or_(users.c.active.is_(None), users.c.active.is_(True))))}


def texts_for(payload: dict, locale: str) -> tuple[str, str]:
    """(subject, body) of a payload in `locale`: a workflow notify action renders its message in
    every language it has (payload "texts": {locale: {subject, body}}); otherwise the stored
    subject and body (the product's English sentences, localised when read)."""
    texts = payload.get("texts") or {}
    for key in (locale, locale.split("-")[0], "en"):
        if isinstance(texts.get(key), dict):
            found = texts[key]
            return found.get("subject") or payload.get("subject") or "", found.get("body") or payload.get("body") or ""
    return payload.get("subject") or "", payload.get("body") or ""


def handle_notify(runtime: Any, items: list[outbox.Item]) -> dict:
    """Batch handler: every notification of the batch in one transaction (inactive users skipped)."""
    now = utcnow()
    rows = []
    active = _active_users(runtime, {u for item in items for u in item.payload.get("users") or []})
    for item in items:
        p = item.payload
        for user_id in dict.fromkeys(u for u in p.get("users") or [] if u in active):
            subject, body = texts_for(p, active[user_id])
            rows.append({
                "key": f"{item.key}:{user_id}"[:250], "user_id": user_id, "created_at": now, "read_at": None,
                "subject": subject[:300] or None, "body": body,
                "object": p.get("object"), "record_id": p.get("record_id"),
                "texts": p.get("texts") if isinstance(p.get("texts"), dict) else None,
            })
    if rows:
        with runtime.transaction() as tx:
            stmt = _insert(tx.conn).on_conflict_do_nothing(index_elements=["key"])
            tx.conn.execute(stmt, rows)
    return {item.id: None for item in items}


def smtp_settings(url: str) -> dict:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps", "smtp+starttls"):
        raise ValueError(f"METACRM_SMTP_URL must start with smtp://, smtps:// or smtp+starttls:// ({url!r})")
    return {
        "ssl": parts.scheme == "smtps",
        "starttls": parts.scheme == "smtp+starttls",
        "host": parts.hostname or "localhost",
        "port": parts.port or (465 if parts.scheme == "smtps" else 25),
        "user": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "sender": dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p).get("from"),
    }


class _NoNames:
    """An email names no records by id (no reader's access to check): "a record"."""

    def want(self, *_args) -> None:
        return None

    def name(self, *_args) -> None:
        return None


def email_texts(runtime: Any, payload: dict, locale: str) -> tuple[str, str]:
    """(subject, body) of an email in its recipients' `locale`."""
    from types import SimpleNamespace

    from ..web.history_notes import NoteText

    subject, body = texts_for(payload, locale)
    words = NoteText(SimpleNamespace(registry=runtime.compiled().registry), _NoNames(), locale=locale)
    return words.text(subject) or "", words.text(body) or ""


def handle_email(runtime: Any, payload: dict) -> None:
    """One message per language of the recipients (each user's `locale`); addresses given
    directly ("to") get the payload's English."""
    url = runtime.config.smtp_url
    if not url:
        raise outbox.Skip("no SMTP server configured (METACRM_SMTP_URL)")
    groups: dict[str, list[str]] = {}
    if payload.get("to"):
        groups["en"] = list(payload["to"])
    else:
        users = payload.get("users") or []
        table = runtime.compiled().tables["user"]  # read before the connection opens
        locale = table.c.locale if "locale" in table.c else sa.literal(None)
        with runtime.reading() as conn:
            for r in conn.execute(sa.select(table.c.email, locale.label("locale"))
                                  .where(table.c.id.in_(users), table.c.email.isnot(None)).order_by(table.c.id)):
                groups.setdefault(r.locale or "en", []).append(r.email)
    if not groups:
        raise outbox.Skip("no recipient has an email address")
    settings = smtp_settings(url)
    message_id = payload.get("_key", "x").replace(":", ".")
    for locale, addresses in sorted(groups.items()):
        subject, body = email_texts(runtime, payload, locale)
        message = EmailMessage()
        message["Subject"] = subject or "metacrm notification"
        message["From"] = settings["sender"] or "metacrm@localhost"
        message["To"] = ", ".join(addresses)
        suffix = "" if len(groups) == 1 else f".{locale}"
        message["Message-ID"] = f"<{message_id}{suffix}@metacrm>"  # receivers may dedupe
        message.set_content(body)
        message["Content-Language"] = locale  # after set_content, which replaces the Content-* headers
        _send(settings, message)


def _send(settings: dict, message: EmailMessage) -> None:
    client_cls = smtplib.SMTP_SSL if settings["ssl"] else smtplib.SMTP
    with client_cls(settings["host"], settings["port"], timeout=15) as client:
        if settings["starttls"]:
            client.starttls()
        if settings["user"]:
            client.login(settings["user"], settings["password"] or "")
        client.send_message(message)


# --- reading ------------------------------------------------------------------------------


def _iso(value) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value is not None else None


def as_json(row: Any) -> dict:
    return {
        "id": row.id, "subject": row.subject, "body": row.body, "object": row.object, "record": row.record_id,
        "created_at": _iso(row.created_at), "read_at": _iso(row.read_at), "read": row.read_at is not None,
    }


def in_locale(service: Any, items: list[dict], locale: str | None) -> list[dict]:
    """The API's notifications in the reader's language: the product's own English sentences
    (approval, pool warnings) rendered from their `note.*` template in `locale`; `locale` says which."""
    from ..web import display
    from ..web.history_notes import NoteText

    locale = locale or "en"
    words = NoteText(service, display.Names(service), locale=locale)
    return [{**n, **read_in(n, locale, words.text), "locale": locale} for n in items]


def read_in(item: dict, locale: str, localise) -> dict:
    """{subject, body} of a listed notification in `locale`: its own text in that language when
    it was written in several (`texts`), else the stored text through `localise`."""
    texts = item.get("texts")
    if isinstance(texts, dict) and texts:
        subject, body = texts_for({"texts": texts, "subject": item["subject"], "body": item["body"]}, locale)
        return {"subject": subject, "body": body}
    return {"subject": localise(item["subject"]), "body": localise(item["body"])}


def list_for(runtime: Any, user_id: str, *, unread_only: bool = False, limit: int = 50,
             before: int | None = None) -> dict:
    n = notification
    query = sa.select(n).where(n.c.user_id == user_id).order_by(n.c.id.desc()).limit(limit)
    if unread_only:
        query = query.where(n.c.read_at.is_(None))
    if before:
        query = query.where(n.c.id < before)
    with runtime.reading() as conn:
        rows = conn.execute(query).fetchall()
        unread = conn.execute(
            sa.select(sa.func.count()).select_from(n).where(n.c.user_id == user_id, n.c.read_at.is_(None))
        ).scalar()
    return {"items": [{**as_json(r), "texts": r.texts} for r in rows], "unread": int(unread or 0)}


def mark_read(runtime: Any, user_id: str, notification_id: int | None = None) -> int:
    """Mark one (or, with None, every) notification of the user read; returns how many changed."""
    n = notification
    query = n.update().where(n.c.user_id == user_id, n.c.read_at.is_(None)).values(read_at=utcnow())
    if notification_id is not None:
        query = query.where(n.c.id == notification_id)
    with runtime.transaction() as tx:
        return tx.conn.execute(query).rowcount


def exists_for(runtime: Any, user_id: str, notification_id: int) -> bool:
    n = notification
    with runtime.reading() as conn:
        return conn.execute(
            sa.select(n.c.id).where(n.c.id == notification_id, n.c.user_id == user_id)
        ).first() is not None


def register(runtime: Any) -> None:
    runtime.features.add(FEATURE)
    ensure_tables(runtime.engine, TABLES)
    outbox.register_handler("notify", handle_notify, batch=True)
    outbox.register_handler("email", handle_email)


from ..features import Feature
from . import api, pages

HERE = Path(__file__).resolve().parent
FEATURE = Feature("notifications", api=api.routes, pages=pages.routes, nav=pages.NAV, templates=HERE / "templates",
                  messages=HERE / "messages", openapi=api.openapi_paths)
