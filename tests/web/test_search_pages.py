"""The header's search box and the /search page: results grouped by object for what the user
may read, suggestions while typing, the "/" shortcut, English and Chinese, desktop and phone."""

from __future__ import annotations

import re

from tests.web.conftest import login
from tests.web.test_browser import DESKTOP, PASSWORD, PHONE, browser, server, session_for  # noqa: F401

SCREEN_DESKTOP = {"width": 1366, "height": 800}


def test_search_page_groups_by_object_and_keeps_to_the_users_records(app, system, rep):
    system.create("lead", {"company": "Tyrell Systems", "source": "web", "owner": rep.id})
    system.create("lead", {"company": "Tyrell Robotics", "source": "web"})  # the admin's
    system.create("account", {"name": "Tyrell Corporation", "owner": rep.id})
    client = app.test_client()
    assert login(client, rep.username, rep.password).status_code == 303
    html = client.get("/search?q=tyrell").get_data(as_text=True)
    assert 'data-object="lead"' in html and 'data-object="account"' in html
    assert "Tyrell Systems" in html and "Tyrell Corporation" in html
    assert "Tyrell Robotics" not in html  # not the rep's
    partial = client.get("/search?q=tyrel&partial=1").get_data(as_text=True)
    assert "<html" not in partial and "Tyrell Systems" in partial
    assert "Nothing found" in client.get("/search?q=qqqqzz").get_data(as_text=True)
    assert 'class="topsearch"' in client.get("/").get_data(as_text=True)
    assert client.get("/search?q=" + "x" * 300).status_code == 200  # cut to the limit, not a 500


def test_search_needs_a_login(app):
    response = app.test_client().get("/search?q=acme")
    assert response.status_code in (302, 303) and "/login" in response.headers["Location"]


def test_header_search_in_the_browser(session_for, server):  # noqa: F811
    shots = []
    for locale, viewport, tag in (("en", SCREEN_DESKTOP, "desktop"), ("en", PHONE, "phone"),
                                  ("zh-CN", SCREEN_DESKTOP, "desktop"), ("zh-CN", PHONE, "phone")):
        s = session_for("rosa", PASSWORD, viewport=viewport)
        page = s.page
        if locale != "en":
            s.use_locale(locale)
        s.go("/records/lead")
        page.keyboard.press("/")
        assert page.evaluate("document.activeElement.id") == "topsearch-q"
        rosa_company = server["rosa_lead"]["company"]
        page.keyboard.type(rosa_company[:6].lower())
        page.wait_for_selector("#topsearch-list:not([hidden]) a")
        assert rosa_company in page.inner_text("#topsearch-list")
        assert server["sam_lead"]["company"] not in page.inner_text("#topsearch-list")
        s.shot(f"search-suggest-{locale}-{tag}.png")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"/search\?q="))
        heading = page.inner_text("h1")
        assert heading == ("Search" if locale == "en" else "搜索")
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        s.shot(f"search-page-{locale}-{tag}.png")
        page.locator(".search-results a", has_text=rosa_company).first.click()
        page.wait_for_url(re.compile(r"/records/lead/[0-9a-f]{32}$"))
        assert page.inner_text("h1") == rosa_company
        shots.append(tag)
    assert shots == ["desktop", "phone", "desktop", "phone"]
