"""Metadata apply on both databases: live without restart, all-or-nothing, archive and
restore of fields, type changes converted or refused with the offending rows."""

from __future__ import annotations

import copy

import pytest
import sqlalchemy as sa

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform.apply import apply_change
from metacrm.platform.errors import MetadataInvalid, ValidationFailed
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal

THING = {
    "kind": "object", "name": "thing", "label": {"en": "Thing", "zh-CN": "东西"}, "name_field": "title",
    "fields": [
        {"name": "title", "type": "text", "max_length": 100},
        {"name": "size", "type": "text", "max_length": 20},
    ],
}


def with_fields(doc: dict, *fields: dict, drop: tuple = ()) -> dict:
    doc = copy.deepcopy(doc)
    doc["fields"] = [f for f in doc["fields"] if f["name"] not in drop] + list(fields)
    return doc


def service(runtime) -> RecordService:
    return RecordService(runtime, Principal.system())


def columns(runtime, table: str) -> set[str]:
    with runtime.engine.connect() as conn:
        return {c["name"] for c in sa.inspect(conn).get_columns(table)}


def test_new_object_and_field_are_live_at_once(runtime):
    result = apply_change(runtime, documents_bundle([THING]))
    assert result.applied and "rec_thing" in result.diff["storage"]["new_tables"]
    thing = service(runtime).create("thing", {"title": "a"})
    apply_change(runtime, documents_bundle([with_fields(THING, {"name": "colour", "type": "text"})]))
    updated = service(runtime).update("thing", thing["id"], {"colour": "red"}, version=1)
    assert updated["colour"] == "red"


def test_dry_run_reports_the_diff_and_changes_nothing(runtime):
    before = runtime.registry().version
    result = apply_change(runtime, documents_bundle([THING]), dry_run=True)
    assert not result.applied
    assert result.diff["documents"]["added"] == ["object/thing"]
    assert runtime.compiled(force=True).registry.version == before
    assert "rec_thing" not in sa.inspect(runtime.engine).get_table_names()


def test_reapplying_the_same_bundle_is_a_no_op(runtime):
    apply_change(runtime, documents_bundle([THING]))
    version = runtime.compiled(force=True).registry.version
    result = apply_change(runtime, documents_bundle([THING]))
    assert result.version == version
    assert result.diff["documents"] == {"added": [], "changed": [], "removed": []}


def test_one_bad_document_rejects_the_whole_bundle(runtime):
    broken = {"kind": "object", "name": "broken", "label": "B",
              "fields": [{"name": "a", "type": "text"}, {"name": "b", "type": "strng"}]}
    with pytest.raises(MetadataInvalid) as caught:
        apply_change(runtime, documents_bundle([THING, broken]))
    assert any(i.source == "object/broken" and i.path == "/fields/1/type" for i in caught.value.issues)
    assert not runtime.compiled(force=True).registry.has_object("thing")


@pytest.mark.parametrize(
    "doc, path",
    [
        ({"kind": "layout", "name": "thing_l", "object": "thing", "sections": [{"label": "S", "fields": ["nope"]}]},
         "/sections/0/fields/0"),
        ({"kind": "layout", "name": "ghost_l", "object": "ghost", "sections": [{"label": "S", "fields": ["x"]}]},
         "/object"),
        (with_fields(THING, {"name": "link", "type": "lookup", "target": "ghost"}), "/fields/2/target"),
        ({"kind": "role", "name": "r1", "parent": "nobody", "objects": {"thing": {"read": "all"}}}, "/parent"),
        ({"kind": "role", "name": "r2", "fields": {"thing": {"secret": "hidden"}}}, "/fields/thing/secret"),
        ({"kind": "report", "name": "rep", "object": "thing", "filter": {"size": {"gt": True}}}, "/filter/size/gt"),
        ({"kind": "report", "name": "rep2", "object": "thing", "filter": {"title; drop": "x"}}, "/filter"),
        (with_fields(THING, {"name": "owner", "type": "text"}), "/fields/2/name"),
    ],
)
def test_cross_reference_errors_name_the_document_and_path(runtime, doc, path):
    documents = [THING] + ([doc] if doc["name"] != "thing" else [])
    if doc["name"] == "thing":
        documents = [doc]
    with pytest.raises(MetadataInvalid) as caught:
        apply_change(runtime, documents_bundle(documents))
    paths = [(i.source, i.path) for i in caught.value.issues]
    assert any(source == f"{doc['kind']}/{doc['name']}" and p.startswith(path) for source, p in paths), paths


