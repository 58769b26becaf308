"""Scaled mode, end to end, as it is deployed: one PostgreSQL database and one Redis, two
`metacrm serve` processes and two `metacrm worker` processes started through the CLI, and a
client that alternates its requests between the two servers.

What it proves:
1. a metadata apply on server A is served by server B within a second (new field, new
   picklist value: B accepts a record using it, B's describe shows it); the latency is printed;
2. pool claims spread over both servers stay exactly-once and `max_held` holds across them;
3. concurrent approvals of one request through both servers make one decision, one step advance;
4. the periodic sweep runs once per period (the run log `mc_sweep_run`), in the workers only,
   however many processes tick, and a record due for recycling is recycled exactly once;
5. side effects queued through the outbox by the servers are executed exactly once by the workers
   (workflow webhooks POSTed to a local receiver that counts deliveries per Idempotency-Key).

Needs PostgreSQL (METACRM_TEST_DATABASE_URL) and Redis (METACRM_TEST_REDIS_URL): missing, the
module fails when CI is set and skips otherwise. It uses a database and an rq queue of its own
and removes both, and kills every process it started, also on failure.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import PG_URL, free_port, require_pg
from tests.test_jobs_redis import REDIS_URL, require_redis

METACRM = Path(sys.executable).with_name("metacrm")
SWEEP_INTERVAL = 2  # seconds: a short period so a few of them pass during the test
ADMIN_PASSWORD = "scaled-admin-pass-1"
USER_PASSWORD = "scaled-user-pass-1"
MAX_HELD = 5


def wait_for(what: str, condition, timeout: float, interval: float = 0.05):
    """Poll `condition` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --- a webhook receiver that counts deliveries ------------------------------------------------


class Receiver:
    def __init__(self):
        self.deliveries: dict[str, int] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    key = self.headers.get("Idempotency-Key") or "?"
                    receiver.deliveries[key] = receiver.deliveries.get(key, 0) + 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # 20 deliveries at once from two workers: the default 5 refuses some
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def counts(self) -> dict[str, int]:
        with self.lock:
            return dict(self.deliveries)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# --- the metadata the test installs --------------------------------------------------------------


def bundle(hook_url: str) -> list[dict]:
    scope = {"create": "all", "read": "all", "edit": "own", "claim": "all", "approve": "all"}
    return [
        {"kind": "object", "name": "scale_item", "label": "Scale item", "name_field": "name",
         "track_history": ["status", "owner"],
         "fields": [
             {"name": "name", "type": "text", "required": True},
             {"name": "amount", "type": "integer"},
             {"name": "status", "type": "picklist",
              "options": [{"value": "new"}, {"value": "working"}, {"value": "closed"}]},
             {"name": "notify_me", "type": "boolean"},
             {"name": "approval_status", "type": "text"},
         ]},
        {"kind": "role", "name": "scale_rep", "objects": {"scale_item": scope}},
        {"kind": "role", "name": "scale_approver", "objects": {"scale_item": scope}},
        {"kind": "role", "name": "scale_lead", "objects": {"scale_item": scope}},
        {"kind": "pool", "name": "scale_pool", "object": "scale_item",
         "members": {"roles": ["scale_rep"]},
         "claim": {"max_held": MAX_HELD, "max_per_day": 1000},
         "recycle": [{"name": "stale", "when": {"last_activity_at": {"older_than_days": 3}},
                      "reason": "no follow-up in 3 days"}]},
        {"kind": "approval_process", "name": "scale_approval", "object": "scale_item",
         "entry": {"amount": {"gte": 1000}}, "lock_record": True,
         "steps": [
             {"name": "first", "approver": {"role": "scale_approver"}, "mode": "any"},
             {"name": "second", "approver": {"role": "scale_lead"}},
         ],
         "on_approve": [{"action": "update_field", "field": "approval_status", "value": "approved"}]},
        {"kind": "workflow_rule", "name": "scale_hook", "object": "scale_item",
         "trigger": {"on": "create"}, "condition": {"notify_me": True},
         "actions": [{"action": "webhook", "url": hook_url}]},
    ]


# --- the cluster ------------------------------------------------------------------------------------


