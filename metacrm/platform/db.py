"""Engine setup and the platform's own tables (metadata store, tokens, history, outbox).

Object tables are generated from metadata (see storage.py); these few are fixed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy import event

from .storage import UtcDateTime

system_metadata = sa.MetaData()

meta_document = sa.Table(
    "mc_meta_document",
    system_metadata,
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("source", sa.String(255)),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

meta_state = sa.Table(
    "mc_meta_state",
    system_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", UtcDateTime),
)

# The metadata change log (platform/changelog.py): one row per applied change (who, when, how,
# the new version, the storage it changed), one row per document it touched with the body
# before and after (NULL = absent), written in the same transaction as the change itself.
meta_change = sa.Table(
    "mc_meta_change",
    system_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("version", sa.Integer, nullable=False, index=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),  # a user id, or "system"
    sa.Column("via", sa.String(16), nullable=False),  # api, web, cli, boot, plugin, system
    sa.Column("plugin", sa.String(64)),  # the plugin whose install / upgrade / uninstall this was
    sa.Column("reverts", sa.Integer),  # the change this one reverted
    sa.Column("storage", sa.JSON),  # the storage diff (tables, columns, indexes)
    sa.Index("ix_mc_meta_change_actor", "actor", "id"),
)

meta_change_document = sa.Table(
    "mc_meta_change_document",
    system_metadata,
    sa.Column("change_id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("action", sa.String(8), nullable=False),  # added, changed, removed
    sa.Column("before", sa.Text),
    sa.Column("after", sa.Text),
    sa.Index("ix_mc_meta_change_document_doc", "kind", "name", "change_id"),
)

setting = sa.Table(
    "mc_setting",
    system_metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

auth_token = sa.Table(
    "mc_token",
    system_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("user_id", sa.String(32), nullable=False, index=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime),
    sa.Column("label", sa.String(100)),
)

# Web sessions, kept on the server (platform/sessions.py): the cookie holds a random id whose
# hash is here, so logging out or a password change ends the session on every server.
web_session = sa.Table(
    "mc_session",
    system_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("sid_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("user_id", sa.String(32), nullable=False, index=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("last_used_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime),
    sa.Column("ip", sa.String(100)),
    sa.Column("agent", sa.String(300)),
)

# Where and when an API token was issued and last used (one row per mc_token row).
token_use = sa.Table(
    "mc_token_use",
    system_metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("ip", sa.String(100)),
    sa.Column("agent", sa.String(300)),
    sa.Column("last_used_at", UtcDateTime),
)

# Failed sign-ins per throttle key ("pair:<username>|<ip>", "ip:<ip>", "user:<username>"),
# shared by every app server (platform/throttle.py). Times are epoch seconds.
login_failure = sa.Table(
    "mc_login_failure",
    system_metadata,
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("last_at", sa.Float, nullable=False),
    sa.Column("locked_until", sa.Float, nullable=False),
)

# Idempotency-Key claims and the stored first answers (api/idempotency.py), per user.
idempotency_key = sa.Table(
    "mc_idempotency_key",
    system_metadata,
    sa.Column("user_id", sa.String(32), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),  # sha256 of method, path, query, body
    sa.Column("created_at", UtcDateTime, nullable=False, index=True),
    sa.Column("status", sa.Integer),  # NULL while the first request is still running
    sa.Column("headers", sa.JSON),
    sa.Column("body", sa.LargeBinary),
    sa.Column("completed_at", UtcDateTime),
)

history = sa.Table(
    "mc_history",
    system_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("object", sa.String(64), nullable=False),
    sa.Column("record_id", sa.String(32), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("user_id", sa.String(32)),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("changes", sa.JSON),
    sa.Column("note", sa.Text),
    sa.Index("ix_mc_history_record", "object", "record_id", "id"),
)

outbox = sa.Table(
    "mc_outbox",
    system_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(200), unique=True),
    sa.Column("topic", sa.String(64), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UtcDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("done_at", UtcDateTime),
    sa.Index("ix_mc_outbox_status", "status", "next_attempt_at"),
)

# Files (platform/files): one row per stored file, its bytes in the database so embedded and
# scaled modes need no file store. `field` is the file field holding it, NULL for an attachment
# in the record's attachments list. A file lives and dies with its record: deleting the record
# to the recycle bin hides its files, restoring it brings them back.
file_blob = sa.Table(
    "mc_file",
    system_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("object", sa.String(64), nullable=False),
    sa.Column("record_id", sa.String(32), nullable=False),
    sa.Column("field", sa.String(64)),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("content_type", sa.String(128), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("created_by", sa.String(32)),
    sa.Index("ix_mc_file_record", "object", "record_id", "created_at"),
)

sequence = sa.Table(
    "mc_sequence",
    system_metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)


def _unicode_lower(value):
    """SQLite's lower() folds A-Z only; filters fold every script alike (filters.plan.fold_case)."""
    from .filters.plan import fold_case

    return fold_case(value) if isinstance(value, str) else value


