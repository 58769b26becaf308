"""The outbox: side effects (notifications, email, webhooks, plugin jobs) written as rows of
`mc_outbox` in the saving transaction and dispatched after commit.

Why a table and not a queue: a rolled-back save must send nothing and a Redis outage must
lose nothing, so the row is the truth and Redis only says "there is work".

- `enqueue(conn_or_tx, topic, payload, key)` inserts a row; the same key twice is one row.
- After commit the transaction kicks the dispatcher: embedded mode (no METACRM_REDIS_URL)
  wakes a background thread in this process; with Redis, one rq job is queued (at most one
  waiting at a time), and that job drains the pending rows in batches. Periodic ticks
  (`metacrm worker`, `metacrm sweep`) pick up whatever a lost kick left behind.
- A batch is claimed with one conditional UPDATE (pending, or running with an expired
  lease -> running, lease until now + lease_seconds; attempts + 1), so two workers never
  run the same row. Success -> done; failure -> pending again with exponential backoff;
  after `max_attempts` -> dead (listed for admins, retryable). A handler may raise `Skip`
  (e.g. no SMTP configured): the row ends `skipped` with the reason.
- Handlers must be idempotent with the row's key (it reaches them as payload["_key"]):
  a worker killed mid-job leaves the row running until its lease expires, then it runs again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from . import db
from .clock import utcnow

log = logging.getLogger("metacrm.outbox")

PENDING, RUNNING, DONE, DEAD, SKIPPED = "pending", "running", "done", "dead", "skipped"
STATUSES = (PENDING, RUNNING, DONE, DEAD, SKIPPED)


class Skip(Exception):
    """Raised by a handler when the effect deliberately does not happen (recorded, not retried)."""


@dataclass
class Handler:
    topic: str
    fn: Callable[..., Any]
    batch: bool = False  # batch handlers get (runtime, [Item]) and return {item.id: error | None}


@dataclass
class Item:
    """One claimed outbox row, as a handler sees it."""

    id: int
    key: str
    topic: str
    payload: dict
    attempts: int


@dataclass
class DrainResult:
    claimed: int = 0
    done: int = 0
    failed: int = 0
    dead: int = 0
    skipped: int = 0
    errors: list = field(default_factory=list)

    def add(self, other: DrainResult) -> None:
        for name in ("claimed", "done", "failed", "dead", "skipped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.extend(other.errors)

    def __str__(self) -> str:
        return (f"{self.claimed} claimed, {self.done} done, {self.skipped} skipped, "
                f"{self.failed} to retry, {self.dead} dead")


_HANDLERS: dict[str, Handler] = {}


def register_handler(topic: str, fn: Callable[..., Any], *, batch: bool = False) -> None:
    """fn(runtime, payload) for one row (payload carries "_key", "_id", "_attempt"), or with
    batch=True fn(runtime, items) -> {item.id: None | Exception | Skip} for a batch."""
    _HANDLERS[topic] = Handler(topic, fn, batch)


def handlers() -> dict[str, Handler]:
    return dict(_HANDLERS)


# --- writing ------------------------------------------------------------------------------

_BY_ENGINE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


_INSERTS: dict[str, Any] = {}


def _insert_statement(conn: sa.Connection):
    """INSERT ... ON CONFLICT (key) DO NOTHING RETURNING id, built once: the values travel as
    parameters, so SQLAlchemy's statement cache is hit instead of keyed on every payload."""
    dialect = conn.dialect.name
    stmt = _INSERTS.get(dialect)
    if stmt is None:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(db.outbox).on_conflict_do_nothing(index_elements=["key"]).returning(db.outbox.c.id)
        _INSERTS[dialect] = stmt
    return stmt


def enqueue(conn: Any, topic: str, payload: dict, key: str | None = None, *, runtime: Any = None,
            delay_seconds: float | None = None) -> bool:
    """Write one outbox row in the caller's transaction; True if it was new.

    `conn` is a `Tx` (then the dispatcher is kicked after its commit) or a Connection
    (then the next drain picks the row up). A second row with the same key is a no-op.
    """
    tx = conn if hasattr(conn, "after_commit") else None
    connection: sa.Connection = tx.conn if tx is not None else conn
    now = utcnow()
    key = key or f"{topic}:{uuid.uuid4().hex}"
    values = {"key": key, "topic": topic, "payload": payload, "created_at": now, "status": PENDING, "attempts": 0,
              "next_attempt_at": now + timedelta(seconds=delay_seconds) if delay_seconds else None,
              "last_error": None, "done_at": None}
    # rowcount is unreliable with RETURNING; a returned id means the row is new
    inserted = connection.execute(_insert_statement(connection), values).first() is not None
    if inserted and tx is not None:
        box = outbox(runtime) if runtime is not None else _BY_ENGINE.get(connection.engine)
        if box is not None and not getattr(tx, "_outbox_kick", False):
            tx._outbox_kick = True  # one kick per transaction, however many rows
            tx.after_commit(box.kick)
    return inserted


