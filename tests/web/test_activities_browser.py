"""Activities in Chromium, English and Chinese, at 1366 and 390 px: a rep logs a call on a lead
from the button at the top of its page with a follow-up date, finds the follow-up in My tasks
and on the calendar (month and week)."""

from __future__ import annotations

from datetime import timedelta

from metacrm.platform.clock import utcnow
from tests.web.test_browser import PASSWORD, PHONE, browser, server, session_for  # noqa: F401

SCREEN_DESKTOP = {"width": 1366, "height": 800}
RUNS = (("en", SCREEN_DESKTOP, "desktop"), ("en", PHONE, "phone"),
        ("zh-CN", SCREEN_DESKTOP, "desktop"), ("zh-CN", PHONE, "phone"))
WORDS = {"en": {"logged": "Logged:", "follow": "Follow up: ", "upcoming": "Upcoming"},
         "zh-CN": {"logged": "已记录", "follow": "跟进：", "upcoming": "即将到来"}}


def _fits(page, viewport) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]


def test_a_rep_logs_a_call_and_finds_the_follow_up(session_for, server):  # noqa: F811
    lead = server["rosa_lead"]
    follow = (utcnow().date() + timedelta(days=2)).isoformat()
    for locale, viewport, tag in RUNS:
        rosa = session_for("rosa", PASSWORD, viewport=viewport)
        rosa.use_locale(locale)
        page = rosa.page
        rosa.go(f"/records/lead/{lead['id']}")
        page.click("#log-call")
        page.wait_for_load_state()
        assert page.locator("#log-activity details").get_attribute("open") is not None
        assert page.locator("#log-type-call").is_checked()
        subject = f"Call {locale} {tag}"
        page.fill("#log-subject", subject)
        page.fill("#log-notes", "Asked for a quote / 要报价")
        page.fill("#log-follow-up", follow)
        page.locator("#log-activity").scroll_into_view_if_needed()
        _fits(page, viewport)
        rosa.shot(f"log-call-{locale}-{tag}.png")
        page.click("#log-submit")
        page.wait_for_load_state()
        assert WORDS[locale]["logged"] in page.locator(".notice").first.inner_text()
        assert subject in page.locator("[data-related=activity]").inner_text()
        rosa.go("/tasks")
        upcoming = page.locator("#tasks-upcoming")
        assert WORDS[locale]["upcoming"] in upcoming.inner_text()
        assert WORDS[locale]["follow"] + subject in upcoming.inner_text()
        _fits(page, viewport)
        rosa.shot(f"tasks-{locale}-{tag}.png")
        rosa.go(f"/calendar?view=month&date={follow}")
        assert subject in page.locator(f"[data-day='{follow}']").inner_text()
        _fits(page, viewport)
        rosa.shot(f"calendar-month-{locale}-{tag}.png")
        page.click("#cal-switch")
        page.wait_for_load_state()
        assert page.locator("#calendar").get_attribute("data-view") == "week"
        assert subject in page.locator(f"[data-day='{follow}']").inner_text()
        _fits(page, viewport)
        rosa.shot(f"calendar-week-{locale}-{tag}.png")
