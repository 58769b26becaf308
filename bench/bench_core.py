"""Issue 2 benchmark: the record service and the API against the raw stack, same run.

(a) N leads created one by one through RecordService vs single-row Core inserts;
(b) M leads through the batch path (create_many) vs Core executemany;
(c) GET /api/v1/records/lead/{id} under gunicorn (2 sync workers) vs bare Flask + Core,
    both driven by wrk at 16 connections on loopback.

    python -m bench.bench_core [--single 20000] [--bulk 100000] [--seconds 10] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform.apply import apply_change
from metacrm.platform.clock import utcnow
from metacrm.platform.config import Config
from metacrm.platform.records import RecordService, new_id
from metacrm.platform.security import Principal
from metacrm.platform.setup import build_runtime, initialise

from .common import fresh_database, record, timed

SOURCES = ["web", "offline_event", "web_ad", "search", "email", "mobile", "referral", "purchased_list"]
LINES = ["hardware", "software", "it_services", "solutions"]


def lead_values(i: int, rng: random.Random) -> dict:
    return {"company": f"Company {i} {rng.randint(0, 10**9)}", "contact_name": f"Person {i}",
            "email": f"p{i}@example{rng.randint(0, 999)}.com", "source": rng.choice(SOURCES),
            "product_line": rng.choice(LINES), "score": rng.randint(0, 100), "budget": f"{rng.randint(0, 10**6)}.50"}


def raw_row(values: dict, admin_id: str) -> dict:
    from decimal import Decimal

    now = utcnow()
    row = dict(values, id=new_id(), owner=admin_id, owner_since=now, created_at=now, created_by=admin_id,
               updated_at=now, updated_by=admin_id, version=1, record_type="standard", status="new")
    row["budget"] = Decimal(row["budget"])
    return row


def bench_writes(url: str, single: int, bulk: int) -> dict:
    runtime = build_runtime(Config(database_url=url))
    initialise(runtime, "bench-admin-pass", with_defaults=True)
    # The platform core's write path on the lead's shape. Duplicate rules, pools and the
    # lead-to-cash hooks act on `lead` and have their own benchmarks; `bench_lead` has the
    # same fields and none of them.
    lead = copy.deepcopy(runtime.registry().get("object", "lead"))
    lead["name"] = "bench_lead"
    lead["fields"] = [f for f in lead["fields"] if f["type"] != "lookup"]
    apply_change(runtime, documents_bundle([lead]))
    service = RecordService(runtime, Principal.system(), source="bench")
    table = runtime.compiled().tables["bench_lead"]
    users = runtime.compiled().tables["user"]
    with runtime.engine.connect() as conn:
        admin_id = conn.execute(sa.select(users.c.id).where(users.c.username == "admin")).scalar()
    rng = random.Random(7)
    rows = [lead_values(i, rng) for i in range(single)]
    t_service, _ = timed(lambda: [service.create("bench_lead", r) for r in rows])

    def raw_single():
        for r in rows:
            with runtime.engine.begin() as conn:
                conn.execute(table.insert(), raw_row(r, admin_id))

    t_raw, _ = timed(raw_single)
    rows = [lead_values(i, rng) for i in range(bulk)]

    def service_bulk():
        for start in range(0, len(rows), 1000):
            service.create_many("bench_lead", rows[start:start + 1000])

    def raw_bulk():
        for start in range(0, len(rows), 1000):
            with runtime.engine.begin() as conn:
                conn.execute(table.insert(), [raw_row(r, admin_id) for r in rows[start:start + 1000]])

    t_service_bulk, _ = timed(service_bulk)
    t_raw_bulk, _ = timed(raw_bulk)
    runtime.engine.dispose()
    return {"single": (single / t_service, single / t_raw), "bulk": (bulk / t_service_bulk, bulk / t_raw_bulk)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, timeout: float = 30) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def gunicorn(app_spec: str, port: int, env: dict, threads: int = 0) -> subprocess.Popen:
    """Two gunicorn workers: sync, or gthread with `threads` threads each."""
    binary = Path(sys.executable).with_name("gunicorn")
    kind = ["-k", "gthread", "--threads", str(threads)] if threads else ["-k", "sync"]
    return subprocess.Popen([str(binary), "-w", "2", *kind, "-b", f"127.0.0.1:{port}", "--log-level",
                             "warning", app_spec], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wrk(url: str, seconds: int, token: str | None = None) -> tuple[float, float]:
    """(requests/s, p99 ms) from wrk at 16 connections."""
    args = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency", url]
    if token:
        args[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99_match = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    value, unit = float(p99_match.group(1)), p99_match.group(2)
    p99 = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"{non2xx.group(1)} failed responses from {url}")
    return rps, p99


def bench_http(url: str, seconds: int) -> dict:
    runtime = build_runtime(Config(database_url=url))
    initialise(runtime, "bench-admin-pass")
    lead = RecordService(runtime, Principal.system()).create("lead", {"company": "Read Me", "source": "web"})
    runtime.engine.dispose()
    env = dict(os.environ, METACRM_DATABASE_URL=url, BENCH_DATABASE_URL=url, METACRM_SECRET_KEY="bench")
    env.pop("METACRM_REDIS_URL", None)
    results = {}
    port = free_port()
    server = gunicorn("metacrm.platform.app:create_app()", port, env)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/api/v1/openapi.json")
        import json
        import urllib.request

        request = urllib.request.Request(base + "/api/v1/auth/token", method="POST",
                                         data=json.dumps({"username": "admin", "password": "bench-admin-pass"}).encode(),
                                         headers={"Content-Type": "application/json"})
        token = json.loads(urllib.request.urlopen(request).read())["token"]
        wrk(f"{base}/api/v1/records/lead/{lead['id']}", 2, token)  # warm up
        results["metacrm"] = wrk(f"{base}/api/v1/records/lead/{lead['id']}", seconds, token)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(10)
    port = free_port()
    server = gunicorn("bench.bare_app:create_app()", port, env)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/row/x")
        wrk(f"{base}/row/{lead['id']}", 2)
        results["raw"] = wrk(f"{base}/row/{lead['id']}", seconds)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(10)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=20000)
    parser.add_argument("--bulk", type=int, default=100000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--no-record", action="store_true", help="print only, do not append to RESULTS.md")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk is needed for (c): apt-get install -y wrk", file=sys.stderr)
        return 2
    rows = []
    workdir = Path(tempfile.mkdtemp(prefix="metacrm-bench-"))
    for backend in args.backends.split(","):
        with fresh_database(backend, workdir) as url:
            writes = bench_writes(url, args.single, args.bulk)
        with fresh_database(backend, workdir) as url:
            http = bench_http(url, args.seconds)
        (s_svc, s_raw), (b_svc, b_raw) = writes["single"], writes["bulk"]
        (h_svc, p99_svc), (h_raw, p99_raw) = http["metacrm"], http["raw"]
        rows += [
            [backend, f"(a) create {args.single:,} one by one", f"{s_svc:,.0f}/s", f"{s_raw:,.0f}/s",
             f"{s_svc / s_raw:.2f}", "≥ 0.5"],
            [backend, f"(b) bulk create {args.bulk:,}", f"{b_svc:,.0f}/s", f"{b_raw:,.0f}/s",
             f"{b_svc / b_raw:.2f}", "≥ 0.4"],
            [backend, "(c) GET one record, gunicorn 2 sync workers, wrk 16 conns",
             f"{h_svc:,.0f} req/s, p99 {p99_svc:.1f} ms", f"{h_raw:,.0f} req/s, p99 {p99_raw:.1f} ms",
             f"{h_svc / h_raw:.2f}", "≥ 0.6"],
        ]
        for row in rows[-3:]:
            print(" | ".join(row), flush=True)
    if not args.no_record:
        record("Platform core (issue 2)", ["db", "work", "metacrm", "raw stack", "ratio", "target"], rows)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