# --- dispatching --------------------------------------------------------------------------


def backoff_seconds(attempts: int, base: float, cap: float = 3600.0) -> float:
    return min(cap, base * (2 ** max(attempts - 1, 0)))


class Outbox:
    """The dispatcher of one runtime (one per process per database)."""

    def __init__(self, runtime: Any):
        self.runtime = runtime
        self.redis_url: str | None = runtime.config.redis_url
        self.queue_name = os.environ.get("METACRM_RQ_QUEUE", "metacrm")
        self.batch_size = 200
        # > the slowest batch (200 webhooks, 8 at a time, 10 s timeouts): a row whose worker died
        # mid-batch runs again once its lease is over
        self.lease_seconds = float(os.environ.get("METACRM_OUTBOX_LEASE_SECONDS", "300"))
        self.max_attempts = int(os.environ.get("METACRM_OUTBOX_MAX_ATTEMPTS", "8"))
        self.backoff_base = float(os.environ.get("METACRM_OUTBOX_BACKOFF", "5"))
        self.stale_seconds = 5.0  # a pending row older than this was missed by its kick
        self.poll_seconds = 1.0
        self.embedded_thread = not getattr(runtime.config, "testing", False)
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._redis = None
        self._queue = None

    # --- configuration --------------------------------------------------------------------

    def use_redis(self, url: str | None, queue_name: str | None = None) -> None:
        self.redis_url = url
        if queue_name:
            self.queue_name = queue_name
        self._redis = self._queue = None

    @property
    def kick_key(self) -> str:
        return f"metacrm:{self.queue_name}:kick"

    def redis(self):
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(self.redis_url, socket_connect_timeout=1.0, socket_timeout=2.0)
        return self._redis

    def queue(self):
        if self._queue is None:
            from rq import Queue

            self._queue = Queue(self.queue_name, connection=self.redis())
        return self._queue

    # --- kicking --------------------------------------------------------------------------

    def kick(self) -> None:
        """There may be new rows: wake the embedded thread, or queue one rq drain job."""
        if self.redis_url:
            try:
                if self.redis().set(self.kick_key, "1", nx=True, px=5000):
                    self.queue().enqueue(rq_drain, self.queue_name, job_timeout=600, result_ttl=0,
                                         failure_ttl=3600)
            except Exception as exc:  # noqa: BLE001 - Redis down: the rows wait in the table for the next tick
                log.warning("cannot reach Redis to dispatch the outbox (%s); rows stay pending", exc)
            return
        if not self.embedded_thread:
            return
        self._ensure_thread()
        self._wake.set()

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="metacrm-outbox", daemon=True)
            self._thread.start()

    def start(self) -> None:
        """Start the embedded dispatcher thread (also started by the first kick)."""
        self.embedded_thread = True
        self._ensure_thread()
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.drain(max_seconds=30)
            except Exception:
                log.exception("outbox dispatch failed")
                self._stop.wait(self.poll_seconds)

    # --- claiming and running -------------------------------------------------------------

    def _due(self, now):
        o = db.outbox
        return sa.or_(
            sa.and_(o.c.status == PENDING, sa.or_(o.c.next_attempt_at.is_(None), o.c.next_attempt_at <= now)),
            sa.and_(o.c.status == RUNNING, o.c.next_attempt_at <= now),
        )

    def claim(self, limit: int | None = None, topics: list[str] | None = None) -> list[Item]:
        """Claim up to `limit` due rows for this process: one conditional UPDATE."""
        o = db.outbox
        now = utcnow()
        with self.runtime.transaction() as tx:
            chosen = sa.select(o.c.id).where(self._due(now)).order_by(o.c.id).limit(limit or self.batch_size)
            if topics:
                chosen = chosen.where(o.c.topic.in_(topics))
            if tx.conn.dialect.name == "postgresql":
                chosen = chosen.with_for_update(skip_locked=True)
            stmt = (
                o.update()
                .where(o.c.id.in_(chosen.scalar_subquery()), self._due(now))
                .values(status=RUNNING, attempts=o.c.attempts + 1,
                        next_attempt_at=now + timedelta(seconds=self.lease_seconds))
                .returning(o.c.id, o.c.key, o.c.topic, o.c.payload, o.c.attempts)
            )
            rows = tx.conn.execute(stmt).fetchall()
        items = [Item(r.id, r.key, r.topic, r.payload or {}, r.attempts) for r in rows]
        items.sort(key=lambda item: item.id)
        return items

    def run_items(self, items: list[Item]) -> DrainResult:
        """Run the handlers of claimed rows and record each outcome."""
        result = DrainResult(claimed=len(items))
        outcomes: dict[int, BaseException | None] = {}
        by_topic: dict[str, list[Item]] = {}
        for item in items:
            by_topic.setdefault(item.topic, []).append(item)
        for topic, group in by_topic.items():
            handler = _HANDLERS.get(topic)
            if handler is None:
                for item in group:
                    outcomes[item.id] = LookupError(f"no handler for topic {topic!r}")
                continue
            if handler.batch:
                try:
                    answers = handler.fn(self.runtime, group) or {}
                except Exception as exc:  # the whole batch failed: each row is retried
                    log.exception("outbox batch handler %s failed", topic)
                    answers = {item.id: exc for item in group}
                for item in group:
                    outcomes[item.id] = answers.get(item.id)
                continue
            for item in group:
                payload = dict(item.payload, _key=item.key, _id=item.id, _attempt=item.attempts)
                try:
                    handler.fn(self.runtime, payload)
                    outcomes[item.id] = None
                except Exception as exc:  # noqa: BLE001 - any failure is recorded on the row and retried
                    outcomes[item.id] = exc
        self._record(items, outcomes, result)
        return result

    def _record(self, items: list[Item], outcomes: dict, result: DrainResult) -> None:
        o = db.outbox
        now = utcnow()
        done_ids = [i.id for i in items if outcomes.get(i.id) is None]
        with self.runtime.transaction() as tx:
            if done_ids:
                tx.conn.execute(o.update().where(o.c.id.in_(done_ids), o.c.status == RUNNING)
                                .values(status=DONE, done_at=now, last_error=None))
                result.done += len(done_ids)
            for item in items:
                exc = outcomes.get(item.id)
                if exc is None:
                    continue
                message = f"{type(exc).__name__}: {exc}"[:2000]
                if isinstance(exc, Skip):
                    values = {"status": SKIPPED, "done_at": now, "last_error": f"skipped: {exc}"[:2000]}
                    result.skipped += 1
                elif item.attempts >= self.max_attempts:
                    values = {"status": DEAD, "done_at": now, "last_error": message}
                    result.dead += 1
                    log.error("outbox row %s (%s, key %s) is dead after %d attempts: %s",
                              item.id, item.topic, item.key, item.attempts, message)
                else:
                    delay = backoff_seconds(item.attempts, self.backoff_base)
                    values = {"status": PENDING, "last_error": message,
                                  "next_attempt_at": now + timedelta(seconds=delay)}
                    result.failed += 1
                    log.warning("outbox row %s (%s) failed (attempt %d), retry in %.0fs: %s",
                                item.id, item.topic, item.attempts, delay, message)
                result.errors.append((item.id, message))
                tx.conn.execute(o.update().where(o.c.id == item.id, o.c.status == RUNNING).values(**values))

    def drain(self, max_seconds: float | None = None, max_batches: int | None = None) -> DrainResult:
        """Claim and run due rows until none are left (or the time / batch budget is spent)."""
        total = DrainResult()
        started = time.monotonic()
        batches = 0
        while True:
            items = self.claim()
            if not items:
                break
            total.add(self.run_items(items))
            batches += 1
            if len(items) < self.batch_size:
                break
            if max_batches is not None and batches >= max_batches:
                break
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                self.kick()  # let another worker (or the next job) continue
                break
        return total

    def stale_work(self) -> bool:
        """Are there due rows that a kick should already have dispatched?"""
        o = db.outbox
        now = utcnow()
        cutoff = now - timedelta(seconds=self.stale_seconds)
        query = sa.select(o.c.id).where(
            sa.or_(
                sa.and_(o.c.status == PENDING, o.c.created_at <= cutoff,
                        sa.or_(o.c.next_attempt_at.is_(None), o.c.next_attempt_at <= now)),
                sa.and_(o.c.status == RUNNING, o.c.next_attempt_at <= now),
            )
        ).limit(1)
        with self.runtime.reading() as conn:
            return conn.execute(query).first() is not None

    def tick(self) -> str:
        """The periodic check: dispatch what a lost kick (or Redis outage) left pending."""
        if self.redis_url:
            if not self.stale_work():
                return "nothing pending"
            try:
                self.redis().delete(self.kick_key)
            except Exception as exc:  # noqa: BLE001 - reported; the rows keep waiting in the table
                return f"Redis unreachable ({exc}); pending rows wait"
            self.kick()
            return "re-queued pending rows"
        return str(self.drain(max_seconds=60))

    # --- admin ----------------------------------------------------------------------------

    def retry(self, row_id: int) -> bool:
        o = db.outbox
        with self.runtime.transaction() as tx:
            changed = tx.conn.execute(
                o.update().where(o.c.id == row_id, o.c.status.in_([DEAD, SKIPPED]))
                .values(status=PENDING, attempts=0, next_attempt_at=None, done_at=None)
            ).rowcount == 1
            if changed:
                tx.after_commit(self.kick)
        return changed

    def list(self, status: str | None = None, topic: str | None = None, limit: int = 50,
             before: int | None = None) -> list[dict]:
        o = db.outbox
        query = sa.select(o).order_by(o.c.id.desc()).limit(limit)
        if status:
            query = query.where(o.c.status == status)
        if topic:
            query = query.where(o.c.topic == topic)
        if before:
            query = query.where(o.c.id < before)
        with self.runtime.reading() as conn:
            rows = conn.execute(query).fetchall()
        return [row_json(row) for row in rows]


