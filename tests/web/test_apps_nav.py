"""Navigation by app: the sidebar shows the current app's objects in order, a switcher between
the apps a user can use, unlisted objects under "More", child objects nowhere, and the admin
link at the top. English and Chinese, desktop and phone."""

from __future__ import annotations

import re

from tests.conftest import make_user
from tests.web.conftest import login, post
from tests.web.test_browser import PASSWORD, PHONE, browser, server, session_for  # noqa: F401

SCREEN_DESKTOP = {"width": 1366, "height": 800}
CHILDREN = ("/records/order_line", "/records/quote_line", "/records/commission_tier", "/records/instalment",
            "/records/campaign_task", "/records/contract_amendment")


def _sidebar(html: str) -> str:
    return html[html.index('<nav class="sidebar"'):html.index("</nav>", html.index('<nav class="sidebar"'))]


def _records(html: str) -> list[str]:
    """The object links of the current app's section, in order."""
    side = _sidebar(html)
    start = side.index('<p class="nav-heading">')
    section = side[start:side.index("</ul>", start)]
    return re.findall(r'href="/records/([a-z_]+)"', section)


def _apps(html: str) -> list[tuple[str, bool]]:
    """(app name, is current) in switcher order."""
    found = re.findall(r'href="/apps/([a-z_]+)" class="app-pill([^"]*)"', _sidebar(html))
    return [(name, "active" in cls) for name, cls in found]


def _more(html: str) -> list[str]:
    side = _sidebar(html)
    if ">More<" not in side:
        return []
    start = side.index(">More<")
    return re.findall(r'href="/records/([a-z_]+)"', side[start:side.index("</ul>", start)])


def test_a_rep_opens_sales_with_its_objects_in_order_and_no_child_objects(app, runtime, client):
    rep = make_user(runtime, client, "rhea", ["sales_rep"])
    web = app.test_client()
    assert login(web, rep.username, rep.password).status_code == 303
    html = web.get("/").get_data(as_text=True)
    apps = _apps(html)
    assert ("sales", True) in apps and [name for name, active in apps if active] == ["sales"]
    records = _records(html)
    assert records[:4] == ["lead", "account", "contact", "opportunity"]
    assert records.index("quote") < records.index("contract") < records.index("order")
    side = _sidebar(html)
    for child in CHILDREN:
        assert f'href="{child}"' not in side
    assert "app-admin" not in side  # no admin link for a rep
    assert "Sales" in side


def test_switching_app_remembers_it_and_an_object_page_shows_its_app(app, admin_client):
    response = admin_client.get("/apps/finance")
    assert response.status_code == 302 and response.headers["Location"].endswith("/records/contract")
    html = admin_client.get("/").get_data(as_text=True)
    assert [name for name, active in _apps(html) if active] == ["finance"]
    assert _records(html)[:4] == ["contract", "order", "payment_plan", "payment"]
    # an object the finance app does not list opens the app that does
    html = admin_client.get("/records/campaign").get_data(as_text=True)
    assert [name for name, active in _apps(html) if active] == ["marketing"]
    # one both finance and sales list stays in the remembered app
    admin_client.get("/apps/finance")
    html = admin_client.get("/records/contract").get_data(as_text=True)
    assert [name for name, active in _apps(html) if active] == ["finance"]
    assert 'class="app-pill app-admin' in _sidebar(html)  # the admin link, above the object list
    assert admin_client.get("/apps/nosuch").status_code == 404


def test_marketing_opens_marketing_and_chinese_labels(app, runtime, client):
    user = make_user(runtime, client, "mia", ["marketing"])
    web = app.test_client()
    assert login(web, user.username, user.password).status_code == 303
    html = web.get("/").get_data(as_text=True)
    assert [name for name, active in _apps(html) if active] == ["marketing"]
    assert _records(html)[0] == "campaign"
    post(web, "/profile", {"_action": "locale", "locale": "zh-CN"})
    zh = web.get("/").get_data(as_text=True)
    assert "市场" in _sidebar(zh) and "应用" in zh


def test_an_object_in_no_app_is_under_more_and_apps_are_validated(app, client, admin_client, admin_headers):
    headers = admin_headers
    project = {"kind": "object", "name": "project", "label": {"en": "Project", "zh-CN": "项目"},
               "fields": [{"name": "title", "type": "text", "required": True}]}
    assert client.put("/api/v1/meta/object/project", json=project, headers=headers).status_code in (200, 201)
    html = admin_client.get("/").get_data(as_text=True)
    assert "project" in _more(html) and "project" not in _records(html)
    bad = {"kind": "app", "name": "ops", "label": "Ops", "objects": ["project", "nosuch"]}
    response = client.put("/api/v1/meta/app/ops", json=bad, headers=headers)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "metadata_invalid"
    assert "/objects/1" in response.get_data(as_text=True) and "nosuch" in response.get_data(as_text=True)
    good = {"kind": "app", "name": "ops", "label": {"en": "Operations", "zh-CN": "运营"}, "order": 5,
            "objects": ["project", "account"]}
    assert client.put("/api/v1/meta/app/ops", json=good, headers=headers).status_code in (200, 201)
    html = admin_client.get("/apps/ops", follow_redirects=True).get_data(as_text=True)
    assert _records(html) == ["project", "account"]
    assert "project" not in _more(html)  # listed by an app now
    assert _apps(html)[0] == ("ops", True)  # order 5 comes first


def test_the_app_switcher_in_the_browser(session_for, server):  # noqa: F811
    shots = []
    for locale, viewport, tag in (("en", SCREEN_DESKTOP, "desktop"), ("en", PHONE, "phone"),
                                  ("zh-CN", SCREEN_DESKTOP, "desktop"), ("zh-CN", PHONE, "phone")):
        s = session_for("rosa", PASSWORD, viewport=viewport)
        page = s.page
        if locale != "en":
            s.use_locale(locale)
        s.go("/records/lead")
        if tag == "phone":
            page.click(".hamburger")
        switch = page.locator(".app-switch")
        assert switch.is_visible()
        sales, finance = ("Sales", "Finance") if locale == "en" else ("销售", "财务")
        assert switch.locator(".app-pill.active").inner_text() == sales
        box = switch.bounding_box()
        assert box["y"] + box["height"] <= viewport["height"]  # visible without scrolling
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        s.shot(f"apps-sales-{locale}-{tag}.png")
        switch.get_by_role("link", name=finance, exact=True).click()
        page.wait_for_url(re.compile(r"/records/contract"))
        if tag == "phone":
            page.click(".hamburger")
        assert page.locator(".app-switch .app-pill.active").inner_text() == finance
        assert page.locator(".sidebar").get_by_role("link", name="Order lines" if locale == "en" else "订单明细",
                                                    exact=True).count() == 0
        s.shot(f"apps-finance-{locale}-{tag}.png")
        s.go("/apps/sales")
        shots.append(tag)
    assert shots == ["desktop", "phone", "desktop", "phone"]
