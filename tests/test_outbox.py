"""The outbox: rows written in the saving transaction, dispatched after commit, claimed once,
retried with backoff, dead-lettered, visible to admins; notifications through it.

The helpers at the top (`installation`, `Installation`) are shared by the workflow,
approval and job tests: one initialised installation per module and backend keeps these
suites fast (each test makes its own records, so tests do not see each other's data).
"""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import sqlalchemy as sa

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform import db, notifications
from metacrm.platform.apply import apply_change
from metacrm.platform.clock import utcnow
from metacrm.platform.config import Config
from metacrm.platform.db import make_engine
from metacrm.platform.outbox import Skip, enqueue, outbox, register_handler
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from metacrm.platform.setup import build_runtime, initialise
from tests.conftest import ADMIN_PASSWORD, PG_URL, make_user, require_pg

# --- shared helpers -----------------------------------------------------------------------


@dataclass
class Installation:
    runtime: object
    app: object
    client: object
    admin_headers: dict
    kind: str
    database_url: str = ""  # what another process (the CLI) connects with
    users: dict = field(default_factory=dict)

    @property
    def admin(self) -> RecordService:
        return RecordService(self.runtime, Principal.system(), source="test")

    def user(self, username: str, roles: list[str], manager: str | None = None):
        """A user (created once per installation) with a token."""
        if username not in self.users:
            self.users[username] = make_user(self.runtime, self.client, username, roles,
                                             manager=manager.id if manager else None)
        return self.users[username]

    def apply(self, documents: list[dict], deletes: list[tuple[str, str]] | None = None):
        result = apply_change(self.runtime, documents_bundle(documents), deletes or [])
        self.runtime.compiled(force=True)
        return result

    def drain(self):
        return outbox(self.runtime).drain()

    def rows(self, **where) -> list:
        o = db.outbox
        query = sa.select(o).order_by(o.c.id)
        for name, value in where.items():
            query = query.where(o.c[name] == value)
        with self.runtime.engine.connect() as conn:
            return conn.execute(query).fetchall()

    def notifications_of(self, user_id: str) -> list:
        n = notifications.notification
        with self.runtime.engine.connect() as conn:
            return conn.execute(sa.select(n).where(n.c.user_id == user_id).order_by(n.c.id)).fetchall()


