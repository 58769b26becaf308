"""Faults: Redis stopped while records are saved, a worker killed while a webhook is in flight,
the database restarted under load, a metadata apply interrupted half-way.

The shared PostgreSQL and Redis are never stopped: the tests that kill a service start their
own private instance (redis-server on a free port without persistence; a throw-away
PostgreSQL cluster made by initdb in a temporary directory, on a free port). As root,
PostgreSQL's tools refuse to run, so they run as the `postgres` OS user via `runuser`.
Missing binaries skip those cases, or fail them when CI is set (as conftest does for the
shared services).

What the outbox guarantees (and these tests pin down): a save that commits has its outbox
rows committed with it, whatever Redis does; every row is dispatched until it is done,
at least once; a worker that dies mid-batch leaves its rows leased until the lease ends,
then another worker runs them again with the same Idempotency-Key (the outbox key) and
X-Metacrm-Delivery (the row id). So delivery is at-least-once and the effect is
exactly-once for a receiver that drops a key it has already applied.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform import db, metastore
from metacrm.platform.apply import apply_change
from metacrm.platform.config import Config
from metacrm.platform.db import make_engine
from metacrm.platform.outbox import outbox, set_worker_runtime
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from metacrm.platform.setup import build_runtime, initialise
from metacrm.workflow import webhooks
from tests.conftest import ADMIN_PASSWORD, PG_URL, free_port, require_pg
from tests.test_dedup import fast_hash
from tests.test_outbox import wait_for

METACRM = str(Path(sys.executable).parent / "metacrm")


# --- private services -------------------------------------------------------------------------


def need(binary: str | None, what: str) -> str:
    if binary and os.path.exists(binary):
        return binary
    message = f"{what} is not installed: cannot start a private instance to break"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class PrivateRedis:
    """A redis-server of this test module only (no persistence): killing it is harmless."""

    def __init__(self):
        self.binary = need(shutil.which("redis-server"), "redis-server")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="mc-redis-")
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)

        def up():
            try:
                return client.ping()
            except Exception:  # noqa: BLE001 - not yet
                return False
        assert wait_for(up, timeout=15, interval=0.05), "private redis-server did not start"

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()  # SIGKILL: no goodbye to the clients
            self.process.wait(15)
            self.process = None

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (initdb + pg_ctl) on a free port, trust auth."""

    def __init__(self):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
        self.bin = Path(need(bins[-1] if bins else None, "PostgreSQL server (initdb, pg_ctl)"))
        self.as_user = []
        self.dir = Path(tempfile.mkdtemp(prefix="mc-pg-"))
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            need(shutil.which("runuser"), "runuser (to run PostgreSQL as the postgres user)")
            shutil.chown(self.dir, user="postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8",
                  "--locale=C")

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        subprocess.run([*self.as_user, str(self.bin / tool), *args], check=True, timeout=timeout,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   f"-c synchronous_commit=off -c full_page_writes=off")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "-t", "60",
                  "start", timeout=90)

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", timeout=90)

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class Receiver:
    """A webhook endpoint on 127.0.0.1 that applies each Idempotency-Key once (as a receiver
    should), counts every delivery, and can hold requests open until released."""

    def __init__(self):
        self.deliveries: Counter = Counter()  # key -> POSTs received
        self.applied: Counter = Counter()  # key -> times the effect was applied (must stay <= 1)
        self.delivery_ids: dict[str, set] = {}
        self.hold = threading.Event()  # set: requests wait for `release` before answering
        self.release = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers["Idempotency-Key"]
                with receiver.lock:
                    receiver.deliveries[key] += 1
                    receiver.delivery_ids.setdefault(key, set()).add(self.headers["X-Metacrm-Delivery"])
                    if not receiver.applied[key]:
                        receiver.applied[key] += 1
                if receiver.hold.is_set():
                    receiver.release.wait(60)
                try:
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:  # the caller is gone (killed)
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self):
        with self.lock:
            self.deliveries.clear()
            self.applied.clear()
            self.delivery_ids.clear()
        self.hold.clear()
        self.release.clear()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


