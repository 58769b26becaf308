"""What the web import wizard keeps between its steps: the uploaded file (mc_import_upload,
one row per upload, the owner's only; older than a day is dropped when a new one comes) and
the saved column mappings per user and object (mc_import_mapping).

The file is kept in the database, not on a server's disk, so the step after the upload may be
served by another process or machine. The size is bounded by the app's MAX_CONTENT_LENGTH.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import sqlalchemy as sa

from .. import db
from ..clock import utcnow
from ..errors import NotFound
from ..storage import UtcDateTime

KEEP = timedelta(days=1)

uploads = sa.Table(
    "mc_import_upload",
    db.system_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.String(32), nullable=False),
    sa.Column("object", sa.String(64), nullable=False),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("format", sa.String(8), nullable=False),
    sa.Column("encoding", sa.String(32)),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("settings", sa.JSON),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

mappings = sa.Table(
    "mc_import_mapping",
    db.system_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.String(32), nullable=False),
    sa.Column("object", sa.String(64), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("columns", sa.JSON, nullable=False),
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("user_id", "object", "name", name="ux_mc_import_mapping_name"),
)

_ready: set[int] = set()
_lock = threading.Lock()


def ensure_tables(engine: sa.Engine) -> None:
    with _lock:
        if id(engine) in _ready:
            return
        for table in (uploads, mappings):
            try:
                table.create(engine, checkfirst=True)
            except sa.exc.DatabaseError:  # another process created it meanwhile
                if not sa.inspect(engine).has_table(table.name):
                    raise
        _ready.add(id(engine))


def store_upload(runtime, user_id: str, object_name: str, filename: str, fmt: str, encoding: str | None,
                 data: bytes) -> str:
    ensure_tables(runtime.engine)
    upload_id = uuid.uuid4().hex
    now = utcnow()
    with runtime.transaction() as tx:
        tx.conn.execute(uploads.delete().where(uploads.c.created_at < now - KEEP))
        tx.conn.execute(uploads.insert().values(
            id=upload_id, user_id=user_id, object=object_name, filename=filename[:255], format=fmt,
            encoding=encoding, data=data, settings={}, created_at=now))
    return upload_id


def load_upload(runtime, user_id: str, object_name: str, upload_id: str):
    """The upload, only for the user who sent it and the object it was sent for (else 404)."""
    ensure_tables(runtime.engine)
    with runtime.reading() as conn:
        row = conn.execute(sa.select(uploads).where(uploads.c.id == upload_id)).first()
    if row is None or row.user_id != user_id or row.object != object_name:
        raise NotFound("No such upload (it may have expired): upload the file again.", code="upload_not_found")
    return row


def update_upload(runtime, upload_id: str, **values) -> None:
    with runtime.transaction() as tx:
        tx.conn.execute(uploads.update().where(uploads.c.id == upload_id).values(**values))


def saved_mappings(runtime, user_id: str, object_name: str) -> list:
    ensure_tables(runtime.engine)
    with runtime.reading() as conn:
        return list(conn.execute(sa.select(mappings).where(
            mappings.c.user_id == user_id, mappings.c.object == object_name).order_by(mappings.c.updated_at.desc())))


def save_mapping(runtime, user_id: str, object_name: str, name: str, columns: list[str], settings: dict) -> None:
    """Add or replace the user's mapping of that name for the object."""
    ensure_tables(runtime.engine)
    for attempt in range(2):  # a concurrent save of the same name: the second try updates it
        now = utcnow()
        try:
            with runtime.transaction() as tx:
                found = tx.conn.execute(sa.select(mappings.c.id).where(
                    mappings.c.user_id == user_id, mappings.c.object == object_name,
                    mappings.c.name == name)).scalar()
                if found:
                    tx.conn.execute(mappings.update().where(mappings.c.id == found).values(
                        columns=columns, settings=settings, updated_at=now))
                else:
                    tx.conn.execute(mappings.insert().values(
                        id=uuid.uuid4().hex, user_id=user_id, object=object_name, name=name, columns=columns,
                        settings=settings, updated_at=now))
            return
        except sa.exc.IntegrityError:
            if attempt:
                raise
