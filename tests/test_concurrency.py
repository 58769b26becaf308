"""Concurrency on PostgreSQL with real threads: optimistic locking loses no update, a pooled
record has one owner and claim limits hold under a race, an approval step is decided once.

Every case runs on PostgreSQL (READ COMMITTED, one connection per thread); on SQLite they
skip, because SQLite serialises writers (BEGIN IMMEDIATE) and there is no race to test.
REST calls go through Flask's test client, one client per thread, into the same app and
engine pool. Threads start together at a barrier; outcomes are checked in the database.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest
import sqlalchemy as sa

from metacrm.approval.tables import request as approval_request
from metacrm.approval.tables import task as approval_task
from metacrm.platform import db
from metacrm.platform.errors import StaleVersion, ValidationFailed
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.test_dedup import fast_hash
from tests.test_outbox import installation

JOIN_SECONDS = 120

DOCS = [
    {"kind": "object", "name": "cc_counter", "name_field": "name", "track_history": ["counter"], "fields": [
        {"name": "name", "type": "text", "required": True},
        {"name": "counter", "type": "integer", "default": 0},
        {"name": "log", "type": "textarea"},
    ]},
    {"kind": "object", "name": "cc_company", "name_field": "name", "fields": [
        {"name": "name", "type": "text", "required": True},
        {"name": "segment", "type": "picklist", "options": ["direct", "one", "held", "daily"], "default": "direct"},
    ]},
    {"kind": "object", "name": "cc_coded", "name_field": "code", "fields": [
        {"name": "code", "type": "text", "required": True, "unique": True},
    ]},
    {"kind": "object", "name": "cc_req", "name_field": "name", "fields": [
        {"name": "name", "type": "text", "required": True},
        {"name": "kind", "type": "text"},
    ]},
    {"kind": "role", "name": "cc_rep", "objects": {
        "cc_company": {"create": "all", "read": "own", "edit": "own"},
        "cc_req": {"create": "all", "read": "own", "edit": "own"}}},
    {"kind": "role", "name": "cc_first", "objects": {"cc_req": {"read": "all"}}},
    {"kind": "role", "name": "cc_second", "objects": {"cc_req": {"read": "all"}}},
    {"kind": "pool", "name": "cc_one", "object": "cc_company", "entry": {"segment": "one"},
     "members": {"roles": ["cc_rep"]}, "claim": {"max_held": 50, "max_per_day": 100}},
    {"kind": "pool", "name": "cc_held", "object": "cc_company", "entry": {"segment": "held"},
     "members": {"roles": ["cc_rep"]}, "claim": {"max_held": 5, "max_per_day": 1000}},
    {"kind": "pool", "name": "cc_daily", "object": "cc_company", "entry": {"segment": "daily"},
     "members": {"roles": ["cc_rep"]}, "claim": {"max_held": 1000, "max_per_day": 4}},
    {"kind": "approval_process", "name": "cc_two", "object": "cc_req", "entry": {"kind": "two"}, "steps": [
        {"name": "first", "approver": {"role": "cc_first"}, "mode": "any"},
        {"name": "second", "approver": {"role": "cc_second"}},
    ]},
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def inst(request, tmp_path_factory):
    if request.param == "sqlite":
        pytest.skip("real concurrency needs PostgreSQL: SQLite serialises writers (BEGIN IMMEDIATE)")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("metacrm.platform.security.hash_password", fast_hash)
        patch.setattr("metacrm.platform.records.hash_password", fast_hash)
        with installation(request.param, tmp_path_factory.mktemp(request.param), DOCS) as env:
            env.rep = env.user("cc_requester", ["cc_rep"])
            env.first_a = env.user("cc_first_a", ["cc_first"])
            env.first_b = env.user("cc_first_b", ["cc_first"])
            env.second = env.user("cc_second_x", ["cc_second"])
            yield env


def run_together(targets: list) -> None:
    """Start one thread per callable, released at the same instant by a barrier; re-raise any
    exception a thread hit (a thread that dies silently would make the test pass wrongly)."""
    barrier = threading.Barrier(len(targets))
    errors: list[BaseException] = []

    def wrap(fn):
        def run():
            try:
                barrier.wait(timeout=JOIN_SECONDS)
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
        return run

    threads = [threading.Thread(target=wrap(fn), daemon=True) for fn in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_SECONDS)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if errors:
        raise errors[0]


def scalar(inst, query):
    with inst.runtime.engine.connect() as conn:
        return conn.execute(query).scalar()


# --- unique fields ---------------------------------------------------------------------------


def test_concurrent_creates_of_one_unique_value_leave_one_record(inst):
    """20 threads create the same unique code at once: the service's check cannot see the other
    transactions, the database's unique index (live records) can; exactly one wins."""
    code = f"C-{uuid.uuid4().hex[:8]}"
    outcomes: list[str] = []

    def create():
        try:
            RecordService(inst.runtime, Principal.system()).create("cc_coded", {"code": code})
            outcomes.append("created")
        except ValidationFailed as exc:
            outcomes.append(exc.code)

    run_together([create] * 20)
    assert Counter(outcomes) == {"created": 1, "not_unique": 19}
    table = inst.runtime.compiled().tables["cc_coded"]
    assert scalar(inst, sa.select(sa.func.count()).where(table.c.code == code)) == 1