class Api:
    """A round-robin client: each call goes to the next server unless one is named."""

    def __init__(self, bases: list[str]):
        self.bases = bases
        self._next = itertools.count()
        self._lock = threading.Lock()

    def base(self, server: int | None = None) -> str:
        if server is None:
            with self._lock:
                server = next(self._next) % len(self.bases)
        return self.bases[server]

    def call(self, method: str, path: str, token: str | None = None, server: int | None = None, **kwargs):
        import requests

        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.base(server) + "/api/v1" + path, headers=headers, timeout=30, **kwargs)

    def token(self, username: str, password: str, server: int | None = None) -> str:
        answer = self.call("POST", "/auth/token", json={"username": username, "password": password}, server=server)
        assert answer.status_code in (200, 201), answer.text
        return answer.json()["token"]


class Cluster:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []
        self.database = f"mc_scaled_{uuid.uuid4().hex[:10]}"
        self.queue = f"mcscale-{uuid.uuid4().hex[:10]}"
        url = sa.engine.make_url(PG_URL).set(database=self.database)
        self.database_url = url.render_as_string(hide_password=False)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("METACRM_")}
        self.env.update({
            "METACRM_DATABASE_URL": self.database_url,
            "METACRM_REDIS_URL": REDIS_URL,
            "METACRM_SECRET_KEY": uuid.uuid4().hex,
            "METACRM_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "METACRM_RQ_QUEUE": self.queue,
            "METACRM_SWEEP_INTERVAL": str(SWEEP_INTERVAL),
            "METACRM_WEBHOOK_TIMEOUT": "5",
            "PYTHONUNBUFFERED": "1",
        })
        self.engine: sa.Engine | None = None
        self.ports: list[int] = []
        self.worker_pids: list[int] = []

    def cli(self, *args: str) -> str:
        done = subprocess.run([str(METACRM), *args], check=False, env=self.env, cwd=self.workdir, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, f"metacrm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def spawn(self, name: str, *args: str) -> subprocess.Popen:
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(METACRM), *args], env=self.env, cwd=self.workdir, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, proc, log))
        return proc

    def create_database(self):
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self.database}"'))
        admin.dispose()
        self.engine = sa.create_engine(self.database_url, poolclass=sa.pool.NullPool)

    def start(self):
        for index in range(2):
            port = free_port()
            self.ports.append(port)
            self.spawn(f"server{index}", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                       "--threads", "8", "--no-timer")
        for index in range(2):
            self.worker_pids.append(self.spawn(f"worker{index}", "worker", "--interval", "1").pid)

    def check_alive(self):
        for name, proc, log in self.procs:
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}:\n{self.tail(log)}")

    @staticmethod
    def tail(log: Path, lines: int = 40) -> str:
        try:
            return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def logs(self) -> str:
        return "\n".join(f"--- {name} (pid {proc.pid}) ---\n{self.tail(log)}" for name, proc, log in self.procs)

    def stop(self):
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 15
        for _, proc, _ in self.procs:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
            try:  # the group: gunicorn's worker, anything left behind
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)

    def drop(self):
        if self.engine is not None:
            self.engine.dispose()
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
        admin.dispose()
        import redis

        connection = redis.Redis.from_url(REDIS_URL)
        keys = list(connection.scan_iter(f"*{self.queue}*"))
        if keys:
            connection.delete(*keys)

    def sql(self, statement: str, **params):
        with self.engine.begin() as conn:
            result = conn.execute(sa.text(statement), params)
            return result.fetchall() if result.returns_rows else []


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, request):
    require_pg()
    require_redis()
    workdir = tmp_path_factory.mktemp("scaled")
    env = Cluster(workdir)
    receiver = Receiver()
    failed_before = request.session.testsfailed
    try:
        env.create_database()
        env.cli("init")
        (workdir / "bundle.json").write_text(json.dumps(bundle(receiver.url)), encoding="utf-8")
        env.cli("metadata", "apply", str(workdir / "bundle.json"))
        env.start()
        env.api = Api([f"http://127.0.0.1:{port}" for port in env.ports])
        env.receiver = receiver

        def servers_up():
            env.check_alive()
            try:
                return all(env.api.call("GET", "/openapi.json", server=i).status_code == 401 for i in range(2))
            except OSError:
                return False

        wait_for("both servers to answer", servers_up, 60, 0.2)
        env.admin = env.api.token("admin", ADMIN_PASSWORD)

        from redis import Redis
        from rq import Queue, Worker

        connection = Redis.from_url(REDIS_URL)

        def workers_up():
            env.check_alive()
            return len(Worker.all(queue=Queue(env.queue, connection=connection))) == 2

        wait_for("both workers to register with rq", workers_up, 60, 0.2)
        env.users = {}
        for username, role in [("rep1", "scale_rep"), ("rep2", "scale_rep"), ("rep3", "scale_rep"),
                               ("rep4", "scale_rep"), ("ap1", "scale_approver"), ("ap2", "scale_approver"),
                               ("lead1", "scale_lead")]:
            answer = env.api.call("POST", "/records/user", env.admin, json={
                "username": username, "display_name": username, "roles": [role], "password": USER_PASSWORD})
            assert answer.status_code == 201, answer.text
            env.users[username] = {"id": answer.json()["id"], "token": env.api.token(username, USER_PASSWORD)}
    except BaseException:
        print(f"\nlogs of the scaled-mode processes:\n{env.logs()}")
        receiver.close()
        env.stop()
        env.drop()
        raise
    try:
        yield env
    finally:
        try:
            if request.session.testsfailed > failed_before:
                print(f"\nlogs of the scaled-mode processes:\n{env.logs()}")
        finally:
            receiver.close()
            env.stop()
            env.drop()


