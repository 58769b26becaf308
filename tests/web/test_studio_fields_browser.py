"""Admin studio → field editor in Chromium, English and Chinese, at 1366 and 390 px: an admin
creates a formula field on leads, the syntax check puts the error beside the expression, the
admin fixes it, previews the value on a sample record, reviews the diff and applies; a rep then
sees the computed value on her lead."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.web.test_browser import PASSWORD, PHONE, browser, server, session_for  # noqa: F401

SCREEN_DESKTOP = {"width": 1366, "height": 800}
RUNS = (("en", SCREEN_DESKTOP, "desktop"), ("en", PHONE, "phone"),
        ("zh-CN", SCREEN_DESKTOP, "desktop"), ("zh-CN", PHONE, "phone"))
WORDS = {"en": {"syntax": "Syntax error at line 1, column 9", "valid": "The formula is valid.",
                "value": "Value on this record: 2,468.00", "applied": "Applied: metadata version"},
         "zh-CN": {"syntax": "语法错误（第 1 行第 9 列）", "valid": "公式有效。", "value": "此记录上的值：2,468.00",
                   "applied": "已应用"}}


def _page_fits(page, viewport) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]


def test_an_admin_builds_a_formula_with_a_syntax_check_and_a_preview(session_for, server):  # noqa: F811
    lead = server["rosa_lead"]
    rep = session_for("rosa", PASSWORD, viewport=SCREEN_DESKTOP)
    rep.go(f"/records/lead/{lead['id']}/edit")
    rep.page.fill("#f-budget", "1234")
    rep.page.click("#save", timeout=45_000)
    rep.page.wait_for_url(re.compile(rf"/records/lead/{lead['id']}$"), timeout=45_000)
    for locale, viewport, tag in RUNS:
        short = locale.split("-")[0]
        admin = session_for(viewport=viewport)
        admin.use_locale(locale)
        page = admin.page
        admin.go("/admin/objects/lead")
        _page_fits(page, viewport)
        page.locator("#new-field-types").scroll_into_view_if_needed()
        admin.shot(f"studio-object-{locale}-{tag}.png")
        page.click("#new-formula", timeout=45_000)
        page.wait_for_url(re.compile(r"/admin/objects/lead/new-field/formula$"))
        name = f"budget_x2_{short}_{tag}"
        page.fill("#sf-label_en", f"Budget x2 {short} {tag}")
        page.fill("#sf-label_zh", f"预算两倍 {short} {tag}")
        page.fill("#sf-name", name)
        page.select_option("#sf-result_type", "currency")
        page.fill("#sf-expression", "budget *")
        error = page.locator("#expression-error")
        error.wait_for(state="visible", timeout=45_000)
        expect(error).to_contain_text(WORDS[locale]["syntax"], timeout=45_000)
        assert WORDS[locale]["syntax"] in error.inner_text()
        assert page.locator("#sf-expression").get_attribute("aria-invalid") == "true"
        page.locator("#expression-field").scroll_into_view_if_needed()
        _page_fits(page, viewport)
        admin.shot(f"studio-formula-error-{locale}-{tag}.png")
        page.fill("#sf-expression", "budget * 2")
        error.wait_for(state="hidden", timeout=45_000)
        expect(page.locator("#expression-status")).to_contain_text(WORDS[locale]["valid"], timeout=45_000)
        assert WORDS[locale]["valid"] in page.inner_text("#expression-status")
        page.select_option("#sf-sample", lead["id"])
        expect(page.locator("#preview-value")).to_contain_text("2,468", timeout=45_000)
        assert WORDS[locale]["value"] in page.inner_text("#preview-value")
        page.locator("#formula-preview").scroll_into_view_if_needed()
        _page_fits(page, viewport)
        admin.shot(f"studio-formula-preview-{locale}-{tag}.png")
        page.click("#review", timeout=45_000)
        diff = page.locator("#meta-diff")
        assert f"rec_lead.{name}" in diff.inner_text()
        assert page.locator("#sf-expression").input_value() == "budget * 2"  # the form is kept
        diff.scroll_into_view_if_needed()
        _page_fits(page, viewport)
        admin.shot(f"studio-formula-diff-{locale}-{tag}.png")
        page.click("#apply", timeout=45_000)
        page.wait_for_url(re.compile(rf"/admin/objects/lead/fields/{name}$"), timeout=45_000)
        assert WORDS[locale]["applied"] in page.inner_text(".notice")
        admin.shot(f"studio-formula-applied-{locale}-{tag}.png")

        rep.go(f"/records/lead/{lead['id']}/edit")  # a formula is computed when the record is saved
        rep.page.click("#save", timeout=45_000)
        rep.page.wait_for_url(re.compile(rf"/records/lead/{lead['id']}$"), timeout=45_000)
        assert "2,468.00" in rep.page.inner_text(f"[data-field={name}]")
    rep.use_locale("zh-CN")
    rep.go(f"/records/lead/{lead['id']}")
    rep.page.locator("[data-field=budget_x2_zh_phone]").scroll_into_view_if_needed()
    rep.shot("studio-formula-rep-sees-value-zh-CN-desktop.png")


def test_the_picklist_and_record_type_editors_fit_a_phone(session_for, server):  # noqa: F811
    for locale, viewport, tag in RUNS:
        admin = session_for(viewport=viewport)
        admin.use_locale(locale)
        page = admin.page
        admin.go("/admin/objects/opportunity/fields/stage")
        page.click("#opt-1-up", timeout=45_000)  # the order changes in the form only
        page.wait_for_load_state()
        page.locator("#options").scroll_into_view_if_needed()
        _page_fits(page, viewport)
        admin.shot(f"studio-picklist-{locale}-{tag}.png")
        admin.go("/admin/objects/account/new-field/rollup")
        page.locator("#type-editor").scroll_into_view_if_needed()
        _page_fits(page, viewport)
        admin.shot(f"studio-rollup-{locale}-{tag}.png")
        admin.go("/admin/objects/product/new-field/autonumber")
        page.fill("#sf-format", "P-{YYYY}-{0000}")
        expect(page.locator("#next-number")).to_contain_text("-0001", timeout=45_000)
        page.locator("#type-editor").scroll_into_view_if_needed()
        admin.shot(f"studio-autonumber-{locale}-{tag}.png")
        admin.go("/admin/objects/product/record-types")
        _page_fits(page, viewport)
        admin.shot(f"studio-record-types-{locale}-{tag}.png")
