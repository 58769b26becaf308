"""The ERP link's admin page (/admin/erp): off until URL and secret are set; the secret is
write-only (shown as "set, ends in …1234"), replaced by typing a new one; bad input is refused
with the field named and nothing stored. Flask client for the rules, headless Chromium for
English and Chinese at desktop (1366 px) and phone (390 px) width."""

from __future__ import annotations

import threading

import pytest

from metacrm.platform.config import Config
from metacrm.platform.db import make_engine
from metacrm.platform.setup import build_runtime, initialise
from metacrm.plugins.lead_to_cash import erp
from tests.conftest import ADMIN_PASSWORD
from tests.test_ltc_support import load_plugin
from tests.web.conftest import post
from tests.web.test_browser import PHONE, Session, browser  # noqa: F401

WIDE = {"width": 1366, "height": 900}
SECRET = "page-secret-abcd-7788"


def stored(runtime) -> dict:
    with runtime.reading() as conn:
        return erp.config(conn)


def test_admin_switches_the_link_on_and_the_secret_is_never_shown(admin_client, runtime):
    load_plugin(runtime)
    page = admin_client.get("/admin/erp")
    assert page.status_code == 200 and 'href="/admin/erp"' in page.text
    assert 'id="erp-state"' in page.text and "erp-off" in page.text
    bad = post(admin_client, "/admin/erp", {"url": "javascript:alert(1)", "secret": "short"})
    assert bad.status_code == 400 and "http or https" in bad.text and "16 to 200" in bad.text
    assert stored(runtime)["enabled"] is False and stored(runtime)["url"] == ""
    done = post(admin_client, "/admin/erp", {"url": "https://erp.example.com/hook", "secret": SECRET})
    assert done.status_code == 303
    page = admin_client.get("/admin/erp").text
    assert "erp-on" in page and "…7788" in page and SECRET not in page
    assert stored(runtime) == {"url": "https://erp.example.com/hook", "secret_set": True, "secret_last4": "7788",
                               "enabled": True}
    # an empty secret keeps the old one; a new one replaces it
    post(admin_client, "/admin/erp", {"url": "https://erp.example.com/hook2", "secret": ""})
    assert stored(runtime)["secret_last4"] == "7788" and stored(runtime)["url"].endswith("hook2")
    post(admin_client, "/admin/erp", {"url": "https://erp.example.com/hook2", "secret": "another-secret-0042"})
    assert stored(runtime)["secret_last4"] == "0042"
    # an empty URL switches it off
    post(admin_client, "/admin/erp", {"url": "", "secret": ""})
    assert stored(runtime)["enabled"] is False


def test_a_rep_cannot_see_or_change_the_erp_link(rep_client, admin_client, runtime):
    assert rep_client.get("/admin/erp").status_code == 403
    assert post(rep_client, "/admin/erp", {"url": "https://evil.example.com", "secret": SECRET}).status_code == 403
    assert admin_client.post("/admin/erp", data={"url": "https://evil.example.com"}).status_code == 400  # no CSRF
    assert stored(runtime)["url"] == ""
    assert 'href="/admin/erp"' not in rep_client.get("/").text


@pytest.fixture(scope="module")
def erp_server(tmp_path_factory, browser):  # noqa: F811
    from werkzeug.serving import make_server

    from metacrm.platform.app import create_app

    folder = tmp_path_factory.mktemp("erp")
    engine = make_engine(f"sqlite:///{folder / 'erp.db'}")
    config = Config(database_url=str(engine.url), secret_key="erp-browser-secret", testing=True)
    runtime = build_runtime(config, engine)
    initialise(runtime, ADMIN_PASSWORD)
    load_plugin(runtime)
    app = create_app(config, runtime)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{http.server_port}", "runtime": runtime}
    http.shutdown()
    thread.join(5)
    engine.dispose()


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["desktop", "phone"])
def test_the_erp_page_in_the_browser(browser, erp_server, locale, viewport):  # noqa: F811
    runtime = erp_server["runtime"]
    erp.save_config(runtime, "", None)
    with runtime.transaction() as tx:
        erp._put(tx.conn, erp.SECRET_KEY, None)
    s = Session(browser, erp_server, "admin", ADMIN_PASSWORD, viewport)
    tag = "desktop" if viewport is WIDE else "phone"
    zh = locale != "en"
    try:
        page = s.page
        s.use_locale(locale)  # the locale is the user's: set it either way
        s.go("/admin/erp")
        assert ("未开启" if zh else "Off") in page.inner_text("#erp-state")
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        s.shot(f"erp-off-{locale}-{tag}.png")
        page.fill("#erp-url", "https://erp.example.com/hooks/metacrm")
        page.fill("#erp-secret", "short")
        page.click("#erp-save")
        page.wait_for_load_state()
        assert ("16 到 200" if zh else "16 to 200") in page.inner_text("main")
        page.locator(".field-error").first.scroll_into_view_if_needed()
        s.shot(f"erp-error-{locale}-{tag}.png")
        page.fill("#erp-secret", SECRET)
        page.click("#erp-save")
        page.wait_for_url(erp_server["url"] + "/admin/erp")
        assert ("已开启" if zh else "On") in page.inner_text("#erp-state")
        assert "7788" in page.inner_text("#erp-secret-state")
        assert page.input_value("#erp-secret") == "" and SECRET not in page.content()
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        s.shot(f"erp-on-{locale}-{tag}.png")
    finally:
        s.close()