# --- optimistic locking ---------------------------------------------------------------------

GROUP_UPDATES = 100  # "2 x 100": two writer groups (record service, REST PATCH), 100 increments each
THREADS_PER_GROUP = 4


def test_two_groups_of_100_concurrent_updates_lose_nothing(inst):
    """Read-modify-write with the version read; a 409 (stale_version) means read again and retry.
    The final counter, the version, the appended log and the history all account for 200."""
    record = inst.admin.create("cc_counter", {"name": "Hot", "counter": 0, "log": ""})
    record_id = record["id"]
    per_thread = GROUP_UPDATES // THREADS_PER_GROUP
    conflicts = Counter()

    def service_writer(tag: str):
        svc = RecordService(inst.runtime, Principal.system(), source="test")

        def run():
            done = 0
            while done < per_thread:
                current = svc.get("cc_counter", record_id)
                try:
                    svc.update("cc_counter", record_id,
                               {"counter": current["counter"] + 1, "log": current["log"] + f"{tag}.{done};"},
                               version=current["version"])
                except StaleVersion:
                    conflicts["service"] += 1
                    continue
                done += 1
        return run

    def api_writer(tag: str):
        client = inst.app.test_client()
        url = f"/api/v1/records/cc_counter/{record_id}"

        def run():
            done = 0
            while done < per_thread:
                current = client.get(url, headers=inst.admin_headers).get_json()
                answer = client.patch(url, headers=inst.admin_headers, json={
                    "counter": current["counter"] + 1, "log": current["log"] + f"{tag}.{done};",
                    "version": current["version"]})
                if answer.status_code == 409:
                    assert answer.get_json()["error"]["code"] == "stale_version"
                    conflicts["api"] += 1
                    continue
                assert answer.status_code == 200, answer.get_json()
                done += 1
        return run

    writers = [service_writer(f"s{n}") for n in range(THREADS_PER_GROUP)]
    writers += [api_writer(f"a{n}") for n in range(THREADS_PER_GROUP)]
    run_together(writers)

    final = inst.admin.get("cc_counter", record_id)
    assert final["counter"] == 2 * GROUP_UPDATES
    assert final["version"] == 1 + 2 * GROUP_UPDATES  # created at 1, advanced exactly 200 times
    tokens = final["log"].rstrip(";").split(";")
    expected = {f"{group}{n}.{i}" for group in "sa" for n in range(THREADS_PER_GROUP) for i in range(per_thread)}
    assert len(tokens) == 2 * GROUP_UPDATES and set(tokens) == expected  # each write kept, none twice
    updates = [h for h in inst.admin.history("cc_counter", record_id) if h["action"] == "update"]
    assert [h["changes"]["counter"] for h in updates] == [[n, n + 1] for n in range(2 * GROUP_UPDATES)]
    assert conflicts["service"] + conflicts["api"] > 0, "the writers never overlapped: not a concurrency test"