def test_removed_field_is_archived_with_its_data_and_restorable(runtime):
    apply_change(runtime, documents_bundle([THING]))
    thing = service(runtime).create("thing", {"title": "keep", "size": "XL"})
    result = apply_change(runtime, documents_bundle([with_fields(THING, drop=("size",))]))
    assert {"table": "rec_thing", "column": "size"} in result.diff["storage"]["archived_columns"]
    assert "size" in columns(runtime, "rec_thing")
    assert "size" not in service(runtime).get("thing", thing["id"])
    with pytest.raises(ValidationFailed):
        service(runtime).update("thing", thing["id"], {"size": "S"}, version=1)
    apply_change(runtime, documents_bundle([THING]))
    assert service(runtime).get("thing", thing["id"])["size"] == "XL"


def test_type_change_that_data_can_take_is_converted(runtime):
    apply_change(runtime, documents_bundle([THING]))
    thing = service(runtime).create("thing", {"title": "n", "size": "42"})
    apply_change(runtime, documents_bundle([with_fields(THING, {"name": "size", "type": "integer"}, drop=("size",))]))
    assert service(runtime).get("thing", thing["id"])["size"] == 42


def test_type_change_that_data_cannot_take_is_refused_with_rows(runtime):
    apply_change(runtime, documents_bundle([THING]))
    bad = service(runtime).create("thing", {"title": "n", "size": "large"})
    service(runtime).create("thing", {"title": "m", "size": "7"})
    with pytest.raises(MetadataInvalid) as caught:
        apply_change(runtime, documents_bundle([with_fields(THING, {"name": "size", "type": "integer"},
                                                            drop=("size",))]))
    assert bad["id"] in str(caught.value.issues[0])
    assert service(runtime).get("thing", bad["id"])["size"] == "large"


def test_delete_of_a_document_others_use_is_refused(runtime):
    layout = {"kind": "layout", "name": "thing_l", "object": "thing",
              "sections": [{"label": "S", "fields": ["title"]}]}
    apply_change(runtime, documents_bundle([THING, layout]))
    with pytest.raises(MetadataInvalid):
        apply_change(runtime, documents_bundle([]), deletes=[("object", "thing")])
    with pytest.raises(MetadataInvalid):
        apply_change(runtime, documents_bundle([]), deletes=[("object", "user")])
    apply_change(runtime, documents_bundle([]), deletes=[("layout", "thing_l")])
    assert runtime.compiled(force=True).registry.get("layout", "thing_l") is None


def test_other_process_sees_a_new_version(runtime, engine):
    from metacrm.platform.setup import build_runtime

    other = build_runtime(runtime.config, engine)
    assert not other.registry().has_object("thing")
    apply_change(runtime, documents_bundle([THING]))
    other.invalidate()
    assert other.registry().has_object("thing")


