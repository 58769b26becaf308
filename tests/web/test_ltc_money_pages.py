"""Where a person meets the money rules in the browser: an order's deliveries and returns on its
record page, a lead's computed score and key-lead flag, a campaign's negative ROI; English and
Chinese, desktop (1366 px) and phone (390 px)."""

from __future__ import annotations

import threading

import pytest

from metacrm.platform.config import Config
from metacrm.platform.db import make_engine
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from metacrm.platform.setup import build_runtime, initialise
from tests.conftest import ADMIN_PASSWORD
from tests.test_ltc_support import active_contract, load_plugin
from tests.web.test_browser import PASSWORD, PHONE, Session, browser  # noqa: F401

WIDE = {"width": 1366, "height": 900}


@pytest.fixture(scope="module")
def money_server(tmp_path_factory, browser):  # noqa: F811
    from werkzeug.serving import make_server

    from metacrm.platform.app import create_app

    folder = tmp_path_factory.mktemp("money")
    engine = make_engine(f"sqlite:///{folder / 'money.db'}")
    config = Config(database_url=str(engine.url), secret_key="money-browser-secret", testing=True)
    runtime = build_runtime(config, engine)
    initialise(runtime, ADMIN_PASSWORD)
    load_plugin(runtime)
    system = RecordService(runtime, Principal.system(), source="seed")
    rosa = system.create("user", {"username": "rosa", "display_name": "Rosa Chen", "roles": ["sales_rep"],
                                  "password": PASSWORD})["id"]
    runtime.directory_changed()
    account = system.create("account", {"name": "Shenzhen Smart Grid", "owner": rosa})
    contract = active_contract(system, {"name": "Smart grid racks", "account": account["id"], "amount": "137800",
                                        "owner": rosa})
    order = system.create("order", {"account": account["id"], "contract": contract["id"], "owner": rosa})
    rack = system.create("order_line", {"order": order["id"], "description": "Server rack", "quantity": "10",
                                        "unit_price": "12500"})
    disk = system.create("order_line", {"order": order["id"], "description": "SSD 4 TB", "quantity": "4",
                                        "unit_price": "3200"})
    system.update("order", order["id"], {"status": "confirmed"})
    first = system.create("delivery", {"order": order["id"]})
    system.create("delivery_line", {"delivery": first["id"], "order_line": rack["id"], "quantity": "6"})
    system.create("delivery_line", {"delivery": first["id"], "order_line": disk["id"], "quantity": "4"})
    back = system.create("delivery", {"order": order["id"], "kind": "return"})
    system.create("delivery_line", {"delivery": back["id"], "order_line": disk["id"], "quantity": "1"})
    lead = system.create("lead", {"company": "Hangzhou Cloud", "source": "referral", "industry": "finance",
                                  "region": "east", "owner": rosa, "email": "li@hangzhou-cloud.example"})
    campaign = system.create("campaign", {"name": "Spring expo", "other_cost": "4000"})
    opp = system.create("opportunity", {"name": "Expo deal", "account": account["id"], "amount": "3000",
                                        "campaign": campaign["id"], "owner": rosa})
    system.update("opportunity", opp["id"], {"stage": "won", "win_loss_reason": "price"})
    app = create_app(config, runtime)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{http.server_port}", "order": order, "lead": lead, "campaign": campaign,
           "first": first, "back": back}
    http.shutdown()
    thread.join(5)
    engine.dispose()


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["desktop", "phone"])
def test_deliveries_returns_score_and_roi_on_the_record_pages(browser, money_server, locale, viewport):  # noqa: F811
    s = Session(browser, money_server, "rosa", PASSWORD, viewport)
    tag = "desktop" if viewport is WIDE else "phone"
    try:
        page = s.page
        s.use_locale(locale)  # the locale is the user's: set it either way
        zh = locale != "en"
        s.go(f"/records/order/{money_server['order']['id']}")
        text = page.inner_text("main")
        assert ("发货与退货" if zh else "Deliveries and returns") in text
        assert money_server["first"]["number"] in text and money_server["back"]["number"] in text
        assert ("退货" if zh else "Return") in text
        assert ("部分" if zh else "Partially") in text or ("partial" in text.lower())
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        page.get_by_text(money_server["back"]["number"]).first.scroll_into_view_if_needed()
        s.shot(f"order-deliveries-{locale}-{tag}.png")
        s.go(f"/records/delivery/{money_server['back']['id']}")
        text = page.inner_text("main")
        assert "SSD 4 TB" in text
        s.shot(f"delivery-return-{locale}-{tag}.png")
        # the lead's score is computed and read-only: 25 + 20 + 10 + 20 = 75, a key lead
        s.go(f"/records/lead/{money_server['lead']['id']}")
        score = page.inner_text('[data-field="score"]')
        assert "75" in score
        s.shot(f"lead-score-{locale}-{tag}.png")
        s.go(f"/records/lead/{money_server['lead']['id']}/edit")
        assert page.locator('input[name="score"]').count() == 0
        # a campaign that cost 4,000 and won 3,000 shows ROI -25 %
        s.go(f"/records/campaign/{money_server['campaign']['id']}")
        roi = page.inner_text('[data-field="roi"]')
        assert "-25" in roi.replace("−", "-"), roi
        page.locator('[data-field="roi"]').scroll_into_view_if_needed()
        s.shot(f"campaign-roi-{locale}-{tag}.png")
    finally:
        s.close()
