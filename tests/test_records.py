"""The record service on both databases: validation, locking, recycle bin, history,
computed fields, lookups, paging."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform import db
from metacrm.platform.apply import apply_change
from metacrm.platform.errors import Conflict, NotFound, StaleVersion, ValidationFailed
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal

SHOP = [
    {
        "kind": "object", "name": "shop_order", "label": "Order", "name_field": "title",
        "track_history": ["status", "amount"],
        "fields": [
            {"name": "no", "type": "autonumber", "format": "SO-{YYYY}-{0000}"},
            {"name": "title", "type": "text", "required": True, "max_length": 20},
            {"name": "status", "type": "picklist", "options": ["new", "paid"], "default": "new"},
            {"name": "amount", "type": "currency", "min": 0},
            {"name": "rate", "type": "percent"},
            {"name": "qty", "type": "integer", "min": 1, "max": 1000},
            {"name": "due", "type": "date"},
            {"name": "tags", "type": "multipicklist", "options": ["a", "b", "c"]},
            {"name": "email", "type": "email"},
            {"name": "site", "type": "url"},
            {"name": "code", "type": "text", "unique": True, "max_length": 20},
            {"name": "total", "type": "rollup", "child_object": "shop_line", "child_field": "order",
             "function": "sum", "field": "price"},
            {"name": "gross", "type": "formula", "expression": "total * 1.13", "result_type": "currency"},
        ],
    },
    {
        "kind": "object", "name": "shop_line", "label": "Line", "name_field": "sku",
        "fields": [
            {"name": "sku", "type": "text"},
            {"name": "order", "type": "lookup", "target": "shop_order", "on_delete": "cascade"},
            {"name": "price", "type": "currency"},
        ],
    },
    {
        "kind": "object", "name": "shop_note", "label": "Note", "name_field": "body",
        "fields": [
            {"name": "body", "type": "text"},
            {"name": "order", "type": "lookup", "target": "shop_order", "on_delete": "restrict"},
        ],
    },
]


@pytest.fixture
def svc(runtime):
    apply_change(runtime, documents_bundle(SHOP))
    return RecordService(runtime, Principal.system())


def test_create_fills_system_fields_defaults_and_autonumber(svc):
    first = svc.create("shop_order", {"title": "One", "amount": "10.50"})
    second = svc.create("shop_order", {"title": "Two"})
    assert first["status"] == "new" and first["version"] == 1
    assert first["amount"] == "10.50"
    assert first["no"].startswith("SO-") and first["no"].endswith("0001")
    assert second["no"].endswith("0002")
    assert first["created_at"].endswith("Z") and len(first["id"]) == 32


@pytest.mark.parametrize(
    "values, field",
    [
        ({}, "title"),
        ({"title": "x" * 21}, "title"),
        ({"title": "t", "status": "galactic"}, "status"),
        ({"title": "t", "amount": "-1"}, "amount"),
        ({"title": "t", "amount": "1.001"}, "amount"),
        ({"title": "t", "amount": "ten"}, "amount"),
        ({"title": "t", "qty": 0}, "qty"),
        ({"title": "t", "qty": 1.5}, "qty"),
        ({"title": "t", "qty": True}, "qty"),
        ({"title": "t", "due": "2026-02-30"}, "due"),
        ({"title": "t", "tags": ["a", "z"]}, "tags"),
        ({"title": "t", "email": "nope"}, "email"),
        ({"title": "t", "site": "not a url"}, "site"),
        ({"title": "t", "no_such": 1}, "no_such"),
        ({"title": "t", "version": 3}, "version"),
        ({"title": "t", "total": "5"}, "total"),
        ({"title": "t", "created_at": "2020-01-01T00:00:00Z"}, "created_at"),
    ],
)
def test_invalid_input_names_the_field_and_saves_nothing(svc, runtime, values, field):
    with pytest.raises(ValidationFailed) as caught:
        svc.create("shop_order", values)
    assert field in caught.value.fields
    items, _ = svc.list("shop_order")
    assert items == []


def test_money_is_exact_through_storage_and_sum(svc):
    order = svc.create("shop_order", {"title": "Big", "amount": "99999999999.99"})
    for price in ("0.10", "0.20", "1234567.89"):
        svc.create("shop_line", {"order": order["id"], "price": price})
    again = svc.get("shop_order", order["id"])
    assert again["amount"] == "99999999999.99"
    assert again["total"] == "1234568.19"
    assert again["gross"] == str((Decimal("1234568.19") * Decimal("1.13")).quantize(Decimal("0.01")))


def test_update_with_stale_version_is_refused_and_changes_nothing(svc):
    order = svc.create("shop_order", {"title": "Lock"})
    svc.update("shop_order", order["id"], {"title": "Lock 2"}, version=1)
    with pytest.raises(StaleVersion):
        svc.update("shop_order", order["id"], {"title": "Lock 3"}, version=1)
    current = svc.get("shop_order", order["id"])
    assert current["title"] == "Lock 2" and current["version"] == 2


def test_unique_field_is_enforced(svc):
    svc.create("shop_order", {"title": "A", "code": "X1"})
    with pytest.raises(ValidationFailed) as caught:
        svc.create("shop_order", {"title": "B", "code": "X1"})
    assert "code" in caught.value.fields


def test_delete_goes_to_recycle_bin_with_cascade_and_restores(svc):
    order = svc.create("shop_order", {"title": "Del"})
    line = svc.create("shop_line", {"order": order["id"], "price": "1.00"})
    svc.delete("shop_order", order["id"])
    with pytest.raises(NotFound):
        svc.get("shop_order", order["id"])
    with pytest.raises(NotFound):
        svc.get("shop_line", line["id"])
    binned, _ = svc.list("shop_order", deleted=True)
    assert [item["id"] for item in binned] == [order["id"]]
    svc.restore("shop_order", order["id"])
    assert svc.get("shop_order", order["id"])["title"] == "Del"


def test_restricted_delete_is_refused(svc):
    order = svc.create("shop_order", {"title": "Kept"})
    svc.create("shop_note", {"order": order["id"], "body": "hi"})
    with pytest.raises(Conflict):
        svc.delete("shop_order", order["id"])
    assert svc.get("shop_order", order["id"])["title"] == "Kept"


def test_lookup_to_missing_or_deleted_record_is_a_field_error(svc):
    order = svc.create("shop_order", {"title": "Gone"})
    svc.delete("shop_order", order["id"])
    for target in ("nope", order["id"], 12):
        with pytest.raises(ValidationFailed) as caught:
            svc.create("shop_line", {"order": target})
        assert "order" in caught.value.fields


def test_history_records_tracked_changes_with_user(svc, runtime):
    order = svc.create("shop_order", {"title": "Hist", "amount": "1.00"})
    svc.update("shop_order", order["id"], {"status": "paid", "amount": "2.00"}, version=1)
    entries = svc.history("shop_order", order["id"])
    assert [e["action"] for e in entries] == ["create", "update"]
    assert entries[1]["changes"]["status"] == ["new", "paid"]
    assert entries[1]["changes"]["amount"] == ["1.00", "2.00"]


def test_polymorphic_activity_sets_parent_last_activity(runtime, svc):
    lead = svc.create("lead", {"company": "Acme", "source": "web"})
    assert lead["last_activity_at"] is None
    activity = svc.create("activity", {"subject": "Call", "related_to": lead["id"]})
    assert activity["related_to__object"] == "lead"
    assert svc.get("lead", lead["id"])["last_activity_at"] is not None


def test_keyset_paging_with_sort_and_nulls_covers_every_record_once(svc):
    amounts = ["5.00", None, "1.00", "5.00", None, "3.00", "2.00", "5.00"]
    ids = {svc.create("shop_order", {"title": f"P{i}", "amount": a})["id"] for i, a in enumerate(amounts)}
    for sort in ("amount", "-amount", "-amount,title", "title", "-created_at"):
        seen, cursor = [], None
        while True:
            items, cursor = svc.list("shop_order", sort=sort, limit=3, cursor=cursor)
            seen.extend(item["id"] for item in items)
            if not cursor:
                break
        assert sorted(seen) == sorted(ids), sort
        values = [svc.get("shop_order", i)["amount"] for i in seen] if sort == "amount" else None
        if values:
            keyed = [(v is not None, Decimal(v) if v else 0) for v in values]
            assert keyed == sorted(keyed)


def test_list_rejects_bad_sort_filter_and_fields(svc):
    from metacrm.platform.errors import BadRequest

    for kwargs in ({"sort": "nope"}, {"sort": "amount; DROP TABLE rec_shop_order"},
                   {"filter": {"nope": 1}}, {"filter": {"title": {"bad_op": 1}}},
                   {"fields": ["title", "secret"]}, {"cursor": "!!!"}, {"limit": 0}):
        with pytest.raises(BadRequest):
            svc.list("shop_order", **kwargs)


def test_create_many_validates_each_row_and_inserts_the_good_ones(svc, runtime):
    results = svc.create_many("shop_order", [{"title": "A"}, {"qty": 5}, {"title": "C", "amount": "1.5"}])
    assert [r["status"] for r in results] == ["created", "error", "created"]
    assert "title" in results[1]["fields"]
    items, _ = svc.list("shop_order", sort="title")
    assert [i["title"] for i in items] == ["A", "C"]
    with runtime.engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(db.history)
                             .where(db.history.c.object == "shop_order")).scalar()
    assert count == 2


def test_failed_hook_rolls_back_the_whole_save(svc, runtime):
    def explode(ctx):
        if ctx.obj.name == "shop_line":
            raise ValidationFailed("no", fields={"price": ["refused by hook"]})

    runtime.hooks.register("after_save", explode, name="test.explode")
    order = svc.create("shop_order", {"title": "Roll"})
    with pytest.raises(ValidationFailed):
        svc.create("shop_line", {"order": order["id"], "price": "9.99"})
    runtime.hooks.unregister("test.explode")
    assert svc.list("shop_line")[0] == []
    assert svc.get("shop_order", order["id"])["total"] == "0.00"


def test_unique_values_are_checked_across_a_batch(svc):
    svc.create("shop_order", {"title": "Old", "code": "U1"})
    results = svc.create_many("shop_order", [
        {"title": "Taken", "code": "U1"}, {"title": "New", "code": "U2"}, {"title": "Again", "code": "U2"},
        {"title": "None"}, {"title": "Other", "code": "U3"},
    ])
    assert [r["status"] for r in results] == ["error", "created", "error", "created", "created"]
    assert results[0]["code"] == "not_unique" and "code" in results[0]["fields"]
    assert results[2]["fields"] == {"code": ["An earlier row of this batch uses the same value."]}
    codes = [item["code"] for item in svc.list("shop_order", limit=50)[0]]
    assert sorted(c for c in codes if c) == ["U1", "U2", "U3"]


def test_the_database_backs_unique_fields_when_the_service_check_is_raced(svc, monkeypatch):
    """The service checks first for a friendly answer; a partial unique index (live records)
    refuses what a concurrent save let through, as not_unique rather than a 500."""
    first = svc.create("shop_order", {"title": "First", "code": "R1"})
    monkeypatch.setattr(RecordService, "_check_unique", lambda *args, **kwargs: None)
    with pytest.raises(ValidationFailed) as caught:
        svc.create("shop_order", {"title": "Racer", "code": "R1"})
    assert caught.value.code == "not_unique" and list(caught.value.fields) == ["code"]
    other = svc.create("shop_order", {"title": "Other", "code": "R2"})
    with pytest.raises(ValidationFailed):
        svc.update("shop_order", other["id"], {"code": "R1"}, version=1)
    svc.delete("shop_order", first["id"])  # the recycle bin does not hold values
    reused = svc.create("shop_order", {"title": "Reuse", "code": "R1"})
    with pytest.raises(ValidationFailed):
        svc.restore("shop_order", first["id"])
    assert svc.get("shop_order", reused["id"])["code"] == "R1"
    assert [r["status"] for r in svc.create_many("shop_order", [{"title": "Batch", "code": "R2"}])] == ["error"]


def test_making_a_field_unique_is_refused_while_live_records_share_values(svc, runtime):
    from metacrm.platform.errors import MetadataInvalid

    a = svc.create("shop_order", {"title": "Same"})
    svc.create("shop_order", {"title": "Same"})
    unique_title = [dict(SHOP[0], fields=[dict(f, unique=True) if f["name"] == "title" else f
                                          for f in SHOP[0]["fields"]]), *SHOP[1:]]
    with pytest.raises(MetadataInvalid) as caught:
        apply_change(runtime, documents_bundle(unique_title))
    issue = caught.value.issues[0]
    assert (issue.source, issue.path) == ("object/shop_order", "/fields/1/unique") and "'Same'" in issue.message
    svc.delete("shop_order", a["id"])  # a deleted duplicate does not count
    apply_change(runtime, documents_bundle(unique_title))
    with pytest.raises(ValidationFailed):
        svc.create("shop_order", {"title": "Same"})
    apply_change(runtime, documents_bundle(SHOP))  # no longer unique: the index goes
    svc.create("shop_order", {"title": "Same"})


def test_contains_folds_case_beyond_ascii_through_the_record_service(admin):
    """Issue 13: `contains` folds Ä, П, Σ as it folds A, on SQLite (mc_lower) and PostgreSQL (lower())."""
    made = admin.create("lead", {"company": "ÖSTERREICH Пример ΣΟΦΙΑ", "source": "web"})
    for fragment in ("österreich", "ÖSTERREICH", "пример", "ПРИМЕР", "σοφια", "ΣΟΦ"):
        items, _ = admin.list("lead", filter={"company": {"contains": fragment}})
        assert [i["id"] for i in items] == [made["id"]], fragment
    items, _ = admin.list("lead", filter={"company": {"startswith": "österr"}})
    assert [i["id"] for i in items] == [made["id"]]
    assert admin.list("lead", filter={"company": {"contains": "osterreich"}})[0] == []  # no accent folding
