"""Admin → Change log pages: the admin forms' changes are logged with the admin's name, the log
and a document's history answer "who removed that field?", an entry shows a readable diff, and a
revert is previewed with the raw editor's diff (documents and storage) before it is applied;
a stale revert is refused with the clear message (en and zh-CN); admins only."""

from __future__ import annotations

import copy
import html
import json
import re

import sqlalchemy as sa

from metacrm.platform import changelog
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.web.conftest import post

THING = {"kind": "object", "name": "thing", "label": {"en": "Thing", "zh-CN": "东西"}, "name_field": "title",
         "fields": [{"name": "title", "type": "text"}, {"name": "colour", "type": "text"}]}


def text(response) -> str:
    return html.unescape(response.text)


def _admin_id(runtime) -> str:
    users = runtime.compiled().tables["user"]
    with runtime.reading() as conn:
        return conn.execute(sa.select(users.c.id).where(users.c.username == "admin")).scalar_one()


def _latest(runtime) -> dict:
    with runtime.reading() as conn:
        items, _ = changelog.list_changes(conn, changelog.Filters(), 1)
    return items[0]


def _apply_doc(admin_client, doc: dict):
    """Apply a document through its raw editor page, as an admin would."""
    return post(admin_client, f"/admin/metadata/{doc['kind']}/{doc['name']}",
                {"document": json.dumps(doc), "_action": "apply"})


def _drop_colour(admin_client, runtime) -> dict:
    assert post(admin_client, "/admin/metadata", {"document": json.dumps(THING),
                                                  "_action": "apply"}).status_code == 303
    doc = copy.deepcopy(THING)
    doc["fields"] = [f for f in doc["fields"] if f["name"] != "colour"]
    assert _apply_doc(admin_client, doc).status_code == 303
    return _latest(runtime)


def test_change_log_pages_are_for_admins_only(rep_client):
    for url in ("/admin/changes", "/admin/changes/1", "/admin/changes/1/revert"):
        assert rep_client.get(url).status_code == 403, url
    assert post(rep_client, "/admin/changes/1/revert").status_code == 403
    assert "Change log" not in rep_client.get("/").text


def test_admin_forms_are_logged_with_the_admin_and_shown_in_the_log(admin_client, runtime):
    response = post(admin_client, "/admin/objects/lead/fields", {"label_en": "Contract value", "type": "currency"})
    assert response.status_code == 303, text(response)
    entry = _latest(runtime)
    assert entry["user"] == _admin_id(runtime) and entry["via"] == "web"
    assert {"kind": "object", "name": "lead", "action": "changed"} in entry["documents"]
    page = text(admin_client.get("/admin/changes"))
    assert 'href="/admin/changes"' in page  # the admin navigation links the log
    row = re.search(rf'<tr data-change="{entry["id"]}">(.*?)</tr>', page, re.DOTALL).group(1)
    assert "Administrator" in row and "Admin pages" in row and "object/lead" in row
    assert "Object <strong>Lead</strong>" in row  # the kind and the label, as an admin reads them
    assert re.search(r"[A-Z][a-z]{2} \d{1,2}, \d{4} \d\d:\d\d", row)  # a date in the reader's locale
    detail = text(admin_client.get(f"/admin/changes/{entry['id']}"))
    assert "Fields added:" in detail and "contract_value" in detail and 'class="diff-add"' in detail
    # The object page links its own history.
    assert 'href="/admin/changes?document=object/lead"' in admin_client.get("/admin/objects/lead").text
    assert 'id="document-history"' in admin_client.get("/admin/metadata/object/lead").text


def fresh(runtime) -> RecordService:
    """A service on the live metadata (one keeps the version it was made with)."""
    return RecordService(runtime, Principal.system(), source="test")


