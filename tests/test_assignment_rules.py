"""Assignment rules (`assignment_rule` metadata): ordered entries, first match wins; each
target kind (user, role in a unit by round robin / load balance, pool); max_held; import rows
with their row numbers; the owner rule still refusing an ineligible user; an explicit owner
(or a user's own new record) left alone; validation at apply with JSON paths."""

from __future__ import annotations

import pytest

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform.apply import apply_change
from metacrm.platform.errors import MetadataInvalid
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.test_dedup import apply, clean_slate, crm_runtime, fast_hash

OBJECTS = [
    {"kind": "object", "name": "ar_lead", "name_field": "company", "track_history": ["company"], "fields": [
        {"name": "company", "type": "text", "required": True},
        {"name": "line", "type": "picklist", "options": ["hw", "sw", "other"]},
        {"name": "size", "type": "integer"},
        {"name": "status", "type": "picklist", "options": ["new", "working", "converted"], "default": "new"},
    ]},
    {"kind": "object", "name": "ar_note", "name_field": "title", "fields": [{"name": "title", "type": "text"}]},
    {"kind": "role", "name": "ar_rep", "objects": {"ar_lead": {"create": "all", "read": "own", "edit": "own"}}},
    {"kind": "role", "name": "ar_clerk", "objects": {"ar_note": {"create": "all", "read": "own", "edit": "own"}}},
]
URL = "/api/v1/records/ar_lead/import"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def runtime(request, tmp_path_factory):
    yield from crm_runtime(request.param, tmp_path_factory, OBJECTS)


@pytest.fixture(autouse=True)
def fresh(runtime, monkeypatch):
    monkeypatch.setattr("metacrm.platform.security.hash_password", fast_hash)
    monkeypatch.setattr("metacrm.platform.records.hash_password", fast_hash)
    rules = [key for key in runtime.registry().documents if key[0] == "assignment_rule"]
    if rules:
        apply_change(runtime, documents_bundle([]), rules)
    clean_slate(runtime, ["ar_lead", "ar_note"])


def system(runtime) -> RecordService:
    return RecordService(runtime, Principal.system(), source="test")


def department(runtime, name: str, parent: str | None = None) -> str:
    created = system(runtime).create("department", {"name": name, **({"parent": parent} if parent else {})})
    runtime.directory_changed()
    return created["id"]


def person(runtime, username: str, roles=("ar_rep",), dept: str | None = None) -> Principal:
    values = {"username": username, "roles": list(roles), **({"department": dept} if dept else {})}
    created = system(runtime).create("user", values)
    runtime.directory_changed()
    return Principal(user_id=created["id"], username=username, roles=frozenset(roles), department=dept)


def rule(*entries, name="ar_routing", **extra) -> dict:
    return {"kind": "assignment_rule", "name": name, "object": "ar_lead", "entries": list(entries), **extra}


def pool(**extra) -> dict:
    return {"kind": "pool", "name": "ar_pool", "object": "ar_lead", "entry": {"line": "other"},
            "members": {"roles": ["ar_rep"]}, "claim": {"max_held": 50}, **extra}


def new(runtime, **values) -> dict:
    return system(runtime).create("ar_lead", {"company": "Co", **values})


def issues_of(runtime, *docs) -> list[tuple[str, str, str]]:
    with pytest.raises(MetadataInvalid) as caught:
        apply_change(runtime, documents_bundle(list(docs)))
    return [(i.source, i.path, i.message) for i in caught.value.issues]


def test_entries_in_order_first_match_wins_and_no_match_leaves_the_record(runtime):
    ann = person(runtime, "ar_ann").user_id
    bob = person(runtime, "ar_bob").user_id
    apply(runtime, pool(), rule(
        {"name": "big_hw", "when": {"all": [{"line": "hw"}, {"size": {"gte": 100}}]}, "assign_to": {"user": "ar_bob"}},
        {"name": "hw", "when": {"line": "hw"}, "assign_to": {"user": ann}},
        {"name": "hw_again", "when": {"line": "hw"}, "assign_to": {"user": "ar_bob"}},
        {"name": "sw", "when": {"line": "sw"}, "assign_to": {"pool": "ar_pool"}},
    ))
    big, small = new(runtime, line="hw", size=500), new(runtime, line="hw", size=5)
    assert (big["owner"], small["owner"]) == (bob, ann)  # the first matching entry, by username or id
    assert big["owner_since"] and big["pool"] is None
    history = system(runtime).history("ar_lead", small["id"])
    assert any(e["action"] == "assign" and "assignment rule ar_routing, entry 2 (hw)" in (e["note"] or "")
               for e in history)
    # a pool target puts the record in that pool even though its entry filter says `other`
    sw = new(runtime, line="sw")
    assert (sw["owner"], sw["pool"]) == (None, "ar_pool")
    # no entry matches: as without a rule (the pool's own entry, or nobody)
    other, plain = new(runtime, line="other"), new(runtime)
    assert (other["owner"], other["pool"]) == (None, "ar_pool")
    assert (plain["owner"], plain["pool"]) == (None, None)
    # an inactive rule does nothing; rules run on create only
    apply(runtime, rule({"assign_to": {"user": "ar_bob"}}, active=False))
    assert new(runtime, line="hw", size=5)["owner"] is None
    assert system(runtime).update("ar_lead", plain["id"], {"size": 3})["owner"] is None


