"""A unique email is case-insensitive (issue 13), on SQLite and PostgreSQL: `Ann@X.com` and
`ann@x.com` are one address on every path that checks uniqueness (create, edit, batch, import
rows and upsert keys, restore), the database backs it with a unique index on the folded text
(`uxl_<table>_<field>`), the value is stored as typed, and turning `unique` on over clashing
rows is refused with the rows named."""

from __future__ import annotations

import copy

import pytest
import sqlalchemy as sa

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform.apply import apply_change
from metacrm.platform.errors import MetadataInvalid, ValidationFailed
from metacrm.platform.imports.run import run_import
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.conftest import make_user

MEMBER = {
    "kind": "object", "name": "member", "label": {"en": "Member", "zh-CN": "会员"}, "name_field": "name",
    "fields": [
        {"name": "name", "type": "text", "required": True},
        {"name": "email", "type": "email", "unique": True},
        {"name": "alias", "type": "text"},
    ],
}
CLERK = {"kind": "role", "name": "ue_clerk",
         "objects": {"member": {"create": "all", "read": "own", "edit": "own", "delete": "own"}}}


def with_field(doc: dict, replacement: dict) -> dict:
    doc = copy.deepcopy(doc)
    doc["fields"] = [replacement if f["name"] == replacement["name"] else f for f in doc["fields"]]
    return doc


@pytest.fixture
def svc(runtime):
    apply_change(runtime, documents_bundle([MEMBER, CLERK]))
    return RecordService(runtime, Principal.system())


def indexes(runtime, table: str) -> dict[str, str]:
    with runtime.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            rows = conn.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t"),
                                {"t": table})
        else:
            rows = conn.execute(sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t "
                                        "AND schemaname = current_schema()"), {"t": table})
        return {name: (sql or "") for name, sql in rows}


def stored(runtime, record_id: str) -> str:
    table = runtime.compiled().tables["member"]
    with runtime.engine.connect() as conn:
        return conn.execute(sa.select(table.c.email).where(table.c.id == record_id)).scalar()


def test_one_address_whatever_its_case_on_create_edit_and_restore(svc, runtime):
    ann = svc.create("member", {"name": "Ann", "email": "Ann@X.com"})
    assert ann["email"] == "Ann@X.com" and stored(runtime, ann["id"]) == "Ann@X.com"  # stored as typed
    with pytest.raises(ValidationFailed) as caught:
        svc.create("member", {"name": "Other", "email": "ann@x.com"})
    assert caught.value.code == "not_unique" and list(caught.value.fields) == ["email"]
    bob = svc.create("member", {"name": "Bob", "email": "bob@x.com"})
    with pytest.raises(ValidationFailed) as caught:
        svc.update("member", bob["id"], {"email": "ANN@x.COM"}, version=1)
    assert caught.value.code == "not_unique"
    assert svc.get("member", bob["id"])["version"] == 1  # refused: nothing changed
    # the record itself may change the case of its own address
    assert svc.update("member", ann["id"], {"email": "ann@X.com"}, version=1)["email"] == "ann@X.com"
    svc.delete("member", ann["id"])  # the recycle bin holds no address
    taken = svc.create("member", {"name": "New Ann", "email": "ANN@X.COM"})
    with pytest.raises(ValidationFailed) as caught:
        svc.restore("member", ann["id"])
    assert caught.value.code == "not_unique"
    svc.delete("member", taken["id"])
    assert svc.restore("member", ann["id"])["email"] == "ann@X.com"
    # other letters than A-Z are compared as typed, the same on both databases
    svc.create("member", {"name": "Ä", "email": "änn@x.com"})
    svc.create("member", {"name": "Ä2", "email": "Änn@x.com"})


