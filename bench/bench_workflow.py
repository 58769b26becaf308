"""Issue 5 benchmark: workflow rules on the write path and the outbox dispatcher.

(a) record saves per second through RecordService with 10 active rules (9 whose conditions
    do not match, 1 that matches and notifies the owner) vs the same saves with no rules,
    plus single-row Core inserts of the same rows as the raw-stack reference;
(b) side effects dispatched per second by one worker from the outbox: in-app notifications
    (one rq SimpleWorker in burst mode draining the coalesced job, or the embedded drain
    without Redis) and webhooks POSTed to a local endpoint;
(c) commit-to-webhook-delivery latency, p50 / p99, with one `metacrm worker` process
    (with Redis) or the embedded dispatcher thread (without).

    python -m bench.bench_workflow [--saves 1000] [--effects 5000] [--latency 200]
                                   [--backends sqlite,postgresql] [--record]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import sqlalchemy as sa

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform import db
from metacrm.platform.apply import apply_change
from metacrm.platform.clock import utcnow
from metacrm.platform.config import Config
from metacrm.platform.outbox import enqueue, outbox, set_worker_runtime
from metacrm.platform.records import RecordService, new_id
from metacrm.platform.security import Principal
from metacrm.platform.setup import build_runtime, initialise

from .common import fresh_database, record

REDIS_URL = os.environ.get("METACRM_BENCH_REDIS_URL") or os.environ.get("METACRM_REDIS_URL") \
    or "redis://127.0.0.1:6379/0"
OBJECT = {"kind": "object", "name": "bw_deal", "label": "Deal", "name_field": "name",
          "fields": [{"name": "name", "type": "text", "required": True}, {"name": "amount", "type": "currency"},
                     {"name": "stage", "type": "picklist", "options": ["new", "won", "lost"], "default": "new"},
                     {"name": "region", "type": "text"}, {"name": "score", "type": "integer"}]}


def rules(webhook_url: str | None = None) -> list[dict]:
    misses = [
        {"amount": {"gt": 10**12}}, {"region": "nowhere"}, {"stage": "lost"}, {"score": {"lt": -1}},
        {"all": [{"stage": "won"}, {"amount": {"gt": 5}}]}, {"name": {"startswith": "zz-never"}},
        {"any": [{"region": "mars"}, {"region": "venus"}]}, {"score": {"between": [1000, 2000]}},
        {"not": {"name": {"is_null": False}}},
    ]
    docs = [{"kind": "workflow_rule", "name": f"bw_miss_{i}", "object": "bw_deal", "order": i,
             "trigger": {"on": "create_or_update"}, "condition": cond,
             "actions": [{"action": "update_field", "field": "region", "value": "x"}]}
            for i, cond in enumerate(misses)]
    docs.append({"kind": "workflow_rule", "name": "bw_hit", "object": "bw_deal", "order": 99,
                 "trigger": {"on": "create_or_update"}, "condition": {"region": "east"},
                 "actions": [{"action": "notify", "to": "owner", "template": "{{ record.name }} was saved"}]})
    if webhook_url:
        docs.append({"kind": "workflow_rule", "name": "bw_hook", "object": "bw_deal", "trigger": {"on": "create"},
                     "condition": {"region": "hook"}, "actions": [{"action": "webhook", "url": webhook_url}]})
    return docs


def redis_ok() -> bool:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
        return True
    except Exception:  # noqa: BLE001 - no Redis: measure the embedded mode
        return False


class Receiver:
    """A local webhook endpoint that notes when each delivery arrives."""

    def __init__(self):
        self.arrivals: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.arrivals.setdefault(json.loads(body)["record"]["name"], time.perf_counter())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


SINK = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
server = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def sink() -> tuple[subprocess.Popen, str]:
    """A webhook endpoint in its own process (so it does not share the worker's GIL)."""
    process = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}/hook"


def setup(url: str):
    runtime = build_runtime(Config(database_url=url, testing=True))
    initialise(runtime, "bench-admin-pass", with_defaults=False)
    apply_change(runtime, documents_bundle([OBJECT]))
    runtime.compiled(force=True)
    owner = RecordService(runtime, Principal.system()).create(
        "user", {"username": "bench_owner", "display_name": "Owner", "roles": ["admin"]})
    return runtime, Principal(user_id=owner["id"], username="bench_owner", roles=frozenset({"admin"}))