# --- pools ----------------------------------------------------------------------------------


def pooled(inst, segment: str, count: int) -> list[str]:
    ids = []
    for n in range(count):
        record = inst.admin.create("cc_company", {"name": f"{segment} {uuid.uuid4().hex[:6]} {n}", "segment": segment})
        assert record["pool"] == f"cc_{segment}" and record["owner"] is None, record
        ids.append(record["id"])
    return ids


def claim_all(inst, pool: str, attempts: list[tuple[object, str]]) -> list:
    """Each (user, record id) claims in its own thread through POST /pools/{pool}/claim."""
    answers: list = [None] * len(attempts)

    def claimer(slot: int, user, record_id: str):
        client = inst.app.test_client()

        def run():
            response = client.post(f"/api/v1/pools/{pool}/claim", json={"ids": [record_id]}, headers=user.headers)
            assert response.status_code == 200, response.get_json()
            answers[slot] = response.get_json()
        return run

    run_together([claimer(n, user, record_id) for n, (user, record_id) in enumerate(attempts)])
    return answers


def company_rows(inst, ids: list[str]) -> dict:
    table = inst.runtime.compiled().tables["cc_company"]
    with inst.runtime.engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.id, table.c.owner, table.c.pool).where(table.c.id.in_(ids))).fetchall()
    return {row.id: row for row in rows}


def claims_in_history(inst, record_id: str) -> int:
    h = db.history
    return scalar(inst, sa.select(sa.func.count()).where(h.c.object == "cc_company", h.c.record_id == record_id,
                                                         h.c.action == "claim"))


def test_50_concurrent_claimers_of_one_record_one_owner(inst):
    claimers = [inst.user(f"cc_claimer{n}", ["cc_rep"]) for n in range(50)]
    [contested] = pooled(inst, "one", 1)
    answers = claim_all(inst, "cc_one", [(user, contested) for user in claimers])
    winners = [n for n, answer in enumerate(answers) if answer["claimed"] == [contested]]
    assert len(winners) == 1
    losers = [failure["code"] for answer in answers for failure in answer["failed"]]
    assert losers == ["not_in_pool"] * 49  # "taken": the record is no longer in the pool
    row = company_rows(inst, [contested])[contested]
    assert (row.owner, row.pool) == (claimers[winners[0]].id, None)
    assert claims_in_history(inst, contested) == 1


def test_max_held_holds_under_50_concurrent_claims(inst):
    hoarder = inst.user("cc_hoarder", ["cc_rep"])
    ids = pooled(inst, "held", 50)
    answers = claim_all(inst, "cc_held", [(hoarder, record_id) for record_id in ids])
    claimed = [record_id for answer in answers for record_id in answer["claimed"]]
    codes = Counter(failure["code"] for answer in answers for failure in answer["failed"])
    assert len(claimed) == 5 and codes == {"max_held": 45}
    rows = company_rows(inst, ids)
    assert sorted(r.id for r in rows.values() if r.owner == hoarder.id) == sorted(claimed)
    refused = [r for r in rows.values() if r.id not in claimed]
    assert len(refused) == 45 and all((r.owner, r.pool) == (None, "cc_held") for r in refused)  # still pooled
    assert sum(claims_in_history(inst, record_id) for record_id in ids) == 5


