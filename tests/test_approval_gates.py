"""Approvals that gate (an approval process's `guards`), over REST on SQLite and PostgreSQL: on a
custom object an admin defines (transitions, material fields, child lines, records made from a
guarded one, reset values; every write path: REST, import, bulk, workflow action, admin), the
default quote and contract metadata (discount depth from lines and total, contracts only through
their review, contracts only from approved quotes), validation at apply, and that no one
approves their own request, directly or through a delegation."""

from __future__ import annotations

import pytest

from metacrm import approval as engine
from metacrm.platform.errors import MetadataInvalid
from tests.test_outbox import installation

OBJECTS = [
    {"kind": "object", "name": "gx_deal", "label": "Deal", "name_field": "name",
     "track_history": ["status", "amount", "approval_status"],
     "fields": [{"name": "name", "type": "text", "required": True}, {"name": "code", "type": "text"},
                {"name": "status", "type": "picklist", "options": ["draft", "sent", "won"], "default": "draft"},
                {"name": "amount", "type": "currency"},
                {"name": "approval_status", "type": "picklist", "options": ["none", "pending", "approved"],
                 "default": "none"}]},
    {"kind": "object", "name": "gx_line", "label": "Deal line", "name_field": "note",
     "fields": [{"name": "deal", "type": "lookup", "target": "gx_deal", "required": True},
                {"name": "qty", "type": "decimal"}, {"name": "price", "type": "currency"},
                {"name": "note", "type": "text"}]},
    {"kind": "object", "name": "gx_order", "label": "Deal order", "name_field": "name",
     "fields": [{"name": "name", "type": "text"}, {"name": "deal", "type": "lookup", "target": "gx_deal"}]},
    {"kind": "role", "name": "gx_rep", "label": "Deal rep",
     "objects": {o: {"create": "all", "read": "all", "edit": "all", "delete": "all"}
                 for o in ("gx_deal", "gx_line", "gx_order")}},
    {"kind": "role", "name": "gx_boss", "label": "Deal boss",
     "objects": {o: {"create": "all", "read": "all", "edit": "all", "delete": "all"}
                 for o in ("gx_deal", "gx_line", "gx_order")}},
]
GUARDS = {
    "when": {"amount": {"gte": 100}},
    "transitions": [{"field": "status", "to": ["sent", "won"]}],
    "material_fields": ["amount"],
    "children": [{"object": "gx_line", "field": "deal", "material_fields": ["qty", "price"]}],
    "referenced_by": [{"object": "gx_order", "field": "deal"}],
    "reset": {"approval_status": "none"},
}
PROCESS = {
    "kind": "approval_process", "name": "gx_review", "object": "gx_deal", "label": "Deal review",
    "entry": {"amount": {"gte": 100}}, "guards": GUARDS,
    "steps": [{"name": "boss", "approver": {"role": "gx_boss"}}],
    "on_submit": [{"action": "update_field", "field": "approval_status", "value": "pending"}],
    "on_approve": [{"action": "update_field", "field": "approval_status", "value": "approved"}],
}
AUTO_SEND = {"kind": "workflow_rule", "name": "gx_auto_send", "object": "gx_deal",
             "trigger": {"on": "update"}, "condition": {"name": "send it"},
             "actions": [{"action": "update_field", "field": "status", "value": "sent"}]}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def inst(request, tmp_path_factory):
    with installation(request.param, tmp_path_factory.mktemp(request.param), OBJECTS + [PROCESS, AUTO_SEND]) as env:
        env.boss = env.user("gx_boss1", ["gx_boss"])
        env.boss2 = env.user("gx_boss2", ["gx_boss"])
        env.rep = env.user("gx_rep1", ["gx_rep"])
        yield env


def call(inst, user, method: str, path: str, status: int | None = None, **kwargs):
    headers = inst.admin_headers if user == "admin" else user.headers
    response = getattr(inst.client, method)(f"/api/v1{path}", headers=headers, **kwargs)
    if status is not None:
        assert response.status_code == status, response.get_json()
    return response.get_json()