def test_the_database_index_refuses_a_case_variant_the_service_check_missed(svc, runtime, monkeypatch):
    """Two concurrent saves cannot both pass: the index is on the folded text, partial over live rows."""
    sql = indexes(runtime, "rec_member")
    assert "ux_rec_member_email" not in sql
    definition = sql["uxl_rec_member_email"].upper()
    assert "UNIQUE" in definition and "LOWER(" in definition and "WHERE" in definition
    svc.create("member", {"name": "Ann", "email": "Ann@X.com"})
    monkeypatch.setattr(RecordService, "_check_unique", lambda *args, **kwargs: None)
    monkeypatch.setattr(RecordService, "_unique_in_batch", lambda self, conn, obj, good, results: good)
    with pytest.raises(ValidationFailed) as caught:
        svc.create("member", {"name": "Racer", "email": "aNN@x.com"})
    assert caught.value.code == "not_unique" and list(caught.value.fields) == ["email"]
    with pytest.raises(ValidationFailed):
        svc.create_many("member", [{"name": "Batch", "email": "ann@x.COM"}])


def test_batches_and_imports_compare_folded_with_row_numbers(svc, runtime):
    svc.create("member", {"name": "Ann", "email": "Ann@X.com"})
    results = svc.create_many("member", [{"name": "A", "email": "ann@x.com"}, {"name": "C", "email": "Cy@x.com"},
                                         {"name": "D", "email": "cy@X.com"}])
    assert [r["status"] for r in results] == ["error", "created", "error"]
    assert results[0]["code"] == "not_unique"
    assert results[2]["fields"] == {"email": ["An earlier row of this batch uses the same value."]}
    report = run_import(runtime, Principal.system(), "member",
                        "name,email\nDup,ANN@x.com\nNew,dee@x.com\nAgain,DEE@X.COM\n", fmt="csv")
    rows = report["rows"]
    assert [(r["row"], r["status"]) for r in rows] == [(1, "error"), (2, "created"), (3, "error")]
    assert rows[0]["code"] == "not_unique" and "email" in rows[0]["fields"]


def test_an_upsert_keyed_on_a_unique_email_matches_any_case(svc, runtime):
    ann = svc.create("member", {"name": "Ann", "email": "Ann@X.com"})
    report = run_import(runtime, Principal.system(), "member",
                        "name,email,alias\nAnn B,ann@x.com,annie\nEve,eve@x.com,\nEve again,EVE@x.com,\n",
                        fmt="csv", key="email")
    statuses = [(r["row"], r["status"]) for r in report["rows"]]
    assert statuses == [(1, "updated"), (2, "created"), (3, "error")], report
    assert report["rows"][0]["id"] == ann["id"] and report["rows"][2]["code"] == "duplicate_key"
    after = svc.get("member", ann["id"])
    assert (after["name"], after["alias"], after["email"]) == ("Ann B", "annie", "ann@x.com")  # the file's case
    items, _ = svc.list("member", limit=10)
    assert sorted(i["email"] for i in items) == ["ann@x.com", "eve@x.com"]


def test_a_clash_with_an_unreadable_record_is_not_unique_without_naming_it(svc, runtime, client):
    first = make_user(runtime, client, "ue_one", ["ue_clerk"])
    second = make_user(runtime, client, "ue_two", ["ue_clerk"])
    held = client.post("/api/v1/records/member", json={"name": "Secret", "email": "Hidden@X.com"},
                       headers=first.headers)
    assert held.status_code == 201
    answer = client.post("/api/v1/records/member", json={"name": "Probe", "email": "hidden@x.com"},
                         headers=second.headers)
    assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "not_unique"
    body = answer.get_data(as_text=True)
    assert held.get_json()["id"] not in body and "Secret" not in body and "Hidden@X.com" not in body
    # an upsert by the second clerk does not match the record it cannot read, and says not_unique
    report = client.post("/api/v1/records/member/import?key=email", data="name,email\nProbe,HIDDEN@x.com\n",
                         content_type="text/csv", headers=second.headers).get_json()
    row = report["rows"][0]
    assert row["status"] == "error" and row["code"] == "not_unique"
    assert held.get_json()["id"] not in str(report) and "Secret" not in str(report)
    assert svc.get("member", held.get_json()["id"])["name"] == "Secret"


