"""Public pools: entry, browsing, claims and their limits, release, assignment, protection
periods and the recycle sweep; concurrent claims on PostgreSQL with real threads."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from metacrm.platform import db, pools
from metacrm.platform.clock import utcnow
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.conftest import make_user
from tests.test_dedup import apply, clean_slate, crm_runtime, fast_hash

OBJECTS = [
    {"kind": "object", "name": "pl_company", "name_field": "name", "track_history": ["name", "status"], "fields": [
        {"name": "name", "type": "text", "required": True},
        {"name": "segment", "type": "picklist", "options": ["direct", "pool", "vip"], "default": "direct"},
        {"name": "status", "type": "picklist", "options": ["new", "working", "won", "lost"], "default": "new"},
        {"name": "secret", "type": "text"},
    ]},
    {"kind": "object", "name": "pl_visit", "name_field": "subject", "updates_last_activity": ["company"], "fields": [
        {"name": "subject", "type": "text"},
        {"name": "type", "type": "picklist", "options": ["call", "visit", "email"], "default": "call"},
        {"name": "company", "type": "lookup", "target": "pl_company"},
    ]},
    {"kind": "role", "name": "pl_rep", "objects": {
        "pl_company": {"create": "all", "read": "own", "edit": "own"},
        "pl_visit": {"create": "all", "read": "own", "edit": "own"}},
     "fields": {"pl_company": {"secret": "hidden"}}},
    {"kind": "role", "name": "pl_boss", "objects": {"pl_company": {"create": "all", "read": "all", "edit": "all"}}},
]
OBJECT_NAMES = ["pl_company", "pl_visit"]


def pool_doc(name="pl_pool", **extra):
    doc = {
        "kind": "pool", "name": name, "object": "pl_company", "entry": {"segment": "pool"},
        "members": {"roles": ["pl_rep"]}, "admins": {"roles": ["pl_boss"]},
        "claim": {"max_per_day": 50, "max_held": 50},
        "recycle": [{"when": {"last_activity_at": {"older_than_days": 3}}, "reason": "no follow-up in 3 days"}],
    }
    doc.update(extra)
    return doc


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def runtime(request, tmp_path_factory):
    yield from crm_runtime(request.param, tmp_path_factory, OBJECTS)


@pytest.fixture(autouse=True)
def fresh(runtime, monkeypatch):
    monkeypatch.setattr("metacrm.platform.security.hash_password", fast_hash)
    monkeypatch.setattr("metacrm.platform.records.hash_password", fast_hash)
    clean_slate(runtime, OBJECT_NAMES)


def system(runtime) -> RecordService:
    return RecordService(runtime, Principal.system(), source="test")


def person(runtime, username: str, roles=("pl_rep",), department: str | None = None) -> Principal:
    values = {"username": username, "roles": list(roles)}
    if department:
        values["department"] = department
    created = system(runtime).create("user", values)
    runtime.directory_changed()
    return Principal(user_id=created["id"], username=username, roles=frozenset(roles), department=department)


def pooled(runtime, name: str, **values) -> str:
    record = system(runtime).create("pl_company", {"name": name, "segment": "pool", **values})
    assert record["pool"] and record["owner"] is None, record
    return record["id"]


def raw(runtime, record_id: str) -> dict:
    return system(runtime).get_record("pl_company", record_id)


def set_columns(runtime, object_name: str, record_id: str, **values) -> None:
    table = runtime.compiled().tables[object_name]
    with runtime.transaction() as tx:
        tx.conn.execute(table.update().where(table.c.id == record_id).values(**values))


def codes(answer: dict) -> list[str]:
    return [failure["code"] for failure in answer["failed"]]


def test_entry_browse_and_hidden_fields(runtime, client, admin_headers):
    apply(runtime, pool_doc(priority=10), pool_doc("pl_vip", entry={"segment": {"in": ["pool", "vip"]}}, priority=5))
    rep = make_user(runtime, client, "pl_alice", ["pl_rep"])
    outsider = make_user(runtime, client, "pl_bob", ["pl_boss"])
    inside = client.post("/api/v1/records/pl_company", json={"name": "Pooled", "segment": "pool", "secret": "s"},
                         headers=admin_headers).get_json()
    assert (inside["pool"], inside["owner"]) == ("pl_vip", None)  # lowest priority wins
    vip_only = system(runtime).create("pl_company", {"name": "VIP", "segment": "vip"})
    owned = client.post("/api/v1/records/pl_company", headers=admin_headers,
                        json={"name": "Kept", "segment": "pool", "owner": rep.id}).get_json()
    assert (owned["pool"], owned["owner"]) == (None, rep.id)  # an explicit owner keeps the record
    direct = system(runtime).create("pl_company", {"name": "Direct"})
    assert direct["pool"] is None
    listed = client.get("/api/v1/pools", headers=rep.headers).get_json()["items"]
    assert [(p["name"], p["count"]) for p in listed] == [("pl_pool", 0), ("pl_vip", 2)]  # by name
    records = client.get("/api/v1/pools/pl_vip/records", headers=rep.headers).get_json()
    assert sorted(item["id"] for item in records["items"]) == sorted([inside["id"], vip_only["id"]])
    assert all("secret" not in item for item in records["items"]) and records["next_cursor"] is None
    assert client.get("/api/v1/pools/pl_vip/records?filter=" + '{"secret": "s"}',
                      headers=rep.headers).status_code == 400
    assert client.get(f"/api/v1/records/pl_company/{inside['id']}", headers=rep.headers).status_code == 404
    paged = client.get("/api/v1/pools/pl_vip/records?limit=1", headers=rep.headers).get_json()
    assert len(paged["items"]) == 1 and paged["next_cursor"]
    assert client.get("/api/v1/pools", headers=outsider.headers).get_json()["items"] == [
        {"name": "pl_pool", "label": "pl_pool", "object": "pl_company", "priority": 10, "count": 0, "admin": True,
         "strategy": "manual", "limits": {"max_per_day": 50, "max_held": 50, "reclaim_cooldown_days": None}},
        {"name": "pl_vip", "label": "pl_vip", "object": "pl_company", "priority": 5, "count": 2, "admin": True,
         "strategy": "manual", "limits": {"max_per_day": 50, "max_held": 50, "reclaim_cooldown_days": None}},
    ]
    stranger = make_user(runtime, client, "pl_carol", [])
    assert client.get("/api/v1/pools/pl_vip/records", headers=stranger.headers).status_code == 404
    own = client.post("/api/v1/records/pl_company", json={"name": "Mine", "segment": "pool"}, headers=rep.headers)
    assert (own.get_json()["owner"], own.get_json()["pool"]) == (rep.id, None)  # a rep's own record stays theirs
    given_up = client.post("/api/v1/records/pl_company", json={"name": "Theirs", "segment": "pool", "owner": None},
                           headers=rep.headers).get_json()
    assert (given_up["owner"], given_up["pool"]) == (None, "pl_vip")


def test_claim_takes_the_record_out_of_the_pool_once(runtime, client):
    apply(runtime, pool_doc(protection={"default_days": 10}))
    first, second = make_user(runtime, client, "pl_first", ["pl_rep"]), make_user(runtime, client, "pl_2nd", ["pl_rep"])
    record_id = pooled(runtime, "Contested")
    won = client.post("/api/v1/pools/pl_pool/claim", json={"ids": [record_id]}, headers=first.headers)
    assert won.status_code == 200 and won.get_json() == {"claimed": [record_id], "failed": []}
    lost = client.post("/api/v1/pools/pl_pool/claim", json={"ids": [record_id, "nope"]},
                       headers=second.headers).get_json()
    assert lost["claimed"] == [] and codes(lost) == ["not_in_pool", "not_in_pool"]
    record = client.get(f"/api/v1/records/pl_company/{record_id}", headers=first.headers).get_json()
    assert (record["owner"], record["pool"]) == (first.id, None)
    protected = raw(runtime, record_id)["protected_until"] - utcnow()
    assert timedelta(days=9, hours=23) < protected <= timedelta(days=10)
    history = client.get(f"/api/v1/records/pl_company/{record_id}/history", headers=first.headers).get_json()
    assert history["items"][-1]["action"] == "claim" and history["items"][-1]["user"] == first.id


def test_claim_limits_each_with_its_code(runtime):
    apply(runtime, pool_doc(claim={
        "max_per_day": 3, "max_held": 2, "reclaim_cooldown_days": 7,
        "overrides": [{"role": "pl_rep", "max_held": 3}, {"user": "pl_dora", "max_held": 5}],
    }))
    rep = person(runtime, "pl_rep1")
    ids = [pooled(runtime, f"Company {n}") for n in range(6)]
    answer = pools.claim(runtime, rep, "pl_pool", ids[:4])
    assert answer["claimed"] == ids[:3] and codes(answer) == ["max_held"]  # the role override allows 3
    system(runtime).update("pl_company", ids[0], {"status": "won"})  # won records are not "held"
    answer = pools.claim(runtime, rep, "pl_pool", [ids[3]])
    assert codes(answer) == ["max_per_day"] and "3 per day" in answer["failed"][0]["message"]
    assert raw(runtime, ids[3])["pool"] == "pl_pool"
    dora = person(runtime, "pl_dora")  # a user override beats the role's
    assert pools.claim(runtime, dora, "pl_pool", ids[3:6])["claimed"] == ids[3:6]
    boss = person(runtime, "pl_boss1", roles=("pl_boss",))  # pool admins are exempt
    more = [pooled(runtime, f"More {n}") for n in range(4)]
    assert pools.claim(runtime, boss, "pl_pool", more)["claimed"] == more


def test_release_then_cooldown_then_others_claim(runtime, client):
    apply(runtime, pool_doc(claim={"reclaim_cooldown_days": 7}))
    rep = make_user(runtime, client, "pl_keen", ["pl_rep"])
    other = person(runtime, "pl_other")
    record_id = pooled(runtime, "Boomerang")
    assert pools.claim(runtime, rep.principal, "pl_pool", [record_id])["claimed"] == [record_id]
    released = client.post(f"/api/v1/records/pl_company/{record_id}/release", json={"reason": "wrong region"},
                           headers=rep.headers)
    assert released.status_code == 200 and released.get_json()["pool"] == "pl_pool"
    record = raw(runtime, record_id)
    assert (record["owner"], record["previous_owner"]) == (None, rep.id)
    history = system(runtime).history("pl_company", record_id)
    assert history[-1]["action"] == "release" and "wrong region" in history[-1]["note"]
    again = pools.claim(runtime, rep.principal, "pl_pool", [record_id])
    assert codes(again) == ["reclaim_cooldown"]
    until = (utcnow() + timedelta(days=7)).strftime("%Y-%m-%d")
    assert until in again["failed"][0]["message"]
    with runtime.transaction() as tx:  # eight days later
        tx.conn.execute(db.history.update().where(db.history.c.record_id == record_id, db.history.c.action == "release")
                        .values(at=utcnow() - timedelta(days=8)))
    assert pools.claim(runtime, rep.principal, "pl_pool", [record_id])["claimed"] == [record_id]
    assert client.post(f"/api/v1/records/pl_company/{record_id}/release", json={},
                       headers=make_user(runtime, client, "pl_thief", ["pl_rep"]).headers).status_code == 404
    system(runtime).update("pl_company", record_id, {"owner": other.user_id})
    assert raw(runtime, record_id)["pool"] is None


def test_assign_and_reassign_by_pool_admins(runtime, client):
    apply(runtime, pool_doc(protection={"default_days": 5}))
    boss = make_user(runtime, client, "pl_boss2", ["pl_boss"])
    rep = make_user(runtime, client, "pl_rep2", ["pl_rep"])
    other = person(runtime, "pl_rep3")
    first, second = pooled(runtime, "Assigned"), pooled(runtime, "Unassigned")
    refused = client.post("/api/v1/pools/pl_pool/assign", json={"ids": [first], "user": rep.id}, headers=rep.headers)
    assert refused.status_code == 403
    answer = client.post("/api/v1/pools/pl_pool/assign", json={"ids": [first, "nope"], "user": "pl_rep2"},
                         headers=boss.headers).get_json()
    assert answer["assigned"] == [first] and codes(answer) == ["not_found"]
    before = raw(runtime, first)
    assert before["owner"] == rep.id and before["protected_until"] is not None
    answer = pools.assign(runtime, boss.principal, "pl_pool", [first], other.user_id)
    after = raw(runtime, first)
    assert answer["assigned"] == [first] and after["owner"] == other.user_id
    assert (after["owner_since"], after["protected_until"]) == (before["owner_since"], before["protected_until"])
    assert raw(runtime, second)["pool"] == "pl_pool"



def test_owner_changes_outside_the_pool_keep_the_clock(runtime):
    """An admin edit or a workflow owner change hands the record over without restarting
    protection or the recycle clock; a record that had no owner starts one."""
    apply(runtime, pool_doc(protection={"default_days": 5}))
    first, second, third = person(runtime, "pl_own1"), person(runtime, "pl_own2"), person(runtime, "pl_own3")
    record_id = pooled(runtime, "Handed Over")
    pools.assign(runtime, Principal.system(), "pl_pool", [record_id], first.user_id)
    long_ago = utcnow() - timedelta(days=2)
    set_columns(runtime, "pl_company", record_id, owner_since=long_ago)
    before = raw(runtime, record_id)
    edited = system(runtime).update_record("pl_company", record_id, {"owner": second.user_id},
                                           version=before["version"]).record
    assert edited["owner"] == second.user_id and edited["previous_owner"] == first.user_id
    assert (edited["owner_since"], edited["protected_until"]) == (long_ago, before["protected_until"])
    moved = system(runtime).system_update("pl_company", record_id, {"owner": third.user_id}, action="workflow")
    assert moved["owner"] == third.user_id and moved["owner_since"] == long_ago
    fresh = system(runtime).create("pl_company", {"name": "Nobody's", "segment": "direct"}, no_owner=True)
    assert fresh["owner"] is None
    taken = system(runtime).update_record("pl_company", fresh["id"], {"owner": first.user_id},
                                          version=fresh["version"]).record
    assert taken["owner_since"] is not None and taken["owner_since"] > long_ago

def test_auto_assignment_round_robin_and_load_balanced(runtime):
    dept = system(runtime).create("department", {"name": "hardware"})
    runtime.directory_changed()
    users = [person(runtime, f"pl_hw{n}", department=dept["id"]).user_id for n in range(3)]
    # someone in the unit whose roles cannot hold pl_company is never handed a record
    person(runtime, "pl_hw_clerk", roles=(), department=dept["id"])
    apply(runtime, pool_doc(assignment={"strategy": "round_robin", "users": {"departments": ["hardware"]}}))
    owners = [system(runtime).create("pl_company", {"name": f"RR {n}", "segment": "pool"})["owner"] for n in range(6)]
    assert owners == sorted(users) * 2
    apply(runtime, pool_doc(assignment={"strategy": "load_balanced", "users": {"users": ["pl_hw0", "pl_hw1"]}}))
    for record_id in [system(runtime).create("pl_company", {"name": f"Extra {n}", "owner": users[0]})["id"]
                      for n in range(3)]:
        assert raw(runtime, record_id)["owner"] == users[0]
    balanced = [system(runtime).create("pl_company", {"name": f"LB {n}", "segment": "pool"})["owner"]
                for n in range(3)]
    assert balanced == [users[1], users[1], users[1]]  # users[0] holds 5 open records, users[1] 2 then 3, 4
    history = system(runtime).history("pl_company", system(runtime).list("pl_company", limit=1)[0][0]["id"])
    assert any(entry["action"] == "assign" and "load balanced" in (entry["note"] or "") for entry in history)


def test_protection_periods_and_recycle_dates(runtime):
    apply(runtime, pool_doc(protection={"default_days": 2, "extend_days": 10, "max_days": 15,
                                        "qualifying_activity": {"type": {"in": ["visit"]}}}))
    rep = person(runtime, "pl_prot")
    record_id = pooled(runtime, "Protected")
    pools.claim(runtime, rep, "pl_pool", [record_id])
    claimed = raw(runtime, record_id)
    system(runtime).create("pl_visit", {"subject": "phone", "type": "call", "company": record_id})
    assert raw(runtime, record_id)["protected_until"] == claimed["protected_until"]  # not qualifying
    system(runtime).create("pl_visit", {"subject": "on site", "type": "visit", "company": record_id})
    extended = raw(runtime, record_id)
    assert timedelta(days=9, hours=23) < extended["protected_until"] - utcnow() <= timedelta(days=10)
    assert extended["last_activity_at"] is not None
    set_columns(runtime, "pl_company", record_id, owner_since=utcnow() - timedelta(days=14))
    system(runtime).create("pl_visit", {"subject": "again", "type": "visit", "company": record_id})
    capped = raw(runtime, record_id)["protected_until"] - utcnow()
    assert timedelta(hours=23) < capped <= timedelta(days=1)  # owner_since + max_days
    set_columns(runtime, "pl_company", record_id, last_activity_at=utcnow() - timedelta(days=5))
    info = pools.recycle_info(runtime, Principal.system(), "pl_company", record_id)
    assert info["pool"] == "pl_pool" and info["reason"] == "no follow-up in 3 days"
    assert info["recycle_at"] == info["protected_until"]  # due already, but protected until then
    assert pools.recycle_sweep(runtime).startswith("recycled 0 record(s)")
    set_columns(runtime, "pl_company", record_id, protected_until=None, last_activity_at=utcnow() - timedelta(days=1))
    info = pools.recycle_info(runtime, Principal.system(), "pl_company", record_id)
    assert info["recycle_at"][:10] == (utcnow() + timedelta(days=2)).strftime("%Y-%m-%d")


def test_recycle_sweep_returns_stale_records_with_the_reason(runtime, client, admin_headers):
    apply(runtime, pool_doc(warn_before_recycle_days=1))
    rep = person(runtime, "pl_sleepy")
    stale, fresh_one, never, soon = (pooled(runtime, name) for name in ("Stale", "Fresh", "Never", "Soon"))
    assert pools.claim(runtime, rep, "pl_pool", [stale, fresh_one, never, soon])["claimed"]
    outside = system(runtime).create("pl_company", {"name": "Outside", "owner": rep.user_id})["id"]
    now = utcnow()
    set_columns(runtime, "pl_company", stale, last_activity_at=now - timedelta(days=5))
    set_columns(runtime, "pl_company", fresh_one, last_activity_at=now - timedelta(days=1))
    set_columns(runtime, "pl_company", never, owner_since=now - timedelta(days=4))  # never followed up
    set_columns(runtime, "pl_company", soon, last_activity_at=now - timedelta(days=2, hours=12))
    set_columns(runtime, "pl_company", outside, last_activity_at=now - timedelta(days=9))
    summary = pools.recycle_sweep(runtime)
    assert summary.startswith("recycled 2 record(s) (pl_pool: 2); warned 1 owner(s)"), summary
    for record_id in (stale, never):
        record = raw(runtime, record_id)
        assert (record["owner"], record["pool"], record["previous_owner"]) == (None, "pl_pool", rep.user_id)
        entry = system(runtime).history("pl_company", record_id)[-1]
        assert (entry["action"], entry["note"]) == ("recycle", "no follow-up in 3 days")
        assert entry["changes"] == {"owner": [rep.user_id, None], "pool": [None, "pl_pool"]}
    for record_id in (fresh_one, soon, outside):
        assert raw(runtime, record_id)["owner"] == rep.user_id
    pools.recycle_sweep(runtime)
    with runtime.engine.connect() as conn:
        warnings = conn.execute(sa.select(db.outbox.c.topic, db.outbox.c.payload)).fetchall()
    assert [(topic, payload["record_id"], payload["users"]) for topic, payload in warnings] == [
        ("notify", soon, [rep.user_id])]
    history = client.get(f"/api/v1/records/pl_company/{stale}/history", headers=admin_headers).get_json()["items"]
    assert history[-1]["note"] == "no follow-up in 3 days"


def test_concurrent_claims_have_one_winner_and_limits_hold(runtime):
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("real concurrency: PostgreSQL (SQLite serialises writers)")
    apply(runtime, pool_doc(claim={"max_held": 3, "max_per_day": 100}))
    racers = [person(runtime, f"pl_racer{n}") for n in range(20)]
    contested = pooled(runtime, "Raced")
    many = [pooled(runtime, f"Hoard {n}") for n in range(20)]
    start = threading.Barrier(20)
    results: dict[int, dict] = {}

    def race(number, principal, ids):
        start.wait()
        results[number] = pools.claim(runtime, principal, "pl_pool", ids)

    threads = [threading.Thread(target=race, args=(n, racer, [contested])) for n, racer in enumerate(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    winners = [n for n, answer in results.items() if answer["claimed"] == [contested]]
    assert len(results) == 20 and len(winners) == 1
    assert raw(runtime, contested)["owner"] == racers[winners[0]].user_id
    assert sorted(code for answer in results.values() for code in codes(answer)) == ["not_in_pool"] * 19

    hoarder = person(runtime, "pl_hoarder")
    results.clear()
    threads = [threading.Thread(target=race, args=(n, hoarder, [record_id])) for n, record_id in enumerate(many)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    claimed = [record_id for answer in results.values() for record_id in answer["claimed"]]
    assert len(claimed) == 3
    assert sorted(code for answer in results.values() for code in codes(answer)) == ["max_held"] * 17
    table = runtime.compiled().tables["pl_company"]
    with runtime.engine.connect() as conn:
        held = conn.execute(sa.select(sa.func.count()).where(table.c.owner == hoarder.user_id)).scalar()
    assert held == 3
