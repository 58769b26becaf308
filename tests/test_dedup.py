"""Duplicate rules on the write path: block, warn, update, ignore, other objects, re-keying,
the duplicates check and merges (SQLite and PostgreSQL).

The tests run on their own objects (dd_*) so the default lead-to-cash rules stay out of the way.
"""

from __future__ import annotations

import threading
import uuid

import pytest
import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform import db, dedup
from metacrm.platform.apply import apply_change
from metacrm.platform.config import Config
from metacrm.platform.db import make_engine
from metacrm.platform.errors import DuplicateBlocked
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from metacrm.platform.setup import build_runtime, initialise
from tests.conftest import ADMIN_PASSWORD, PG_URL, require_pg

OBJECTS = [
    {"kind": "object", "name": "dd_company", "name_field": "name", "track_history": ["name", "email"],
     "fields": [
         {"name": "name", "type": "text", "required": True, "max_length": 200},
         {"name": "email", "type": "email"},
         {"name": "phone", "type": "phone"},
         {"name": "project", "type": "text"},
         {"name": "status", "type": "picklist", "options": ["active", "disqualified"], "default": "active"},
         {"name": "score", "type": "integer"},
     ]},
    {"kind": "object", "name": "dd_account", "name_field": "title", "fields": [{"name": "title", "type": "text"}]},
    {"kind": "object", "name": "dd_note", "name_field": "subject", "fields": [
        {"name": "subject", "type": "text"},
        {"name": "about", "type": "lookup", "target": "dd_company", "on_delete": "cascade"},
    ]},
]


def apply(runtime, *docs):
    apply_change(runtime, documents_bundle(list(docs)))
    runtime.compiled(force=True)


def fast_hash(password: str) -> str:
    """Test users need no scrypt: check_password_hash reads any method."""
    return generate_password_hash(password, method="pbkdf2:sha256:1000")


