"""The Forecast page (/forecast): who sees which rows, a manager's adjustment through the small
form (CSRF, version), refused posts answered 4xx with nothing changed; Flask client on SQLite
and PostgreSQL. Then headless Chromium, English and Chinese at 1366 and 390 px: a manager
adjusts a rep's figure and sees it beside the rep's own; a rep sees only their row."""

from __future__ import annotations

import re
import threading

import pytest

from metacrm.platform.config import Config
from metacrm.platform.db import make_engine
from metacrm.platform.setup import build_runtime, initialise
from tests import test_ltc_support as support
from tests.conftest import ADMIN_PASSWORD
from tests.test_ltc_forecast import PASSWORD, seed
from tests.test_ltc_support import load_plugin
from tests.web.conftest import login, post
from tests.web.test_browser import PHONE, Session, browser  # noqa: F401

ltc = support.ltc  # fixture
org = support.org  # fixture
WIDE = {"width": 1366, "height": 900}
Q1 = "/forecast?period=quarter&key=2025-Q1"


def _client(app, org, person):
    org.system.update("user", person.id, {"password": PASSWORD})
    client = app.test_client()
    assert login(client, person.username, PASSWORD).status_code == 303
    return client


def _rows(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<tr class="forecast-(team|person) depth-\d" data-user="([0-9a-f]+)"', html)


def test_the_page_shows_each_viewer_their_rows_and_takes_a_managers_adjustment(app, org):
    seed(org)
    mgr, rep, other = (_client(app, org, p) for p in (org.mgr, org.rep_a, org.mgr_sw))
    page = mgr.get(Q1)
    assert page.status_code == 200 and 'href="/forecast"' in page.text
    assert _rows(page.text) == [("team", org.mgr.id), ("person", org.rep_a.id), ("person", org.rep_b.id)]
    assert "3,300.00" in page.text and "36.7%" in page.text  # the team's commit, attainment
    assert f'id="adjust-{org.rep_a.id}"' in page.text
    # the other unit's manager and the rep see only their own people, the rep with no form
    assert [u for _, u in _rows(other.get(Q1).text)] == [org.mgr_sw.id, org.rep_c.id]
    mine = rep.get(Q1).text
    assert _rows(mine) == [("person", org.rep_a.id)] and "adjust-form" not in mine
    # the manager adjusts rep_a; the rep's own commit stays beside it
    done = post(mgr, "/forecast/adjust?period=quarter&key=2025-Q1",
                {"rep": org.rep_a.id, "commit": "250", "best_case": "500", "note": "slips"})
    assert done.status_code == 303
    saved = org.system.list("forecast_adjustment")[0]
    assert len(saved) == 1 and saved[0]["commit"] == "250.00" and saved[0]["owner"] == org.mgr.id
    page = mgr.get(Q1).text
    assert "250.00</span><span class=\"adjusted-best\">/ 500.00" in page and "300.00" in page and f'name="id" value="{saved[0]["id"]}"' in page
    # refused posts: 4xx, the page says why, nothing changes
    for body, status in (({"rep": org.rep_b.id, "commit": "10", "best_case": "5"}, 400),
                         ({"rep": org.rep_b.id, "commit": "abc"}, 400),
                         ({"rep": org.mgr.id, "commit": "1"}, 403),
                         ({"rep": org.rep_a.id, "commit": "1"}, 409),
                         ({"rep": org.rep_a.id, "id": saved[0]["id"], "_version": "0", "commit": "1"}, 409)):
        answer = post(mgr, "/forecast/adjust?period=quarter&key=2025-Q1", body)
        assert answer.status_code == status, (body, answer.status_code)
        assert 'id="forecast-error"' in answer.text
    assert post(other, "/forecast/adjust?period=quarter&key=2025-Q1",
                {"rep": org.rep_a.id, "commit": "1"}).status_code == 403
    assert mgr.post("/forecast/adjust?period=quarter&key=2025-Q1",
                    data={"rep": org.rep_b.id, "commit": "1"}).status_code == 400  # no CSRF token
    assert post(rep, "/forecast/adjust?period=quarter&key=2025-Q1",
                {"rep": org.rep_a.id, "commit": "1"}).status_code == 404
    after = org.system.list("forecast_adjustment")[0]
    assert [(a["id"], a["version"], a["commit"]) for a in after] == [(saved[0]["id"], saved[0]["version"], "250.00")]
    # the manager edits their own adjustment with its version
    edited = post(mgr, "/forecast/adjust?period=quarter&key=2025-Q1",
                  {"rep": org.rep_a.id, "id": saved[0]["id"], "_version": str(saved[0]["version"]), "commit": "260",
                   "best_case": "500"})
    assert edited.status_code == 303
    assert org.system.get("forecast_adjustment", saved[0]["id"])["commit"] == "260.00"


@pytest.fixture(scope="module")
def forecast_server(tmp_path_factory, browser):  # noqa: F811
    from werkzeug.serving import make_server

    from metacrm.platform.app import create_app
    from metacrm.platform.clock import today
    from metacrm.platform.reports import period_key

    folder = tmp_path_factory.mktemp("forecast")
    engine = make_engine(f"sqlite:///{folder / 'forecast.db'}")
    config = Config(database_url=str(engine.url), secret_key="forecast-browser-secret", testing=True)
    runtime = build_runtime(config, engine)
    initialise(runtime, ADMIN_PASSWORD)
    load_plugin(runtime)
    company = support.Org(runtime)
    names = {"vp": "Wang Wei", "mgr": "Maria Garcia", "rep_a": "Li Na", "rep_b": "Tom Brown", "mgr_sw": "Sam Ortiz",
             "rep_c": "Chen Jie"}
    for attr, name in names.items():
        company.system.update("user", getattr(company, attr).id, {"display_name": name, "password": PASSWORD})
    key = period_key(today(), "quarter")
    year, quarter = int(key[:4]), int(key[-1])
    close = f"{year:04d}-{quarter * 3:02d}-15"
    for owner, amount, stage, extra in ((company.rep_a, "120000", "negotiation", {}),
                                        (company.rep_a, "45000", "won", {"win_loss_reason": "product_fit"}),
                                        (company.rep_b, "300000", "trial", {"forecast_category": "commit"}),
                                        (company.rep_b, "80000", "qualification", {}),
                                        (company.rep_c, "150000", "negotiation", {})):
        company.system.create("opportunity", {"name": f"Deal {amount}", "owner": owner.id, "amount": amount,
                                              "stage": stage, "close_date": close, **extra})
    for person, amount in ((company.rep_a, "400000"), (company.rep_b, "500000"), (company.rep_c, "300000")):
        company.system.create("quota", {"user": person.id, "period": key, "amount": amount})
    runtime.directory_changed()
    app = create_app(config, runtime)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{http.server_port}", "runtime": runtime, "org": company, "key": key}
    http.shutdown()
    thread.join(5)
    engine.dispose()


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["desktop", "phone"])
def test_a_manager_adjusts_a_reps_forecast_in_the_browser(browser, forecast_server, locale, viewport):  # noqa: F811
    company, key = forecast_server["org"], forecast_server["key"]
    for adjustment in company.system.list("forecast_adjustment")[0]:
        company.system.delete("forecast_adjustment", adjustment["id"])
    s = Session(browser, forecast_server, "mgr", PASSWORD, viewport)
    tag = "desktop" if viewport is WIDE else "phone"
    zh = locale != "en"
    rep = company.rep_a.id
    try:
        page = s.page
        s.use_locale(locale)
        s.go("/")
        if viewport is PHONE:
            page.click("label.hamburger")
        page.click("a[href='/forecast']")
        page.wait_for_url(forecast_server["url"] + "/forecast")
        assert ("销售预测" if zh else "Forecast") in page.inner_text("h1")
        quarter = f"{key[:4]}年第{key[-1]}季度" if zh else f"Q{key[-1]} {key[:4]}"
        assert page.inner_text("#forecast-current") == quarter
        team = page.locator(f"tr.forecast-team[data-user='{company.mgr.id}']")
        assert ("Maria Garcia团队" if zh else "Team Maria Garcia") in team.inner_text()
        assert "465,000.00" in team.locator("[data-field=commit]").inner_text()  # 120,000 + 45,000 + 300,000
        s.shot(f"forecast-{locale}-{tag}.png")
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        page.click(f"#adjust-{rep}")
        page.fill(f"#commit-{rep}", "90000")
        page.fill(f"#best-{rep}", "80000")
        page.click(f"#save-{rep}")
        page.wait_for_load_state()
        assert ("不能低于" if zh else "cannot be lower") in page.inner_text("#forecast-error")
        page.locator("#forecast-error").scroll_into_view_if_needed()
        s.shot(f"forecast-error-{locale}-{tag}.png")
        page.fill(f"#best-{rep}", "150000")
        page.fill(f"#note-{rep}", "Negotiation slips to next quarter" if not zh else "谈判推迟到下季度")
        page.click(f"#save-{rep}")
        page.wait_for_load_state()
        row = page.locator(f"#row-{rep}")
        assert "90,000.00\n/ 150,000.00" in row.locator("[data-field=adjusted]").inner_text()
        assert "165,000.00" in row.locator("[data-field=commit]").inner_text()  # the rep's own stays
        assert ("修改我的调整" if zh else "Edit my adjustment") in row.inner_text()
        assert ("我的调整" if zh else "my adjustment") in row.locator("[data-field=adjusted]").inner_text()
        assert "390,000.00" in team.locator("[data-field=adjusted]").inner_text()  # 90,000 + 300,000
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        row.scroll_into_view_if_needed()
        s.shot(f"forecast-adjusted-{locale}-{tag}.png")
    finally:
        s.close()
    # the rep sees their own row and no adjustment
    r = Session(browser, forecast_server, "rep_a", PASSWORD, viewport)
    try:
        r.use_locale(locale)
        r.go("/forecast")
        assert r.page.locator("tbody tr").count() == 1
        assert "165,000.00\n/ 165,000.00" in r.page.locator(f"#row-{rep} [data-field=adjusted]").inner_text()
        assert r.page.locator(".adjust-form").count() == 0
        r.shot(f"forecast-rep-{locale}-{tag}.png")
    finally:
        r.close()
