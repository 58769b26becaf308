"""The gates in a real headless Chromium (the fixtures of test_browser.py): a quote set
Presented without its approval is refused on the form with the process named, in English and
Chinese at desktop (1366 px) and phone (390 px) width, and nothing changes; moving an
opportunity's stage in the edit form moves its forecast category; converting a lead gives the
new opportunity a close date."""

from __future__ import annotations

import re

import pytest

from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.web import test_browser
from tests.web.test_browser import PHONE

browser = test_browser.browser  # fixture
server = test_browser.server  # fixture
session_for = test_browser.session_for  # fixture

WIDE = {"width": 1366, "height": 800}


def _system(server) -> RecordService:
    return RecordService(server["runtime"], Principal.system(), source="test")


@pytest.mark.parametrize("locale, expected", [
    ("en", "Quote discount approval must approve this record before Status becomes Presented."),
    ("zh-CN", "状态变为“已报价”之前，须先通过报价折扣审批。"),
])
@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["desktop", "phone"])
def test_a_gated_transition_is_refused_on_the_form(session_for, server, locale, expected, viewport):
    system = _system(server)
    if not system.registry.has_object("quote"):
        pytest.skip("no quote object in this metadata")
    admin_id = system.list("user", filter={"username": "admin"})[0][0]["id"]
    system.update("user", admin_id, {"locale": locale})
    try:
        quote = system.create("quote", {"name": f"Browser quote {locale} {viewport['width']}", "discount_pct": "20"})
        s = session_for(viewport=viewport)
        s.go(f"/records/quote/{quote['id']}/edit")
        s.page.select_option("#f-status", "presented")
        s.page.click("#save")
        s.page.wait_for_selector("#form-errors")
        assert expected in s.page.inner_text("body")
        s.shot(f"gate-refused-{locale}-{viewport['width']}.png")
        assert system.get("quote", quote["id"])["status"] == "draft"
    finally:
        system.update("user", admin_id, {"locale": "en"})


def test_stage_change_and_conversion_in_the_browser(session_for, server):
    from tests.test_ltc_support import load_plugin

    load_plugin(server["runtime"])  # this server's runtime: the lead-to-cash hooks and the convert action
    system = _system(server)
    if not system.registry.has_object("opportunity"):
        pytest.skip("no opportunity object in this metadata")
    account = system.create("account", {"name": "Browser Stage Co"})
    opp = system.create("opportunity", {"name": "Browser stage deal", "account": account["id"], "amount": "1000.00",
                                        "close_date": "2030-01-01"})
    s = session_for(viewport=WIDE)
    s.go(f"/records/opportunity/{opp['id']}/edit")
    s.page.select_option("#f-stage", "negotiation")
    s.page.click("#save")
    s.page.wait_for_url(re.compile(r"/records/opportunity/[0-9a-f]{32}$"))
    assert "Commit" in s.page.inner_text("[data-field=forecast_category]")
    saved = system.get("opportunity", opp["id"])
    assert (saved["forecast_category"], saved["probability"]) == ("commit", "75.00")
    lead = system.create("lead", {"company": "Browser Convert Co", "contact_name": "Han Mei", "source": "web",
                                  "project_name": "Browser project", "budget": "50000",
                                  "campaign": server["campaign"]["id"],
                                  "owner": system.list("user", filter={"username": "admin"})[0][0]["id"]})
    s.go(f"/records/lead/{lead['id']}")
    s.page.click("#action-convert")  # the conversion dialog, prefilled from the lead
    s.page.wait_for_selector("#convert-submit")
    s.page.click("#convert-submit", timeout=45_000)
    s.page.wait_for_url(re.compile(r"/records/opportunity/[0-9a-f]{32}$"))
    converted = system.get("lead", lead["id"])
    assert converted["converted_opportunity"]
    new_opp = system.get("opportunity", converted["converted_opportunity"])
    assert new_opp["close_date"] and new_opp["amount"] == "50000.00"
    assert new_opp["campaign"] == server["campaign"]["id"]
