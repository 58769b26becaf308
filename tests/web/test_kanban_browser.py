"""Saved views and the kanban board in a real headless Chromium (the fixtures of
test_browser.py), in English and Chinese at desktop (1366 px) and phone (390 px) width: switch
between views, move a card (drag and drop on a desktop, the card's select on a phone), and see
a refused move (a lost deal without a loss reason) explained on the card, which stays put."""

from __future__ import annotations

import pytest

from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.web import test_browser
from tests.web.test_browser import PHONE

browser = test_browser.browser  # fixture
server = test_browser.server  # fixture
session_for = test_browser.session_for  # fixture

WIDE = {"width": 1366, "height": 800}
TEXTS = {"en": ("Pipeline", "My open opportunities", "loss reason"),
         "zh-CN": ("销售管道", "我的未结商机", "")}


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["desktop", "phone"])
def test_switch_views_move_a_card_and_see_a_refused_move(session_for, server, locale, viewport):
    from tests.test_ltc_support import load_plugin

    load_plugin(server["runtime"])  # the lead-to-cash rules (a lost deal needs a loss reason)
    system = RecordService(server["runtime"], Principal.system(), source="test")
    admin_id = system.list("user", filter={"username": "admin"})[0][0]["id"]
    system.update("user", admin_id, {"locale": locale})
    pipeline, mine, _ = TEXTS[locale]
    try:
        account = system.create("account", {"name": f"Board account {locale} {viewport['width']}"})["id"]
        deal = system.create("opportunity", {"name": f"Board deal {locale} {viewport['width']}", "account": account,
                                             "stage": "qualification", "amount": "125000.00", "owner": admin_id,
                                             "close_date": "2026-01-15"})
        s = session_for(viewport=viewport)
        page = s.page
        s.go("/records/opportunity?view=my_open_opportunities")
        assert page.locator(".view-tab.active", has_text=mine).is_visible()
        assert page.locator("table.records").is_visible()
        s.shot(f"saved-view-{locale}-{viewport['width']}.png")
        page.locator(".view-tab", has_text=pipeline).click()
        page.wait_for_selector("#kanban")
        card = f"#card-{deal['id']}"
        assert page.locator(f"#col-qualification {card}").count() == 1
        s.shot(f"kanban-{locale}-{viewport['width']}.png")
        if viewport is PHONE:
            page.select_option(f"{card} select[name=value]", "research")
            page.click(f"{card} .kanban-move button")
        else:
            page.drag_and_drop(card, "#col-research")
        page.wait_for_selector(f"#col-research {card}")
        assert system.get("opportunity", deal["id"])["stage"] == "research"
        before = system.get("opportunity", deal["id"])["version"]
        # The keyboard / no-drag path (the board scrolls sideways, the last column out of reach).
        page.select_option(f"{card} select[name=value]", "lost")
        page.click(f"{card} .kanban-move button")
        page.wait_for_selector(f"{card} .kanban-error:not([hidden])")
        assert page.locator(f"#col-research {card}").count() == 1
        error = page.inner_text(f"{card} .kanban-error")
        assert error and "win_loss_reason" not in error and "[" not in error
        page.locator(card).scroll_into_view_if_needed()
        s.shot(f"kanban-refused-{locale}-{viewport['width']}.png")
        after = system.get("opportunity", deal["id"])
        assert after["stage"] == "research" and after["version"] == before
        # The board is remembered: the plain list opens it again.
        s.go("/records/opportunity")
        page.wait_for_selector("#kanban")
    finally:
        system.update("user", admin_id, {"locale": "en"})