def crm_runtime(backend: str, tmp_path_factory, documents: list[dict]):
    """One initialised installation per test module and backend (setup is the slow part);
    `clean_slate` gives each test empty tables and no rules or pools."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("metacrm.platform.security.hash_password", fast_hash)
        patch.setattr("metacrm.platform.records.hash_password", fast_hash)
        if backend == "sqlite":
            engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('crm') / 'test.db'}")
            schema = None
        else:
            require_pg()
            schema = f"t_{uuid.uuid4().hex[:12]}"
            with sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT").connect() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            engine = make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
        try:
            rt = build_runtime(Config(database_url=str(engine.url), secret_key="test-secret", testing=True), engine)
            initialise(rt, ADMIN_PASSWORD, with_defaults=False)
            apply(rt, *documents)
            yield rt
        finally:
            engine.dispose()
            if schema:
                with sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT").connect() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))


def clean_slate(runtime, objects: list[str]) -> None:
    """Remove every record, user (but admin), rule, pool and side-table row of earlier tests."""
    registry = runtime.registry()
    deletes = [key for key in registry.documents if key[0] in ("dedup_rule", "pool")]
    if deletes:
        apply_change(runtime, documents_bundle([]), deletes)
    compiled = runtime.compiled(force=True)
    with runtime.transaction() as tx:
        for name in objects:
            tx.conn.execute(compiled.tables[name].delete())
        users = compiled.tables["user"]
        tx.conn.execute(users.delete().where(users.c.username != "admin"))
        tx.conn.execute(compiled.tables["department"].delete())
        for table in (db.history, db.sequence, db.outbox):
            tx.conn.execute(table.delete())
    runtime.directory_changed()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def runtime(request, tmp_path_factory):
    yield from crm_runtime(request.param, tmp_path_factory, OBJECTS)


@pytest.fixture(autouse=True)
def fresh(runtime, monkeypatch):
    monkeypatch.setattr("metacrm.platform.security.hash_password", fast_hash)
    monkeypatch.setattr("metacrm.platform.records.hash_password", fast_hash)
    clean_slate(runtime, [doc["name"] for doc in OBJECTS])


def rule(name="dd_same", **extra):
    doc = {
        "kind": "dedup_rule", "name": name, "object": "dd_company",
        "match_any": [
            {"all": [{"field": "name", "method": "company_name"}]},
            {"all": [{"field": "email", "method": "email"}]},
            {"all": [{"field": "phone", "method": "phone"}]},
        ],
        "on_create": "block", "on_import": "report",
    }
    doc.update(extra)
    return doc


def lead(name, **values):
    return {"name": name, **values}


def service(runtime) -> RecordService:
    """A service that sees the metadata as it is now (a service keeps the version it started with)."""
    return RecordService(runtime, Principal.system(), source="test")


def test_block_on_create_names_the_match_and_saves_nothing(runtime, client, admin_headers):
    apply(runtime, rule())
    url = "/api/v1/records/dd_company"
    first = client.post(url, json=lead("ACME Co., Ltd."), headers=admin_headers)
    assert first.status_code == 201
    blocked = client.post(url, json=lead("acme co ltd"), headers=admin_headers)
    assert blocked.status_code == 409
    error = blocked.get_json()["error"]
    assert error["code"] == "duplicate"
    assert error["duplicates"] == [{"object": "dd_company", "id": first.get_json()["id"], "rule": "dd_same"}]
    assert [item["name"] for item in client.get(url, headers=admin_headers).get_json()["items"]] == ["ACME Co., Ltd."]
    assert client.post(url, json=lead("ACME Software Ltd"), headers=admin_headers).status_code == 201


def test_email_and_phone_methods(runtime):
    apply(runtime, rule())
    first = service(runtime).create("dd_company", lead("One", email="Sales@Example.com", phone="+86 138-0013-8000"))
    with pytest.raises(DuplicateBlocked) as by_email:
        service(runtime).create("dd_company", lead("Two", email="sales@example.COM"))
    assert by_email.value.extra["duplicates"] == [{"object": "dd_company", "id": first["id"], "rule": "dd_same"}]
    with pytest.raises(DuplicateBlocked):
        service(runtime).create("dd_company", lead("Three", phone="13800138000"))
    service(runtime).create("dd_company", lead("Four", phone="13800138001", email="other@example.com"))


def test_warn_saves_and_returns_the_matches(runtime, client, admin_headers):
    apply(runtime, rule(on_create="warn"))
    url = "/api/v1/records/dd_company"
    first = client.post(url, json=lead("仁科互动（北京）有限公司"), headers=admin_headers).get_json()
    second = client.post(url, json=lead("北京仁科互动有限公司"), headers=admin_headers)
    assert second.status_code == 201
    warnings = second.get_json()["_warnings"]
    assert warnings[0]["duplicates"] == [{"object": "dd_company", "id": first["id"], "rule": "dd_same"}]


def test_update_is_checked_only_when_a_matched_field_changes(runtime):
    apply(runtime, rule(on_update="block"))
    svc = service(runtime)
    svc.create("dd_company", lead("Globex Inc.", email="a@globex.example"))
    other = svc.create("dd_company", lead("Initech", email="b@initech.example"))
    svc.update("dd_company", other["id"], {"score": 50})  # no matched field changed
    with pytest.raises(DuplicateBlocked):
        service(runtime).update("dd_company", other["id"], {"name": "GLOBEX"})
    assert svc.get("dd_company", other["id"])["name"] == "Initech"
    svc.update("dd_company", other["id"], {"name": "Initech Systems"})  # its own keys never match itself


def test_and_groups_ignore_deleted_and_inactive_rules(runtime):
    apply(runtime, {
        "kind": "dedup_rule", "name": "dd_project", "object": "dd_company", "ignore": {"status": "disqualified"},
        "match_any": [{"all": [{"field": "name", "method": "company_name"},
                               {"field": "project", "method": "normalized"}]}],
    }, rule(name="dd_off", active=False), rule(name="dd_quiet", on_create="none"))
    svc = service(runtime)
    svc.create("dd_company", lead("Acme Ltd", project="Data  Center"))
    svc.create("dd_company", lead("Acme", project="Campus network"))  # one field of the group differs
    with pytest.raises(DuplicateBlocked):
        svc.create("dd_company", lead("ACME Inc.", project="data center"))
    svc.create("dd_company", lead("Hooli", project="x", status="disqualified"))
    svc.create("dd_company", lead("HOOLI Inc", project="X"))  # the ignored record does not block
    gone = svc.create("dd_company", lead("Pied Piper", project="y"))
    svc.delete("dd_company", gone["id"])
    svc.create("dd_company", lead("Pied Piper Inc.", project="Y"))  # deleted records do not block


def test_compare_with_another_object_by_other_field(runtime):
    apply(runtime, {
        "kind": "dedup_rule", "name": "dd_vs_account", "object": "dd_company",
        "compare_with": ["dd_company", "dd_account"],
        "match_any": [{"all": [{"field": "name", "method": "company_name", "other_field": "title"}]}],
    })
    account = service(runtime).create("dd_account", {"title": "Umbrella Corporation"})
    with pytest.raises(DuplicateBlocked) as blocked:
        service(runtime).create("dd_company", lead("umbrella corp"))
    assert blocked.value.extra["duplicates"] == [{"object": "dd_account", "id": account["id"], "rule": "dd_vs_account"}]
    tables = runtime.compiled().tables
    assert "dk_cn_title" in tables["dd_account"].c and "dk_cn_name" in tables["dd_company"].c


def test_fuzzy_matches_inside_a_block_only(runtime):
    apply(runtime, {
        "kind": "dedup_rule", "name": "dd_fuzzy", "object": "dd_company",
        "match_any": [{"all": [{"field": "name", "method": "fuzzy", "threshold": 0.85}]}],
    })
    svc = service(runtime)
    svc.create("dd_company", lead("Acme Software Ltd"))
    with pytest.raises(DuplicateBlocked):
        svc.create("dd_company", lead("ACME Sofware"))
    svc.create("dd_company", lead("Acme Hardware"))
    svc.create("dd_company", lead("Cme Software"))  # another block: never compared


def test_changing_a_rule_rekeys_existing_records(runtime):
    early = service(runtime).create("dd_company", lead("Soylent Corp", email="x@soylent.example"))
    old = runtime.registry()
    apply(runtime, rule())  # new key columns: the first save under the new version keys old rows
    with pytest.raises(DuplicateBlocked) as blocked:
        service(runtime).create("dd_company", lead("SOYLENT"))
    assert blocked.value.extra["duplicates"][0]["id"] == early["id"]
    service(runtime).create("dd_company", lead("Batch 0 Ltd"))  # the refused save rolled back; this one keys
    table = runtime.compiled().tables["dd_company"]
    with runtime.engine.connect() as conn:
        keyed = conn.execute(sa.select(table.c.dk_cn_name, table.c.dk_ph_phone).where(table.c.id == early["id"])).one()
    assert tuple(keyed) == ("soylent", None)
    for number in range(1, 4):
        service(runtime).create("dd_company", lead(f"Batch {number} Ltd"))
    with runtime.transaction() as tx:
        tx.conn.execute(table.update().values(dk_cn_name=None, dk_em_email=None))
    seen = []
    assert dedup.rekey(runtime, "dd_company", batch_size=2, progress=lambda done, total: seen.append((done, total))) == 5
    assert seen == [(0, 5), (2, 5), (4, 5), (5, 5)]
    with runtime.engine.connect() as conn:
        keys = sorted(conn.execute(sa.select(table.c.dk_cn_name)).scalars())
    assert keys == [f"batch {n}" for n in range(4)] + ["soylent"]
    with runtime.transaction() as tx:
        tx.conn.execute(table.update().values(dk_em_email=None))
    assert dedup.after_apply(runtime, old, runtime.registry()) == {"dd_company": 5}  # every row, re-keyed
    with runtime.engine.connect() as conn:
        assert conn.execute(sa.select(table.c.dk_em_email).where(table.c.id == early["id"])).scalar() \
            == "x@soylent.example"


def test_duplicates_endpoint_takes_a_payload_or_an_id(runtime, client, admin_headers):
    apply(runtime, rule())
    first = client.post("/api/v1/records/dd_company", json=lead("Wayne Enterprises Inc."),
                        headers=admin_headers).get_json()
    url = "/api/v1/records/dd_company/duplicates"
    expected = {"matches": [{"object": "dd_company", "id": first["id"], "rule": "dd_same"}]}
    for body in ({"name": "WAYNE ENTERPRISES"}, {"record": {"name": "wayne enterprises"}},
                 {"values": {"name": "Wayne Enterprises Ltd"}}):
        answer = client.post(url, json=body, headers=admin_headers)
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json() == expected
    assert client.post(url, json={"name": "Stark Industries"}, headers=admin_headers).get_json() == {"matches": []}
    assert client.post(url, json={"id": first["id"]}, headers=admin_headers).get_json() == {"matches": []}
    assert client.post(url, json={"id": "nope"}, headers=admin_headers).status_code == 404


def test_merge_moves_children_keeps_history_and_deletes_losers(runtime, client, admin_headers):
    apply(runtime, rule(on_create="warn"))

    def post(values, url="/api/v1/records/dd_company"):
        return client.post(url, json=values, headers=admin_headers).get_json()

    survivor = post(lead("Cyberdyne Systems", email="info@cyberdyne.example", score=10))
    loser = post(lead("Cyberdyne Systems Inc.", email="sales@cyberdyne.example", score=70))
    note = post({"subject": "Call", "about": loser["id"]}, "/api/v1/records/dd_note")
    merge_url = f"/api/v1/records/dd_company/{survivor['id']}/merge"
    assert client.post(merge_url, json={"losers": []}, headers=admin_headers).status_code == 400
    assert client.post(merge_url, json={"losers": [survivor["id"]]}, headers=admin_headers).status_code == 400
    assert client.post(merge_url, json={"losers": ["nope"]}, headers=admin_headers).status_code == 404
    answer = client.post(merge_url, headers=admin_headers, json={
        "losers": [loser["id"]], "values": {"email": {"from": loser["id"]}, "score": 80},
    })
    assert answer.status_code == 200, answer.get_json()
    merged = answer.get_json()
    assert merged["record"]["email"] == "sales@cyberdyne.example" and merged["record"]["score"] == 80
    assert merged["moved"] == {"dd_note.about": 1}
    moved = client.get(f"/api/v1/records/dd_note/{note['id']}", headers=admin_headers).get_json()
    assert moved["about"] == survivor["id"]
    assert client.get(f"/api/v1/records/dd_company/{loser['id']}", headers=admin_headers).status_code == 404
    binned = client.get("/api/v1/records/dd_company?deleted=1", headers=admin_headers).get_json()["items"]
    assert [item["id"] for item in binned] == [loser["id"]]
    for record_id, other in ((survivor["id"], loser["id"]), (loser["id"], survivor["id"])):
        history = client.get(f"/api/v1/records/dd_company/{record_id}/history",
                             headers=admin_headers).get_json()["items"]
        assert any(entry["action"] == "merge" and other in (entry["note"] or "") for entry in history)


def test_concurrent_creates_of_one_company_leave_one_record(runtime):
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers by its own lock")
    apply(runtime, rule())
    barrier = threading.Barrier(8)
    outcomes = []

    def create():
        svc = service(runtime)
        barrier.wait()
        try:
            svc.create("dd_company", lead("Massive Dynamic Inc."))
            outcomes.append("created")
        except DuplicateBlocked:
            outcomes.append("blocked")

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["blocked"] * 7 + ["created"]


def test_merge_with_versions_refuses_a_stale_record(runtime, client, admin_headers):
    apply(runtime, rule(on_create="warn"))

    def post(values, url="/api/v1/records/dd_company"):
        return client.post(url, json=values, headers=admin_headers).get_json()

    survivor = post(lead("Tyrell Corporation", email="a@tyrell.example"))
    loser = post(lead("Tyrell Corporation Ltd", email="b@tyrell.example"))
    changed = client.patch(f"/api/v1/records/dd_company/{loser['id']}", json={"score": 5, "version": 1}, headers=admin_headers)
    assert changed.status_code == 200, changed.get_json()
    url = f"/api/v1/records/dd_company/{survivor['id']}/merge"
    bad = client.post(url, json={"losers": [loser["id"]], "versions": {loser["id"]: "1"}}, headers=admin_headers)
    assert bad.status_code == 400
    assert bad.get_json()["error"]["fields"] == {"versions": ["Not an object of integers."]}
    stale = client.post(url, json={"losers": [loser["id"]], "versions": {survivor["id"]: 1, loser["id"]: 1}},
                        headers=admin_headers)
    assert stale.status_code == 409 and stale.get_json()["error"]["code"] == "stale_version"
    assert stale.get_json()["error"]["current_version"] == 2
    assert client.get(f"/api/v1/records/dd_company/{loser['id']}", headers=admin_headers).status_code == 200
    done = client.post(url, json={"losers": [loser["id"]], "versions": {survivor["id"]: 1, loser["id"]: 2}},
                       headers=admin_headers)
    assert done.status_code == 200, done.get_json()


def test_an_undone_batch_is_forgotten_by_the_finder_and_nothing_else(runtime):
    """An import remembers its accepted rows so that later rows match them; a batch undone by
    its savepoint (the rows were never saved) is forgotten — only it, in O(rows undone)."""
    apply(runtime, rule())
    finder = dedup.DuplicateFinder(runtime, runtime.compiled(), "dd_company")
    kept = {"id": "kept-1", "name": "Acme Ltd", "email": "a@acme.example", "status": "active"}
    undone = {"id": "undone-1", "name": "Globex", "email": "info@globex.example", "status": "active"}
    also_undone = {"id": "undone-2", "name": "Acme Holdings", "email": "a@acme.example", "status": "active"}
    finder.remember(kept)
    token = finder.savepoint()
    finder.remember(undone)
    finder.remember(also_undone)  # shares kept's email key: the undo must drop only its own entry
    finder.rollback_to(token)
    assert finder.remembered == {"kept-1"}
    with runtime.engine.connect() as conn:
        def matches(values):
            found = finder.find(conn, dict(values, id=None, status="active"), with_seen=True)
            return sorted(m["id"] for ms in found.values() for m in ms)
        assert matches({"name": "Globex Corp", "email": "x@globex.example"}) == []
        assert matches({"name": "Other", "email": "A@acme.example"}) == ["kept-1"]