@contextmanager
def installation(kind: str, tmp_dir, documents: list[dict] | None = None):
    """An initialised database + runtime + Flask test client on `kind` ("sqlite" | "postgresql")."""
    admin_engine, schema = None, None
    if kind == "sqlite":
        database_url = f"sqlite:///{tmp_dir / 'test.db'}"
        engine = make_engine(database_url)
    else:
        require_pg()
        schema = f"t_{uuid.uuid4().hex[:12]}"
        admin_engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin_engine.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        engine = make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
        database_url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    runtime = None
    try:
        config = Config(database_url=str(engine.url), secret_key="test-secret", testing=True)
        runtime = build_runtime(config, engine)
        initialise(runtime, ADMIN_PASSWORD)
        if documents:
            apply_change(runtime, documents_bundle(documents))
            runtime.compiled(force=True)
        from metacrm.platform.app import create_app

        app = create_app(config, runtime)
        app.config["TESTING"] = True
        client = app.test_client()
        token = client.post("/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD})
        yield Installation(runtime, app, client, {"Authorization": f"Bearer {token.get_json()['token']}"}, kind,
                           database_url)
    finally:
        if runtime is not None:
            outbox(runtime).stop()
        engine.dispose()
        if admin_engine is not None:
            with admin_engine.connect() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin_engine.dispose()


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


# --- this module's installation -------------------------------------------------------------

CALLS: list[tuple[str, dict]] = []
FAILING: dict[str, int] = {}  # topic -> how many more calls fail


def _recording_handler(runtime, payload):
    topic = payload.get("_topic", "test_record")
    CALLS.append((topic, payload))
    remaining = FAILING.get(payload["_key"], 0)
    if remaining:
        FAILING[payload["_key"]] = remaining - 1
        raise RuntimeError("endpoint unavailable")


def _skipping_handler(runtime, payload):
    raise Skip("nothing to do here")


register_handler("test_record", _recording_handler)
register_handler("test_skip", _skipping_handler)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def inst(request, tmp_path_factory):
    with installation(request.param, tmp_path_factory.mktemp(request.param)) as env:
        yield env


@pytest.fixture(autouse=True)
def _clean(inst):
    CALLS.clear()
    FAILING.clear()
    box = outbox(inst.runtime)
    box.max_attempts, box.backoff_base, box.lease_seconds = 3, 0.0, 120.0
    box.drain()  # nothing left over from another test
    CALLS.clear()
    yield


def calls_for(key: str) -> list[dict]:
    return [payload for _, payload in CALLS if payload["_key"] == key]


# --- tests ----------------------------------------------------------------------------------


def test_row_is_dispatched_after_commit_once_per_key(inst):
    key = f"k-{uuid.uuid4().hex}"
    with inst.runtime.transaction() as tx:
        assert enqueue(tx, "test_record", {"n": 1}, key=key, runtime=inst.runtime) is True
        assert enqueue(tx, "test_record", {"n": 2}, key=key, runtime=inst.runtime) is False
    rows = inst.rows(key=key)
    assert [(r.status, r.payload) for r in rows] == [("pending", {"n": 1})]
    result = inst.drain()
    assert result.done == 1
    assert [p["n"] for p in calls_for(key)] == [1]
    row = inst.rows(key=key)[0]
    assert row.status == "done" and row.attempts == 1 and row.done_at is not None
    inst.drain()
    assert len(calls_for(key)) == 1  # done rows are never run again


def test_rolled_back_transaction_sends_nothing(inst):
    key = f"k-{uuid.uuid4().hex}"
    with pytest.raises(RuntimeError), inst.runtime.transaction() as tx:
        enqueue(tx, "test_record", {"n": 1}, key=key, runtime=inst.runtime)
        raise RuntimeError("the save fails after the row was written")
    assert inst.rows(key=key) == []
    inst.drain()
    assert calls_for(key) == []


def test_failures_back_off_then_dead_letter_and_admin_retry(inst):
    box = outbox(inst.runtime)
    box.backoff_base = 30.0
    key = f"k-{uuid.uuid4().hex}"
    FAILING[key] = 10
    with inst.runtime.transaction() as tx:
        enqueue(tx, "test_record", {"n": 1}, key=key, runtime=inst.runtime)
    before = utcnow()
    assert inst.drain().failed == 1
    row = inst.rows(key=key)[0]
    assert row.status == "pending" and row.attempts == 1 and "endpoint unavailable" in row.last_error
    assert row.next_attempt_at >= before + timedelta(seconds=29)  # backoff: not due yet
    assert inst.drain().claimed == 0
    box.backoff_base = 0.0
    _make_due(inst, row.id)
    inst.drain()
    second = inst.rows(key=key)[0]
    assert second.status == "pending" and second.attempts == 2
    _make_due(inst, row.id)
    assert inst.drain().dead == 1
    dead = inst.rows(key=key)[0]
    assert dead.status == "dead" and dead.attempts == 3
    assert len(calls_for(key)) == 3

    listed = inst.client.get("/api/v1/admin/outbox?status=dead", headers=inst.admin_headers)
    assert listed.status_code == 200
    assert any(item["id"] == dead.id and item["key"] == key for item in listed.get_json()["items"])
    rep = inst.user("outbox_rep", ["sales_rep"])
    assert inst.client.get("/api/v1/admin/outbox?status=dead", headers=rep.headers).status_code == 403
    assert inst.client.post(f"/api/v1/admin/outbox/{dead.id}/retry", headers=rep.headers).status_code == 403

    FAILING[key] = 0
    retried = inst.client.post(f"/api/v1/admin/outbox/{dead.id}/retry", headers=inst.admin_headers)
    assert retried.status_code == 200 and retried.get_json()["status"] == "pending"
    assert inst.drain().done == 1
    assert inst.rows(key=key)[0].status == "done"
    again = inst.client.post(f"/api/v1/admin/outbox/{dead.id}/retry", headers=inst.admin_headers)
    assert again.status_code == 409


def _make_due(inst, row_id):
    with inst.runtime.transaction() as tx:
        tx.conn.execute(db.outbox.update().where(db.outbox.c.id == row_id)
                        .values(next_attempt_at=utcnow() - timedelta(seconds=1)))


def test_worker_killed_mid_batch_reruns_after_lease_without_duplicate_effect(inst):
    box = outbox(inst.runtime)
    key = f"k-{uuid.uuid4().hex}"
    user = inst.user("outbox_reader", ["sales_rep"])
    with inst.runtime.transaction() as tx:
        enqueue(tx, "notify", {"users": [user.id], "body": "hello once"}, key=key, runtime=inst.runtime)
    claimed = box.claim()
    assert [item.key for item in claimed] == [key]
    from metacrm.platform.notifications import handle_notify

    handle_notify(inst.runtime, claimed)  # ...after the effect had already happened once
    assert box.claim() == []  # leased: no one else takes it
    _make_due(inst, claimed[0].id)  # the lease expires
    result = inst.drain()
    assert result.done == 1
    row = inst.rows(key=key)[0]
    assert row.status == "done" and row.attempts == 2
    bodies = [n.body for n in inst.notifications_of(user.id) if n.body == "hello once"]
    assert bodies == ["hello once"]  # idempotent with the row's key


def test_skipped_effect_is_recorded_not_retried(inst):
    key = f"k-{uuid.uuid4().hex}"
    with inst.runtime.transaction() as tx:
        enqueue(tx, "test_skip", {}, key=key, runtime=inst.runtime)
        enqueue(tx, "email", {"users": [], "to": ["x@example.com"], "body": "b"}, key=key + "e",
                runtime=inst.runtime)
    result = inst.drain()
    assert result.skipped == 2
    rows = {r.key: r for r in inst.rows()}
    assert rows[key].status == "skipped" and "nothing to do" in rows[key].last_error
    assert rows[key + "e"].status == "skipped" and "SMTP" in rows[key + "e"].last_error


def test_concurrent_claims_never_share_a_row(inst):
    keys = [f"k-{uuid.uuid4().hex}" for _ in range(60)]
    with inst.runtime.transaction() as tx:
        for key in keys:
            enqueue(tx, "test_record", {}, key=key, runtime=inst.runtime)
    box = outbox(inst.runtime)
    box.batch_size = 7
    got: list[list] = [[], [], []]
    barrier = threading.Barrier(3)

    def claimer(slot):
        barrier.wait()
        while True:
            items = box.claim()
            if not items:
                return
            got[slot].extend(item.key for item in items)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(3)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        box.batch_size = 200
    everything = got[0] + got[1] + got[2]
    assert sorted(everything) == sorted(keys)  # each row claimed by exactly one claimer
    with inst.runtime.transaction() as tx:
        tx.conn.execute(db.outbox.update().where(db.outbox.c.key.in_(keys)).values(status="done"))


def test_embedded_thread_dispatches_after_commit(inst):
    box = outbox(inst.runtime)
    key = f"k-{uuid.uuid4().hex}"
    box.start()
    try:
        with inst.runtime.transaction() as tx:
            enqueue(tx, "test_record", {"n": 7}, key=key, runtime=inst.runtime)
            time.sleep(0.2)
            assert calls_for(key) == []  # nothing leaves before the commit
        assert wait_for(lambda: calls_for(key))
        assert wait_for(lambda: inst.rows(key=key)[0].status == "done")
    finally:
        box.stop()
        box.embedded_thread = False


def test_notifications_api_lists_unread_and_marks_read(inst):
    alice = inst.user("outbox_alice", ["sales_rep"])
    bob = inst.user("outbox_bob", ["sales_rep"])
    with inst.runtime.transaction() as tx:
        for i in range(3):
            enqueue(tx, "notify", {"users": [alice.id], "subject": f"s{i}", "body": f"b{i}", "object": "lead",
                                   "record_id": "r1"}, key=f"api-{uuid.uuid4().hex}", runtime=inst.runtime)
    assert inst.client.get("/api/v1/notifications", headers=alice.headers).get_json()["unread"] == 0
    inst.drain()
    body = inst.client.get("/api/v1/notifications", headers=alice.headers).get_json()
    assert body["unread"] == 3
    assert [item["body"] for item in body["items"]] == ["b2", "b1", "b0"]
    first = body["items"][0]["id"]
    assert inst.client.post(f"/api/v1/notifications/{first}/read", headers=bob.headers).status_code == 404
    marked = inst.client.post(f"/api/v1/notifications/{first}/read", headers=alice.headers)
    assert marked.status_code == 200 and marked.get_json()["unread"] == 2
    unread = inst.client.get("/api/v1/notifications?unread=1", headers=alice.headers).get_json()
    assert {item["body"] for item in unread["items"]} == {"b0", "b1"}
    assert inst.client.get("/api/v1/notifications", headers=bob.headers).get_json() == {"items": [], "unread": 0}
    assert inst.client.post("/api/v1/notifications/read_all", headers=alice.headers).status_code == 200
    assert inst.client.get("/api/v1/notifications", headers=alice.headers).get_json()["unread"] == 0


class SmtpSink:
    """Just enough SMTP on 127.0.0.1 for smtplib to hand over one message per session."""

    def __init__(self):
        import socketserver

        sink = self
        self.messages: list[str] = []

        class Session(socketserver.StreamRequestHandler):
            def handle(self):
                self.wfile.write(b"220 sink ready\r\n")
                while line := self.rfile.readline():
                    verb = line.decode().strip().upper()
                    if verb.startswith("DATA"):
                        self.wfile.write(b"354 go on\r\n")
                        data = []
                        while (part := self.rfile.readline()) not in (b".\r\n", b""):
                            data.append(part.decode())
                        sink.messages.append("".join(data))
                        self.wfile.write(b"250 queued\r\n")
                    elif verb.startswith("QUIT"):
                        self.wfile.write(b"221 bye\r\n")
                        return
                    else:
                        self.wfile.write(b"250 ok\r\n")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Session)
        self.url = f"smtp://127.0.0.1:{self.server.server_address[1]}?from=crm@example.com"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_email_goes_through_smtp_when_configured(inst):
    sink = SmtpSink()
    key = f"mail-{uuid.uuid4().hex}"
    inst.runtime.config.smtp_url = sink.url
    try:
        with inst.runtime.transaction() as tx:
            enqueue(tx, "email", {"to": ["alice@example.com"], "subject": "Quote approved", "body": "Q-1 is ok"},
                    key=key, runtime=inst.runtime)
        assert inst.drain().done == 1
    finally:
        inst.runtime.config.smtp_url = None
        sink.close()
    assert len(sink.messages) == 1
    message = sink.messages[0]
    assert "Subject: Quote approved" in message and "To: alice@example.com" in message and "Q-1 is ok" in message
    assert inst.rows(key=key)[0].status == "done"
