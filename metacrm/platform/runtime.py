"""The process-wide runtime: engine, the cached live registry, compiled tables and
schemas, the user directory, hooks, and transactions with after-commit callbacks.

Nothing here holds state another process needs: the registry version is read from
the database (at most every VERSION_CHECK_SECONDS), so an apply on one server is served
by every other server within a second (tests/test_scaled_mode.py measures it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ..metadata.registry import Registry
from . import db, metastore, sweeps  # noqa: F401 - sweeps declares mc_sweep_run among the system tables
from .config import Config
from .features import FeatureSet
from .hooks import Hooks
from .security import Directory
from .storage import Tables

log = logging.getLogger(__name__)

# Half a second, not one: a request that arrives just before the next check must still see
# another server's apply within a second (the check is one indexed single-row SELECT).
VERSION_CHECK_SECONDS = 0.5
DIRECTORY_SECONDS = 5.0


@dataclass
class Compiled:
    """Everything derived from one registry version."""

    registry: Registry
    tables: Tables
    schemas: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict)  # for other modules' per-version artefacts


class Tx:
    """A transaction on one connection, with callbacks to run once it has committed."""

    def __init__(self, conn: sa.Connection):
        self.conn = conn
        self._after_commit: list[Callable[[], Any]] = []

    def after_commit(self, fn: Callable[[], Any]) -> None:
        self._after_commit.append(fn)

    def run_after_commit(self) -> None:
        callbacks, self._after_commit = self._after_commit, []
        for fn in callbacks:
            try:
                fn()
            except Exception:  # a side effect must never undo or fail a committed save
                log.exception("after-commit callback failed")


class Runtime:
    def __init__(self, config: Config, engine: sa.Engine | None = None):
        self.config = config
        self.engine = engine or db.make_engine(config.database_url)
        self.hooks = Hooks()
        self._lock = threading.Lock()
        self._compiled: Compiled | None = None
        self._checked_at = 0.0
        self._directory: Directory | None = None
        self._directory_at = 0.0
        self.extensions: dict[str, Any] = {}
        # What each registered feature mounts on the app: REST routes, pages, nav, templates.
        self.features = FeatureSet()
        # Periodic jobs (pool recycle, scheduled triggers, overdue warnings, approval timeouts):
        # (name, fn(runtime) -> summary text). `metacrm sweep` and the timers run them.
        self.sweeps: list[tuple[str, Callable[[Runtime], str]]] = []
        # Called with the new Compiled whenever this process picks up a new metadata version
        # (plugins re-sync their hooks here).
        self.version_listeners: list[Callable[[Compiled], None]] = []

    # --- metadata ------------------------------------------------------------------------

    def compiled(self, force: bool = False) -> Compiled:
        now = time.monotonic()
        current = self._compiled
        if current is not None and not force and now - self._checked_at < VERSION_CHECK_SECONDS:
            return current
        with self.reading() as conn:
            version = metastore.current_version(conn)
            if current is not None and current.registry.version == version:
                self._checked_at = now
                return current
            registry = metastore.load_registry(conn)
        moved = False
        with self._lock:
            if self._compiled is None or self._compiled.registry.version != registry.version:
                self._compiled = Compiled(registry, Tables.of(registry))
                self._directory = None
                moved = True
            self._checked_at = now
            compiled = self._compiled
        if moved:
            for listener in list(self.version_listeners):
                try:
                    listener(compiled)
                except Exception:
                    log.exception("metadata version listener failed")
        return compiled

    def registry(self) -> Registry:
        return self.compiled().registry

    def invalidate(self) -> None:
        self._checked_at = 0.0
        self._directory = None

    # --- users and departments -----------------------------------------------------------

    def directory(self) -> Directory:
        now = time.monotonic()
        if self._directory is not None and now - self._directory_at < DIRECTORY_SECONDS:
            return self._directory
        compiled = self.compiled()
        users_t, depts_t = compiled.tables["user"], compiled.tables["department"]
        directory = Directory()
        with self.reading() as conn:
            for row in conn.execute(
                sa.select(users_t.c.id, users_t.c.roles, users_t.c.department, users_t.c.manager).where(
                    users_t.c.deleted_at.is_(None)
                )
            ):
                roles = row.roles
                if isinstance(roles, str):
                    import json

                    roles = json.loads(roles)
                directory.users[row.id] = {"roles": roles or [], "department": row.department, "manager": row.manager}
            for row in conn.execute(sa.select(depts_t.c.id, depts_t.c.parent).where(depts_t.c.deleted_at.is_(None))):
                directory.departments[row.id] = row.parent
        self._directory, self._directory_at = directory, now
        return directory

    def directory_changed(self) -> None:
        self._directory = None

    # --- transactions --------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A write transaction; after-commit callbacks run only if it committed."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(write=True)
            with conn.begin():
                tx = Tx(conn)
                yield tx
        tx.run_after_commit()

    @contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn
