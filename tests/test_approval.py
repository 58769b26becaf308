"""Approval processes over REST: the brief's quote-discount chain on the default `quote`
object, the record lock, recall, any/all modes, going back a step, delegation, timeouts,
the approver rules, a workflow's submit action, and concurrent decisions."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from metacrm import approval as engine
from metacrm.approval.tables import task
from metacrm.platform.clock import utcnow
from metacrm.platform.errors import Conflict, CrmError
from metacrm.platform.records import RecordService
from tests.test_outbox import installation

QX = [
    {"kind": "object", "name": "qx", "label": "Request", "name_field": "name", "track_history": ["kind"],
     "fields": [{"name": "name", "type": "text", "required": True}, {"name": "kind", "type": "text"},
                {"name": "amount", "type": "currency"}]},
    {"kind": "role", "name": "q_board", "label": "Board",
     "objects": {"qx": {"create": "all", "read": "all", "edit": "all", "delete": "all"}}},
    {"kind": "role", "name": "q_rep", "label": "Requester",
     "objects": {"qx": {"create": "all", "read": "own", "edit": "own", "delete": "own"}}},
]


def process(name: str, kind: str, steps: list, **extra) -> dict:
    return {"kind": "approval_process", "name": name, "object": "qx", "entry": {"kind": kind}, "steps": steps,
            **extra}


PROCESSES = [
    process("qx_all", "all", [{"name": "board", "approver": {"role": "q_board"}, "mode": "all"}],
            allow_recall=False),
    process("qx_any", "any", [{"name": "board", "approver": {"role": "q_board"}, "mode": "any"}],
            approver_can_edit=True),
    process("qx_back", "back", [
        {"name": "first", "approver": {"user": "q_super"}},
        {"name": "second", "approver": {"role": "q_board"}, "on_reject": "previous"},
    ]),
    process("qx_remind", "remind", [{"name": "slow", "approver": {"user": "q_super"},
                                     "timeout": {"hours": 1, "action": "remind"}}]),
    process("qx_escalate", "escalate", [{"name": "slow", "approver": {"user": "q_super"},
                                         "timeout": {"hours": 2, "action": "escalate",
                                                     "escalate_to": {"role": "q_board"}}}]),
    process("qx_chain", "chain", [{"name": "chain", "approver": {"manager_chain": "owner", "levels": 2}}]),
    process("qx_head", "head", [{"name": "head", "approver": {"department_head": "owner"}}]),
    {"kind": "workflow_rule", "name": "qx_auto_submit", "object": "qx", "trigger": {"on": "create"},
     "condition": {"kind": "any"}, "actions": [{"action": "submit_for_approval", "process": "qx_any"}]},
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def inst(request, tmp_path_factory):
    with installation(request.param, tmp_path_factory.mktemp(request.param), QX + PROCESSES) as env:
        env.vp1 = env.user("q_vp1", ["vp_sales", "q_board"])
        env.vp2 = env.user("q_vp2", ["vp_sales", "q_board"])
        env.super = env.user("q_super", ["sales_manager", "q_board"], manager=env.vp1)
        head = env.user("q_head", ["sales_manager"])
        dept = env.admin.create("department", {"name": "Sales east", "head": head.id})
        env.head = head
        from tests.conftest import make_user

        env.rep = env.users["q_rep"] = make_user(env.runtime, env.client, "q_rep", ["sales_rep", "q_rep"],
                                                 department=dept["id"], manager=env.super.id)
        env.outsider = env.user("q_out", ["sales_rep", "q_rep"])
        yield env


def api(inst, user, method: str, path: str, **kwargs):
    headers = inst.admin_headers if user == "admin" else user.headers
    return getattr(inst.client, method)(f"/api/v1{path}", headers=headers, **kwargs)


def new(inst, user, obj: str, **values) -> dict:
    response = api(inst, user, "post", f"/records/{obj}", json=values)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def submit(inst, user, obj: str, record: dict, comment: str = "please"):
    return api(inst, user, "post", f"/records/{obj}/{record['id']}/submit", json={"comment": comment})


def decide(inst, user, request_id: str, decision: str, comment: str | None = None):
    return api(inst, user, "post", f"/approvals/{request_id}/{decision}", json={"comment": comment})


def read(inst, obj: str, record_id: str) -> dict:
    return inst.admin.get(obj, record_id)


def detail(inst, request_id: str) -> dict:
    response = api(inst, "admin", "get", f"/approvals/{request_id}")
    assert response.status_code == 200
    return response.get_json()


# --- the model case ---------------------------------------------------------------------------


def test_quote_discount_chain(inst):
    rep, sup = inst.rep, inst.super

    five = new(inst, rep, "quote", name="Five", discount_pct="5")
    refused = submit(inst, rep, "quote", five)
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "approval_not_required"
    assert read(inst, "quote", five["id"])["approval_status"] != "pending"

    twenty = new(inst, rep, "quote", name="Twenty", discount_pct="20")
    opened = submit(inst, rep, "quote", twenty)
    assert opened.status_code == 201
    req = opened.get_json()
    assert (req["status"], req["process"], req["record"], req["step"], req["approvers"]) == (
        "pending", "quote_discount", twenty["id"], "supervisor", [sup.id])
    assert read(inst, "quote", twenty["id"])["approval_status"] == "pending"
    queue = api(inst, sup, "get", "/approvals").get_json()["items"]
    assert req["id"] in [item["id"] for item in queue]
    assert api(inst, rep, "get", "/approvals").get_json()["items"] == []
    mine = api(inst, rep, "get", "/approvals?as=submitter").get_json()["items"]
    assert req["id"] in [item["id"] for item in mine]
    assert submit(inst, rep, "quote", twenty).get_json()["error"]["code"] == "approval_pending"
    done = decide(inst, sup, req["id"], "approve", "fine")
    assert done.status_code == 200 and done.get_json()["status"] == "approved"
    assert read(inst, "quote", twenty["id"])["approval_status"] == "approved"

    thirty = new(inst, rep, "quote", name="Thirty", discount_pct="30")
    req = submit(inst, rep, "quote", thirty).get_json()
    assert req["step"] == "supervisor"
    after_sup = decide(inst, sup, req["id"], "approve").get_json()
    assert after_sup["status"] == "pending" and after_sup["step"] == "vp"
    assert sorted(after_sup["approvers"]) == sorted([inst.vp1.id, inst.vp2.id])
    assert decide(inst, inst.vp1, req["id"], "approve").get_json()["status"] == "approved"
    late = decide(inst, inst.vp2, req["id"], "approve")
    assert late.status_code == 409 and late.get_json()["error"]["code"] == "already_decided"
    statuses = {(d["approver"], d["status"]) for d in detail(inst, req["id"])["decisions"]}
    assert {(inst.vp1.id, "approved"), (inst.vp2.id, "no_response"), (sup.id, "approved")} <= statuses

    seventy = new(inst, rep, "quote", name="Seventy", discount_pct="70")
    req = submit(inst, rep, "quote", seventy).get_json()
    assert decide(inst, sup, req["id"], "approve").get_json()["step"] == "vp"
    rejected = decide(inst, inst.vp2, req["id"], "reject", "too deep").get_json()
    assert rejected["status"] == "rejected"
    assert read(inst, "quote", seventy["id"])["approval_status"] == "rejected"
    inst.drain()
    bodies = [n.body for n in inst.notifications_of(rep.id)]
    assert "Quote Seventy was rejected: too deep" in bodies  # on_reject's notify to the owner
    assert any("approved" in b and "Twenty" in b for b in bodies)  # the submitter hears the end
    asked = [n.subject for n in inst.notifications_of(inst.vp1.id)]
    assert "Approval requested: Quote Seventy" in asked  # each approver at their step
    trail = [h for h in inst.admin.history("quote", seventy["id"]) if h["action"] == "approval"]
    notes = " | ".join(h["note"] or "" for h in trail)
    assert "Submitted for approval" in notes and "rejected by" in notes and "too deep" in notes
    full = detail(inst, req["id"])
    assert [(s["name"], s["status"]) for s in full["steps"]] == [("supervisor", "approved"), ("vp", "rejected")]


def test_pending_record_is_locked_except_for_admins(inst):
    quote = new(inst, inst.rep, "quote", name="Locked", discount_pct="25")
    req = submit(inst, inst.rep, "quote", quote).get_json()
    current = api(inst, inst.rep, "get", f"/records/quote/{quote['id']}").get_json()
    attempt = api(inst, inst.rep, "patch", f"/records/quote/{quote['id']}",
                  json={"name": "Changed", "version": current["version"]})
    assert attempt.status_code == 423 and attempt.get_json()["error"]["code"] == "record_locked"
    assert api(inst, inst.rep, "delete", f"/records/quote/{quote['id']}").status_code == 423
    assert read(inst, "quote", quote["id"])["name"] == "Locked"
    by_admin = api(inst, "admin", "patch", f"/records/quote/{quote['id']}",
                   json={"notes": "checked", "version": current["version"]})
    assert by_admin.status_code == 200
    notes = [h["note"] or "" for h in inst.admin.history("quote", quote["id"])]
    assert any("admin override" in note for note in notes)
    decide(inst, inst.super, req["id"], "approve")
    after = api(inst, inst.rep, "get", f"/records/quote/{quote['id']}").get_json()
    unlocked = api(inst, inst.rep, "patch", f"/records/quote/{quote['id']}",
                   json={"name": "Changed", "version": after["version"]})
    assert unlocked.status_code == 200


def test_recall_rules(inst):
    quote = new(inst, inst.rep, "quote", name="Recalled", discount_pct="15")
    req = submit(inst, inst.rep, "quote", quote).get_json()
    by_approver = api(inst, inst.super, "post", f"/approvals/{req['id']}/recall", json={})
    assert by_approver.status_code == 403
    recalled = api(inst, inst.rep, "post", f"/approvals/{req['id']}/recall", json={"comment": "oops"})
    assert recalled.status_code == 200 and recalled.get_json()["status"] == "recalled"
    assert read(inst, "quote", quote["id"])["approval_status"] == "recalled"
    again = api(inst, inst.rep, "post", f"/approvals/{req['id']}/recall", json={})
    assert again.status_code == 409
    assert decide(inst, inst.super, req["id"], "approve").status_code == 409
    resubmitted = submit(inst, inst.rep, "quote", quote)
    assert resubmitted.status_code == 201 and resubmitted.get_json()["id"] != req["id"]

    no_recall = new(inst, inst.rep, "qx", name="Firm", kind="all")
    firm = submit(inst, inst.rep, "qx", no_recall).get_json()
    refused = api(inst, inst.rep, "post", f"/approvals/{firm['id']}/recall", json={})
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "recall_not_allowed"


def test_who_may_see_submit_and_decide(inst):
    quote = new(inst, inst.rep, "quote", name="Private", discount_pct="20")
    assert submit(inst, inst.outsider, "quote", quote).status_code == 404  # cannot read it
    req = submit(inst, inst.rep, "quote", quote).get_json()
    assert api(inst, inst.outsider, "get", f"/approvals/{req['id']}").status_code == 404
    assert api(inst, inst.rep, "get", f"/approvals/{req['id']}").status_code == 200
    assert api(inst, inst.super, "get", f"/approvals/{req['id']}").status_code == 200
    assert decide(inst, inst.outsider, req["id"], "approve").status_code == 403
    assert decide(inst, inst.rep, req["id"], "approve").status_code == 403  # the submitter is no approver
    assert decide(inst, "admin", req["id"], "approve").status_code == 403
    assert decide(inst, inst.super, req["id"], "reject", "no").status_code == 200
    assert decide(inst, inst.super, req["id"], "approve").get_json()["error"]["code"] == "already_decided"
    assert api(inst, "admin", "get", "/approvals/nope").status_code == 404


# --- modes, steps, people ----------------------------------------------------------------------


def test_all_mode_needs_every_approver_and_any_mode_closes_the_others(inst):
    unanimous = submit(inst, inst.rep, "qx", new(inst, inst.rep, "qx", name="U", kind="all")).get_json()
    board = sorted([inst.vp1.id, inst.vp2.id, inst.super.id])
    assert sorted(unanimous["approvers"]) == board
    assert decide(inst, inst.vp1, unanimous["id"], "approve").get_json()["status"] == "pending"
    assert decide(inst, inst.vp1, unanimous["id"], "approve").status_code == 409
    assert decide(inst, inst.vp2, unanimous["id"], "approve").get_json()["status"] == "pending"
    assert decide(inst, inst.super, unanimous["id"], "approve").get_json()["status"] == "approved"

    vetoed = submit(inst, inst.rep, "qx", new(inst, inst.rep, "qx", name="V", kind="all")).get_json()
    decide(inst, inst.vp1, vetoed["id"], "approve")
    assert decide(inst, inst.vp2, vetoed["id"], "reject").get_json()["status"] == "rejected"

    first = submit(inst, inst.rep, "qx", new(inst, inst.rep, "qx", name="F", kind="any"))
    assert first.status_code == 409  # the workflow rule already submitted it on create
    pending = engine.queue(inst.runtime, inst.vp2.principal)
    anyone = next(item for item in pending if item["record_name"] == "F")
    assert decide(inst, inst.vp2, anyone["id"], "approve").get_json()["status"] == "approved"
    decisions = {d["approver"]: d["status"] for d in detail(inst, anyone["id"])["decisions"]}
    assert decisions == {inst.vp2.id: "approved", inst.vp1.id: "no_response", inst.super.id: "no_response"}


def test_reject_can_go_back_one_step(inst):
    req = submit(inst, inst.rep, "qx", new(inst, inst.rep, "qx", name="Back", kind="back")).get_json()
    assert (req["step"], req["approvers"]) == ("first", [inst.super.id])
    assert decide(inst, inst.super, req["id"], "approve").get_json()["step"] == "second"
    back = decide(inst, inst.vp1, req["id"], "reject", "redo").get_json()
    assert (back["status"], back["step"], back["approvers"]) == ("pending", "first", [inst.super.id])
    assert decide(inst, inst.super, req["id"], "approve").get_json()["step"] == "second"
    assert decide(inst, inst.vp2, req["id"], "approve").get_json()["status"] == "approved"


def test_manager_chain_and_department_head(inst):
    chain = submit(inst, inst.rep, "qx", new(inst, inst.rep, "qx", name="Chain", kind="chain")).get_json()
    assert chain["approvers"] == [inst.super.id, inst.vp1.id]
    head = submit(inst, inst.rep, "qx", new(inst, inst.rep, "qx", name="Head", kind="head")).get_json()
    assert head["approvers"] == [inst.head.id]
    nobody = submit(inst, inst.outsider, "qx", new(inst, inst.outsider, "qx", name="Orphan", kind="chain"))
    assert nobody.status_code == 409 and nobody.get_json()["error"]["code"] == "no_approver"


def test_current_approver_may_edit_when_the_process_allows(inst):
    record = new(inst, inst.rep, "qx", name="Editable", kind="any")  # submitted by the workflow rule
    current = api(inst, inst.vp1, "get", f"/records/qx/{record['id']}").get_json()
    edited = api(inst, inst.vp1, "patch", f"/records/qx/{record['id']}",
                 json={"amount": "10.00", "version": current["version"]})
    assert edited.status_code == 200
    by_owner = api(inst, inst.rep, "patch", f"/records/qx/{record['id']}",
                   json={"amount": "20.00", "version": edited.get_json()["version"]})
    assert by_owner.status_code == 423


def test_delegation_routes_new_and_open_tasks(inst):
    open_before = submit(inst, inst.rep, "qx", new(inst, inst.rep, "qx", name="Open", kind="all")).get_json()
    until = (utcnow() + timedelta(days=2)).isoformat() + "Z"
    set_ = api(inst, inst.vp1, "put", "/approvals/delegation", json={"delegate_to": "q_out", "until": until})
    assert set_.status_code == 200 and set_.get_json()["delegate_to"] == inst.outsider.id
    try:
        moved = detail(inst, open_before["id"])
        assert inst.outsider.id in moved["approvers"] and inst.vp1.id not in moved["approvers"]
        assert (inst.vp1.id, "delegated") in {(d["approver"], d["status"]) for d in moved["decisions"]}
        fresh = submit(inst, inst.rep, "qx", new(inst, inst.rep, "qx", name="Away", kind="all")).get_json()
        assert inst.outsider.id in fresh["approvers"] and inst.vp1.id not in fresh["approvers"]
        queue = api(inst, inst.outsider, "get", "/approvals").get_json()["items"]
        assert {open_before["id"], fresh["id"]} <= {item["id"] for item in queue}
        assert decide(inst, inst.outsider, fresh["id"], "approve").status_code == 200
        behalf = [d for d in detail(inst, fresh["id"])["decisions"] if d["approver"] == inst.outsider.id]
        assert behalf[0]["on_behalf_of"] == inst.vp1.id
        bad = api(inst, inst.vp1, "put", "/approvals/delegation", json={"delegate_to": "q_vp1"})
        assert bad.status_code == 400
    finally:
        assert api(inst, inst.vp1, "delete", "/approvals/delegation").status_code == 200
    back = submit(inst, inst.rep, "qx", new(inst, inst.rep, "qx", name="Home", kind="all")).get_json()
    assert inst.vp1.id in back["approvers"]


def test_timeouts_remind_once_and_escalate(inst):
    remind = submit(inst, inst.rep, "qx", new(inst, inst.rep, "qx", name="Slow", kind="remind")).get_json()
    escalate = submit(inst, inst.rep, "qx", new(inst, inst.rep, "qx", name="Stuck", kind="escalate")).get_json()
    assert engine.timeouts_sweep(inst.runtime) == "0 reminded, 0 escalated"
    with inst.runtime.transaction() as tx:
        tx.conn.execute(task.update().where(task.c.request_id.in_([remind["id"], escalate["id"]]))
                        .values(created_at=utcnow() - timedelta(hours=3)))
    assert engine.timeouts_sweep(inst.runtime) == "1 reminded, 1 escalated"
    assert engine.timeouts_sweep(inst.runtime) == "0 reminded, 0 escalated"
    escalated = detail(inst, escalate["id"])
    assert escalated["status"] == "pending" and sorted(escalated["approvers"]) == sorted(
        [inst.vp1.id, inst.vp2.id, inst.super.id])
    assert (inst.super.id, "no_response") in {(d["approver"], d["status"]) for d in escalated["decisions"]}
    inst.drain()
    reminders = [n for n in inst.notifications_of(inst.super.id) if n.subject == "Approval requested: Request Slow"]
    assert len(reminders) == 2  # the first ask and one reminder


# --- concurrency -----------------------------------------------------------------------------


def test_concurrent_decisions_count_once(inst):
    record = new(inst, inst.rep, "qx", name="Race", kind="any")
    req = next(item for item in engine.queue(inst.runtime, inst.vp1.principal) if item["record_name"] == "Race")
    deciders = [inst.vp1.principal, inst.vp2.principal, inst.super.principal, inst.vp1.principal]
    barrier = threading.Barrier(len(deciders))
    outcomes: list = []

    def attempt(principal):
        barrier.wait()
        try:
            outcomes.append(engine.decide(inst.runtime, principal, req["id"], "approve")["status"])
        except CrmError as exc:
            outcomes.append(type(exc))

    threads = [threading.Thread(target=attempt, args=(p,)) for p in deciders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(map(str, outcomes)).count("approved") == 1
    assert outcomes.count(Conflict) == 3
    with inst.runtime.engine.connect() as conn:
        approved = conn.execute(sa.select(sa.func.count()).select_from(task).where(
            task.c.request_id == req["id"], task.c.status == "approved")).scalar()
    assert approved == 1
    history = [h for h in inst.admin.history("qx", record["id"]) if "Request approved" in (h["note"] or "")]
    assert len(history) == 1


def test_workflow_action_submits_on_create(inst):
    record = new(inst, inst.rep, "qx", name="Auto", kind="any")
    mine = engine.queue(inst.runtime, inst.rep.principal, as_submitter=True)
    auto = [item for item in mine if item["record"] == record["id"]]
    assert len(auto) == 1 and auto[0]["status"] == "pending" and auto[0]["process"] == "qx_any"
    assert RecordService(inst.runtime, inst.rep.principal).get("qx", record["id"])["name"] == "Auto"