def patch(inst, user, obj: str, record_id: str, values: dict, status: int = 200):
    current = call(inst, "admin", "get", f"/records/{obj}/{record_id}")
    return call(inst, user, "patch", f"/records/{obj}/{record_id}", status,
                json={**values, "version": current["version"]})


def approve(inst, obj: str, record_id: str, submitter=None, approver=None) -> dict:
    req = call(inst, submitter or inst.rep, "post", f"/records/{obj}/{record_id}/submit", 201, json={})
    return call(inst, approver or inst.boss, "post", f"/approvals/{req['id']}/approve", 200, json={})


def notes(inst, obj: str, record_id: str) -> str:
    return " | ".join(h["note"] or "" for h in inst.admin.history(obj, record_id))


def test_guarded_transition_needs_a_current_approval(inst):
    deal = call(inst, inst.rep, "post", "/records/gx_deal", 201, json={"name": "Big", "amount": "500"})
    refused = patch(inst, inst.rep, "gx_deal", deal["id"], {"status": "sent"}, 409)["error"]
    assert (refused["code"], refused["process"], refused["field"], refused["value"]) == (
        "approval_required", "gx_review", "status", "sent")
    assert "Deal review" in refused["message"]
    assert call(inst, "admin", "get", f"/records/gx_deal/{deal['id']}")["status"] == "draft"
    # the admin is held too; and the approval status is the engine's, not typed
    assert patch(inst, "admin", "gx_deal", deal["id"], {"status": "won"}, 409)["error"]["code"] == "approval_required"
    typed = patch(inst, inst.rep, "gx_deal", deal["id"], {"approval_status": "approved"}, 400)["error"]
    assert typed["code"] == "approval_field" and "approval_status" in typed["fields"]
    # created straight into a guarded value: refused as well
    born = call(inst, inst.rep, "post", "/records/gx_deal", 409, json={"name": "Born sent", "amount": "500",
                                                                        "status": "sent"})
    assert born["error"]["code"] == "approval_required"
    # below the guard's `when`, no approval is needed
    small = call(inst, inst.rep, "post", "/records/gx_deal", 201, json={"name": "Small", "amount": "50"})
    assert patch(inst, inst.rep, "gx_deal", small["id"], {"status": "sent"})["status"] == "sent"
    # approved: the transition goes through
    approve(inst, "gx_deal", deal["id"])
    assert call(inst, "admin", "get", f"/records/gx_deal/{deal['id']}")["approval_status"] == "approved"
    assert patch(inst, inst.rep, "gx_deal", deal["id"], {"status": "sent"})["status"] == "sent"


def test_material_change_resets_the_approval(inst):
    deal = call(inst, inst.rep, "post", "/records/gx_deal", 201, json={"name": "Material", "amount": "300"})
    approve(inst, "gx_deal", deal["id"])
    harmless = patch(inst, inst.rep, "gx_deal", deal["id"], {"code": "M-1"})
    assert harmless["approval_status"] == "approved"
    changed = patch(inst, inst.rep, "gx_deal", deal["id"], {"amount": "900"})
    assert changed["approval_status"] == "none"
    assert "no longer current (amount changed)" in notes(inst, "gx_deal", deal["id"])
    assert patch(inst, inst.rep, "gx_deal", deal["id"], {"status": "sent"}, 409)["error"]["code"] == "approval_required"
    approve(inst, "gx_deal", deal["id"])
    assert patch(inst, inst.rep, "gx_deal", deal["id"], {"status": "sent"})["status"] == "sent"


