"""Check duplicates → merge in a real headless Chromium (the fixtures of test_browser.py): from
a contact's detail page to the list of matches, two selected, the merge page side by side with
a value chosen per field and what moves, then the surviving record with its flash and history —
in English and Chinese, at 1366 px and 390 px."""

from __future__ import annotations

import re
import uuid

import pytest

from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.web import test_browser
from tests.web.test_browser import PHONE

browser = test_browser.browser  # fixture
server = test_browser.server  # fixture
session_for = test_browser.session_for  # fixture

WIDE = {"width": 1366, "height": 800}

TEXTS = {
    "en": ("Possible duplicates", "Same contact", "Email", "Merge records", "1 Opportunities move",
           "Merged 1 record(s) into this one; 1 related record(s) moved.", "Merge"),
    "zh-CN": ("可能重复的记录", "同一联系人", "邮箱", "合并记录", "1 条商机将转到主记录",
              "已将 1 条记录合并到本记录；1 条相关记录已转移。", "合并"),
}


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["desktop", "phone"])
def test_check_duplicates_then_merge(session_for, server, locale, viewport):
    system = RecordService(server["runtime"], Principal.system(), source="test")
    tag = f"{uuid.uuid4().hex[:6]}{locale}{viewport['width']}".replace("-", "").lower()
    email = f"pat.{tag}@example.com"
    master = system.create("contact", {"name": f"Pat Lee {tag}", "email": email, "title": "Buyer"})
    loser = system.create("contact", {"name": f"Pat Lee old {tag}", "email": email.upper(), "title": "Head of IT",
                                      "phone": "13700137000"})
    account = system.create("account", {"name": f"Pat Co {tag}"})
    deal = system.create("opportunity", {"name": f"Pat deal {tag}", "account": account["id"],
                                         "contact": loser["id"], "amount": "1000"})
    title, rule, field, merge_title, moves, merged, history = TEXTS[locale]
    s = session_for(viewport=viewport)
    s.use_locale(locale)
    s.go("/duplicates")
    s.page.click('[data-rule="contact_same_email_or_phone"] a')
    s.page.wait_for_selector("#duplicate-groups")
    assert f"Pat Lee old {tag}" in s.page.inner_text("#duplicate-groups")
    s.shot(f"dedup-groups-{locale}-{viewport['width']}.png")
    s.go(f"/records/contact/{master['id']}")
    s.page.click("#check-duplicates")
    s.page.wait_for_selector("#duplicate-matches")
    body = s.page.inner_text("body")
    assert title in body and rule in body and field in body and f"Pat Lee old {tag}" in body
    assert "contact_same_email_or_phone" not in body
    s.shot(f"dedup-check-{locale}-{viewport['width']}.png")
    s.page.check(f'input[name="ids"][value="{loser["id"]}"]')
    s.page.click("#merge-selected")
    s.page.wait_for_selector("#merge-form")
    body = s.page.inner_text("body")
    assert merge_title in body and moves in body and "Head of IT" in body and "Buyer" in body
    s.page.check(f'input[name="v.title"][value="{loser["id"]}"]')
    s.shot(f"dedup-merge-{locale}-{viewport['width']}.png")
    s.page.click("#merge-confirm")
    s.page.wait_for_url(re.compile(rf"/records/contact/{master['id']}$"))
    body = s.page.inner_text("body")
    assert merged in body and history in body
    s.shot(f"dedup-merged-{locale}-{viewport['width']}.png")
    kept = system.get("contact", master["id"])
    assert (kept["title"], kept["phone"]) == ("Head of IT", "13700137000")
    assert system.get("opportunity", deal["id"])["contact"] == master["id"]
    assert not system.list("contact", filter={"id": loser["id"]})[0]
