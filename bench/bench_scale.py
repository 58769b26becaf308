"""Issue 8 scale run (PostgreSQL, not part of the tests): 1,000,000 leads and 300,000
opportunities in the default lead-to-cash metadata, each figure beside the raw stack in the
same run.

(a) list view: a filtered, sorted page (and the next pages by cursor) as a sales manager,
    through the REST API and the web page (gunicorn), p50/p95 latency vs the same keyset
    query by hand (psycopg);
(b) pool sweep: the general lead pool's recycle rule over 1,000,000 leads of which 100,000
    are due vs a hand-written set-based UPDATE with its history rows;
(c) funnel report (pipeline_by_stage over 300,000 opportunities; leads_by_source_and_status
    over 1,000,000 leads) vs hand-written GROUP BY SQL;
(d) add a field to lead (metadata apply, live) vs a raw ALTER TABLE ADD COLUMN;
(e) HTTP load: wrk at 32 connections for 60 s, 60% GET record / 20% list page / 20% POST
    create, vs a bare Flask + SQLAlchemy Core app doing the same mix; errors must be zero.

    python -m bench.bench_scale [--leads 1000000] [--opportunities 300000] [--seconds 60] [--record]

The population is written with COPY (setup, not measured); match keys of the duplicate rules
are computed with the same normalisers so no re-keying happens during the run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import timedelta
from http.cookiejar import CookieJar
from pathlib import Path

import sqlalchemy as sa

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform import dedup, pools, reports
from metacrm.platform.apply import apply_change
from metacrm.platform.clock import utcnow
from metacrm.platform.config import Config
from metacrm.platform.records import RecordService, new_id
from metacrm.platform.security import Principal
from metacrm.platform.setup import build_runtime, initialise

from .bench_core import free_port, gunicorn, wait_for
from .common import fresh_database, record

PASSWORD = "bench-pass-123"
LIST_FILTER = {"status": "working", "source": "web"}
LIST_QUERY = urllib.parse.urlencode({"filter": json.dumps(LIST_FILTER), "sort": "-created_at", "limit": 50})
HERE = Path(__file__).resolve().parent


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# --- population ------------------------------------------------------------------------------


def people(runtime) -> dict:
    """A sales org: VP, two managers with ten reps each, in a department tree."""
    svc = RecordService(runtime, Principal.system(), source="bench")
    sales = svc.create("department", {"name": "Sales"})["id"]
    east = svc.create("department", {"name": "Sales East", "parent": sales})["id"]
    west = svc.create("department", {"name": "Sales West", "parent": sales})["id"]
    vp = svc.create("user", {"username": "vp", "display_name": "VP", "roles": ["vp_sales"], "department": sales,
                             "password": PASSWORD})["id"]
    org = {"vp": vp, "managers": [], "reps": []}
    for dept, tag in ((east, "east"), (west, "west")):
        manager = svc.create("user", {"username": f"mgr_{tag}", "display_name": f"Manager {tag}",
                                      "roles": ["sales_manager"], "department": dept, "manager": vp,
                                      "password": PASSWORD})["id"]
        org["managers"].append(manager)
        for n in range(10):
            org["reps"].append(svc.create("user", {
                "username": f"rep_{tag}_{n}", "display_name": f"Rep {tag} {n}", "roles": ["sales_rep"],
                "department": dept, "manager": manager, "password": PASSWORD})["id"])
    runtime.directory_changed()
    return org


def copy_rows(runtime, table: sa.Table, columns: list[str], rows) -> int:
    raw = runtime.engine.raw_connection()
    count = 0
    try:
        cursor = raw.driver_connection.cursor()
        with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
        raw.driver_connection.commit()
    finally:
        raw.close()
    return count


def populate(runtime, org: dict, leads: int, opportunities: int, due: int) -> dict:
    compiled = runtime.compiled()
    registry = compiled.registry
    rng = random.Random(8)
    now = utcnow()
    specs = list(dedup.plan_for(registry).specs.get("lead", {}).values())
    lead_table = compiled.tables["lead"]
    obj = registry.object("lead")
    options = {name: obj.fields[name].option_values for name in ("source", "status", "product_line", "region",
                                                                   "industry")}
    base_cols = ["id", "owner", "owner_since", "created_at", "created_by", "updated_at", "updated_by", "version",
                 "record_type", "last_activity_at", "company", "contact_name", "email", "phone", "source",
                 "status", "product_line", "region", "industry", "score", "budget"]
    key_cols = [s.column for s in specs]
    reps = org["reps"]
    sample_ids: list[str] = []
    words = ["Acme", "Nova", "Blue", "Zen", "Hua", "Tian", "Jin", "Star", "Peak", "Cloud", "Data", "Smart"]

    def lead_rows():
        for i in range(leads):
            is_due = i < due  # the first `due` rows are owned, unattended general-pool leads
            created = now - timedelta(minutes=i)
            values = {
                "company": f"{rng.choice(words)}{rng.choice(words)} Technology {i} Co., Ltd.",
                "contact_name": f"Contact {i}", "email": f"lead{i}@corp{i % 5000}.example",
                "phone": f"+86 13{i % 10}{(i * 7919) % 100000000:08d}",
            }
            keys = dedup.record_keys(specs, values, "CN")
            lid = new_id()
            if len(sample_ids) < 5000 and i % 200 == 0:
                sample_ids.append(lid)
            status = "new" if is_due else rng.choice(options["status"])
            product = None if is_due else rng.choice(options["product_line"])
            last = now - timedelta(days=10) if is_due else now - timedelta(hours=rng.randint(0, 48))
            yield (lid, rng.choice(reps), created, created, None, created, None, 1, "standard", last,
                   values["company"], values["contact_name"], values["email"], values["phone"],
                   rng.choice(options["source"]), status, product, rng.choice(options["region"]),
                   rng.choice(options["industry"]), rng.randint(0, 100), rng.randint(0, 10**6),
                   *[keys[c] for c in key_cols])

    start = time.perf_counter()
    copy_rows(runtime, lead_table, base_cols + key_cols, lead_rows())
    t_leads = time.perf_counter() - start
    opp_table = compiled.tables["opportunity"]
    stages = registry.object("opportunity").fields["stage"].option_values
    opp_cols = ["id", "owner", "owner_since", "created_at", "created_by", "updated_at", "updated_by", "version",
                "record_type", "name", "stage", "amount", "probability", "weighted_amount", "close_date"]

    def opp_rows():
        for i in range(opportunities):
            amount = rng.randint(1000, 10**6)
            probability = rng.choice([10, 20, 40, 60, 80, 100, 0])
            created = now - timedelta(minutes=i)
            yield (new_id(), rng.choice(reps), created, created, None, created, None, 1, "standard",
                   f"Deal {i}", rng.choice(stages), amount, probability, amount * probability / 100,
                   (now + timedelta(days=rng.randint(-90, 180))).date())

    start = time.perf_counter()
    copy_rows(runtime, opp_table, opp_cols, opp_rows())
    t_opps = time.perf_counter() - start
    with runtime.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
        # the dedup hook checks once per metadata version that every row is keyed: they are
    print(f"populated {leads:,} leads in {t_leads:.0f} s and {opportunities:,} opportunities in {t_opps:.0f} s",
          flush=True)
    return {"sample_ids": sample_ids}


# --- (a) list view --------------------------------------------------------------------------


def http_json(url: str, token: str | None = None, data: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=None if data is None else json.dumps(data).encode(),
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return answer.status, json.loads(answer.read())


def token_for(base: str, username: str) -> str:
    return http_json(base + "/api/v1/auth/token", data={"username": username, "password": PASSWORD})[1]["token"]


def bench_list(base: str, runtime, org: dict, requests: int) -> dict:
    token = token_for(base, "mgr_east")
    api_times = []
    cursor = None
    for n in range(requests):
        url = f"{base}/api/v1/records/lead?{LIST_QUERY}" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
        start = time.perf_counter()
        status, body = http_json(url, token)
        api_times.append(time.perf_counter() - start)
        assert status == 200 and body["items"], body
        cursor = body["next_cursor"] if n % 5 != 4 else None  # first page, then four more by cursor
    # the web page, logged in through the form
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(base + "/login").read().decode()
    csrf = re.search(r'name="_csrf" value="([^"]+)"', page).group(1)
    opener.open(base + "/login", urllib.parse.urlencode({"username": "mgr_east", "password": PASSWORD,
                                                         "_csrf": csrf}).encode()).read()
    web_times = []
    for _ in range(requests):
        start = time.perf_counter()
        html = opener.open(f"{base}/records/lead?f.status=working&f.source=web&sort=-created_at").read()
        web_times.append(time.perf_counter() - start)
        assert b"/records/lead/" in html
    # the same keyset query by hand: the manager's subtree (east reps + the manager), first page then next
    team = org["reps"][:10] + [org["managers"][0]]
    raw_times = []
    raw = runtime.engine.raw_connection()
    try:
        cur = raw.driver_connection.cursor()
        last = None
        for n in range(requests):
            start = time.perf_counter()
            if last is None:
                cur.execute("SELECT * FROM rec_lead WHERE deleted_at IS NULL AND owner = ANY(%s) AND status = %s "
                            "AND source = %s ORDER BY created_at DESC, id DESC LIMIT 51",
                            (team, "working", "web"))
            else:
                cur.execute("SELECT * FROM rec_lead WHERE deleted_at IS NULL AND owner = ANY(%s) AND status = %s "
                            "AND source = %s AND (created_at, id) < (%s, %s) ORDER BY created_at DESC, id DESC "
                            "LIMIT 51", (team, "working", "web", *last))
            rows = cur.fetchall()
            names = [d.name for d in cur.description]
            json.dumps([{k: str(v) for k, v in zip(names, row)} for row in rows[:50]])
            raw_times.append(time.perf_counter() - start)
            more = len(rows) > 50 and n % 5 != 4
            last = (rows[49][names.index("created_at")], rows[49][names.index("id")]) if more else None
    finally:
        raw.close()
    return {
        "api": (percentile(api_times, 0.5), percentile(api_times, 0.95)),
        "web": (percentile(web_times, 0.5), percentile(web_times, 0.95)),
        "raw": (percentile(raw_times, 0.5), percentile(raw_times, 0.95)),
    }


# --- (b) pool sweep ------------------------------------------------------------------------


def bench_sweep(runtime, due: int) -> dict:
    pool = pools.get_pool(runtime.registry(), "general_leads")
    rule = pool.recycle[0]
    start = time.perf_counter()
    recycled = pools.recycle_rule(runtime, pool, rule)
    t_service = time.perf_counter() - start
    assert recycled == due, (recycled, due)

    def reset():
        with runtime.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE rec_lead SET owner = previous_owner, pool = NULL, previous_owner = NULL "
                                 "WHERE pool = 'general_leads'")
            conn.exec_driver_sql("DELETE FROM mc_history WHERE action = 'recycle'")
    reset()
    now = utcnow()
    cutoff = now - timedelta(days=3)
    due_sql = ("deleted_at IS NULL AND pool IS NULL AND owner IS NOT NULL AND product_line IS NULL "
               "AND status IN ('new', 'working') AND last_activity_at < :cutoff "
               "AND (protected_until IS NULL OR protected_until <= :now)")
    start = time.perf_counter()
    with runtime.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO mc_history (object, record_id, at, user_id, action, changes, note) "
            "SELECT 'lead', id, :now, NULL, 'recycle', json_build_object('owner', json_build_array(owner, null), "
            f"'pool', json_build_array(null, 'general_leads')), 'no follow-up in 3 days' FROM rec_lead WHERE {due_sql}"
        ), {"now": now, "cutoff": cutoff})
        done = conn.execute(sa.text(
            "UPDATE rec_lead SET previous_owner = owner, owner = NULL, pool = 'general_leads', owner_since = NULL, "
            f"protected_until = NULL, updated_at = :now, updated_by = NULL, version = version + 1 WHERE {due_sql}"
        ), {"now": now, "cutoff": cutoff}).rowcount
    t_raw = time.perf_counter() - start
    assert done == due, done
    reset()
    return {"service": t_service, "raw": t_raw}


# --- (c) reports -----------------------------------------------------------------------------


def bench_reports(runtime, repeats: int = 5) -> list[tuple[str, float, float]]:
    users = runtime.compiled().tables["user"]
    with runtime.engine.connect() as conn:
        admin_id = conn.execute(sa.select(users.c.id).where(users.c.username == "admin")).scalar_one()
    svc = RecordService(runtime, Principal(user_id=admin_id, username="admin", roles=frozenset({"admin"})),
                        source="bench")
    hand = {
        "pipeline_by_stage": "SELECT stage, count(*), sum(amount), sum(weighted_amount) FROM rec_opportunity "
                             "WHERE deleted_at IS NULL AND stage NOT IN ('won', 'lost') GROUP BY stage",
        "leads_by_source_and_status": "SELECT source, status, count(*) FROM rec_lead WHERE deleted_at IS NULL "
                                      "GROUP BY source, status ORDER BY source, status",
    }
    out = []
    for name, sql in hand.items():
        t_service, t_raw = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            result = reports.run_report(svc, name)
            t_service.append(time.perf_counter() - start)
            with runtime.engine.connect() as conn:
                start = time.perf_counter()
                rows = conn.exec_driver_sql(sql).fetchall()
                t_raw.append(time.perf_counter() - start)
        assert result and rows
        out.append((name, statistics.median(t_service), statistics.median(t_raw)))
    return out


# --- (d) add a field -----------------------------------------------------------------------


def bench_add_field(runtime) -> dict:
    doc = json.loads((Path(__file__).resolve().parents[1] / "metacrm/default_schemas/objects/lead.object.json")
                     .read_text())
    doc["fields"].append({"name": "scale_note", "type": "text", "label": "Scale note"})
    start = time.perf_counter()
    apply_change(runtime, documents_bundle([doc]))
    t_service = time.perf_counter() - start
    svc = RecordService(runtime, Principal.system(), source="bench")
    created = svc.create("lead", {"company": "Field Added Ltd", "source": "web", "scale_note": "visible"})
    assert created["scale_note"] == "visible"
    start = time.perf_counter()
    with runtime.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE rec_lead ADD COLUMN raw_note VARCHAR(255)")
    t_raw = time.perf_counter() - start
    return {"service": t_service, "raw": t_raw}


# --- (e) HTTP load -------------------------------------------------------------------------


def wrk_mix(base: str, seconds: int, env: dict) -> dict:
    command = ["wrk", "-t4", "-c32", f"-d{seconds}s", "--timeout", "10s", "--latency", "-s",
               str(HERE / "scale_mix.lua"), base]
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) / 1000 if unit == "us" else float(value) * 1000 if unit == "s" else float(value)

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "requests": total, "p99": ms("99"), "p50": ms("50"),
            "errors": int(non2xx.group(1)) if non2xx else 0, "socket": socket_errors.group(1) if socket_errors else ""}


def bench_load(base: str, seconds: int, ids_file: Path, token: str) -> dict:
    """The wrk mix against `base` (metacrm, or the bare app, which ignores the token)."""
    env = dict(os.environ, SCALE_IDS=str(ids_file), SCALE_TOKEN=token, SCALE_LIST=f"/api/v1/records/lead?{LIST_QUERY}")
    return wrk_mix(base, seconds, env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--opportunities", type=int, default=300_000)
    parser.add_argument("--due", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--requests", type=int, default=200, help="sequential list requests for p95")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="metacrm-scale-"))
    rows: list[list[str]] = []
    with fresh_database("postgresql", workdir) as url:
        runtime = build_runtime(Config(database_url=url))
        initialise(runtime, PASSWORD)
        org = people(runtime)
        population = populate(runtime, org, args.leads, args.opportunities, args.due)
        ids_file = workdir / "ids.txt"  # lead ids the load's reads pick from
        ids_file.write_text("\n".join(population["sample_ids"]) + "\n")
        env = dict(os.environ, METACRM_DATABASE_URL=url, BENCH_DATABASE_URL=url, METACRM_SECRET_KEY="bench")
        env.pop("METACRM_REDIS_URL", None)
        port = free_port()
        server = gunicorn("metacrm.platform.app:create_app()", port, env, threads=8)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for(base + "/api/v1/openapi.json", timeout=120)
            listed = bench_list(base, runtime, org, args.requests)
            rows += [["(a) list page, filter+sort, API (p50 / p95)",
                      f"{listed['api'][0] * 1000:.1f} / {listed['api'][1] * 1000:.1f} ms",
                      f"{listed['raw'][0] * 1000:.1f} / {listed['raw'][1] * 1000:.1f} ms",
                      f"{listed['api'][1] / listed['raw'][1]:.1f}x p95"],
                     ["(a) list page, filter+sort, web page (p50 / p95)",
                      f"{listed['web'][0] * 1000:.1f} / {listed['web'][1] * 1000:.1f} ms",
                      f"{listed['raw'][0] * 1000:.1f} / {listed['raw'][1] * 1000:.1f} ms",
                      f"{listed['web'][1] / listed['raw'][1]:.1f}x p95"]]
            print(rows[-2:], flush=True)
            loaded = bench_load(base, args.seconds, ids_file, token_for(base, "admin"))
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(20)
        port = free_port()
        server = gunicorn("bench.bare_app:create_app()", port, env, threads=8)
        try:
            base_raw = f"http://127.0.0.1:{port}"
            wait_for(base_raw + "/row/x")
            raw_loaded = bench_load(base_raw, args.seconds, ids_file, "unused")
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(20)
        rows.append([f"(e) HTTP mix 60/20/20 read/list/create, 32 conn, {args.seconds} s",
                     (f"{loaded['rps']:,.0f} req/s, p50 {loaded['p50']:.0f} ms, p99 {loaded['p99']:.0f} ms, "
                     f"{loaded['errors']} errors of {loaded['requests']:,} {loaded['socket']}"),
                     (f"{raw_loaded['rps']:,.0f} req/s, p50 {raw_loaded['p50']:.0f} ms, p99 {raw_loaded['p99']:.0f} ms, "
                     f"{raw_loaded['errors']} errors"),
                     f"{loaded['rps'] / raw_loaded['rps']:.2f}"])
        print(rows[-1], flush=True)
        swept = bench_sweep(runtime, args.due)
        rows.append([f"(b) pool sweep, {args.due:,} due of {args.leads:,}", f"{swept['service']:.2f} s",
                     f"{swept['raw']:.2f} s", f"{swept['service'] / swept['raw']:.2f}x time"])
        print(rows[-1], flush=True)
        for name, t_service, t_raw in bench_reports(runtime):
            rows.append([f"(c) report {name}", f"{t_service * 1000:.0f} ms", f"{t_raw * 1000:.0f} ms",
                         f"{t_service / t_raw:.2f}x time"])
            print(rows[-1], flush=True)
        added = bench_add_field(runtime)
        rows.append(["(d) add a text field to lead (apply, live)", f"{added['service'] * 1000:.0f} ms",
                     f"{added['raw'] * 1000:.0f} ms (ALTER TABLE)", f"{added['service'] / added['raw']:.1f}x time"])
        print(rows[-1], flush=True)
        runtime.engine.dispose()
    header = ["work (PostgreSQL, 1M leads / 300k opportunities)", "metacrm", "raw stack", "ratio"]
    if args.record:
        record("Scale run (issue 8)", header, rows,
               f"{args.leads:,} leads, {args.opportunities:,} opportunities; list as a sales manager (subtree scope); "
               "gunicorn 2 workers x 8 threads for both apps; wrk -t4 -c32.")
    for row in rows:
        print(" | ".join(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
