"""The layout designer in Chromium, English and Chinese, at 1366 and 390 px: an admin adds a
second section to a one-section layout for sales reps, drags one field into it and moves
another with the keyboard fallback (the section picker and the Move button), looks at the
preview at desktop and phone width, reviews the diff and applies; a rep then sees the two
sections on a lead."""

from __future__ import annotations

import re

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform.apply import apply_change
from tests.web.test_browser import PASSWORD, PHONE, browser, server, session_for  # noqa: F401

SCREEN_DESKTOP = {"width": 1366, "height": 800}
RUNS = (("en", SCREEN_DESKTOP, "desktop"), ("en", PHONE, "phone"),
        ("zh-CN", SCREEN_DESKTOP, "desktop"), ("zh-CN", PHONE, "phone"))
WORDS = {"en": {"apply": "Apply changes", "applied": "Applied: metadata version"},
         "zh-CN": {"apply": "应用变更", "applied": "已应用"}}
ONE_SECTION = {"kind": "layout", "name": "lead_reps", "object": "lead", "label": {"en": "Reps", "zh-CN": "销售"},
               "applies_to": {"roles": ["sales_rep"]},
               "sections": [{"label": {"en": "Lead", "zh-CN": "线索信息"}, "columns": 2,
                             "fields": ["company", "contact_name", "email", "phone", "source", "status"]}]}


def _page_fits(page, viewport) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]


def test_an_admin_designs_two_sections_and_a_rep_sees_them(session_for, server):  # noqa: F811
    lead = server["rosa_lead"]
    for locale, viewport, tag in RUNS:
        apply_change(server["runtime"], documents_bundle([ONE_SECTION]))  # every run starts from one section
        admin = session_for(viewport=viewport)
        admin.use_locale(locale)
        page = admin.page
        admin.go("/admin/layouts")
        assert page.locator("tr[data-layout=lead_reps]").count() == 1
        _page_fits(page, viewport)
        admin.shot(f"layouts-list-{locale}-{tag}.png")
        page.click("#new-lead")
        page.wait_for_url(re.compile(r"/admin/layouts/new/lead$"))
        page.check("#n-role-sales_rep")
        _page_fits(page, viewport)
        admin.shot(f"layouts-new-{locale}-{tag}.png")
        admin.go("/admin/layouts/lead_reps")
        page.wait_for_load_state("networkidle")
        assert page.locator(".ld-section").count() == 1
        page.click("#add-section", timeout=45_000)  # a plain form post: the page comes back with it
        page.wait_for_selector("#sec-1")
        title = f"Follow-up {tag}" if locale == "en" else f"跟进 {tag}"
        page.fill("#sec-1-label_en", f"Follow-up {tag}")
        page.fill("#sec-1-label_zh", f"跟进 {tag}")
        # drag and drop: the first section's last field (status) into the new section, both in view
        page.evaluate("document.getElementById('sec-1').scrollIntoView({block: 'end'})")
        source = page.locator("#item-status .ld-text").bounding_box()
        target = page.locator("#sec-1 .ld-drop").bounding_box()
        page.mouse.move(source["x"] + 5, source["y"] + source["height"] / 2)
        page.mouse.down()
        page.mouse.move(target["x"] + 20, target["y"] + target["height"] / 2, steps=8)
        page.mouse.up()
        assert page.locator("#sec-1-fields").input_value() == "status"
        assert "status" not in page.locator("#sec-0-fields").input_value().split(",")
        # the preview follows the drop (redrawn from the server, nothing saved)
        page.locator("#ld-preview section.card").nth(1).locator("[data-field=status]").wait_for(timeout=45_000)
        # the keyboard fallback: choose the section, then press Move (a form post)
        page.focus("#dest-phone")
        page.select_option("#dest-phone", "1")
        page.focus("#f-to-phone")
        page.keyboard.press("Enter")
        page.wait_for_load_state()
        page.locator("#sec-1 #item-phone").wait_for(timeout=45_000)
        assert page.locator("#sec-1-fields").input_value() == "status,phone"
        assert page.locator("#sec-1-label_en").input_value() == f"Follow-up {tag}"  # the drag was posted too
        assert page.evaluate("document.activeElement && document.activeElement.id") == "f-to-phone"
        page.locator("#sec-1").scroll_into_view_if_needed()
        _page_fits(page, viewport)
        admin.shot(f"layouts-designer-{locale}-{tag}.png")
        # the preview, at desktop and at phone width, on a sample lead
        preview = page.locator("#ld-preview")
        assert preview.locator("section.card h2", has_text=title).count() == 1
        assert preview.locator("[data-field=phone]").count() == 1
        page.click("#preview-phone")
        assert "is-phone" in preview.get_attribute("class")
        preview.scroll_into_view_if_needed()
        box = preview.bounding_box()
        assert box["width"] <= 391
        admin.shot(f"layouts-preview-phone-{locale}-{tag}.png")
        page.click("#preview-desktop")
        assert "is-desktop" in preview.get_attribute("class")
        preview.scroll_into_view_if_needed()
        admin.shot(f"layouts-preview-desktop-{locale}-{tag}.png")
        # review: the diff first, then apply
        page.click("#review", timeout=45_000)
        diff = page.locator("#meta-diff")
        assert "layout/lead_reps" in diff.inner_text() and f"Follow-up {tag}" in diff.inner_text()
        diff.scroll_into_view_if_needed()
        _page_fits(page, viewport)
        admin.shot(f"layouts-diff-{locale}-{tag}.png")
        page.get_by_role("button", name=WORDS[locale]["apply"]).click(timeout=45_000)
        page.wait_for_url(re.compile(r"/admin/layouts/lead_reps$"), timeout=45_000)
        assert WORDS[locale]["applied"] in page.inner_text(".notice")
        assert page.locator(".ld-section").count() == 2

        rep = session_for("rosa", PASSWORD, viewport=viewport)
        rep.use_locale(locale)
        rep.go(f"/records/lead/{lead['id']}")
        sections = rep.page.locator(".detail-main > section.card:not(.related):not(.files-card):not(.log-card)")
        assert sections.count() == 2
        second = sections.nth(1)
        assert second.locator("h2").inner_text() == title
        assert second.locator("[data-field=status]").count() == 1 and second.locator("[data-field=phone]").count() == 1
        assert sections.nth(0).locator("[data-field=status]").count() == 0
        second.scroll_into_view_if_needed()
        _page_fits(rep.page, viewport)
        rep.shot(f"layouts-rep-sees-{locale}-{tag}.png")
