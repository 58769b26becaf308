"""The lead-to-cash analytics pages in headless Chromium, English and Chinese at 1366 and 390 px:
marketing opens Campaign ROI from the Marketing app and narrows it to a campaign, a manager opens
win / loss from Sales, finance opens aging and the commission statement from Finance and picks a
rep; a rep sees only their own statement. No page scrolls sideways."""

from __future__ import annotations

import threading

import pytest

from metacrm.platform.config import Config
from metacrm.platform.db import make_engine
from metacrm.platform.setup import build_runtime, initialise
from tests import test_ltc_support as support
from tests.conftest import ADMIN_PASSWORD
from tests.test_ltc_analytics import seed as seed_deals
from tests.test_ltc_forecast import PASSWORD
from tests.test_ltc_support import load_plugin
from tests.web.test_browser import PHONE, Session, browser  # noqa: F401
from tests.web.test_ltc_analytics_pages import seed_campaigns, seed_commission, seed_receivables

WIDE = {"width": 1366, "height": 900}


@pytest.fixture(scope="module")
def analytics_server(tmp_path_factory, browser):  # noqa: F811
    from werkzeug.serving import make_server

    from metacrm.platform.app import create_app

    folder = tmp_path_factory.mktemp("analytics")
    engine = make_engine(f"sqlite:///{folder / 'analytics.db'}")
    config = Config(database_url=str(engine.url), secret_key="analytics-browser-secret", testing=True)
    runtime = build_runtime(config, engine)
    initialise(runtime, ADMIN_PASSWORD)
    load_plugin(runtime)
    company = support.Org(runtime)
    names = {"vp": "Wang Wei", "mgr": "Maria Garcia", "rep_a": "Li Na", "rep_b": "Tom Brown", "mgr_sw": "Sam Ortiz",
             "rep_c": "Chen Jie", "fin": "Zhou Min", "mkt": "Anna Berg"}
    for attr, name in names.items():
        company.system.update("user", getattr(company, attr).id, {"display_name": name, "password": PASSWORD})
    campaigns = seed_campaigns(company)
    seed_deals(company)
    accounts = seed_receivables(company)
    seed_commission(company)
    runtime.directory_changed()
    app = create_app(config, runtime)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{http.server_port}", "runtime": runtime, "org": company,
           "campaigns": campaigns, "accounts": accounts}
    http.shutdown()
    thread.join(5)
    engine.dispose()


def _open(s, viewport, path: str, url: str) -> None:
    """Follow the navigation link to `path` (through the menu on a phone)."""
    s.go("/")
    if viewport is PHONE:
        s.page.click("label.hamburger")
    s.page.click(f"nav.sidebar a[href='{path}']", timeout=45_000)
    s.page.wait_for_url(url + path, timeout=45_000)


def _fits(page, viewport) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["desktop", "phone"])
def test_the_analytics_pages_in_the_browser(browser, analytics_server, locale, viewport):  # noqa: F811
    url, company = analytics_server["url"], analytics_server["org"]
    tag = "desktop" if viewport is WIDE else "phone"
    zh = locale != "en"
    # marketing: campaign ROI from the Marketing app, then one campaign's funnel
    s = Session(browser, analytics_server, "mkt", PASSWORD, viewport)
    try:
        s.use_locale(locale)
        _open(s, viewport, "/analytics/campaign-roi", url)
        page = s.page
        assert ("营销ROI与漏斗" if zh else "Campaign ROI and funnel") in page.inner_text("h1")
        assert "3,200.00" in page.inner_text("#roi-overall") and "113.3%" in page.inner_text("#roi-overall")
        assert page.locator("#roi-funnel svg.chart-funnel").count() == 1
        _fits(page, viewport)
        s.shot(f"ltc-roi-{locale}-{tag}.png")
        page.select_option("#f-campaign", analytics_server["campaigns"]["c1"]["id"])
        page.click("#f-show")
        page.wait_for_load_state()
        assert page.inner_text("#roi-focus") == "C1 search"
        assert "200.0%" in page.inner_text("#stat-roi")
        page.click(f"#roi-campaigns tr[data-campaign='{analytics_server['campaigns']['c1']['id']}'] td.primary a >> nth=0")
        page.wait_for_url(f"{url}/records/campaign/*")
    finally:
        s.close()
    # a manager: win / loss by rep from the Sales app
    m = Session(browser, analytics_server, "mgr", PASSWORD, viewport)
    try:
        m.use_locale(locale)
        _open(m, viewport, "/analytics/win-loss", url)
        page = m.page
        table = page.inner_text("#wl-table")
        assert "Li Na" in table and "Tom Brown" in table and ("91.0 天" if zh else "91.0 days") in table
        assert "80.0%" in page.inner_text("#stat-win-rate")
        _fits(page, viewport)
        m.shot(f"ltc-winloss-{locale}-{tag}.png")
        page.fill("#f-from", "2025-03-01")
        page.fill("#f-to", "2025-01-01")
        page.click("#f-show")
        page.wait_for_load_state()
        assert ("早于" if zh else "before the start") in page.inner_text("#err-to")
        m.shot(f"ltc-winloss-error-{locale}-{tag}.png")
    finally:
        m.close()
    # finance: aging and the commission statement from the Finance app
    f = Session(browser, analytics_server, "fin", PASSWORD, viewport)
    try:
        f.use_locale(locale)
        _open(f, viewport, "/analytics/aging", url)
        page = f.page
        assert "6,500.00" in page.inner_text("#aging-total") and "3,500.00" in page.inner_text("#stat-overdue")
        _fits(page, viewport)
        f.shot(f"ltc-aging-{locale}-{tag}.png")
        _open(f, viewport, "/analytics/commissions", url)
        assert "Li Na" in page.inner_text("#comm-table") and "Tom Brown" in page.inner_text("#comm-table")
        page.select_option("#f-user", company.rep_a.id)
        page.click("#f-show")
        page.wait_for_load_state()
        assert page.locator("table.comm-lines tbody tr").count() == 1
        assert ("2025年第1季度" if zh else "Q1 2025") in page.inner_text("#comm-table")
        _fits(page, viewport)
        f.shot(f"ltc-commissions-{locale}-{tag}.png")
    finally:
        f.close()
    # a rep: their own statement only
    r = Session(browser, analytics_server, "rep_b", PASSWORD, viewport)
    try:
        r.use_locale(locale)
        r.go("/analytics/commissions")
        table = r.page.inner_text("#comm-table")
        assert "Tom Brown" in table and "Li Na" not in table
        r.shot(f"ltc-commissions-rep-{locale}-{tag}.png")
    finally:
        r.close()