# --- (a) saves with and without rules ---------------------------------------------------------


def bench_saves(url: str, saves: int, rounds: int = 3) -> dict:
    runtime, owner = setup(url)
    table = runtime.compiled().tables["bw_deal"]

    def create_batch(tag: str) -> float:
        service = RecordService(runtime, owner, source="bench")  # one per batch, like one per request
        start = time.perf_counter()
        for i in range(saves):
            service.create("bw_deal", {"name": f"{tag}-{i}", "amount": "100.00", "region": "east", "score": i})
        return saves / (time.perf_counter() - start)

    def raw_batch(tag: str) -> float:
        now = utcnow()
        start = time.perf_counter()
        for i in range(saves):
            with runtime.engine.begin() as conn:
                conn.execute(table.insert().values(id=new_id(), name=f"{tag}-{i}", amount="100.00", region="east",
                                                   score=i, stage="new", owner=owner.user_id, created_at=now,
                                                   updated_at=now, version=1))
        return saves / (time.perf_counter() - start)

    create_batch("warm")
    plain, with_rules, raw = [], [], []
    for r in range(rounds):
        apply_change(runtime, documents_bundle([]), [("workflow_rule", d["name"]) for d in rules()]) if r else None
        runtime.compiled(force=True)
        plain.append(create_batch(f"plain{r}"))
        raw.append(raw_batch(f"raw{r}"))
        apply_change(runtime, documents_bundle(rules()))
        runtime.compiled(force=True)
        with_rules.append(create_batch(f"rules{r}"))
    with runtime.engine.connect() as conn:
        notified = conn.execute(sa.select(sa.func.count()).select_from(db.outbox)
                                .where(db.outbox.c.topic == "notify")).scalar()
    runtime.engine.dispose()
    assert notified == saves * rounds, notified  # the matching rule really fired on every save
    return {"plain": statistics.median(plain), "rules": statistics.median(with_rules),
            "raw": statistics.median(raw)}


# --- (b) effects per second by one worker ---------------------------------------------------


def bench_effects(url: str, effects: int, webhooks: int, use_redis: bool) -> dict:
    runtime, owner = setup(url)
    box = outbox(runtime)
    box.embedded_thread = False
    endpoint, endpoint_url = sink()
    results = {}
    try:
        for topic, count in (("notify", effects), ("webhook", webhooks)):
            queue_name = f"bench-{uuid.uuid4().hex[:8]}"
            if use_redis:
                box.use_redis(REDIS_URL, queue_name)
                set_worker_runtime(runtime, queue_name)
            with runtime.transaction() as tx:
                for i in range(count):
                    payload = ({"users": [owner.user_id], "body": f"effect {i}"} if topic == "notify" else
                               {"url": endpoint_url, "body": json.dumps({"record": {"name": f"w{i}"}})})
                    enqueue(tx, topic, payload, key=f"bench:{topic}:{i}", runtime=runtime)
            start = time.perf_counter()
            if use_redis:
                from rq import Queue, SimpleWorker

                queue = Queue(queue_name, connection=box.redis())
                SimpleWorker([queue], connection=box.redis()).work(burst=True, logging_level="WARNING")
                queue.delete(delete_jobs=True)
            else:
                box.drain()
            elapsed = time.perf_counter() - start
            with runtime.engine.connect() as conn:
                done = conn.execute(sa.select(sa.func.count()).select_from(db.outbox).where(
                    db.outbox.c.topic == topic, db.outbox.c.status == "done")).scalar()
            assert done == count, (topic, done, count)
            results[topic] = count / elapsed
            box.use_redis(None)
    finally:
        os.killpg(endpoint.pid, signal.SIGTERM)
        endpoint.wait(10)
        runtime.engine.dispose()
    return results


# --- (c) commit to delivery latency ------------------------------------------------------------


