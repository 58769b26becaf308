"""The Reports page in Chromium: open a report, change a filter with the condition rows, build and
save a report; English and Chinese, at 1366 and 390 px."""

from __future__ import annotations

import re

from tests.web.test_browser import PASSWORD, PHONE, browser, server, session_for  # noqa: F401

WIDE = {"width": 1366, "height": 860}
RUNS = (("en", WIDE, "desktop"), ("en", PHONE, "phone"), ("zh-CN", WIDE, "desktop"), ("zh-CN", PHONE, "phone"))


def _fits(page, viewport) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]


def test_open_a_report_and_change_a_filter(session_for, server):  # noqa: F811
    for locale, viewport, tag in RUNS:
        s = session_for("rosa", PASSWORD, viewport=viewport)
        page = s.page
        if locale != "en":
            s.use_locale(locale)
        s.go("/reports")
        assert page.inner_text("h1") == ("Reports" if locale == "en" else "报表")
        assert page.locator("[data-folder]").count() >= 2
        _fits(page, viewport)
        s.shot(f"reports-list-{locale}-{tag}.png")
        page.click("[data-report=leads_by_source_and_status] a")
        page.wait_for_url(re.compile(r"/reports/leads_by_source_and_status$"))
        assert page.locator(".report-chart svg").is_visible()
        total_before = page.inner_text(".report-total td:last-child")
        page.select_option("#c-0-field", "source")
        assert page.locator("select#c-0-value").count() == 1  # the value input follows the field: a select
        page.select_option("#c-0-value", "web")
        page.click("#apply-filters")
        page.wait_for_url(re.compile(r"c\.0\.field=source"))
        assert page.locator("#c-0-value").input_value() == "web"
        assert int(page.inner_text(".report-total td:last-child")) <= int(total_before)
        rows = page.locator("#report-table tbody tr")
        assert rows.count() >= 1
        _fits(page, viewport)
        s.shot(f"reports-run-{locale}-{tag}.png")
        page.click("[data-cond-add]")
        assert page.locator("[data-condrow]").count() == 3
        page.locator("#report-table tbody tr a").first.click()  # a group goes to its records
        page.wait_for_url(re.compile(r"/records/lead\?f\.source=web"))


def test_build_and_save_a_report(session_for, server):  # noqa: F811
    for i, (locale, viewport, tag) in enumerate(RUNS):
        s = session_for(viewport=viewport)
        page = s.page
        if locale != "en":
            s.use_locale(locale)
        s.go("/reports")
        page.click("#new-report")
        page.select_option("#b-object", "lead")
        with page.expect_navigation():
            page.click("#b-choose")
        page.fill("#b-label-en", f"Leads by status {i}")
        page.fill("#b-label-zh", f"线索状态 {i}")
        page.fill("#b-folder", "Browser")
        page.select_option("#b-group1", "status")
        page.select_option("#b-m1-function", "sum")
        page.select_option("#b-m1-field", "budget")
        page.select_option("#b-chart", ["pie", "line", "funnel", "bar"][i])
        page.select_option("#c-0-field", "product_line")
        page.select_option("#c-0-op", "ne")
        page.select_option("#c-0-value", "hardware")
        page.fill("#b-sort", "nope")
        with page.expect_navigation():
            page.click("#b-save")
        assert page.locator("#err-sort").is_visible()  # the error beside its input; nothing saved
        _fits(page, viewport)
        page.locator("#err-sort").scroll_into_view_if_needed()
        s.shot(f"reports-builder-error-{locale}-{tag}.png")
        page.fill("#b-sort", "-count")
        with page.expect_navigation():
            page.click("#b-save")
        assert page.url.endswith(f"/reports/leads_by_status_{i}"), (page.url, page.locator(".field-error, .notice-error").all_inner_texts())
        assert page.inner_text("#report-title") == (f"Leads by status {i}" if locale == "en" else f"线索状态 {i}")
        assert page.locator(".report-chart svg").count() == 1
        _fits(page, viewport)
        s.shot(f"reports-built-{locale}-{tag}.png")