# --- the installation for the outbox faults --------------------------------------------------


def hook_docs(url: str) -> list[dict]:
    return [
        {"kind": "object", "name": "fx_deal", "name_field": "name", "fields": [
            {"name": "name", "type": "text", "required": True}]},
        {"kind": "workflow_rule", "name": "fx_hook", "object": "fx_deal", "trigger": {"on": "create"},
         "actions": [{"action": "webhook", "url": url}]},
    ]


@pytest.fixture(scope="module")
def redis_server():
    server = PrivateRedis()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def receiver():
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


@dataclass
class Lean:
    """A database with the system metadata only (no lead-to-cash defaults: applies stay quick)."""

    runtime: object
    database_url: str  # what another process (the CLI, a worker) connects with

    def apply(self, documents: list[dict]):
        result = apply_change(self.runtime, documents_bundle(documents))
        self.runtime.compiled(force=True)
        return result

    def rows(self, **where) -> list:
        query = sa.select(db.outbox).order_by(db.outbox.c.id)
        for name, value in where.items():
            query = query.where(db.outbox.c[name] == value)
        with self.runtime.engine.connect() as conn:
            return conn.execute(query).fetchall()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def inst(request, tmp_path_factory, receiver):
    schema = None
    if request.param == "sqlite":
        database_url = f"sqlite:///{tmp_path_factory.mktemp('faults') / 'test.db'}"
        engine = make_engine(database_url)
    else:
        require_pg()
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool).connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        engine = make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
        database_url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    runtime = None
    try:
        runtime = build_runtime(Config(database_url=database_url, secret_key="test-secret", testing=True), engine)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("metacrm.platform.records.hash_password", fast_hash)
            initialise(runtime, ADMIN_PASSWORD, with_defaults=False)
        env = Lean(runtime, database_url)
        env.apply(hook_docs(receiver.url))
        yield env
    finally:
        if runtime is not None:
            outbox(runtime).stop()
        engine.dispose()
        if schema:
            with sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool).connect() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def queue_name(inst, redis_server, receiver):
    """This test's own queue on the private Redis, used by the saving runtime's dispatcher."""
    receiver.reset()
    if redis_server.process is None:
        redis_server.start()
    name = f"mcfault-{uuid.uuid4().hex[:8]}"
    box = outbox(inst.runtime)
    box.use_redis(redis_server.url, name)
    set_worker_runtime(inst.runtime, name)
    yield name
    box.use_redis(None)


