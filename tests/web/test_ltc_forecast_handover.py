"""Hand-over in the browser: after the manager gives an account to another rep (its open deal,
contact and follow-up move with it), the new owner signs in and sees the whole account page —
the related lists populated with what moved — and the account's summary counts only what they
can read (1 opportunity, 1 contact; the closed deal and the manager's contact stay out).
Headless Chromium, English and Chinese at 1366 and 390 px."""

from __future__ import annotations

import threading

import pytest

from metacrm.platform.config import Config
from metacrm.platform.db import make_engine
from metacrm.platform.setup import build_runtime, initialise
from tests import test_ltc_support as support
from tests.conftest import ADMIN_PASSWORD
from tests.test_ltc_forecast import PASSWORD
from tests.test_ltc_forecast_handover import handed_over
from tests.test_ltc_support import load_plugin
from tests.web.test_browser import PHONE, Session, browser  # noqa: F401

WIDE = {"width": 1366, "height": 900}


@pytest.fixture(scope="module")
def handover_server(tmp_path_factory, browser):  # noqa: F811
    from werkzeug.serving import make_server

    from metacrm.platform.app import create_app

    folder = tmp_path_factory.mktemp("handover")
    engine = make_engine(f"sqlite:///{folder / 'handover.db'}")
    config = Config(database_url=str(engine.url), secret_key="handover-browser-secret", testing=True)
    runtime = build_runtime(config, engine)
    initialise(runtime, ADMIN_PASSWORD)
    load_plugin(runtime)
    company = support.Org(runtime)
    for attr, name in (("mgr", "Maria Garcia"), ("rep_a", "Li Na"), ("rep_b", "Tom Brown")):
        company.system.update("user", getattr(company, attr).id, {"display_name": name, "password": PASSWORD})
    runtime.directory_changed()
    made = handed_over(company)
    app = create_app(config, runtime)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{http.server_port}", "runtime": runtime, "made": made}
    http.shutdown()
    thread.join(5)
    engine.dispose()


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["desktop", "phone"])
def test_the_new_owner_sees_the_whole_account_page(browser, handover_server, locale, viewport):  # noqa: F811
    made = handover_server["made"]
    s = Session(browser, handover_server, "rep_b", PASSWORD, viewport)
    tag = "desktop" if viewport is WIDE else "phone"
    zh = locale != "en"
    try:
        page = s.page
        s.use_locale(locale)
        response = s.go(f"/records/account/{made['account']['id']}")
        assert response.status == 200
        assert "Handover Co" in page.inner_text("h1")
        opportunities = page.locator("section.related[data-related=opportunity]")
        assert "Open deal" in opportunities.inner_text() and "Won deal" not in opportunities.inner_text()
        contacts = page.locator("section.related[data-related=contact]")
        assert "Moving Contact" in contacts.inner_text() and "Manager's Contact" not in contacts.inner_text()
        assert "Call back" in page.locator("section.related[data-related=activity]").inner_text()
        assert page.locator("[data-field=opportunity_count] dd").inner_text().strip() == "1"
        assert page.locator("[data-field=contact_count] dd").inner_text().strip() == "1"
        summary = page.locator("[data-field=opportunity_count]")
        assert ("商机数" if zh else "Opportunities") in summary.inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        s.shot(f"handover-account-{locale}-{tag}.png")
        summary.scroll_into_view_if_needed()
        s.shot(f"handover-summary-{locale}-{tag}.png")
        # the deal that moved opens for its new owner
        opportunities.locator("a", has_text="Open deal").first.click()
        page.wait_for_load_state()
        assert "Open deal" in page.inner_text("h1")
    finally:
        s.close()
