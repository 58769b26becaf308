"""Admin → Roles in Chromium, English and Chinese, at 1366 and 390 px: an admin creates an object
choosing access for sales reps and a rep then uses it; the admin hides a field for reps in the
field-access grid (diff first, then apply) and the rep no longer sees it. The grid stays usable
on a phone: it scrolls sideways inside its card with the object column kept in view."""

from __future__ import annotations

import re

from tests.web.test_browser import PASSWORD, PHONE, browser, server, session_for  # noqa: F401

SCREEN_DESKTOP = {"width": 1366, "height": 800}
RUNS = (("en", SCREEN_DESKTOP, "desktop"), ("en", PHONE, "phone"),
        ("zh-CN", SCREEN_DESKTOP, "desktop"), ("zh-CN", PHONE, "phone"))
WORDS = {"en": {"create": "Create object", "full": "Full access (administrator)", "apply": "Apply changes",
                "applied": "Applied: metadata version", "admin": "Administrator: full access"},
         "zh-CN": {"create": "创建对象", "full": "完全访问（管理员）", "apply": "应用变更", "applied": "已应用",
                   "admin": "系统管理员：始终拥有完全访问权限"}}


def _page_fits(page, viewport) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]


def test_an_admin_creates_an_object_for_reps_and_a_rep_uses_it(session_for, server):  # noqa: F811
    for locale, viewport, tag in RUNS:
        short = locale.split("-")[0]
        admin = session_for(viewport=viewport)
        admin.use_locale(locale)
        page = admin.page
        admin.go("/admin")
        label = f"Site visit {short} {tag}"
        page.fill("#o-label_en", label)
        page.fill("#o-label_zh", f"现场拜访 {short} {tag}")
        assert page.locator("#g-sales_rep").input_value() == "own"  # the default for a rep
        assert page.locator("#g-sales_manager").input_value() == "subtree"
        page.select_option("#g-finance", "all")
        assert WORDS[locale]["admin"] in page.inner_text("#admins-always")
        page.locator("#who-can-use-it").scroll_into_view_if_needed()
        _page_fits(page, viewport)
        admin.shot(f"roles-new-object-{locale}-{tag}.png")
        page.click("#review-object")  # the diff first: the object and the roles it changes
        diff = page.locator("#meta-diff").inner_text()
        assert "role/sales_rep" in diff and "role/finance" in diff and "role/marketing" not in diff
        assert page.locator("#g-finance").input_value() == "all"  # the choices are kept
        page.locator("#meta-diff").scroll_into_view_if_needed()
        admin.shot(f"roles-new-object-diff-{locale}-{tag}.png")
        _page_fits(page, viewport)
        page.get_by_role("button", name=WORDS[locale]["create"]).click()
        name = f"site_visit_{short}_{tag}"
        page.wait_for_url(re.compile(rf"/admin/objects/{name}$"))
        admin.go("/admin/roles/sales_rep")
        row = page.locator(f"tr[data-object={name}]")
        assert row.locator(f"#s-{name}-read").input_value() == "own"
        assert row.locator(f"#s-{name}-create").input_value() == "own"
        _page_fits(page, viewport)
        admin.shot(f"roles-grid-{locale}-{tag}.png")
        if tag == "phone":
            # the grid scrolls inside its card; the object column stays in view
            scroller = page.locator(".grid-scroll").first
            scroller.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
            assert scroller.evaluate("el => el.scrollLeft") > 0
            first = page.locator("#perm-grid tbody th.perm-object").first.bounding_box()
            box = scroller.bounding_box()
            assert abs(first["x"] - box["x"]) < 2
            admin.shot(f"roles-grid-scrolled-{locale}-{tag}.png")
        admin.go("/admin/roles/sales_manager")
        assert page.locator(f"#s-{name}-read").input_value() == "subtree"
        if tag == "desktop":  # at 1366 px every action column is in view without scrolling
            assert page.locator(".grid-scroll").first.evaluate("el => el.scrollWidth <= el.clientWidth")
        admin.shot(f"roles-grid-manager-{locale}-{tag}.png")
        admin.go("/admin/roles/admin")
        assert WORDS[locale]["full"] in page.inner_text("#admin-full-access")
        admin.shot(f"roles-admin-{locale}-{tag}.png")

        rep = session_for("rosa", PASSWORD, viewport=viewport)
        rep.use_locale(locale)
        rep.go(f"/records/{name}")
        rep.page.click("#new-record")
        rep.page.fill("#f-name", f"Visit to Globex {tag}")
        rep.page.click("#save")
        rep.page.wait_for_url(re.compile(rf"/records/{name}/[0-9a-f]{{32}}$"))
        assert rep.page.inner_text("h1") == f"Visit to Globex {tag}"
        rep.go(f"/records/{name}")
        assert f"Visit to Globex {tag}" in rep.page.inner_text("main")
        rep.shot(f"roles-rep-uses-object-{locale}-{tag}.png")


def test_an_admin_hides_a_field_for_reps_in_the_grid(session_for, server):  # noqa: F811
    lead = server["rosa_lead"]
    fields = {"desktop-en": "budget", "phone-en": "contact_name", "desktop-zh-CN": "product_line",
              "phone-zh-CN": "email"}
    for locale, viewport, tag in RUNS:
        field = fields[f"{tag}-{locale}"]
        rep = session_for("rosa", PASSWORD, viewport=viewport)
        rep.use_locale(locale)
        rep.go(f"/records/lead/{lead['id']}")
        assert rep.page.locator(f"[data-field={field}]").count() == 1

        admin = session_for(viewport=viewport)
        admin.use_locale(locale)
        page = admin.page
        admin.go("/admin/roles/sales_rep")
        page.wait_for_load_state("networkidle")  # under load a click could race the page's own settling
        page.click("#fields-lead", timeout=45_000)
        page.wait_for_url(re.compile(r"/admin/roles/sales_rep/fields/lead$"))
        page.check(f"#fa-{field}-hidden")
        _page_fits(page, viewport)
        page.locator(f"tr[data-field={field}]").scroll_into_view_if_needed()
        admin.shot(f"roles-fields-{locale}-{tag}.png")
        # a dry-run apply and its diff: the server runs in this test process's thread, which earlier
        # tests in a full run leave busy, so allow it more than the default 10 s
        page.click("#review", timeout=45_000)
        diff = page.locator("#meta-diff")
        assert "role/sales_rep" in diff.inner_text() and f'"{field}": "hidden"' in diff.inner_text()
        assert page.locator(f"#fa-{field}-hidden").is_checked()  # the choice is kept
        _page_fits(page, viewport)
        admin.shot(f"roles-fields-diff-{locale}-{tag}.png")
        page.get_by_role("button", name=WORDS[locale]["apply"]).click(timeout=45_000)
        page.wait_for_url(re.compile(r"/admin/roles/sales_rep/fields/lead$"), timeout=45_000)
        assert WORDS[locale]["applied"] in page.inner_text(".notice")
        assert page.locator(f"#fa-{field}-hidden").is_checked()

        rep.go(f"/records/lead/{lead['id']}")
        assert rep.page.locator(f"[data-field={field}]").count() == 0
        assert rep.page.inner_text("h1") == lead["company"]
        rep.go(f"/records/lead/{lead['id']}/edit")
        assert rep.page.locator(f"[name={field}]").count() == 0
        rep.shot(f"roles-rep-field-hidden-{locale}-{tag}.png")