def test_a_child_line_change_counts_for_its_parent(inst):
    deal = call(inst, inst.rep, "post", "/records/gx_deal", 201, json={"name": "Lines", "amount": "300"})
    line = call(inst, inst.rep, "post", "/records/gx_line", 201, json={"deal": deal["id"], "qty": "1", "price": "300"})
    req = call(inst, inst.rep, "post", f"/records/gx_deal/{deal['id']}/submit", 201, json={})
    locked = call(inst, inst.rep, "post", "/records/gx_line", 423, json={"deal": deal["id"], "qty": "1"})
    assert locked["error"]["code"] == "record_locked"
    call(inst, inst.boss, "post", f"/approvals/{req['id']}/approve", 200, json={})
    # a change outside the line's material fields keeps the approval
    patch(inst, inst.rep, "gx_line", line["id"], {"note": "gift wrap"})
    assert call(inst, "admin", "get", f"/records/gx_deal/{deal['id']}")["approval_status"] == "approved"
    patch(inst, inst.rep, "gx_line", line["id"], {"price": "250"})
    after = call(inst, "admin", "get", f"/records/gx_deal/{deal['id']}")
    assert after["approval_status"] == "none"
    assert "a Deal line record was changed" in notes(inst, "gx_deal", deal["id"])
    assert patch(inst, inst.rep, "gx_deal", deal["id"], {"status": "sent"}, 409)["error"]["code"] == "approval_required"
    # a new line, and a deleted one, count too
    approve(inst, "gx_deal", deal["id"])
    call(inst, inst.rep, "post", "/records/gx_line", 201, json={"deal": deal["id"], "qty": "2", "price": "1"})
    assert call(inst, "admin", "get", f"/records/gx_deal/{deal['id']}")["approval_status"] == "none"
    approve(inst, "gx_deal", deal["id"])
    call(inst, inst.rep, "delete", f"/records/gx_line/{line['id']}", 204)
    assert call(inst, "admin", "get", f"/records/gx_deal/{deal['id']}")["approval_status"] == "none"


def test_records_made_from_a_guarded_one_need_its_approval(inst):
    deal = call(inst, inst.rep, "post", "/records/gx_deal", 201, json={"name": "Source", "amount": "400"})
    refused = call(inst, inst.rep, "post", "/records/gx_order", 409, json={"name": "O", "deal": deal["id"]})
    assert (refused["error"]["code"], refused["error"]["process"], refused["error"]["field"]) == (
        "approval_required", "gx_review", "deal")
    loose = call(inst, inst.rep, "post", "/records/gx_order", 201, json={"name": "Loose"})
    patch(inst, inst.rep, "gx_order", loose["id"], {"deal": deal["id"]}, 409)
    approve(inst, "gx_deal", deal["id"])
    assert call(inst, inst.rep, "post", "/records/gx_order", 201, json={"name": "O", "deal": deal["id"]})["deal"] \
        == deal["id"]


def test_every_write_path_is_gated(inst):
    # import: the guarded row is refused with its row number, the others are saved
    csv = "name,amount,status\nFine,10,sent\nGated,500,won\n"
    report = inst.client.post("/api/v1/records/gx_deal/import", data=csv.encode(),
                              headers={**inst.rep.headers, "Content-Type": "text/csv"}).get_json()
    assert report["summary"]["created"] == 1, report
    assert report["rows"][1]["row"] == 2 and report["rows"][1]["code"] == "approval_required"
    # bulk creates through the service (the batch path)
    from metacrm.platform.records import RecordService

    bulk = RecordService(inst.runtime, inst.rep.principal, source="test")
    results = bulk.create_many("gx_deal", [{"name": "Bulk ok", "amount": "70", "status": "won"},
                                            {"name": "Bulk", "amount": "700", "status": "won"}])
    assert [(r["status"], r.get("code")) for r in results] == [("created", None), ("error", "approval_required")]
    # a workflow action setting the guarded value is refused like anyone else
    deal = call(inst, inst.rep, "post", "/records/gx_deal", 201, json={"name": "Auto", "amount": "800"})
    answer = patch(inst, inst.rep, "gx_deal", deal["id"], {"name": "send it"}, 409)
    assert answer["error"]["code"] == "approval_required"
    assert call(inst, "admin", "get", f"/records/gx_deal/{deal['id']}")["status"] == "draft"


