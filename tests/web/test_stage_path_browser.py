"""The stage path in Chromium, English and Chinese, at 1366 and 390 px: clicking the next stage
of an opportunity moves it on (the bar and the notice say so), and a stale page is refused."""

from __future__ import annotations

from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.web.test_browser import PHONE, browser, server, session_for  # noqa: F401

SCREEN_DESKTOP = {"width": 1366, "height": 800}
RUNS = (("en", SCREEN_DESKTOP, "desktop"), ("en", PHONE, "phone"),
        ("zh-CN", SCREEN_DESKTOP, "desktop"), ("zh-CN", PHONE, "phone"))
WORDS = {"en": {"moved": "Moved to", "refused": "Not moved to"}, "zh-CN": {"moved": "已推进到", "refused": "未能推进到"}}


def test_clicking_the_stage_path_moves_an_opportunity_on(session_for, server):  # noqa: F811
    runtime = server["runtime"]
    system = RecordService(runtime, Principal.system())
    account = system.list("account", limit=1)[0][0]
    for locale, viewport, tag in RUNS:
        opp = system.create("opportunity", {"name": f"Path {locale} {tag}", "account": account["id"],
                                            "stage": "qualification", "amount": "5000.00",
                                            "owner": account["owner"]})
        admin = session_for(viewport=viewport)
        admin.use_locale(locale)
        page = admin.page
        admin.go(f"/records/opportunity/{opp['id']}")
        bar = page.locator("#stage-path")
        assert bar.locator("[aria-current=step]").count() == 1
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        admin.shot(f"stage-path-{locale}-{tag}.png")
        bar.locator("[data-stage=research] button").click(timeout=45_000)
        page.wait_for_load_state()
        assert WORDS[locale]["moved"] in page.locator(".notice").first.inner_text()
        assert page.locator("#stage-path [data-stage=research].current").count() == 1
        assert system.get("opportunity", opp["id"])["stage"] == "research"
        # someone else moves it meanwhile: this page's version is stale, the click is refused
        now = system.get("opportunity", opp["id"])
        system.update("opportunity", opp["id"], {"stage": "trial"}, version=now["version"])
        bar.locator("[data-stage=negotiation] button").click(timeout=45_000)
        page.wait_for_load_state()
        assert WORDS[locale]["refused"] in page.locator(".notice").first.inner_text()
        assert system.get("opportunity", opp["id"])["stage"] == "trial"
        admin.shot(f"stage-path-refused-{locale}-{tag}.png")
