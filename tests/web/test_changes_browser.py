"""Admin → Change log in a real headless Chromium (the fixtures of test_browser.py): one admin
removes a field in the raw editor; another finds, from the object's page, who did it and what
the change was, previews the revert (documents and storage) and applies it, and the field is
back with its data — in English and Chinese, at 1366 px and 390 px."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from metacrm.metadata.bundle import Bundle
from metacrm.platform.apply import apply_change
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.web import test_browser
from tests.web.test_browser import PASSWORD, PHONE

browser = test_browser.browser  # fixture
server = test_browser.server  # fixture
session_for = test_browser.session_for  # fixture

WIDE = {"width": 1366, "height": 800}

TEXTS = {
    "en": {"log": "Change log", "history": "History of", "removed": "Fields removed", "revert": "Revert change",
           "restored": "restored column", "done": "reverted", "via": "Admin pages"},
    "zh-CN": {"log": "变更日志", "history": "变更历史", "removed": "删除字段", "revert": "撤销变更",
              "restored": "恢复列", "done": "已撤销变更", "via": "管理页面"},
}


def _system(server) -> RecordService:
    return RecordService(server["runtime"], Principal.system(), source="test")


@pytest.fixture(scope="module")
def remover(server):
    """Ada, the other admin whose change is looked for."""
    run = uuid.uuid4().hex[:6]
    user = _system(server).create("user", {"username": f"ada_{run}", "display_name": "Ada Admin", "roles": ["admin"],
                                           "password": PASSWORD, "locale": "en"})
    server["runtime"].directory_changed()
    return user


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["desktop", "phone"])
def test_find_who_removed_a_field_and_revert_it(session_for, server, remover, locale, viewport):
    runtime = server["runtime"]
    words = TEXTS[locale]
    name = f"kit_{locale.replace('-', '').lower()}_{viewport['width']}"
    doc = {"kind": "object", "name": name, "label": {"en": "Kit", "zh-CN": "套件"}, "name_field": "title",
           "fields": [{"name": "title", "type": "text", "label": {"en": "Title", "zh-CN": "标题"}},
                      {"name": "colour", "type": "text", "label": {"en": "Colour", "zh-CN": "颜色"}}]}
    apply_change(runtime, Bundle(documents=[doc]))
    runtime.compiled(force=True)
    record = _system(server).create(name, {"title": "Kite", "colour": "red"})

    # Ada removes the field in the raw editor (preview, then apply).
    ada = session_for(username=remover["username"], password=PASSWORD, viewport=WIDE)
    ada.go(f"/admin/metadata/object/{name}")
    without = {**doc, "fields": doc["fields"][:1]}
    ada.page.fill("#document", json.dumps(without, indent=2, ensure_ascii=False))
    ada.page.click("#preview", timeout=45_000)  # metadata applies: the in-process test server can be slow in a full run
    ada.page.wait_for_selector("#meta-diff")
    ada.page.click("#apply", timeout=45_000)
    ada.page.wait_for_url(re.compile(rf"/admin/metadata/object/{name}$"), timeout=45_000)
    assert "colour" not in runtime.registry().object(name).fields

    # The admin (in their language) finds who did it from the object's page.
    admin_id = _system(server).list("user", filter={"username": "admin"})[0][0]["id"]
    _system(server).update("user", admin_id, {"locale": locale})
    s = session_for(viewport=viewport)
    s.go(f"/admin/objects/{name}")
    s.page.click("#object-history")
    s.page.wait_for_url(re.compile(r"/admin/changes\?document="))
    body = s.page.inner_text("body")
    assert words["history"] in body and "Ada Admin" in body and words["via"] in body
    first = s.page.locator("#changes-table tbody tr").first
    assert "Ada Admin" in first.inner_text()
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日|[A-Z][a-z]{2} \d{1,2}, \d{4}", first.inner_text())
    s.shot(f"changes-history-{locale}-{viewport['width']}.png")
    first.locator("td.primary a").click()
    s.page.wait_for_url(re.compile(r"/admin/changes/\d+$"))
    entry = s.page.inner_text("body")
    assert words["removed"] in entry and "colour" in entry and "Ada Admin" in s.page.inner_text("#change-who")
    s.shot(f"changes-entry-{locale}-{viewport['width']}.png")

    s.page.locator(".revert-doc").first.click(timeout=45_000)
    s.page.wait_for_url(re.compile(r"/revert\?document="), timeout=45_000)
    preview = s.page.inner_text("body")
    assert words["revert"] in preview and f"{words['restored']} rec_{name}.colour" in preview
    s.shot(f"changes-revert-{locale}-{viewport['width']}.png")
    s.page.click("#apply-revert", timeout=45_000)
    s.page.wait_for_url(re.compile(r"/admin/changes/\d+$"), timeout=45_000)
    assert words["done"] in s.page.inner_text("body")
    s.shot(f"changes-reverted-{locale}-{viewport['width']}.png")
    runtime.compiled(force=True)
    assert "colour" in runtime.registry().object(name).fields
    assert _system(server).get(name, record["id"])["colour"] == "red"
    _system(server).update("user", admin_id, {"locale": "en"})
