"""Metadata writes carry a version: a stale copy is refused with 409 stale_version and changes
nothing (REST with If-Match or a body `version`; the admin web forms always send the version
they loaded). A write without any version stays unconditional (the external contract)."""

from __future__ import annotations

import copy
import html
import re

from tests.conftest import ADMIN_PASSWORD
from tests.web.conftest import login, post

THING = {
    "kind": "object", "name": "thing", "label": {"en": "Thing", "zh-CN": "东西"}, "name_field": "title",
    "fields": [{"name": "title", "type": "text", "max_length": 100}],
}


def _fields(doc: dict) -> list[str]:
    return [f["name"] for f in doc["fields"]]


def _with(doc: dict, name: str) -> dict:
    doc = copy.deepcopy(doc)
    doc.pop("version", None)
    doc["fields"].append({"name": name, "type": "text"})
    return doc


def test_get_returns_the_version_and_a_stale_put_is_refused_changing_nothing(client, admin_headers):
    assert client.put("/api/v1/meta/object/thing", json=THING, headers=admin_headers).status_code == 200
    first = client.get("/api/v1/meta/object/thing", headers=admin_headers)
    body = first.get_json()
    assert first.headers["ETag"] == f'"{body["version"]}"'
    # Admin A adds a field, sending the version it loaded.
    a = client.put("/api/v1/meta/object/thing", json=_with(body, "colour"),
                   headers={**admin_headers, "If-Match": first.headers["ETag"]})
    assert a.status_code == 200, a.get_json()
    assert a.headers["ETag"] == f'"{a.get_json()["documents"]["object/thing"]}"' != first.headers["ETag"]
    # Admin B writes back their old copy (with the old version in the body): refused, nothing archived.
    b = client.put("/api/v1/meta/object/thing", json={**copy.deepcopy(body), "fields": body["fields"]},
                   headers=admin_headers)
    assert b.status_code == 409 and b.get_json()["error"]["code"] == "stale_version"
    assert b.get_json()["error"]["stale"][0]["document"] == "object/thing"
    now = client.get("/api/v1/meta/object/thing", headers=admin_headers).get_json()
    assert "colour" in _fields(now)
    # The same with If-Match and a dry run, and with a delete.
    old = {"If-Match": first.headers["ETag"]}
    assert client.put("/api/v1/meta/object/thing?dry_run=1", json=_with(body, "x"),
                      headers={**admin_headers, **old}).status_code == 409
    assert client.delete("/api/v1/meta/object/thing", headers={**admin_headers, **old}).status_code == 409
    # The current version is accepted.
    ok = client.put("/api/v1/meta/object/thing", json=_with(now, "size"),
                    headers={**admin_headers, "If-Match": f'W/"{now["version"]}"'})
    assert ok.status_code == 200 and "size" in _fields(client.get("/api/v1/meta/object/thing",
                                                                  headers=admin_headers).get_json())


def test_a_write_without_a_version_stays_unconditional(client, admin_headers):
    assert client.put("/api/v1/meta/object/thing", json=THING, headers=admin_headers).status_code == 200
    assert client.put("/api/v1/meta/object/thing", json=_with(THING, "colour"), headers=admin_headers).status_code == 200
    assert client.put("/api/v1/meta/object/thing", json=THING, headers=admin_headers).status_code == 200


def test_apply_bundle_versions_and_bad_version_headers(client, admin_headers):
    assert client.put("/api/v1/meta/object/thing", json=THING, headers=admin_headers).status_code == 200
    loaded = client.get("/api/v1/meta/object/thing", headers=admin_headers).get_json()
    assert client.put("/api/v1/meta/object/thing", json=_with(THING, "colour"), headers=admin_headers).status_code == 200
    stale = client.post("/api/v1/meta/apply", json={"documents": [_with(loaded, "size") | {"version": loaded["version"]}]},
                        headers=admin_headers)
    assert stale.status_code == 409 and stale.get_json()["error"]["code"] == "stale_version"
    gone = client.post("/api/v1/meta/apply", json={"documents": [], "delete": [
        {"kind": "object", "name": "thing", "version": loaded["version"]}]}, headers=admin_headers)
    assert gone.status_code == 409
    # Creating with version "absent" only creates.
    new = {**THING, "name": "gadget"}
    assert client.post("/api/v1/meta/apply", json={"documents": [{**new, "version": "absent"}]},
                       headers=admin_headers).status_code == 200
    assert client.post("/api/v1/meta/apply", json={"documents": [{**new, "version": "absent"}]},
                       headers=admin_headers).status_code == 409
    bad = client.put("/api/v1/meta/object/thing", json=THING, headers={**admin_headers, "If-Match": "nope"})
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "bad_if_match"
    bad = client.put("/api/v1/meta/object/thing", json={**THING, "version": 7}, headers=admin_headers)
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "bad_version"
    assert "colour" in _fields(client.get("/api/v1/meta/object/thing", headers=admin_headers).get_json())


