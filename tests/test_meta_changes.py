"""The metadata change log: every path that changes metadata (REST PUT / DELETE / apply, the CLI,
plugin install / uninstall, boot seeding) records who, when, how, the new version and each
document's body before and after, in the change's own transaction; GET /meta/changes pages it
(keyset, filters) for admins only; a revert puts documents back as a change of its own, storage
included, and is refused when the document changed since."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from metacrm.metadata.bundle import Bundle
from metacrm.platform import changelog, db, metastore
from metacrm.platform.apply import apply_change
from metacrm.platform.errors import MetadataInvalid, StaleVersion
from metacrm.plugins import install as plugins
from tests.conftest import make_user
from tests.test_plugins import NOTE, make_plugin, manifest  # noqa: F401 - make_plugin is a fixture

THING = {"kind": "object", "name": "thing", "label": {"en": "Thing", "zh-CN": "东西"}, "name_field": "title",
         "fields": [{"name": "title", "type": "text", "max_length": 100}, {"name": "colour", "type": "text"}]}


def _without(doc: dict, field: str) -> dict:
    out = copy.deepcopy(doc)
    out["fields"] = [f for f in out["fields"] if f["name"] != field]
    return out


def changes(client, headers, **params) -> dict:
    response = client.get("/api/v1/meta/changes", query_string=params, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def admin_id(runtime) -> str:
    users = runtime.compiled().tables["user"]
    with runtime.reading() as conn:
        return conn.execute(sa.select(users.c.id).where(users.c.username == "admin")).scalar_one()


def columns(runtime, table: str) -> set[str]:
    with runtime.engine.connect() as conn:
        return {c["name"] for c in sa.inspect(conn).get_columns(table)}


def test_boot_seeding_is_the_first_entry_by_the_system(runtime, client, admin_headers):
    body = changes(client, admin_headers, kind="object", document="object/account")
    first = body["items"][-1]
    assert first["user"] == "system" and first["via"] == "boot" and first["id"] == 1
    assert {"kind": "object", "name": "account", "action": "added"} in first["documents"]
    detail = client.get(f"/api/v1/meta/changes/{first['id']}", headers=admin_headers).get_json()
    account = next(d for d in detail["documents"] if d["name"] == "account")
    assert account["before"] is None and account["after"]["name"] == "account"
    assert "rec_account" in detail["storage"]["new_tables"]


def test_rest_put_delete_and_apply_are_recorded_with_who_and_the_bodies(runtime, client, admin_headers):
    me = admin_id(runtime)
    put = client.put("/api/v1/meta/object/thing", json=THING, headers=admin_headers)
    assert put.status_code == 200
    entry = changes(client, admin_headers)["items"][0]
    assert entry["version"] == put.get_json()["version"] and entry["user"] == me and entry["via"] == "api"
    assert entry["documents"] == [{"kind": "object", "name": "thing", "action": "added"}]
    assert entry["at"].endswith("Z") and "rec_thing" in entry["storage"]["new_tables"]

    # A dry run and an unchanged write record nothing.
    assert client.put("/api/v1/meta/object/thing?dry_run=1", json=_without(THING, "colour"),
                      headers=admin_headers).status_code == 200
    assert client.put("/api/v1/meta/object/thing", json=THING, headers=admin_headers).status_code == 200
    assert changes(client, admin_headers)["items"][0]["id"] == entry["id"]

    assert client.put("/api/v1/meta/object/thing", json=_without(THING, "colour"),
                      headers=admin_headers).status_code == 200
    changed = changes(client, admin_headers)["items"][0]
    detail = client.get(f"/api/v1/meta/changes/{changed['id']}", headers=admin_headers).get_json()
    [doc] = detail["documents"]
    assert doc["action"] == "changed" and doc["before"] == THING and doc["after"] == _without(THING, "colour")
    assert detail["storage"]["archived_columns"] == [{"table": "rec_thing", "column": "colour"}]
    assert changelog.summary("object", doc["before"], doc["after"]) == [("fields_removed", "colour")]

    bundle = {"documents": [{**THING, "name": "gadget"}], "delete": [{"kind": "object", "name": "thing"}]}
    assert client.post("/api/v1/meta/apply", json=bundle, headers=admin_headers).status_code == 200
    applied = changes(client, admin_headers)["items"][0]
    assert applied["documents"] == [{"kind": "object", "name": "gadget", "action": "added"},
                                    {"kind": "object", "name": "thing", "action": "removed"}]
    assert client.delete("/api/v1/meta/object/gadget", headers=admin_headers).status_code == 200
    removed = client.get(f"/api/v1/meta/changes/{changes(client, admin_headers)['items'][0]['id']}",
                         headers=admin_headers).get_json()
    assert removed["documents"][0]["after"] is None and removed["documents"][0]["before"]["name"] == "gadget"
    # "Who removed that field?": the document's own history answers it.
    history = changes(client, admin_headers, document="object/thing")["items"]
    assert [h["id"] for h in history] == [applied["id"], changed["id"], entry["id"]]
    assert all(h["user"] == me for h in history)


def test_a_failed_change_records_nothing(runtime, client, admin_headers):
    before = changes(client, admin_headers)["items"][0]["id"]
    bad = {**THING, "fields": [{"name": "title", "type": "strng"}]}
    assert client.put("/api/v1/meta/object/thing", json=bad, headers=admin_headers).status_code == 400
    with pytest.raises(MetadataInvalid):
        apply_change(runtime, Bundle(documents=[bad]))
    assert changes(client, admin_headers)["items"][0]["id"] == before


def test_keyset_paging_and_filters(runtime, client, admin_headers):
    rep = make_user(runtime, client, "rita", ["admin"])
    for i in range(3):
        assert client.put("/api/v1/meta/object/thing", json={**THING, "label": f"Thing {i}"},
                          headers=admin_headers).status_code == 200
    assert client.put("/api/v1/meta/object/thing", json={**THING, "label": "By Rita"},
                      headers=rep.headers).status_code == 200
    page1 = changes(client, admin_headers, limit=2)
    assert len(page1["items"]) == 2 and page1["next_cursor"]
    page2 = changes(client, admin_headers, limit=2, cursor=page1["next_cursor"])
    ids = [i["id"] for i in page1["items"] + page2["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4
    everything = []
    cursor = None
    while True:
        page = changes(client, admin_headers, limit=50, **({"cursor": cursor} if cursor else {}))
        everything += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert everything[-1]["via"] == "boot"
    assert [i["user"] for i in changes(client, admin_headers, user=rep.id)["items"]] == [rep.id]
    assert all(i["user"] == "system" for i in changes(client, admin_headers, user="system")["items"])
    assert len(changes(client, admin_headers, document="object/thing")["items"]) == 4
    assert changes(client, admin_headers, kind="role", user=rep.id)["items"] == []
    assert changes(client, admin_headers, document="object/nothing")["items"] == []


@pytest.mark.parametrize("params,code", [
    ({"cursor": "nonsense"}, "bad_cursor"), ({"cursor": "Yzk5OTk5OTk5OTk5"}, "bad_cursor"),
    ({"limit": "0"}, None), ({"limit": "201"}, None), ({"limit": "x"}, None),
    ({"kind": "nope"}, "bad_parameter"), ({"document": "object"}, "bad_parameter"),
    ({"user": "a\x00b"}, "bad_parameter"), ({"document": "object/a\x00b"}, "bad_parameter"),
])
def test_bad_parameters_are_precise_400s(client, admin_headers, params, code):
    response = client.get("/api/v1/meta/changes", query_string=params, headers=admin_headers)
    assert response.status_code == 400, response.get_json()
    if code:
        assert response.get_json()["error"]["code"] == code


def test_unknown_entries_are_404(client, admin_headers):
    for change_id in (999999, 2**40):
        response = client.get(f"/api/v1/meta/changes/{change_id}", headers=admin_headers)
        assert response.status_code == 404 and response.get_json()["error"]["code"] == "unknown_change"
        assert client.post(f"/api/v1/meta/changes/{change_id}/revert", headers=admin_headers).status_code == 404


def test_only_admins_see_the_log(runtime, client):
    rep = make_user(runtime, client, "rosa", ["sales_rep"])
    for url in ("/api/v1/meta/changes", "/api/v1/meta/changes/1"):
        response = client.get(url, headers=rep.headers)
        assert response.status_code == 403 and response.get_json()["error"]["code"] == "forbidden"
    assert client.post("/api/v1/meta/changes/1/revert", headers=rep.headers).status_code == 403
    assert client.get("/api/v1/meta/changes").status_code == 401


def test_revert_round_trip_brings_a_dropped_field_back_with_its_data(runtime, client, admin_headers):
    assert client.put("/api/v1/meta/object/thing", json=THING, headers=admin_headers).status_code == 200
    created = client.post("/api/v1/records/thing", json={"title": "Kite", "colour": "red"}, headers=admin_headers)
    assert created.status_code == 201, created.get_json()
    record_id = created.get_json()["id"]
    assert client.put("/api/v1/meta/object/thing", json=_without(THING, "colour"),
                      headers=admin_headers).status_code == 200
    drop = changes(client, admin_headers)["items"][0]
    assert "colour" not in client.get(f"/api/v1/records/thing/{record_id}", headers=admin_headers).get_json()
    assert "colour" in columns(runtime, "rec_thing")  # archived, not dropped

    preview = client.post(f"/api/v1/meta/changes/{drop['id']}/revert?dry_run=1",
                          json={"document": "object/thing"}, headers=admin_headers)
    assert preview.status_code == 200, preview.get_json()
    plan = preview.get_json()
    assert plan["applied"] is False and plan["diff"]["documents"]["changed"] == ["object/thing"]
    assert plan["diff"]["storage"]["restored_columns"] == [{"table": "rec_thing", "column": "colour"}]
    assert changes(client, admin_headers)["items"][0]["id"] == drop["id"]  # a preview records nothing

    done = client.post(f"/api/v1/meta/changes/{drop['id']}/revert", headers=admin_headers)
    assert done.status_code == 200, done.get_json()
    entry = changes(client, admin_headers)["items"][0]
    assert done.get_json()["change"] == entry["id"] and entry["reverts"] == drop["id"]
    assert entry["user"] == admin_id(runtime) and entry["documents"][0]["action"] == "changed"
    assert client.get("/api/v1/meta/object/thing", headers=admin_headers).get_json()["fields"] == THING["fields"]
    assert client.get(f"/api/v1/records/thing/{record_id}", headers=admin_headers).get_json()["colour"] == "red"


def test_a_stale_revert_is_refused_and_changes_nothing(runtime, client, admin_headers):
    assert client.put("/api/v1/meta/object/thing", json=THING, headers=admin_headers).status_code == 200
    assert client.put("/api/v1/meta/object/thing", json=_without(THING, "colour"),
                      headers=admin_headers).status_code == 200
    drop = changes(client, admin_headers)["items"][0]["id"]
    later = {**_without(THING, "colour"), "label": "Renamed"}
    assert client.put("/api/v1/meta/object/thing", json=later, headers=admin_headers).status_code == 200
    version = client.get("/api/v1/meta/object/thing", headers=admin_headers).get_json()["version"]
    refused = client.post(f"/api/v1/meta/changes/{drop}/revert", headers=admin_headers)
    assert refused.status_code == 409
    error = refused.get_json()["error"]
    assert error["code"] == "stale_version" and error["stale"][0]["document"] == "object/thing"
    assert "changed after change" in error["message"]
    assert client.get("/api/v1/meta/object/thing", headers=admin_headers).get_json()["version"] == version
    # Reverting the later change first, then the drop, works (newest first).
    latest = changes(client, admin_headers)["items"][0]["id"]
    assert client.post(f"/api/v1/meta/changes/{latest}/revert", headers=admin_headers).status_code == 200
    assert client.post(f"/api/v1/meta/changes/{drop}/revert", headers=admin_headers).status_code == 200
    assert client.get("/api/v1/meta/object/thing", headers=admin_headers).get_json()["fields"] == THING["fields"]


def test_reverting_a_creation_deletes_and_a_deletion_recreates(runtime, client, admin_headers):
    assert client.put("/api/v1/meta/object/thing", json=THING, headers=admin_headers).status_code == 200
    created = changes(client, admin_headers)["items"][0]["id"]
    assert client.post(f"/api/v1/meta/changes/{created}/revert", headers=admin_headers).status_code == 200
    assert client.get("/api/v1/meta/object/thing", headers=admin_headers).status_code == 404
    removal = changes(client, admin_headers)["items"][0]
    assert removal["documents"] == [{"kind": "object", "name": "thing", "action": "removed"}]
    assert client.post(f"/api/v1/meta/changes/{removal['id']}/revert", headers=admin_headers).status_code == 200
    assert client.get("/api/v1/meta/object/thing", headers=admin_headers).get_json()["label"] == THING["label"]
    bad = client.post(f"/api/v1/meta/changes/{created}/revert", json={"document": "object/other"},
                      headers=admin_headers)
    assert bad.status_code == 404 and bad.get_json()["error"]["code"] == "unknown_document"
    assert client.post(f"/api/v1/meta/changes/{created}/revert", json=[1],
                       headers=admin_headers).status_code == 400


def test_the_entry_is_written_in_the_changes_transaction(runtime):
    """write_documents records the entry on the same connection: rolled back together."""
    with pytest.raises(RuntimeError), runtime.transaction() as tx:
        metastore.write_documents(tx.conn, [THING], [])
        assert tx.conn.execute(sa.select(sa.func.count()).select_from(db.meta_change_document)
                               .where(db.meta_change_document.c.name == "thing")).scalar() == 1
        raise RuntimeError("roll back")
    with runtime.reading() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.meta_change_document)
                            .where(db.meta_change_document.c.name == "thing")).scalar() == 0


def test_revert_service_refuses_stale_with_the_clear_message(runtime):
    apply_change(runtime, Bundle(documents=[THING]))
    apply_change(runtime, Bundle(documents=[_without(THING, "colour")]))
    with runtime.reading() as conn:
        drop = changelog.change_for_version(conn, metastore.current_version(conn))
    apply_change(runtime, Bundle(documents=[{**THING, "label": "Changed again"}]))
    with pytest.raises(StaleVersion) as caught:
        changelog.revert(runtime, drop, ("object", "thing"))
    assert "object/thing changed after change" in caught.value.message


def test_the_cli_records_its_changes(engine, runtime, tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "thing.json").write_text(json.dumps(THING))
    env = dict(os.environ, METACRM_DATABASE_URL=engine.url.render_as_string(hide_password=False))
    env.pop("METACRM_REDIS_URL", None)
    done = subprocess.run([sys.executable, "-m", "metacrm.platform.cli", "metadata", "apply", str(bundle)],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    with runtime.reading() as conn:
        [entry], _ = changelog.list_changes(conn, changelog.Filters(document=("object", "thing")))
    assert entry["user"] == "system" and entry["via"] == "cli"
    assert entry["documents"] == [{"kind": "object", "name": "thing", "action": "added"}]


def test_plugin_install_and_uninstall_are_recorded_with_the_plugin(runtime, make_plugin):  # noqa: F811
    make_plugin(manifest(bundle="metadata"), bundle={"note.object.json": NOTE})
    with changelog.acting(user="u-admin", via="api"):  # as the plugin API does within a request
        plugins.install(runtime, "tp")
    plugins.uninstall(runtime, "tp")
    with runtime.reading() as conn:
        items, _ = changelog.list_changes(conn, changelog.Filters(document=("object", "tp__note")))
    removed, added = items
    assert (added["plugin"], added["user"], added["via"]) == ("tp", "u-admin", "api")
    assert added["documents"] == [{"kind": "object", "name": "tp__note", "action": "added"}]
    assert (removed["plugin"], removed["user"]) == ("tp", "system")
    assert removed["documents"][0]["action"] == "removed"


def test_reverting_a_whole_change_puts_every_document_back(runtime, client, admin_headers):
    assert client.put("/api/v1/meta/object/thing", json=THING, headers=admin_headers).status_code == 200
    bundle = {"documents": [{**THING, "name": "gadget"}], "delete": [{"kind": "object", "name": "thing"}]}
    assert client.post("/api/v1/meta/apply", json=bundle, headers=admin_headers).status_code == 200
    both = changes(client, admin_headers)["items"][0]
    assert len(both["documents"]) == 2
    plan = client.post(f"/api/v1/meta/changes/{both['id']}/revert?dry_run=1", headers=admin_headers).get_json()
    assert plan["diff"]["documents"] == {"added": ["object/thing"], "changed": [], "removed": ["object/gadget"]}
    assert client.post(f"/api/v1/meta/changes/{both['id']}/revert", headers=admin_headers).status_code == 200
    assert client.get("/api/v1/meta/object/gadget", headers=admin_headers).status_code == 404
    assert client.get("/api/v1/meta/object/thing", headers=admin_headers).get_json()["fields"] == THING["fields"]
    entry = changes(client, admin_headers)["items"][0]
    assert entry["reverts"] == both["id"] and {d["action"] for d in entry["documents"]} == {"added", "removed"}
