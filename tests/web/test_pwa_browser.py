"""The installable app in Chromium, English and Chinese, at 1366 and 390 px: the service worker
installs, a record page the rep opened is shown when the connection drops, marked "offline —
shown as of <time>", and a page never opened shows the offline page. Signing out forgets the
saved record pages."""

from __future__ import annotations

from tests.web.test_browser import PASSWORD, PHONE, browser, server, session_for  # noqa: F401

SCREEN_DESKTOP = {"width": 1366, "height": 800}
RUNS = (("en", SCREEN_DESKTOP, "desktop"), ("en", PHONE, "phone"),
        ("zh-CN", SCREEN_DESKTOP, "desktop"), ("zh-CN", PHONE, "phone"))
WORDS = {"en": "Offline — shown as of", "zh-CN": "离线 — 显示的是"}


def test_last_viewed_records_are_served_offline_and_marked_stale(session_for, server):  # noqa: F811
    lead = server["rosa_lead"]
    for locale, viewport, tag in RUNS:
        rosa = session_for("rosa", PASSWORD, viewport=viewport)
        rosa.use_locale(locale)
        page = rosa.page
        rosa.go(f"/records/lead/{lead['id']}")
        page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        if not page.evaluate("!!navigator.serviceWorker.controller"):
            page.reload()
            page.wait_for_function("!!navigator.serviceWorker.controller")
        rosa.go(f"/records/lead/{lead['id']}")  # through the worker: saved
        page.wait_for_function(
            "caches.open('metacrm-records-v1').then(c => c.keys()).then(k => k.length > 0)", timeout=20_000)
        title = page.locator("h1.record-title").inner_text()
        offline_from = len(rosa.errors)
        rosa.context.set_offline(True)
        try:
            rosa.go(f"/records/lead/{lead['id']}")
            banner = page.locator("#offline-banner")
            assert WORDS[locale] in banner.inner_text()
            assert page.locator("h1.record-title").inner_text() == title
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
            rosa.shot(f"offline-record-{locale}-{tag}.png")
            rosa.go("/records/lead/" + "0" * 32)
            assert page.locator("#offline-card").count() == 1
            rosa.shot(f"offline-page-{locale}-{tag}.png")
        finally:
            rosa.context.set_offline(False)
            # while offline the browser logs the requests it could not make (net::ERR_FAILED): expected
            rosa.errors[offline_from:] = [e for e in rosa.errors[offline_from:] if "net::ERR_" not in e]
        rosa.go(f"/records/lead/{lead['id']}")
        assert page.locator("#offline-banner").count() == 0
        page.click("form[action$='/logout'] button")
        page.wait_for_url("**/login**")
        page.wait_for_function(
            "caches.open('metacrm-records-v1').then(c => c.keys()).then(k => k.length === 0)", timeout=20_000)