def test_max_per_day_holds_under_50_concurrent_claims(inst):
    eager = inst.user("cc_eager", ["cc_rep"])
    ids = pooled(inst, "daily", 50)
    answers = claim_all(inst, "cc_daily", [(eager, record_id) for record_id in ids])
    claimed = [record_id for answer in answers for record_id in answer["claimed"]]
    codes = Counter(failure["code"] for answer in answers for failure in answer["failed"])
    assert len(claimed) == 4 and codes == {"max_per_day": 46}
    rows = company_rows(inst, ids)
    assert sum(1 for r in rows.values() if r.owner == eager.id) == 4
    assert sum(1 for r in rows.values() if (r.owner, r.pool) == (None, "cc_daily")) == 46
    counter = scalar(inst, sa.select(db.sequence.c.value).where(db.sequence.c.name.like(f"pool:cc_daily:claims:{eager.id}:%")))
    assert counter == 4  # the day's counter moved once per successful claim


# --- approvals ------------------------------------------------------------------------------


def submitted(inst) -> str:
    created = inst.client.post("/api/v1/records/cc_req", json={"name": f"R {uuid.uuid4().hex[:6]}", "kind": "two"},
                               headers=inst.rep.headers)
    assert created.status_code == 201, created.get_json()
    answer = inst.client.post(f"/api/v1/records/cc_req/{created.get_json()['id']}/submit", json={},
                              headers=inst.rep.headers)
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["id"]


def race_decisions(inst, request_id: str, plan: list[tuple[object, str]]) -> list:
    """20 threads: each (user, "approve" | "reject") POSTs its decision at the same moment."""
    results: list = [None] * len(plan)

    def decider(slot: int, user, decision: str):
        client = inst.app.test_client()

        def run():
            response = client.post(f"/api/v1/approvals/{request_id}/{decision}", json={"comment": f"#{slot}"},
                                   headers=user.headers)
            results[slot] = (decision, response.status_code, (response.get_json().get("error") or {}).get("code"))
        return run

    run_together([decider(n, user, decision) for n, (user, decision) in enumerate(plan)])
    return results


def decided_first_round(inst, request_id: str) -> list:
    t = approval_task
    with inst.runtime.engine.connect() as conn:
        return conn.execute(sa.select(t.c.approver, t.c.status, t.c.comment).where(
            t.c.request_id == request_id, t.c.round == 1, t.c.status.in_(["approved", "rejected"]))).fetchall()


def request_row(inst, request_id: str):
    with inst.runtime.engine.connect() as conn:
        return conn.execute(sa.select(approval_request).where(approval_request.c.id == request_id)).first()


@pytest.mark.parametrize("scenario", ["approve_approve", "approve_reject", "same_approver"])
def test_an_approval_step_is_decided_exactly_once(inst, scenario):
    request_id = submitted(inst)
    a, b = inst.first_a, inst.first_b
    plan = {
        "approve_approve": [(a, "approve"), (b, "approve")] * 10,
        "approve_reject": [(a, "approve"), (b, "reject")] * 10,
        "same_approver": [(a, "approve")] * 20,
    }[scenario]
    results = race_decisions(inst, request_id, plan)
    winners = [r for r in results if r[1] == 200]
    assert len(winners) == 1, results
    losers = Counter((status, code) for _, status, code in results if status != 200)
    assert losers == {(409, "already_decided"): 19}, results
    decisions = decided_first_round(inst, request_id)
    assert len(decisions) == 1  # exactly one decision recorded for the step
    assert decisions[0].status == {"approve": "approved", "reject": "rejected"}[winners[0][0]]
    req = request_row(inst, request_id)
    if winners[0][0] == "approve":  # advanced exactly one step
        assert (req.status, req.step_index, req.step_name, req.round) == ("pending", 1, "second", 2)
        t = approval_task
        second = scalar(inst, sa.select(sa.func.count()).where(t.c.request_id == request_id, t.c.round == 2))
        assert second == 1  # one task opened for the second step
    else:
        assert (req.status, req.step_index, req.round) == ("rejected", 0, 1)
    notes = [h["note"] or "" for h in inst.admin.history("cc_req", req.record_id)]
    assert sum(("approved by" in n or "rejected by" in n) and "first" in n for n in notes) == 1
