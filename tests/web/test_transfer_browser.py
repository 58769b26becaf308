"""A registration (报备) conflict in a real headless Chromium (the fixtures of test_browser.py):
a rep's new lead is blocked because another rep holds the same contact; the form names the
holder (and nothing else about the record) and offers "Request transfer", which files a
transfer request for the holder's manager — in English and Chinese, at 1366 px and 390 px."""

from __future__ import annotations

import re
import uuid

import pytest
import sqlalchemy as sa

from metacrm.approval.tables import request as approval_request
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.web import test_browser
from tests.web.test_browser import PASSWORD, PHONE

browser = test_browser.browser  # fixture
server = test_browser.server  # fixture
session_for = test_browser.session_for  # fixture

WIDE = {"width": 1366, "height": 800}

TEXTS = {
    "en": ("is held by Hana Holder", "Request transfer", "Transfer request sent"),
    "zh-CN": ("由Hana Holder负责", "申请转移", "转移申请已提交"),
}


@pytest.fixture(scope="module")
def holders(server):
    system = RecordService(server["runtime"], Principal.system(), source="test")
    run = uuid.uuid4().hex[:6]
    manager = system.create("user", {"username": f"mgr_{run}", "display_name": "Mo Manager", "roles": ["sales_manager"],
                                     "password": PASSWORD})["id"]
    holder = system.create("user", {"username": f"holder_{run}", "display_name": "Hana Holder",
                                    "roles": ["sales_rep"], "password": PASSWORD, "manager": manager})["id"]
    asker = system.create("user", {"username": f"asker_{run}", "display_name": "Ari Asker", "roles": ["sales_rep"],
                                   "password": PASSWORD})
    server["runtime"].directory_changed()
    return {"system": system, "holder": holder, "asker": asker, "run": run}


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["desktop", "phone"])
def test_a_blocked_lead_offers_a_transfer_request(session_for, server, holders, locale, viewport):
    system, asker = holders["system"], holders["asker"]
    system.update("user", asker["id"], {"locale": locale})
    tag = f"{holders['run']}{locale}{viewport['width']}".replace("-", "").lower()
    secret_company = f"Secret Holdings {tag}"
    held = system.create("lead", {"company": secret_company, "contact_name": "Kim", "source": "web",
                                  "email": f"kim.{tag}@held.example", "owner": holders["holder"]})
    heard, button, sent = TEXTS[locale]
    s = session_for(username=asker["username"], password=PASSWORD, viewport=viewport)
    s.go("/records/lead/new")
    s.page.fill("#f-company", f"My new lead {tag}")
    s.page.fill("#f-email", f"KIM.{tag}@held.example")
    s.page.select_option("#f-source", "web")
    s.page.click("#save")
    s.page.wait_for_selector("#form-errors")
    body = s.page.inner_text("body")
    assert heard in body and secret_company not in body and held["id"] not in s.page.content()
    assert s.page.is_visible("#request-transfer button")
    assert button in s.page.inner_text("#request-transfer")
    s.shot(f"transfer-blocked-{locale}-{viewport['width']}.png")
    s.page.click("#request-transfer button")
    s.page.wait_for_url(re.compile(r"/approvals"))
    assert sent in s.page.inner_text("body")
    assert secret_company not in s.page.inner_text("body") and "owner_manager" not in s.page.inner_text("body")
    s.shot(f"transfer-requested-{locale}-{viewport['width']}.png")
    with server["runtime"].reading() as conn:
        rows = conn.execute(sa.select(approval_request.c.status, approval_request.c.process).where(
            approval_request.c.record_id == held["id"], approval_request.c.submitter == asker["id"])).fetchall()
    assert [(r.status, r.process) for r in rows] == [("pending", "lead_transfer")]
    assert system.get("lead", held["id"])["owner"] == holders["holder"]