def row_json(row: Any) -> dict:
    def iso(value):
        return value.isoformat() + "Z" if value is not None else None

    return {
        "id": row.id, "key": row.key, "topic": row.topic, "status": row.status, "attempts": row.attempts,
        "payload": row.payload, "created_at": iso(row.created_at), "next_attempt_at": iso(row.next_attempt_at),
        "done_at": iso(row.done_at), "last_error": row.last_error,
    }


def outbox(runtime: Any) -> Outbox:
    box = runtime.extensions.get("outbox")
    if box is None:
        box = runtime.extensions.setdefault("outbox", Outbox(runtime))
        _BY_ENGINE[runtime.engine] = box
    return box


def register(runtime: Any) -> None:
    """Attach the dispatcher and its periodic check (`metacrm sweep`, the embedded timer)."""
    box = outbox(runtime)
    _BY_ENGINE[runtime.engine] = box
    if not any(name == "outbox" for name, _ in runtime.sweeps):
        runtime.sweeps.append(("outbox", lambda rt: outbox(rt).tick()))


# --- rq entry points (run inside `metacrm worker`) ----------------------------------------

_WORKER_RUNTIMES: dict[str, Any] = {}


def set_worker_runtime(runtime: Any, queue_name: str | None = None) -> None:
    """The runtime rq jobs of this process use (jobs cannot carry one)."""
    _WORKER_RUNTIMES[queue_name or outbox(runtime).queue_name] = runtime


def worker_runtime(queue_name: str) -> Any:
    runtime = _WORKER_RUNTIMES.get(queue_name)
    if runtime is None:
        from .config import Config
        from .setup import build_runtime

        runtime = build_runtime(Config.from_env())
        outbox(runtime).queue_name = queue_name
        _WORKER_RUNTIMES[queue_name] = runtime
    return runtime


def rq_drain(queue_name: str) -> str:
    """One rq job: drain pending rows in batches (never one job per row)."""
    runtime = worker_runtime(queue_name)
    box = outbox(runtime)
    try:
        box.redis().delete(box.kick_key)  # commits from now on queue the next job
    except Exception:
        log.warning("cannot clear the outbox kick marker", exc_info=True)
    return str(box.drain(max_seconds=20))


def rq_tick(queue_name: str) -> str:
    """The periodic job: re-dispatch stale rows and run the sweeps (once per period across all
    workers, by the period lease in sweeps.py)."""
    from .sweeps import run_periodic

    runtime = worker_runtime(queue_name)
    box = outbox(runtime)
    lines = [f"outbox: {box.drain(max_seconds=20)}"]
    lines.extend(run_periodic(runtime, skip=("outbox",)) or [])  # the drain above is the outbox's tick
    return "; ".join(lines)
