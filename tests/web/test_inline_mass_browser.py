"""Inline edit and mass update in a real headless Chromium (the fixtures of test_browser.py),
in English and Chinese at desktop (1366 px) and phone (390 px) width, as a sales rep: edit a
list cell and a detail field in place (saved through the record service, the page updated
without a reload), then tick three leads, update their status through the mass page, read the
summary (3 records, the change), confirm and see the per-record report; the home page lists
the opened lead under "recently viewed"."""

from __future__ import annotations

import pytest

from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.web import test_browser
from tests.web.test_browser import PASSWORD, PHONE

browser = test_browser.browser  # fixture
server = test_browser.server  # fixture
session_for = test_browser.session_for  # fixture

WIDE = {"width": 1366, "height": 800}
TEXTS = {"en": {"status": "Nurturing", "records": "3 records", "working": "Working"},
         "zh-CN": {"status": "培育中", "records": "3 条记录", "working": "跟进中"}}
SLOW = 45_000  # clicks that load a page under load


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["desktop", "phone"])
def test_inline_edit_then_mass_update_three_leads(session_for, server, locale, viewport):
    system = RecordService(server["runtime"], Principal.system(), source="test")
    rosa = server["users"]["rosa"]
    tag = f"Quick {locale} {viewport['width']}"
    leads = [system.create("lead", {"company": f"{tag} {n}", "contact_name": "Li Wei", "status": "new",
                                    "source": "web", "owner": rosa, "email": f"q{n}{viewport['width']}{locale[:2]}@ex.com"})
             for n in range(3)]
    s = session_for(username="rosa", password=PASSWORD, viewport=viewport)
    page = s.page
    try:
        s.use_locale(locale)
        listing = f"/records/lead?view=_all&q={tag}".replace(" ", "+")
        s.go(listing)
        first = leads[0]
        cell = page.locator(f'tr[data-id="{first["id"]}"] [data-inline$="/inline/status"]')
        cell.locator(".inline-pencil").click()
        cell.locator("form.inline-edit select[name=status]").select_option("working", timeout=SLOW)
        s.shot(f"inline-list-{locale}-{viewport['width']}.png")
        cell.locator(".inline-save").click()
        page.wait_for_function("(el) => !el.querySelector('form')", arg=cell.element_handle(), timeout=SLOW)
        assert TEXTS[locale]["working"] in cell.inner_text()
        assert system.get("lead", first["id"])["status"] == "working"
        # On the detail page: the contact's name, in place.
        s.go(f"/records/lead/{first['id']}")
        field = page.locator('dd[data-inline$="/inline/contact_name"]')
        field.locator(".inline-pencil").click()
        field.locator("input[name=contact_name]").fill("Zhang Min", timeout=SLOW)
        field.locator(".inline-save").click()
        page.wait_for_function("(el) => !el.querySelector('form')", arg=field.element_handle(), timeout=SLOW)
        assert "Zhang Min" in field.inner_text()
        assert system.get("lead", first["id"])["contact_name"] == "Zhang Min"
        s.shot(f"inline-detail-{locale}-{viewport['width']}.png")
        # The home page lists it under "recently viewed", and greets Rosa by her name.
        s.go("/")
        assert first["company"] in page.inner_text("#recent-items")
        assert "Rosa Chen" in page.inner_text("h1")
        s.shot(f"recent-{locale}-{viewport['width']}.png")
        # Mass update: tick the three leads, choose the field and its value, read the summary, confirm.
        s.go(listing)
        for lead in leads:
            page.locator(f'tr[data-id="{lead["id"]}"] input.mass-row').check()
        s.shot(f"mass-select-{locale}-{viewport['width']}.png")
        page.select_option("#mass-action", "update")
        page.click("#mass-apply", timeout=SLOW)
        page.wait_for_selector("#mass-field", timeout=SLOW)
        with page.expect_navigation(timeout=SLOW):
            page.select_option("#mass-field", "status")
        page.select_option("#mass-choose select[name=status]", "nurturing")
        page.click("#mass-review", timeout=SLOW)
        page.wait_for_selector("#mass-summary", timeout=SLOW)
        assert TEXTS[locale]["records"] in page.inner_text("#mass-count")
        assert TEXTS[locale]["status"] in page.inner_text("#mass-change")
        s.shot(f"mass-summary-{locale}-{viewport['width']}.png")
        page.click("#mass-confirm", timeout=SLOW)
        page.wait_for_selector("#mass-result", timeout=SLOW)
        assert page.inner_text("#mass-done").strip() == "3"
        s.shot(f"mass-report-{locale}-{viewport['width']}.png")
        for lead in leads:
            assert system.get("lead", lead["id"])["status"] == "nurturing"
    finally:
        system.update("user", rosa, {"locale": "en"})
