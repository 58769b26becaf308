"""A dashboard composed in Chromium, English and Chinese, at 1366 and 390 px: a rep opens Edit
dashboard from the home page, adds two saved reports, widens one and moves it, sees them on the
home page in that order, follows a chart's category to the records it counts, then starts again
from the standard charts. Nothing scrolls sideways."""

from __future__ import annotations

from tests.web.test_browser import PASSWORD, PHONE, browser, server, session_for  # noqa: F401

WIDE = {"width": 1366, "height": 900}
RUNS = (("en", WIDE, "desktop"), ("en", PHONE, "phone"), ("zh-CN", WIDE, "desktop"), ("zh-CN", PHONE, "phone"))
FIRST = "leads_by_source_and_status"


def _fits(page, viewport) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]


def test_a_rep_composes_their_dashboard(session_for, server):  # noqa: F811
    for locale, viewport, tag in RUNS:
        zh = locale != "en"
        s = session_for("rosa", PASSWORD, viewport)
        s.use_locale(locale)
        page = s.page
        s.go("/")
        assert page.locator("[data-widget=leads_by_status]").count() == 1  # the standard charts
        page.click("#edit-dashboard")
        page.wait_for_url(s.base + "/dashboard/edit")
        assert ("编辑我的仪表板" if zh else "Edit my dashboard") in page.inner_text("h1")
        page.select_option("#dash-report", FIRST)
        page.click("#dash-add-button", timeout=45_000)
        page.wait_for_load_state()
        second = page.eval_on_selector("#dash-report", f"s => [...s.options].map(o => o.value).find(v => v !== '{FIRST}')")
        page.select_option("#dash-report", second)
        page.select_option("#dash-chart", "pie")
        page.click("#dash-add-button", timeout=45_000)
        page.wait_for_load_state()
        assert ("仪表板已保存" if zh else "Dashboard saved") in page.inner_text("main")
        page.click("#wider-0", timeout=45_000)
        page.wait_for_load_state()
        page.click("#down-0", timeout=45_000)
        page.wait_for_load_state()
        cards = page.locator(".dash-widget")
        assert cards.count() == 2 and cards.nth(1).get_attribute("data-report") == FIRST
        assert ("全宽" if zh else "full width") in cards.nth(1).inner_text()
        _fits(page, viewport)
        s.shot(f"dashboard-edit-{locale}-{tag}.png")
        page.click("#dash-done")
        page.wait_for_url(s.base + "/")
        widgets = page.locator("section.widget")
        assert [widgets.nth(i).get_attribute("data-widget") for i in range(widgets.count())] == [second, FIRST]
        assert "wide" in (widgets.nth(1).get_attribute("class") or "")
        _fits(page, viewport)
        s.shot(f"dashboard-composed-{locale}-{tag}.png")
        page.locator(f"[data-widget={FIRST}] svg a").first.click()
        page.wait_for_url(s.base + "/records/lead?*")
        # start again: the standard charts are back
        s.go("/dashboard/edit")
        page.click("#dash-reset", timeout=45_000)
        page.wait_for_load_state()
        s.go("/")
        assert page.locator("[data-widget=leads_by_status]").count() == 1
        assert not s.errors, s.errors