def make_engine(url: str, **kwargs) -> sa.Engine:
    """An engine with the settings each backend needs for correct transactions."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):
            # Let SQLAlchemy own transactions, so DDL is transactional too (all-or-nothing apply).
            dbapi_conn.isolation_level = None
            dbapi_conn.create_function("mc_lower", 1, _unicode_lower, deterministic=True)
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # Write transactions (Runtime.transaction) take the write lock up front: a deferred
            # one that upgrades from read to write fails at once with SQLITE_BUSY when another
            # writer got in between, instead of waiting its turn. Plain reads stay deferred, so
            # a read on a second connection inside a write transaction cannot deadlock (WAL).
            write = conn.get_execution_options().get("write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return sa.create_engine(url, **kwargs)


def create_system_tables(engine_or_conn) -> None:
    system_metadata.create_all(engine_or_conn)


def ensure_system_tables(engine: sa.Engine) -> list[str]:
    """Create the system tables a newer release added (e.g. the metadata change log) in a
    database initialised by an older one, when a server or worker starts: one catalogue read
    when nothing is missing; created under the boot lock so two starting servers do not race.
    A database that was never initialised is left to `metacrm init`. Returns the names created."""
    try:
        with engine.connect() as conn:
            present = set(sa.inspect(conn).get_table_names())
    except Exception:  # noqa: BLE001 - no database yet (e.g. `metacrm metadata validate`)
        return []
    if meta_state.name not in present:
        return []
    missing = [t for t in system_metadata.sorted_tables if t.name not in present]
    if not missing:
        return []
    with boot_lock(engine), engine.begin() as conn:
        system_metadata.create_all(conn, tables=missing, checkfirst=True)
    return [t.name for t in missing]


def insert_ignore(conn: sa.Connection, table: sa.Table, values: dict, keys: list[str]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING on both databases: a row that another server created at
    the same moment is left as it is (read it afterwards). True if this call inserted it."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return conn.execute(insert(table).values(**values).on_conflict_do_nothing(index_elements=keys)).rowcount == 1


@contextmanager
def boot_lock(engine: sa.Engine) -> Iterator[None]:
    """Serialise initialising one database across processes (two servers or `metacrm init`s at
    once): a PostgreSQL advisory lock, a file lock next to a SQLite file."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": BOOT_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": BOOT_LOCK_KEY})
                conn.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    import fcntl

    with open(f"{database}.init-lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


BOOT_LOCK_KEY = 0x6D637262  # "mcrb": the one advisory lock key metacrm uses


def is_database_unavailable(exc: BaseException) -> bool:
    """Is this the database being down or unreachable (restart, failover, network, a full pool),
    as opposed to a bug? Such errors answer 503 `database_unavailable`, not 500: the caller may
    retry, and the engine's pool_pre_ping reconnects once the database is back."""
    if isinstance(exc, sa.exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig or exc
    if type(exc).__module__.startswith("sqlite3"):
        # sqlite3 also calls "no such table" or a syntax error OperationalError: those are bugs
        text = str(exc).lower()
        return any(word in text for word in ("locked", "busy", "unable to open", "disk i/o", "disk is full"))
    try:
        import psycopg
    except ImportError:  # pragma: no cover - SQLite-only installs
        return False
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))
