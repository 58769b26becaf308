"""Nested condition groups in Chromium: in the report builder an admin builds "status is new AND
(source is web OR source is referral)" with "Add group", saves it and gets that filter; English and
Chinese, at 1366 and 390 px."""

from __future__ import annotations

from tests.web.test_browser import PHONE, browser, server, session_for  # noqa: F401

WIDE = {"width": 1366, "height": 860}
RUNS = (("en", WIDE, "desktop"), ("en", PHONE, "phone"), ("zh-CN", WIDE, "desktop"), ("zh-CN", PHONE, "phone"))
WORDS = {"en": {"add_group": "+ Add group", "add": "+ Add condition"}, "zh-CN": {"add_group": "+ 添加条件组", "add": None}}


def _fits(page, viewport) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]


def test_build_a_report_with_an_any_group(session_for, server):  # noqa: F811
    for i, (locale, viewport, tag) in enumerate(RUNS):
        s = session_for(viewport=viewport)
        page = s.page
        if locale != "en":
            s.use_locale(locale)
        s.go("/reports/new?object=lead")
        box = page.locator("[data-condrows]")
        assert page.locator("[data-cond-blank-group]").count() == 0  # with JS the blank group is a button
        page.select_option("#c-0-field", "status")
        page.select_option("#c-0-op", "eq")
        page.select_option("#c-0-value", "new")
        box.locator(":scope > [data-cond-add-group]").click()
        group = box.locator("[data-condgroup]")
        assert group.count() == 1
        page.select_option("#c-1-mode", "any")
        page.select_option("#c-2-field", "source")
        page.select_option("#c-2-value", "web")
        group.locator("[data-cond-add]").click()
        page.select_option("#c-3-field", "source")
        page.select_option("#c-3-value", "referral")
        assert page.locator("#c-3-field").evaluate("el => el.form.elements['c.3.group'].value") == "1"
        page.fill("#b-label-en", f"New web or referral {i}")
        page.fill("#b-label-zh", f"新的网络或推荐 {i}")
        page.fill("#b-folder", "Browser")
        page.select_option("#b-group1", "source")
        _fits(page, viewport)
        box.scroll_into_view_if_needed()
        s.shot(f"condition-groups-builder-{locale}-{tag}.png")
        with page.expect_navigation(timeout=45_000):
            page.click("#b-save")
        name = f"new_web_or_referral_{i}"
        assert page.url.endswith(f"/reports/{name}"), page.locator(".field-error, .notice-error").all_inner_texts()
        doc = server["runtime"].compiled().registry.get("report", name)
        assert doc["filter"] == {"all": [{"status": "new"}, {"any": [{"source": "web"}, {"source": "referral"}]}]}
        # editing shows the group again, with its rows in it
        s.go(f"/reports/new?name={name}")
        assert page.locator("#c-1-mode").input_value() == "any"
        assert page.locator("[data-condgroup] #c-3-value").input_value() == "referral"
        assert page.locator("[data-condgroup] [data-cond-add-group]").first.is_visible()
        _fits(page, viewport)
        page.locator("[data-condrows]").scroll_into_view_if_needed()
        s.shot(f"condition-groups-edit-{locale}-{tag}.png")
        s.close()