def test_no_one_approves_their_own_request(inst):
    # a boss who submits is not asked: the other boss is
    deal = call(inst, inst.boss, "post", "/records/gx_deal", 201, json={"name": "Mine", "amount": "600"})
    req = call(inst, inst.boss, "post", f"/records/gx_deal/{deal['id']}/submit", 201, json={})
    assert req["approvers"] == [inst.boss2.id]
    own = call(inst, inst.boss, "post", f"/approvals/{req['id']}/approve", 403, json={})
    assert own["error"]["code"] == "own_request"
    # boss2 delegates to the submitter: that delegation does not count, boss2 still decides
    call(inst, inst.boss2, "put", "/approvals/delegation", 200, json={"delegate_to": inst.boss.id})
    still = call(inst, "admin", "get", f"/approvals/{req['id']}")
    assert [t["approver"] for t in still["tasks"] if t["status"] == "pending"] == [inst.boss2.id]
    other = call(inst, inst.boss2, "post", "/records/gx_deal", 201, json={"name": "Theirs", "amount": "600"})
    asked = call(inst, inst.rep, "post", f"/records/gx_deal/{other['id']}/submit", 201, json={})
    assert inst.boss.id in asked["approvers"]  # a rep's request: the delegate decides for boss2
    own_delegated = call(inst, inst.boss, "post", "/records/gx_deal", 201, json={"name": "Loop", "amount": "600"})
    looped = call(inst, inst.boss, "post", f"/records/gx_deal/{own_delegated['id']}/submit", 201, json={})
    assert looped["approvers"] == [inst.boss2.id]  # the delegation back to the submitter is skipped
    call(inst, inst.boss2, "put", "/approvals/delegation", 200, json={"delegate_to": None})
    assert call(inst, inst.boss2, "post", f"/approvals/{req['id']}/approve", 200, json={})["status"] == "approved"


@pytest.mark.parametrize("guards, path", [
    ({"transitions": [{"field": "stage", "to": ["sent"]}]}, "/guards/transitions/0/field"),
    ({"transitions": [{"field": "status", "to": ["shipped"]}]}, "/guards/transitions/0/to/0"),
    ({"transitions": [{"field": "name", "to": ["x"]}]}, "/guards/transitions/0/field"),
    ({"material_fields": ["amount", "nope"]}, "/guards/material_fields/1"),
    ({"children": [{"object": "gx_order", "field": "name"}]}, "/guards/children/0/field"),
    ({"children": [{"object": "gx_line", "field": "deal", "material_fields": ["colour"]}]},
     "/guards/children/0/material_fields/0"),
    ({"referenced_by": [{"object": "nothing", "field": "deal"}]}, "/guards/referenced_by/0/object"),
    ({"reset": {"approval_status": "maybe"}}, "/guards/reset/approval_status"),
    ({"when": {"colour": "red"}}, "/guards/when"),
    ({"unknown": True}, "/guards"),
])
def test_guards_are_validated_at_apply(inst, guards, path):
    bad = dict(PROCESS, name="gx_bad", guards=guards)
    with pytest.raises(MetadataInvalid) as exc:
        inst.apply([bad])
    assert any(issue["path"].startswith(path) for issue in exc.value.to_dict()["issues"]), exc.value.to_dict()


def test_seeded_approval_goes_through_the_engine(inst):
    deal = call(inst, inst.rep, "post", "/records/gx_deal", 201, json={"name": "Seeded", "amount": "500"})
    req = engine.seed_approved(inst.runtime, inst.rep.principal, "gx_deal", deal["id"], comment="migrated")
    assert req["status"] == "approved"
    assert call(inst, "admin", "get", f"/records/gx_deal/{deal['id']}")["approval_status"] == "approved"
    assert "seeded data" in notes(inst, "gx_deal", deal["id"])