def index_sql(runtime, table: str) -> dict[str, str]:
    with runtime.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            rows = conn.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t"),
                                {"t": table})
        else:
            rows = conn.execute(sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :t"), {"t": table})
        return {name: (sql or "") for name, sql in rows}


def test_deleted_at_index_covers_only_the_recycle_bin_and_old_databases_are_migrated(runtime):
    """A plain deleted_at index lures planners without fresh statistics into reading every live
    row for `deleted_at IS NULL`; the index is partial, and an apply replaces the old one."""
    apply_change(runtime, documents_bundle([THING]))
    sql = index_sql(runtime, "rec_thing")
    assert "ix_rec_thing_deleted_at" not in sql
    assert "WHERE" in sql["px_rec_thing_deleted_at"].upper() and "NOT NULL" in sql["px_rec_thing_deleted_at"].upper()
    with runtime.engine.begin() as conn:  # a database made before the change
        conn.execute(sa.text("DROP INDEX px_rec_thing_deleted_at"))
        conn.execute(sa.text("CREATE INDEX ix_rec_thing_deleted_at ON rec_thing (deleted_at)"))
    result = apply_change(runtime, documents_bundle([with_fields(THING, {"name": "colour", "type": "text"})]))
    assert {"table": "rec_thing", "index": "ix_rec_thing_deleted_at"} in result.diff["storage"]["dropped_indexes"]
    sql = index_sql(runtime, "rec_thing")
    assert "ix_rec_thing_deleted_at" not in sql and "NOT NULL" in sql["px_rec_thing_deleted_at"].upper()
    # a type change rebuilds the table on SQLite (batch mode): the index stays partial
    apply_change(runtime, documents_bundle([with_fields(THING, {"name": "size", "type": "integer"}, drop=("size",))]))
    sql = index_sql(runtime, "rec_thing")
    assert "NOT NULL" in sql["px_rec_thing_deleted_at"].upper()
    thing = service(runtime).create("thing", {"title": "kept"})
    service(runtime).delete("thing", thing["id"])
    assert service(runtime).list("thing", deleted=True)[0][0]["id"] == thing["id"]


PRICED = with_fields(THING, {"name": "price", "type": "currency", "precision": 18, "scale": 2})


def test_changing_a_decimals_scale_keeps_the_stored_values_and_the_diff_shows_it(runtime):
    apply_change(runtime, documents_bundle([PRICED]))
    thing = service(runtime).create("thing", {"title": "n", "price": "2000.00"})
    other = service(runtime).create("thing", {"title": "m", "price": "-0.05"})
    wider = with_fields(PRICED, {"name": "price", "type": "currency", "precision": 18, "scale": 4}, drop=("price",))
    dry = apply_change(runtime, documents_bundle([wider]), dry_run=True)
    changed = dry.diff["storage"]["changed_columns"]
    assert [(c["table"], c["column"]) for c in changed] == [("rec_thing", "price")], dry.diff
    assert service(runtime).get("thing", thing["id"])["price"] == "2000.00"
    apply_change(runtime, documents_bundle([wider]))
    assert service(runtime).get("thing", thing["id"])["price"] == "2000.0000"
    assert service(runtime).get("thing", other["id"])["price"] == "-0.0500"
    # Back to scale 2: the values still fit, so they are kept again.
    apply_change(runtime, documents_bundle([PRICED]))
    assert service(runtime).get("thing", thing["id"])["price"] == "2000.00"
    items, _ = service(runtime).list("thing", filter={"price": {"gte": "1999.99"}})
    assert [item["id"] for item in items] == [thing["id"]]


def test_narrowing_a_scale_that_data_needs_is_refused_naming_field_and_rows(runtime):
    wide = with_fields(PRICED, {"name": "price", "type": "currency", "precision": 18, "scale": 4}, drop=("price",))
    apply_change(runtime, documents_bundle([wide]))
    bad = service(runtime).create("thing", {"title": "n", "price": "1.2345"})
    fine = service(runtime).create("thing", {"title": "m", "price": "1.2300"})
    with pytest.raises(MetadataInvalid) as caught:
        apply_change(runtime, documents_bundle([PRICED]))
    issue = caught.value.issues[0]
    assert issue.path.endswith("/scale") and "'price'" in issue.message and bad["id"] in issue.message
    assert fine["id"] not in issue.message and "1.2345" in issue.message
    assert service(runtime).get("thing", bad["id"])["price"] == "1.2345"


def test_refused_type_change_names_the_field_and_each_offending_row(runtime):
    apply_change(runtime, documents_bundle([THING]))
    bad = service(runtime).create("thing", {"title": "n", "size": "large"})
    with pytest.raises(MetadataInvalid) as caught:
        apply_change(runtime, documents_bundle([with_fields(THING, {"name": "size", "type": "integer"},
                                                            drop=("size",))]))
    issue = caught.value.issues[0]
    assert issue.path == "/fields/1/type"
    assert "'size'" in issue.message and f"{bad['id']} ('large'" in issue.message