def bench_latency(url: str, count: int, use_redis: bool) -> tuple[float, float]:
    runtime, owner = setup(url)
    receiver = Receiver()
    apply_change(runtime, documents_bundle(rules(receiver.url)))
    runtime.compiled(force=True)
    box = outbox(runtime)
    worker = None
    queue_name = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        if use_redis:
            box.use_redis(REDIS_URL, queue_name)
            env = dict(os.environ, METACRM_DATABASE_URL=url, METACRM_REDIS_URL=REDIS_URL)
            worker = subprocess.Popen([sys.executable, "-m", "metacrm.platform.cli", "worker", "--queue", queue_name],
                                      env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                      stderr=open(os.environ["BENCH_WORKER_LOG"], "w")  # noqa: SIM115
                                      if os.environ.get("BENCH_WORKER_LOG") else subprocess.DEVNULL)
        else:
            box.start()
        service = RecordService(runtime, owner, source="bench")
        service.create("bw_deal", {"name": "warm-up", "region": "hook"})
        deadline = time.monotonic() + 120
        while "warm-up" not in receiver.arrivals and time.monotonic() < deadline:
            time.sleep(0.05)  # the worker has started and delivered once
        committed: dict[str, float] = {}
        for i in range(count):
            name = f"lat-{i}"
            service.create("bw_deal", {"name": name, "region": "hook"})
            committed[name] = time.perf_counter()
            time.sleep(0.01)
        deadline = time.monotonic() + 60
        while sum(name in receiver.arrivals for name in committed) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        latencies = sorted((receiver.arrivals[n] - t) * 1000 for n, t in committed.items() if n in receiver.arrivals)
        if len(latencies) < count:
            with runtime.engine.connect() as conn:
                left = conn.execute(sa.select(db.outbox.c.id, db.outbox.c.status, db.outbox.c.attempts,
                                              db.outbox.c.last_error).where(db.outbox.c.status != "done")).fetchall()
            raise RuntimeError(f"only {len(latencies)} of {count} webhooks arrived; not done: {left}")
        return statistics.median(latencies), latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    finally:
        if worker is not None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(10)
            try:
                box.redis().delete(*list(box.redis().scan_iter(f"*{queue_name}*")) or ["none"])
            except Exception:  # noqa: BLE001 - cleanup only
                print("could not remove the bench queue's Redis keys", file=sys.stderr)
        box.stop()
        receiver.close()
        runtime.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=1000)
    parser.add_argument("--effects", type=int, default=5000)
    parser.add_argument("--webhooks", type=int, default=1000)
    parser.add_argument("--latency", type=int, default=200)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--record", action="store_true", help="append the table to bench/RESULTS.md")
    args = parser.parse_args(argv)
    use_redis = redis_ok()
    mode = "rq SimpleWorker on Redis" if use_redis else "embedded (no Redis)"
    workdir = Path(tempfile.mkdtemp(prefix="metacrm-bench-"))
    rows = []
    for backend in args.backends.split(","):
        with fresh_database(backend, workdir) as url:
            saves = bench_saves(url, args.saves)
        with fresh_database(backend, workdir) as url:
            effects = bench_effects(url, args.effects, args.webhooks, use_redis)
        with fresh_database(backend, workdir) as url:
            p50, p99 = bench_latency(url, args.latency, use_redis)
        ratio = saves["rules"] / saves["plain"]
        rows += [
            [backend, f"(a) {args.saves:,} saves, 10 rules vs none", f"{saves['rules']:,.0f}/s",
             f"{saves['plain']:,.0f}/s", f"{ratio:.2f}", "≥ 0.7"],
            [backend, "(a') same saves, raw Core single-row inserts", f"{saves['plain']:,.0f}/s",
             f"{saves['raw']:,.0f}/s", f"{saves['plain'] / saves['raw']:.2f}", "-"],
            [backend, f"(b) {args.effects:,} notifications, one worker ({mode})", f"{effects['notify']:,.0f}/s",
             "-", "-", "≥ 1,000/s"],
            [backend, f"(b') {args.webhooks:,} webhooks to 127.0.0.1, one worker", f"{effects['webhook']:,.0f}/s",
             "-", "-", "-"],
            [backend, f"(c) commit → webhook delivery, {args.latency} saves", f"p50 {p50:.1f} ms",
             f"p99 {p99:.1f} ms", "-", "-"],
        ]
        for row in rows[-5:]:
            print(" | ".join(row), flush=True)
    header = ["backend", "work", "metacrm", "baseline", "ratio", "target"]
    if args.record:
        record("Workflow rules and outbox (bench_workflow)", header, rows,
               f"Dispatcher: {mode}. Medians of 3 rounds for (a).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