def create_item(env, values: dict, server: int | None = None) -> dict:
    answer = env.api.call("POST", "/records/scale_item", env.admin, json=values, server=server)
    assert answer.status_code == 201, answer.text
    return answer.json()


def in_parallel(calls: list, threads: int | None = None) -> list:
    """Run zero-argument callables at once (released together by a barrier); their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, fn):
        barrier.wait()
        try:
            results[index] = fn()
        except Exception as exc:  # noqa: BLE001 - reported by the caller's assertions
            results[index] = exc

    workers = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    return results


# --- 1. metadata changes propagate -------------------------------------------------------------------


def _propagation(env, change, probe_create, probe_describe) -> tuple[float, float]:
    """Apply on server 0; how long until server 1 accepts a record using the change, and until
    server 1's describe shows it (seconds from server 0's 200)."""
    env.api.call("GET", "/meta/objects/scale_item", env.admin, server=1)  # server 1 has the old version cached
    answer = env.api.call("POST", "/meta/apply", env.admin, json={"documents": [change]}, server=0)
    applied = time.monotonic()
    assert answer.status_code == 200, answer.text
    seen: dict[str, float] = {}

    def poll(name, probe):
        deadline = applied + 10
        while time.monotonic() < deadline:
            if probe():
                seen[name] = time.monotonic() - applied
                return
            time.sleep(0.01)

    threads = [threading.Thread(target=poll, args=("create", probe_create)),
               threading.Thread(target=poll, args=("describe", probe_describe))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert "create" in seen and "describe" in seen, f"server 1 never served the change: {seen}"
    return seen["create"], seen["describe"]


def test_metadata_applied_on_one_server_is_served_by_the_other_within_a_second(cluster):
    env = cluster
    figures = []
    for round_ in range(3):
        current = env.api.call("GET", "/meta/object/scale_item", env.admin).json()
        field = f"extra_{round_}"
        current["fields"].append({"name": field, "type": "text"})

        def accepts(field=field):
            answer = env.api.call("POST", "/records/scale_item", env.admin, server=1,
                                  json={"name": f"with {field}", field: "x"})
            return answer.status_code == 201 and answer.json().get(field) == "x"

        def describes(field=field):
            answer = env.api.call("GET", "/meta/objects/scale_item", env.admin, server=1)
            return answer.status_code == 200 and field in json.dumps(answer.json())

        figures.append(("field", *_propagation(env, current, accepts, describes)))

    current = env.api.call("GET", "/meta/object/scale_item", env.admin).json()
    status = next(f for f in current["fields"] if f["name"] == "status")
    status["options"].append({"value": "reopened"})

    def accepts_value():
        answer = env.api.call("POST", "/records/scale_item", env.admin, server=1,
                              json={"name": "reopened one", "status": "reopened"})
        return answer.status_code == 201

    def describes_value():
        answer = env.api.call("GET", "/meta/objects/scale_item", env.admin, server=1)
        return answer.status_code == 200 and "reopened" in json.dumps(answer.json())

    figures.append(("picklist value", *_propagation(env, current, accepts_value, describes_value)))
    print("\napply on server A -> served by server B (seconds):")
    for kind, create_s, describe_s in figures:
        print(f"  {kind:15} create accepted {create_s:.3f}  describe shows it {describe_s:.3f}")
    worst = max(max(create_s, describe_s) for _, create_s, describe_s in figures)
    assert worst < 1.0, f"a metadata change took {worst:.3f}s to reach the other server: {figures}"


# --- 2. pool claims ----------------------------------------------------------------------------------


def test_pool_claims_are_exactly_once_and_max_held_holds_across_servers(cluster):
    env = cluster
    ids = [create_item(env, {"name": f"pooled {i}", "status": "new"})["id"] for i in range(30)]
    rows = env.sql("SELECT id, pool, owner FROM rec_scale_item WHERE id = ANY(:ids)", ids=ids)
    assert all(row.pool == "scale_pool" and row.owner is None for row in rows) and len(rows) == 30

    reps = ["rep1", "rep2", "rep3"]

    def claimer(username, seed):
        def run():
            order = ids[:]
            random.Random(seed).shuffle(order)
            answers = []
            for start in range(0, len(order), 3):
                answer = env.api.call("POST", "/pools/scale_pool/claim", env.users[username]["token"],
                                      json={"ids": order[start:start + 3]})
                assert answer.status_code == 200, answer.text
                answers.append(answer.json())
            return username, answers
        return run

    results = in_parallel([claimer(name, seed) for name in reps for seed in range(4)])
    claimed_by: dict[str, list[str]] = {name: [] for name in reps}
    codes: dict[str, int] = {}
    for result in results:
        assert not isinstance(result, Exception), result
        username, answers = result
        for answer in answers:
            claimed_by[username].extend(answer["claimed"])
            for failure in answer["failed"]:
                codes[failure["code"]] = codes.get(failure["code"], 0) + 1
    every_claim = [record for records in claimed_by.values() for record in records]
    assert len(every_claim) == len(set(every_claim)), "a record was reported claimed twice"
    assert {name: len(records) for name, records in claimed_by.items()} == {name: MAX_HELD for name in reps}
    assert set(codes) <= {"not_in_pool", "max_held"} and codes.get("max_held"), codes

    owners = dict(env.sql("SELECT id, owner FROM rec_scale_item WHERE id = ANY(:ids)", ids=ids))
    for username, records in claimed_by.items():
        assert {owners[record] for record in records} == {env.users[username]["id"]}
    held = env.sql("SELECT owner, count(*) FROM rec_scale_item WHERE id = ANY(:ids) AND owner IS NOT NULL "
                   "GROUP BY owner", ids=ids)
    assert sorted(count for _, count in held) == [MAX_HELD] * 3
    history = dict(env.sql("SELECT record_id, count(*) FROM mc_history WHERE object = 'scale_item' "
                           "AND action = 'claim' AND record_id = ANY(:ids) GROUP BY record_id", ids=ids))
    assert history == {record: 1 for record in every_claim}
    print(f"\nclaims: 12 clients x 10 requests over 2 servers -> {len(every_claim)} claimed once each, "
          f"refusals {codes}")


# --- 3. approvals ------------------------------------------------------------------------------------


def test_concurrent_approvals_through_both_servers_decide_once(cluster):
    env = cluster
    item = create_item(env, {"name": "big deal", "amount": 5000})
    submitted = env.api.call("POST", f"/records/scale_item/{item['id']}/submit", env.admin, server=0, json={})
    assert submitted.status_code == 201, submitted.text
    request_id = submitted.json()["id"]
    assert submitted.json()["step"] == "first"
    assert sorted(submitted.json()["approvers"]) == sorted([env.users["ap1"]["id"], env.users["ap2"]["id"]])

    def approve(username, server):
        return lambda: env.api.call("POST", f"/approvals/{request_id}/approve", env.users[username]["token"],
                                    server=server, json={"comment": username}).status_code

    first = in_parallel([approve(name, server) for name in ("ap1", "ap2") for server in (0, 1, 0, 1)])
    assert sorted(first).count(200) == 1 and set(first) <= {200, 409}, first
    state = env.api.call("GET", f"/approvals/{request_id}", env.admin).json()
    assert state["status"] == "pending" and state["step"] == "second", state
    tasks = env.sql("SELECT round, status FROM mc_approval_task WHERE request_id = :r ORDER BY id", r=request_id)
    assert sorted(status for round_, status in tasks if round_ == 1) == ["approved", "no_response"]
    assert [status for round_, status in tasks if round_ == 2] == ["pending"]
    assert env.sql("SELECT round FROM mc_approval_request WHERE id = :r", r=request_id)[0].round == 2

    final = in_parallel([approve("lead1", server) for server in (0, 1, 0, 1, 0, 1)])
    assert sorted(final).count(200) == 1 and set(final) <= {200, 409}, final
    state = env.api.call("GET", f"/approvals/{request_id}", env.admin).json()
    assert state["status"] == "approved", state
    notes = [row.note for row in env.sql("SELECT note FROM mc_history WHERE object = 'scale_item' "
                                         "AND record_id = :r ORDER BY id", r=item["id"]) if row.note]
    assert sum("Step first: approved by" in note for note in notes) == 1, notes
    assert sum("Request approved" in note for note in notes) == 1, notes
    record = env.api.call("GET", f"/records/scale_item/{item['id']}", env.admin).json()
    assert record["approval_status"] == "approved"
    print(f"\napprovals: step 1 answers {sorted(first)}, step 2 answers {sorted(final)}")


# --- 4. periodic sweeps --------------------------------------------------------------------------------


def test_the_sweep_runs_once_per_period_in_the_workers_and_recycles_once(cluster):
    env = cluster
    rep4 = env.users["rep4"]["id"]
    item = create_item(env, {"name": "forgotten", "status": "working", "owner": rep4})
    assert item["owner"] == rep4 and item.get("pool") is None
    env.sql("UPDATE rec_scale_item SET owner_since = now() at time zone 'utc' - interval '10 days', "
            "last_activity_at = now() at time zone 'utc' - interval '10 days' WHERE id = :id", id=item["id"])
    started = env.sql("SELECT now() at time zone 'utc'")[0][0]

    wait_for("the stale record to be recycled",
             lambda: env.sql("SELECT pool FROM rec_scale_item WHERE id = :id", id=item["id"])[0].pool == "scale_pool",
             SWEEP_INTERVAL * 3 + 10)
    # let a few more periods pass: a second worker (or a second tick) must not recycle it again
    recycled_slot = env.sql("SELECT max(slot) FROM mc_sweep_run")[0][0]
    wait_for("three more sweep periods",
             lambda: env.sql("SELECT count(*) FROM mc_sweep_run WHERE slot > :s AND finished_at IS NOT NULL",
                             s=recycled_slot)[0][0] >= 3,
             SWEEP_INTERVAL * 3 + 15, 0.2)
    ended = env.sql("SELECT now() at time zone 'utc'")[0][0]

    recycles = env.sql("SELECT note, changes FROM mc_history WHERE object = 'scale_item' AND record_id = :id "
                       "AND action = 'recycle'", id=item["id"])
    assert len(recycles) == 1 and recycles[0].note == "no follow-up in 3 days", recycles
    runs = env.sql("SELECT slot, owner, started_at, finished_at, failed, summary FROM mc_sweep_run "
                   "WHERE slot >= :a AND slot <= :b ORDER BY slot",
                   a=started - timedelta(seconds=SWEEP_INTERVAL), b=ended)
    slots = [run.slot for run in runs]
    assert len(slots) == len(set(slots))
    periods = (ended - started).total_seconds() / SWEEP_INTERVAL
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(slots)]
    assert all(gap % SWEEP_INTERVAL == 0 for gap in gaps), gaps
    assert len(runs) >= periods - 1, f"{len(runs)} runs in {periods:.1f} periods: {slots}"
    assert sum(gap > SWEEP_INTERVAL for gap in gaps) <= 1, f"periods went by without a sweep: {slots}"
    assert all(run.finished_at is not None and run.failed is False for run in runs[:-1]), runs
    ran_by = {int(run.owner.rsplit(":", 1)[1]) for run in runs}
    assert ran_by <= set(env.worker_pids), f"sweeps ran outside the workers: {ran_by} vs {env.worker_pids}"
    assert sum("pool_recycle: recycled 1 record(s) (scale_pool: 1)" in (run.summary or "") for run in runs) == 1
    # the workers' own logs agree: no period was run by two processes
    logged: dict[str, int] = {}
    for name, _, log in env.procs:
        for slot in re.findall(r"periodic jobs of the period (\S+)Z", Cluster.tail(log, 10**6)):
            assert name.startswith("worker"), f"{name} ran periodic jobs"
            logged[slot] = logged.get(slot, 0) + 1
    assert logged and set(logged.values()) == {1}, logged
    finished = env.sql("SELECT slot FROM mc_sweep_run WHERE finished_at IS NOT NULL")
    assert {row.slot.isoformat() for row in finished} <= set(logged)
    per_worker = {pid: sum(run.owner.endswith(f":{pid}") for run in runs) for pid in env.worker_pids}
    print(f"\nsweeps: {len(runs)} runs in {periods:.1f} periods of {SWEEP_INTERVAL}s, one per period; "
          f"runs per worker pid {per_worker}; the stale record recycled once")


# --- 5. outbox side effects -----------------------------------------------------------------------------


def test_outbox_side_effects_run_exactly_once_on_the_workers(cluster):
    env = cluster
    before = set(env.receiver.counts())

    def make(i):
        return lambda: create_item(env, {"name": f"hooked {i}", "notify_me": True})["id"]

    ids = in_parallel([make(i) for i in range(20)])
    assert all(isinstance(i, str) for i in ids), ids
    def all_done():
        rows = env.sql("SELECT id, key, status, attempts FROM mc_outbox WHERE topic = 'webhook' "
                       "AND payload->>'record_id' = ANY(:ids)", ids=ids)
        return rows if len(rows) == 20 and all(row.status == "done" for row in rows) else None

    rows = wait_for("the webhook outbox rows to be done", all_done, 30, 0.1)
    keys = {row.key for row in rows}
    wait_for("20 deliveries", lambda: keys <= set(env.receiver.counts()), 10)
    # a tick after the last delivery: nothing may be dispatched twice
    last = env.sql("SELECT coalesce(max(slot), now() at time zone 'utc') FROM mc_sweep_run")[0][0]
    wait_for("one more tick", lambda: env.sql("SELECT count(*) FROM mc_sweep_run WHERE slot > :s", s=last)[0][0],
             SWEEP_INTERVAL + 10, 0.1)
    counts = {key: count for key, count in env.receiver.counts().items() if key not in before}
    assert counts == {key: 1 for key in keys}, counts
    # one successful delivery per key; an attempt that failed before reaching the receiver (a
    # refused connection on a loaded machine) is logged as failed and retried: attempts = failed + 1
    log_rows = env.sql("SELECT key, ok, count(*) FROM mc_webhook_delivery WHERE key = ANY(:k) GROUP BY key, ok",
                       k=list(keys))
    delivered = {key: n for key, ok, n in log_rows if ok}
    failed = {key: n for key, ok, n in log_rows if not ok}
    assert delivered == {key: 1 for key in keys}, log_rows
    assert {row.key: row.attempts for row in rows} == {key: failed.get(key, 0) + 1 for key in keys}, (rows, log_rows)
    drains = {name: Cluster.tail(log, 100000).count("rq_drain") for name, _, log in env.procs
              if name.startswith("worker")}
    servers_drained = {name: Cluster.tail(log, 100000).count("rq_drain") for name, _, log in env.procs
                       if name.startswith("server")}
    assert sum(drains.values()) >= 1 and not any(servers_drained.values()), (drains, servers_drained)
    print(f"\noutbox: 20 webhooks queued by both servers, each delivered once; rq_drain jobs per worker {drains}")


# --- the period lease itself, on both databases (embedded mode uses it too) ---------------------------


def test_the_period_lease_is_won_once_per_period_by_concurrent_processes(runtime):
    from datetime import datetime

    from metacrm.platform import sweeps
    from metacrm.platform.sweeps import period_start, sweep_run, take_lease

    now = datetime(2026, 5, 1, 12, 0, 7)
    assert period_start(now, 300) == datetime(2026, 5, 1, 12, 0, 0)
    with runtime.engine.begin() as conn:  # a database initialised before the run log existed
        sweep_run.drop(conn, checkfirst=True)
    sweeps._ENSURED.discard(runtime.engine)
    first = in_parallel([lambda: take_lease(runtime, 300, now) for _ in range(6)])
    assert sorted(map(str, first)) == sorted(["2026-05-01 12:00:00"] + ["None"] * 5), first
    assert take_lease(runtime, 300, now + timedelta(seconds=290)) is None  # same period
    later = in_parallel([lambda: take_lease(runtime, 300, now + timedelta(seconds=300)) for _ in range(6)])
    assert sum(slot is not None for slot in later) == 1
    with runtime.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sweep_run)).scalar() == 2