def test_role_in_a_unit_round_robin_then_load_balanced_never_past_max_held(runtime):
    hw = department(runtime, "ar_hardware")
    east = department(runtime, "ar_hardware_east", parent=hw)
    sw = department(runtime, "ar_software")
    reps = sorted([person(runtime, "ar_hw1", dept=hw).user_id, person(runtime, "ar_hw2", dept=east).user_id,
                   person(runtime, "ar_hw3", dept=hw).user_id])
    person(runtime, "ar_sw1", dept=sw)  # the role, but another unit
    person(runtime, "ar_hw_clerk", roles=("ar_clerk",), dept=hw)  # the unit, but cannot hold ar_lead
    apply(runtime, rule({"when": {"line": "hw"},
                         "assign_to": {"role": "ar_rep", "department": "ar_hardware", "max_held": 2}}))
    owners = [new(runtime, company=f"RR {n}", line="hw")["owner"] for n in range(6)]
    assert owners == reps * 2  # in turn, the sub-department included
    # everyone holds 2 open records: the next one is left as without a rule, and says why
    full = new(runtime, company="Full", line="hw")
    assert full["owner"] is None
    note = [e["note"] for e in system(runtime).history("ar_lead", full["id"]) if e["action"] == "assign"]
    assert note and "nobody holding role ar_rep in ar_hardware has room" in note[0]
    # closed records are not held: converting one frees its owner for the next
    first = system(runtime).list("ar_lead", filter={"company": "RR 0"})[0][0]
    system(runtime).update("ar_lead", first["id"], {"status": "converted"})
    assert new(runtime, company="Freed", line="hw")["owner"] == reps[0]
    # load balanced: the one holding the fewest open records (ties by id)
    apply(runtime, rule({"when": {"line": "hw"},
                         "assign_to": {"role": "ar_rep", "department": "ar_hardware", "strategy": "load_balanced"}}))
    system(runtime).update("ar_lead", system(runtime).list("ar_lead", filter={"company": "RR 4"})[0][0]["id"],
                           {"status": "converted"})  # reps[1] now holds 1
    balanced = [new(runtime, company=f"LB {n}", line="hw")["owner"] for n in range(3)]
    assert balanced == [reps[1], reps[0], reps[1]]


def test_import_rows_are_routed_and_an_ineligible_user_is_an_error_row(runtime, client, admin_headers):
    ann = person(runtime, "ar_ann").user_id
    person(runtime, "ar_clerk", roles=("ar_clerk",))
    hw = department(runtime, "ar_hardware")
    reps = sorted([person(runtime, "ar_hw1", dept=hw).user_id, person(runtime, "ar_hw2", dept=hw).user_id])
    apply(runtime, rule(
        {"when": {"line": "sw"}, "assign_to": {"user": "ar_clerk"}},
        {"when": {"line": "hw"}, "assign_to": {"role": "ar_rep", "department": "ar_hardware", "max_held": 1}},
        {"assign_to": {"user": "ar_ann"}},
    ))
    rows = [{"company": "Hw A", "line": "hw"}, {"company": "Sw", "line": "sw"}, {"company": "Hw B", "line": "hw"},
            {"company": "Hw C", "line": "hw"}, {"company": "Rest"}, {"company": "Mine", "owner": reps[0]}]
    answer = client.post(URL, json=rows, headers=admin_headers)
    assert answer.status_code == 200, answer.get_json()
    by_row = {entry["row"]: entry for entry in answer.get_json()["rows"]}
    assert [by_row[n]["status"] for n in range(1, 7)] == ["created", "error", "created", "created", "created",
                                                          "created"]
    assert by_row[2]["code"] == "owner_not_eligible" and "ar_clerk" in by_row[2]["message"]
    assert list(by_row[2]["fields"]) == ["owner"]
    owner = {n: system(runtime).get("ar_lead", by_row[n]["id"])["owner"] for n in (1, 3, 4, 5, 6)}
    # rows 1 and 3 go to each rep in turn (max_held 1 counts the batch's own rows); row 4 finds
    # nobody with room and stays the importing admin's, as without a rule; the catch-all takes row 5
    admin_id = system(runtime).list("user", filter={"username": "admin"})[0][0]["id"]
    assert (owner[1], owner[3], owner[4], owner[5]) == (reps[0], reps[1], admin_id, ann)
    assert owner[6] == reps[0]  # an explicit owner in the file wins, max_held or not