def test_turning_unique_on_over_case_variants_is_refused_naming_the_rows(runtime):
    plain = with_field(MEMBER, {"name": "email", "type": "email"})
    apply_change(runtime, documents_bundle([plain]))
    svc = RecordService(runtime, Principal.system())
    ann = svc.create("member", {"name": "Ann", "email": "Ann@X.com"})
    other = svc.create("member", {"name": "Other", "email": "ann@x.com"})
    fine = svc.create("member", {"name": "Bob", "email": "bob@x.com"})
    for dry_run in (True, False):
        with pytest.raises(MetadataInvalid) as caught:
            apply_change(runtime, documents_bundle([MEMBER]), dry_run=dry_run)
        issue = caught.value.issues[0]
        assert (issue.source, issue.path) == ("object/member", "/fields/1/unique")
        assert "'email'" in issue.message and ann["id"] in issue.message and other["id"] in issue.message
        assert fine["id"] not in issue.message
    assert "uxl_rec_member_email" not in indexes(runtime, "rec_member")
    svc.delete("member", other["id"])  # a deleted variant does not count
    result = apply_change(runtime, documents_bundle([MEMBER]))
    assert {"table": "rec_member", "column": "email"} in result.diff["storage"]["new_indexes"]
    assert "uxl_rec_member_email" in indexes(runtime, "rec_member")
    with pytest.raises(ValidationFailed):
        RecordService(runtime, Principal.system()).create("member", {"name": "Again", "email": "ANN@x.com"})
    result = apply_change(runtime, documents_bundle([plain]))  # no longer unique: the index goes
    assert {"table": "rec_member", "index": "uxl_rec_member_email"} in result.diff["storage"]["dropped_indexes"]
    assert "uxl_rec_member_email" not in indexes(runtime, "rec_member")
    RecordService(runtime, Principal.system()).create("member", {"name": "Again", "email": "ANN@x.com"})


def test_a_unique_text_field_that_becomes_an_email_is_checked_folded(runtime):
    as_text = with_field(MEMBER, {"name": "email", "type": "text", "unique": True})
    apply_change(runtime, documents_bundle([as_text]))
    svc = RecordService(runtime, Principal.system())
    ann = svc.create("member", {"name": "Ann", "email": "Ann@X.com"})
    other = svc.create("member", {"name": "Other", "email": "ann@x.com"})  # text: two values
    assert "ux_rec_member_email" in indexes(runtime, "rec_member")
    with pytest.raises(MetadataInvalid) as caught:
        apply_change(runtime, documents_bundle([MEMBER]), dry_run=True)
    issue = caught.value.issues[0]
    assert issue.path == "/fields/1/type" and ann["id"] in issue.message and other["id"] in issue.message
    svc.update("member", other["id"], {"email": "other@x.com"}, version=1)
    result = apply_change(runtime, documents_bundle([MEMBER]))
    assert {"table": "rec_member", "index": "ux_rec_member_email"} in result.diff["storage"]["dropped_indexes"]
    sql = indexes(runtime, "rec_member")
    assert "uxl_rec_member_email" in sql and "ux_rec_member_email" not in sql
    with pytest.raises(ValidationFailed):
        RecordService(runtime, Principal.system()).create("member", {"name": "Again", "email": "aNN@x.com"})


def test_a_table_rebuild_keeps_the_folded_index(svc, runtime):
    """SQLite's batch mode rebuilds a table from reflection, which skips expression indexes; the
    apply puts the folded index back (and a later dry run shows nothing left to do)."""
    svc.create("member", {"name": "Ann", "email": "Ann@X.com", "alias": "7"})
    numeric = with_field(MEMBER, {"name": "alias", "type": "integer"})
    apply_change(runtime, documents_bundle([numeric]))
    assert "uxl_rec_member_email" in indexes(runtime, "rec_member")
    assert apply_change(runtime, documents_bundle([numeric]), dry_run=True).diff["storage"]["new_indexes"] == []
    with pytest.raises(ValidationFailed):
        svc.create("member", {"name": "Again", "email": "ann@x.com"})