class Worker:
    """`metacrm worker` in a subprocess (an rq SimpleWorker + the periodic tick)."""

    def __init__(self, inst, redis_url: str, queue: str, tmp_path: Path, *extra: str, **env: str):
        self.log = tmp_path / f"worker-{uuid.uuid4().hex[:6]}.log"
        environment = dict(os.environ, METACRM_DATABASE_URL=inst.database_url, METACRM_REDIS_URL=redis_url,
                           METACRM_SECRET_KEY="test-secret", **env)
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen([METACRM, "worker", "--queue", queue, "--interval", "1", *extra],
                                            env=environment, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def rows_for(inst, record_ids: list[str]) -> list:
    rows = [r for r in inst.rows(topic="webhook") if r.payload.get("record_id") in set(record_ids)]
    return rows


def create_deals(inst, count: int, tag: str) -> list[str]:
    svc = RecordService(inst.runtime, Principal.system(), source="test")
    return [svc.create("fx_deal", {"name": f"{tag} {n}"})["id"] for n in range(count)]


# --- Redis stopped during saves --------------------------------------------------------------


def test_redis_killed_during_saves_loses_nothing_and_delivers_once(inst, redis_server, receiver, queue_name,
                                                                   tmp_path):
    """4 threads save 10 records each (each save fires a webhook rule) while Redis is killed
    after the first saves and started again later; a `metacrm worker` runs throughout."""
    worker = Worker(inst, redis_server.url, queue_name, tmp_path)
    try:
        saved: list[str] = []
        slow: list[float] = []
        lock = threading.Lock()
        redis_down = threading.Event()
        barrier = threading.Barrier(4)
        errors: list[BaseException] = []

        def saver(n: int):
            svc = RecordService(inst.runtime, Principal.system(), source="test")
            try:
                barrier.wait(30)
                for i in range(10):
                    if i == 3:
                        assert redis_down.wait(30)
                    started = time.monotonic()
                    record = svc.create("fx_deal", {"name": f"outage {n}.{i}"})
                    with lock:
                        saved.append(record["id"])
                        slow.append(time.monotonic() - started)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=saver, args=(n,), daemon=True) for n in range(4)]
        for thread in threads:
            thread.start()
        assert wait_for(lambda: len(saved) >= 8, timeout=30)
        redis_server.kill()  # mid-run: the other saves kick a Redis that is gone
        redis_down.set()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        assert len(saved) == 40  # every save committed although Redis was down for most of them
        assert max(slow) < 5  # and none hung on the dead Redis
        assert len(rows_for(inst, saved)) == 40  # one outbox row per save, all kept
        redis_server.start()  # empty: the queued jobs and kick markers died with it
        done = wait_for(lambda: all(r.status == "done" for r in rows_for(inst, saved)), timeout=60, interval=0.2)
        assert done, ([r.status for r in rows_for(inst, saved)], worker.output())
        assert worker.process.poll() is None, worker.output()  # the worker rode out the outage
    finally:
        worker.stop()
    keys = {r.key for r in rows_for(inst, saved)}
    assert set(receiver.deliveries) >= keys
    assert [receiver.deliveries[k] for k in keys] == [1] * 40  # each effect delivered exactly once
    assert [receiver.applied[k] for k in keys] == [1] * 40


# --- a worker killed while a webhook is in flight --------------------------------------------


def test_worker_killed_mid_webhook_reruns_after_lease_with_the_same_key(inst, redis_server, receiver,
                                                                        queue_name, tmp_path):
    receiver.hold.set()  # the endpoint takes the requests and does not answer yet
    first = Worker(inst, redis_server.url, queue_name, tmp_path, METACRM_OUTBOX_LEASE_SECONDS="3")
    try:
        ids = create_deals(inst, 3, "killed")
        keys = {r.key for r in rows_for(inst, ids)}
        assert len(keys) == 3
        in_flight = wait_for(lambda: set(receiver.deliveries) >= keys, timeout=30, interval=0.05)
        assert in_flight, first.output()
        first.kill()  # SIGKILL while the three POSTs wait for their answers
    finally:
        first.kill()
        receiver.release.set()
    rows = rows_for(inst, ids)
    assert [(r.status, r.attempts) for r in rows] == [("running", 1)] * 3  # leased by the dead worker
    receiver.hold.clear()
    second = Worker(inst, redis_server.url, queue_name, tmp_path)
    try:  # its periodic tick finds the rows once their 3 s lease is over
        done = wait_for(lambda: all(r.status == "done" for r in rows_for(inst, ids)), timeout=45, interval=0.2)
        assert done, second.output()
    finally:
        second.stop()
    rows = rows_for(inst, ids)
    assert [r.attempts for r in rows] == [2, 2, 2]
    assert [receiver.deliveries[k] for k in sorted(keys)] == [2, 2, 2]  # at least once: sent again...
    assert [receiver.applied[k] for k in sorted(keys)] == [1, 1, 1]  # ...with the same key: applied once
    assert all(receiver.delivery_ids[r.key] == {str(r.id)} for r in rows)  # and the same delivery id
    log = [entry for key in keys for entry in webhooks.deliveries(inst.runtime, key=key)]
    assert sorted((e["attempt"], e["ok"]) for e in log) == [(2, True)] * 3  # the killed attempt left no log