def test_who_removed_that_field_and_revert_it_with_a_preview(admin_client, runtime):
    assert post(admin_client, "/admin/metadata", {"document": json.dumps(THING),
                                                  "_action": "apply"}).status_code == 303
    record = fresh(runtime).create("thing", {"title": "Kite", "colour": "red"})
    drop = _drop_colour(admin_client, runtime)
    history = text(admin_client.get("/admin/changes?document=object/thing"))
    assert "History of" in history and f'data-change="{drop["id"]}"' in history
    detail = text(admin_client.get(f"/admin/changes/{drop['id']}"))
    assert "Fields removed:" in detail and "colour" in detail and "Administrator" in detail
    assert "archived column rec_thing.colour" in detail
    revert_url = f"/admin/changes/{drop['id']}/revert?document=object/thing"
    assert revert_url in detail

    preview = text(admin_client.get(revert_url))
    assert "Revert change" in preview and "restored column rec_thing.colour" in preview
    assert 'class="diff-add"' in preview and '"colour"' in preview and 'id="apply-revert"' in preview
    assert _latest(runtime)["id"] == drop["id"]  # a preview changes nothing

    without_csrf = admin_client.post(f"/admin/changes/{drop['id']}/revert", data={"document": "object/thing"})
    assert without_csrf.status_code == 400 and _latest(runtime)["id"] == drop["id"]
    done = post(admin_client, f"/admin/changes/{drop['id']}/revert", {"document": "object/thing"})
    assert done.status_code == 303
    entry = _latest(runtime)
    assert done.headers["Location"] == f"/admin/changes/{entry['id']}" and entry["reverts"] == drop["id"]
    assert fresh(runtime).get("thing", record["id"])["colour"] == "red"
    page = text(admin_client.get(done.headers["Location"]))
    assert f"Change #{drop['id']} reverted" in page and f"Change #{drop['id']}</a>" in page


def test_a_stale_revert_is_refused_in_both_languages(admin_client, runtime, system):
    drop = _drop_colour(admin_client, runtime)
    later = copy.deepcopy(THING)
    later["fields"] = [f for f in later["fields"] if f["name"] != "colour"]
    later["label"] = "Renamed"
    assert _apply_doc(admin_client, later).status_code == 303
    version = _latest(runtime)["id"]
    preview = admin_client.get(f"/admin/changes/{drop['id']}/revert")
    assert preview.status_code == 409 and "changed after change" in text(preview)
    assert 'id="apply-revert"' not in preview.text
    refused = post(admin_client, f"/admin/changes/{drop['id']}/revert")
    assert refused.status_code == 409 and "Revert the later changes first" in text(refused)
    assert _latest(runtime)["id"] == version
    system.update("user", _admin_id(runtime), {"locale": "zh-CN"})
    chinese = post(admin_client, f"/admin/changes/{drop['id']}/revert")
    assert chinese.status_code == 409 and "之后又被修改过" in text(chinese)
    log = text(admin_client.get("/admin/changes"))
    assert "变更日志" in log and "管理页面" in log and re.search(r"\d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d", log)


def test_filters_paging_and_bad_input(admin_client, runtime):
    for i in range(27):
        assert post(admin_client, "/admin/metadata", {"document": json.dumps(
            {**THING, "label": f"Thing {i}"}), "_action": "apply"}).status_code == 303
    first = text(admin_client.get("/admin/changes?document=object/thing"))
    assert first.count("<tr data-change=") == 25
    older = re.search(r'href="([^"]+)" rel="next"', first).group(1)
    second = text(admin_client.get(html.unescape(older)))
    assert second.count("<tr data-change=") == 2 and "← Newest" in second
    assert "Older" not in second
    assert text(admin_client.get("/admin/changes?kind=role&user=system")).count("<tr data-change=") >= 1
    assert "No changes match" in text(admin_client.get("/admin/changes?document=object/none"))
    assert admin_client.get("/admin/changes?kind=nope").status_code == 400
    assert admin_client.get("/admin/changes?document=nope").status_code == 400
    assert admin_client.get("/admin/changes?cursor=zzz").status_code == 400
    assert admin_client.get("/admin/changes?user=a%00b").status_code == 400
    assert admin_client.get("/admin/changes/999999").status_code == 404
    assert admin_client.get("/admin/changes/1/revert?document=object/none").status_code == 404