def test_dry_run_must_be_a_yes_or_no(client, admin_headers):
    maybe = client.put("/api/v1/meta/object/thing?dry_run=maybe", json=THING, headers=admin_headers)
    assert maybe.status_code == 400 and maybe.get_json()["error"]["parameter"] == "dry_run"
    assert client.get("/api/v1/meta/object/thing", headers=admin_headers).status_code == 404
    imported = client.post("/api/v1/records/account/import?dry_run=maybe", json=[{"name": "Maybe Co"}],
                           headers=admin_headers)
    assert imported.status_code == 400 and "dry_run" in imported.get_json()["error"]["fields"]
    listed = client.get("/api/v1/records/account", headers=admin_headers).get_json()["items"]
    assert all(item.get("name") != "Maybe Co" for item in listed)


def _web_admin(app):
    web = app.test_client()
    assert login(web, "admin", ADMIN_PASSWORD).status_code == 303
    return web


def _hidden_versions(page: str) -> str:
    return html.unescape(re.search(r'name="versions" value="([^"]*)"', page).group(1))


def test_two_admins_in_the_web_document_editor_cannot_overwrite_each_other(app, client, admin_headers):
    assert client.put("/api/v1/meta/object/thing", json=THING, headers=admin_headers).status_code == 200
    first, second = _web_admin(app), _web_admin(app)
    url = "/admin/metadata/object/thing"
    versions_a = _hidden_versions(first.get(url).text)
    versions_b = _hidden_versions(second.get(url).text)
    import json as _json
    a = post(first, url, {"document": _json.dumps(_with(THING, "colour")), "_action": "apply", "versions": versions_a})
    assert a.status_code == 303
    b = post(second, url, {"document": _json.dumps(THING), "_action": "apply", "versions": versions_b})
    assert b.status_code == 409 and "Someone else changed this document" in html.unescape(b.text)
    assert "colour" in _fields(client.get("/api/v1/meta/object/thing", headers=admin_headers).get_json())
    # After reloading, the second admin's change goes through.
    fresh = _hidden_versions(second.get(url).text)
    assert post(second, url, {"document": _json.dumps(_with(THING, "size")), "_action": "apply",
                              "versions": fresh}).status_code == 303


def test_field_form_and_bundle_preview_send_the_version_they_loaded(app, client, admin_headers):
    assert client.put("/api/v1/meta/object/thing", json=THING, headers=admin_headers).status_code == 200
    web = _web_admin(app)
    loaded = _hidden_versions(web.get("/admin/objects/thing").text)
    assert client.put("/api/v1/meta/object/thing", json=_with(THING, "colour"), headers=admin_headers).status_code == 200
    stale = post(web, "/admin/objects/thing/fields", {"label_en": "Size", "type": "text", "versions": loaded})
    assert stale.status_code == 409 and "Someone else changed" in html.unescape(stale.text)
    assert _fields(client.get("/api/v1/meta/object/thing", headers=admin_headers).get_json()) == ["title", "colour"]
    again = post(web, "/admin/objects/thing/fields", {"label_en": "Size", "type": "text",
                                                      "versions": _hidden_versions(stale.text)})
    assert again.status_code == 303
    # Bundle editor: a preview records the versions; an apply after someone else's change is refused.
    import json as _json
    text = _json.dumps(_with(THING, "weight"))
    preview = post(web, "/admin/metadata", {"document": text, "_action": "preview"})
    assert preview.status_code == 200
    versions = _hidden_versions(preview.text)
    assert client.put("/api/v1/meta/object/thing", json=_with(THING, "height"), headers=admin_headers).status_code == 200
    applied = post(web, "/admin/metadata", {"document": text, "_action": "apply", "versions": versions})
    assert applied.status_code == 409
    assert "height" in _fields(client.get("/api/v1/meta/object/thing", headers=admin_headers).get_json())