# --- the database restarted under load -------------------------------------------------------


@pytest.fixture(scope="module")
def private_pg():
    server = PrivatePostgres()
    server.start()
    engine = None
    try:
        engine = make_engine(server.url, connect_args={"connect_timeout": 3})
        config = Config(database_url=server.url, secret_key="test-secret", testing=True)
        runtime = build_runtime(config, engine)
        initialise(runtime, ADMIN_PASSWORD, with_defaults=False)
        apply_change(runtime, documents_bundle([{"kind": "object", "name": "fx_note", "name_field": "title",
                                                 "fields": [{"name": "title", "type": "text"}]}]))
        runtime.compiled(force=True)
        yield server, runtime
    finally:
        if engine is not None:
            engine.dispose()
        server.close()


def test_database_restart_gives_json_503_then_recovers_without_restarting_the_app(private_pg):
    from metacrm.platform.app import create_app

    server, runtime = private_pg
    app = create_app(runtime.config, runtime)
    app.config["TESTING"] = True
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: an unhandled error would be a 500 page
    token = app.test_client().post("/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD})
    headers = {"Authorization": f"Bearer {token.get_json()['token']}"}
    outcomes: list[tuple[str, int, str | None, str]] = []  # (phase, status, error code, content type)
    created: list[str] = []
    phase = ["up"]
    stop = threading.Event()
    lock = threading.Lock()

    def load(n: int):
        client = app.test_client()
        i = 0
        while not stop.is_set():
            i += 1
            if i % 2:
                response = client.post("/api/v1/records/fx_note", json={"title": f"t{n}.{i}"}, headers=headers)
            else:
                response = client.get("/api/v1/records/fx_note?limit=5", headers=headers)
            body = response.get_json(silent=True) or {}
            with lock:
                outcomes.append((phase[0], response.status_code, (body.get("error") or {}).get("code"),
                                 response.content_type))
                if response.status_code == 201:
                    created.append(body["id"])
            time.sleep(0.005)

    def seen(which: str, status: int) -> int:
        with lock:
            return sum(1 for p, s, _, _ in outcomes if p == which and s == status)

    threads = [threading.Thread(target=load, args=(n,), daemon=True) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        assert wait_for(lambda: seen("up", 201) >= 20, timeout=30)
        phase[0] = "stopping"
        server.stop("fast")  # terminates the open connections of the app's pool too
        phase[0] = "down"
        assert wait_for(lambda: seen("down", 503) >= 20, timeout=30)
        direct = app.test_client().get("/api/v1/records/fx_note", headers=headers)
        assert direct.status_code == 503 and direct.get_json()["error"]["code"] == "database_unavailable"
        assert direct.headers["Retry-After"]
        phase[0] = "starting"
        server.start()
        phase[0] = "up again"
        assert wait_for(lambda: seen("up again", 201) >= 20 and seen("up again", 200) >= 20, timeout=60)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    statuses = Counter(status for _, status, _, _ in outcomes)
    assert set(statuses) <= {200, 201, 503}, statuses  # never a 500
    failures = [o for o in outcomes if o[1] == 503]
    assert all(code == "database_unavailable" and ctype.startswith("application/json")
               for _, _, code, ctype in failures)
    assert Counter(p for p, s, _, _ in outcomes if s == 503).get("up", 0) == 0
    # once the database answers again, the same app serves every request (pool_pre_ping replaced
    # the dead connections); the only 503s after the restart are from before it finished
    after = [s for p, s, _, _ in outcomes if p == "up again"]
    first_ok = next(i for i, s in enumerate(after) if s != 503)
    assert all(s in (200, 201) for s in after[first_ok + 8:]), after  # in-flight stragglers aside
    table = runtime.compiled().tables["fx_note"]
    with runtime.engine.connect() as conn:
        stored = set(conn.execute(sa.select(table.c.id)).scalars())
    assert set(created) <= stored  # every 201 was really committed


# --- a metadata apply interrupted ------------------------------------------------------------

def thing_docs(suffix: str) -> tuple[dict, dict, dict]:
    """An object as it is, the change to apply (a type change with data to convert, a new
    indexed column, another new column) and a new object; named per test, so the tests can
    share one installation."""
    thing = {"kind": "object", "name": f"fx_thing_{suffix}", "name_field": "title", "fields": [
        {"name": "title", "type": "text"},
        {"name": "size", "type": "text"},
    ]}
    changed = {"kind": "object", "name": thing["name"], "name_field": "title", "fields": [
        {"name": "title", "type": "text"},
        {"name": "size", "type": "integer"},
        {"name": "colour", "type": "text", "indexed": True},
        {"name": "weight", "type": "decimal"},
    ]}
    extra = {"kind": "object", "name": f"fx_extra_{suffix}", "name_field": "label",
             "fields": [{"name": "label", "type": "text"}]}
    return thing, changed, extra


class Injected(RuntimeError):
    pass


def snapshot(runtime, suffix: str) -> dict:
    """Tables, the columns and indexes of the touched ones, the registry and the stored data."""
    with runtime.engine.connect() as conn:
        inspector = sa.inspect(conn)
        tables = sorted(inspector.get_table_names())
        shape = {}
        for name in (f"rec_fx_thing_{suffix}", f"rec_fx_extra_{suffix}"):
            if name in tables:
                shape[name] = (
                    sorted((c["name"], str(c["type"])) for c in inspector.get_columns(name)),
                    sorted(i["name"] for i in inspector.get_indexes(name)),
                )
        documents = sorted(tuple(row) for row in conn.execute(
            sa.select(db.meta_document.c.kind, db.meta_document.c.name, db.meta_document.c.body)))
        version = metastore.current_version(conn)
        data = sorted(tuple(r) for r in conn.execute(sa.text(f"SELECT id, title, size FROM rec_fx_thing_{suffix}")))
    return {"tables": tables, "shape": shape, "documents": documents, "version": version, "data": data}


def fail_after(real, calls: int = 1):
    """Wrap a step so its `calls`-th call runs for real and then raises."""
    count = [0]

    def wrapper(*args, **kwargs):
        result = real(*args, **kwargs)
        count[0] += 1
        if count[0] >= calls:
            raise Injected(f"injected failure after {real.__name__}")
        return result
    return wrapper


def faulty_operations(monkeypatch):
    """Alembic's add_column fails on the second column, after the first was added."""
    from alembic.operations import Operations

    from metacrm.platform import storage

    class Faulty(Operations):
        added = 0

        def add_column(self, *args, **kwargs):
            result = super().add_column(*args, **kwargs)
            Faulty.added += 1
            if Faulty.added >= 2:
                raise Injected("injected failure in the middle of the DDL")
            return result

    monkeypatch.setattr(storage, "Operations", Faulty)


FAULTS = {
    "mid_ddl": faulty_operations,
    "after_conversion": lambda mp: mp.setattr("metacrm.platform.apply.convert_columns",
                                              fail_after(__import__("metacrm.platform.apply", fromlist=["x"])
                                                         .convert_columns)),
    "after_all_ddl": lambda mp: mp.setattr("metacrm.platform.apply.apply_storage",
                                           fail_after(__import__("metacrm.platform.storage", fromlist=["x"])
                                                      .apply_storage)),
    "writing_the_registry": lambda mp: mp.setattr("metacrm.platform.metastore.write_documents",
                                                  fail_after(metastore.write_documents)),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_interrupted_apply_leaves_schema_and_registry_as_before_and_a_retry_succeeds(inst, fault, monkeypatch):
    runtime, suffix = inst.runtime, fault
    thing, changed, extra = thing_docs(suffix)
    inst.apply([thing])
    svc = RecordService(runtime, Principal.system(), source="test")
    kept = svc.create(thing["name"], {"title": "kept", "size": "42"})
    before = snapshot(runtime, suffix)
    with monkeypatch.context() as patch:
        FAULTS[fault](patch)
        with pytest.raises(Injected):
            apply_change(runtime, documents_bundle([changed, extra]))
    assert snapshot(runtime, suffix) == before  # no table, column, index, document, version or value moved
    assert runtime.compiled(force=True).registry.version == before["version"]
    assert svc.get(thing["name"], kept["id"])["size"] == "42"  # the live metadata still works
    result = apply_change(runtime, documents_bundle([changed, extra]))  # the retry goes through
    assert result.applied and result.version == before["version"] + 1
    after = snapshot(runtime, suffix)
    assert f"rec_{extra['name']}" in after["tables"]
    assert {"colour", "weight"} <= {name for name, _ in after["shape"][f"rec_{thing['name']}"][0]}
    runtime.compiled(force=True)
    assert RecordService(runtime, Principal.system()).get(thing["name"], kept["id"])["size"] == 42


def test_apply_process_killed_mid_way_changes_nothing_postgresql(inst, tmp_path):
    """`metacrm metadata apply` is SIGKILLed after its DDL ran, while it waits to write the
    registry (the test holds a row lock there); PostgreSQL rolls the whole transaction back."""
    runtime = inst.runtime
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("needs a way to stop the apply mid-transaction from outside: a PostgreSQL row lock")
    suffix = "killed"
    thing, changed, extra = thing_docs(suffix)
    inst.apply([thing])
    RecordService(runtime, Principal.system()).create(thing["name"], {"title": "kept", "size": "7"})
    before = snapshot(runtime, suffix)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    for doc in (changed, extra):
        (bundle / f"{doc['name']}.json").write_text(json.dumps(doc))
    env = dict(os.environ, METACRM_DATABASE_URL=inst.database_url, METACRM_SECRET_KEY="test-secret")
    blocker = runtime.engine.connect()
    process = None
    try:
        blocker.begin()
        blocker.execute(sa.select(db.meta_document.c.name).where(
            db.meta_document.c.kind == "object", db.meta_document.c.name == thing["name"]).with_for_update())
        process = subprocess.Popen([METACRM, "metadata", "apply", str(bundle)], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def waiting_backend():
            with runtime.engine.connect() as conn:
                return conn.execute(sa.text(
                    "SELECT a.pid FROM pg_stat_activity a WHERE a.datname = current_database() "
                    "AND a.wait_event_type = 'Lock' AND a.query ILIKE '%mc_meta_document%' "
                    "AND a.pid <> pg_backend_pid()")).scalar()

        pid = wait_for(waiting_backend, timeout=60, interval=0.05)
        assert pid, process.stdout.read1(4000) if process.poll() is not None else "apply never reached the registry"
        # it has done its DDL: it holds the altered table exclusively (the table it created is
        # not even visible from here)
        with runtime.engine.connect() as conn:
            locked = set(conn.execute(sa.text(
                "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE l.pid = :pid AND l.mode = 'AccessExclusiveLock'"), {"pid": pid}).scalars())
        assert f"rec_{thing['name']}" in locked, locked
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        blocker.rollback()  # the orphaned backend goes on, finds its client gone, and rolls back

        def gone():
            with runtime.engine.connect() as conn:
                return not conn.execute(sa.text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"),
                                        {"pid": pid}).first()
        assert wait_for(gone, timeout=30, interval=0.05)
    finally:
        blocker.close()
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)
    assert snapshot(runtime, suffix) == before
    retry = subprocess.run([METACRM, "metadata", "apply", str(bundle)], env=env, capture_output=True, text=True,
                           timeout=120, check=False)
    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert f"applied: metadata version {before['version'] + 1}" in retry.stdout
    assert f"rec_{extra['name']}" in snapshot(runtime, suffix)["tables"]