def test_explicit_owner_and_a_users_own_record_are_left_alone(runtime, client, admin_headers):
    ann = person(runtime, "ar_ann").user_id
    rep = person(runtime, "ar_rep1")
    apply(runtime, pool(), rule({"assign_to": {"user": "ar_ann"}}))
    assert new(runtime, owner=rep.user_id)["owner"] == rep.user_id
    assert new(runtime, owner=None)["owner"] is None  # an explicit null too: no owner, no rule
    own = RecordService(runtime, rep, source="api").create("ar_lead", {"company": "Mine"})
    assert own["owner"] == rep.user_id  # a rep's own new record stays theirs
    by_admin = client.post("/api/v1/records/ar_lead", json={"company": "Routed"}, headers=admin_headers)
    assert by_admin.status_code == 201, by_admin.get_json()
    assert by_admin.get_json()["owner"] == ann


def test_a_user_who_may_not_hold_the_object_is_refused_and_nothing_is_saved(runtime, client, admin_headers):
    person(runtime, "ar_clerk", roles=("ar_clerk",))
    apply(runtime, rule({"assign_to": {"user": "ar_clerk"}}))
    refused = client.post("/api/v1/records/ar_lead", json={"company": "Nope"}, headers=admin_headers)
    assert refused.status_code == 422, refused.get_json()
    error = refused.get_json()["error"]
    assert error["code"] == "owner_not_eligible" and "ar_clerk" in error["message"]
    assert system(runtime).list("ar_lead")[0] == []


def test_validation_at_apply_names_each_problem_by_json_path(runtime):
    person(runtime, "ar_ann")
    department(runtime, "ar_hardware")
    other_pool = {"kind": "pool", "name": "ar_note_pool", "object": "ar_note"}
    apply(runtime, pool(), other_pool)
    src = "assignment_rule/ar_routing"
    assert issues_of(runtime, rule({"assign_to": {"user": "ar_ann"}}) | {"object": "ar_nothing"}) == [
        (src, "/object", "unknown object 'ar_nothing'")]
    found = issues_of(runtime, rule(
        {"when": {"colour": "red"}, "assign_to": {"user": "ar_ann"}},
        {"assign_to": {"role": "ar_boss"}},
        {"assign_to": {"pool": "ar_nowhere"}},
        {"assign_to": {"pool": "ar_note_pool"}},
    ))
    paths = {path: message for _, path, message in found}
    assert set(paths) == {"/entries/0/when/colour", "/entries/1/assign_to/role", "/entries/2/assign_to/pool",
                          "/entries/3/assign_to/pool"}, found
    assert "ar_lead has no field" in paths["/entries/0/when/colour"] or "colour" in paths["/entries/0/when/colour"]
    assert paths["/entries/1/assign_to/role"] == "unknown role 'ar_boss'"
    assert paths["/entries/2/assign_to/pool"] == "unknown pool 'ar_nowhere'"
    assert "holds ar_note records" in paths["/entries/3/assign_to/pool"]
    # users and departments are checked against the directory
    found = issues_of(runtime, rule({"assign_to": {"user": "ar_ghost"}},
                                    {"assign_to": {"role": "ar_rep", "department": "ar_atlantis"}},
                                    {"assign_to": {"role": "ar_rep", "department": "ar_hardware"}}))
    assert found == [(src, "/entries/0/assign_to/user", "unknown user 'ar_ghost'"),
                     (src, "/entries/1/assign_to/department", "unknown department 'ar_atlantis'")]
    # the shape: exactly one target, role-only keys with a role
    found = issues_of(runtime, rule({"assign_to": {"user": "ar_ann", "pool": "ar_pool"}},
                                    {"assign_to": {"pool": "ar_pool", "strategy": "round_robin"}}))
    assert [(p, m) for _, p, m in found] == [
        ("/entries/0/assign_to", "assign_to names exactly one of: user, role, pool"),
        ("/entries/1/assign_to/strategy", "strategy applies only with role")]
    # one active rule per object
    apply(runtime, rule({"assign_to": {"user": "ar_ann"}}))
    found = issues_of(runtime, rule({"assign_to": {"user": "ar_ann"}}, name="ar_second"))
    assert [(s, p) for s, p, _ in found] == [("assignment_rule/ar_routing", "/active"),
                                             ("assignment_rule/ar_second", "/active")]
    assert "lead already has an active assignment rule (ar_second)" in found[0][2]
    apply(runtime, rule({"assign_to": {"user": "ar_ann"}}, name="ar_second", active=False))  # inactive: fine
