"""Admin → Pools & duplicate rules in Chromium, English and Chinese, at 1366 and 390 px: an admin
creates a pool for leads with a 14-day recycle rule (diff first, then apply) and a duplicate rule
for contacts, tests it on the existing data (sees the group count) and applies it; a sales rep then
sees the pool, and is warned when saving a duplicate contact."""

from __future__ import annotations

import re

from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.web.test_browser import PASSWORD, PHONE, browser, server, session_for  # noqa: F401

SCREEN_DESKTOP = {"width": 1366, "height": 800}
RUNS = (("en", SCREEN_DESKTOP, "desktop"), ("en", PHONE, "phone"),
        ("zh-CN", SCREEN_DESKTOP, "desktop"), ("zh-CN", PHONE, "phone"))
SLOW = 45_000  # a metadata apply (or its dry run) under load
COUNT = {"en": r"(\d+) duplicate group\(s\) now", "zh-CN": r"当前有 (\d+) 个重复组"}
WARNED = {"en": "may duplicate", "zh-CN": "重复"}


def _fits(page, viewport) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]


def test_an_admin_builds_a_pool_and_a_duplicate_rule_and_a_rep_meets_them(session_for, server):  # noqa: F811
    system = RecordService(server["runtime"], Principal.system(), source="test")
    for locale, viewport, tag in RUNS:
        short = locale.split("-")[0]
        wechat = f"wx_{short}_{tag}"
        for name in (f"Kim Park {short} {tag}", f"K. Park {short} {tag}"):
            system.create("contact", {"name": name, "wechat": wechat})
        admin = session_for(viewport=viewport)
        admin.use_locale(locale)
        page = admin.page

        # --- a pool with a 14-day recycle rule
        admin.go("/admin/rules")
        admin.shot(f"rules-rules-{locale}-{tag}.png")
        _fits(page, viewport)
        page.select_option("#new-pool-object", "lead")
        page.click("#new-pool button[type=submit]")
        page.wait_for_selector("#pool-form")
        pool_label = f"Expo leads {short} {tag}"
        page.fill("#f-label_en", pool_label)
        page.fill("#f-label_zh", f"展会线索 {short} {tag}")
        page.fill("#f-priority", "5")
        page.select_option("#entry-0-field", "source")
        page.select_option("#entry-0-value", "offline_event")  # the script gave the row the picklist's values
        page.select_option("#p-members-roles", ["sales_rep", "sales_manager"])
        page.select_option("#p-admins-roles", ["sales_manager"])
        page.fill("#f-claim-max_per_day", "10")
        page.fill("#f-claim-max_held", "40")
        page.select_option("#f-strategy", "round_robin")
        page.fill("#f-rc-0-age", "14")
        page.select_option("#f-rc-0-unit", "days")
        page.fill("#f-rc-0-reason", "no follow-up for 14 days")
        page.fill("#f-rc-0-label_en", "Back to the pool after 14 days without follow-up")
        page.fill("#f-rc-0-label_zh", "14 天未跟进即退回公海池")
        page.locator("#pool-recycle").scroll_into_view_if_needed()
        admin.shot(f"rules-pool-form-{locale}-{tag}.png")
        _fits(page, viewport)
        page.click("#review", timeout=SLOW)
        page.wait_for_selector("#meta-diff", timeout=SLOW)
        name = f"expo_leads_{short}_{tag}"
        diff = page.inner_text("#meta-diff")
        assert f"pool/{name}" in diff and '"older_than_days": 14' in diff
        assert page.input_value("#f-rc-0-age") == "14"  # the form keeps what was entered
        admin.shot(f"rules-pool-diff-{locale}-{tag}.png")
        _fits(page, viewport)
        page.click("#apply", timeout=SLOW)
        page.wait_for_url(re.compile(rf"/admin/rules/pools/{name}$"), timeout=SLOW)
        pool = server["runtime"].registry().get("pool", name)
        assert pool["recycle"][0]["when"] == {"last_activity_at": {"older_than_days": 14}}
        assert pool["entry"] == {"source": "offline_event"} and pool["assignment"]["strategy"] == "round_robin"

        # --- a duplicate rule, tested on the existing data before it is applied
        admin.go("/admin/rules")
        page.select_option("#new-dedup-object", "contact")
        page.click("#new-dedup button[type=submit]")
        page.wait_for_selector("#dedup-form")
        rule_label = f"Same WeChat {short} {tag}"
        page.fill("#f-label_en", rule_label)
        page.fill("#f-label_zh", f"同一微信 {short} {tag}")
        page.select_option("#f-0-0-field", "wechat")
        page.select_option("#f-g-0-0-method", "exact")
        page.select_option("#f-on_create", "warn")
        page.click("#test-on-data", timeout=SLOW)
        page.wait_for_selector("#test-result", timeout=SLOW)
        found = re.search(COUNT[locale], page.inner_text("#test-count"))
        assert found and int(found.group(1)) >= 1
        assert server["runtime"].registry().get("dedup_rule", f"same_wechat_{short}_{tag}") is None
        page.locator("#test-result").scroll_into_view_if_needed()
        admin.shot(f"rules-dedup-test-{locale}-{tag}.png")
        _fits(page, viewport)
        page.locator("#dedup-groups").scroll_into_view_if_needed()
        admin.shot(f"rules-dedup-groups-{locale}-{tag}.png")
        _fits(page, viewport)
        page.click("#review", timeout=SLOW)
        page.wait_for_selector("#meta-diff", timeout=SLOW)
        assert f"dedup_rule/same_wechat_{short}_{tag}" in page.inner_text("#meta-diff")
        admin.shot(f"rules-dedup-diff-{locale}-{tag}.png")
        page.click("#apply", timeout=SLOW)
        page.wait_for_url(re.compile(rf"/admin/rules/duplicates/same_wechat_{short}_{tag}$"), timeout=SLOW)
        admin.shot(f"rules-dedup-form-{locale}-{tag}.png")
        _fits(page, viewport)

        # --- a rep sees the pool, and is warned on a duplicate
        rep = session_for("rosa", PASSWORD, viewport=viewport)
        rep.use_locale(locale)
        rep.go("/pools")
        assert pool_label in rep.page.inner_text("#pool-list") or f"展会线索 {short} {tag}" in rep.page.inner_text("#pool-list")
        assert rep.page.locator("#manage-pools").count() == 0  # no admin links for a rep
        rep.shot(f"rules-rep-pools-{locale}-{tag}.png")
        rep.go("/records/contact/new")
        rep.page.fill("#f-name", f"Kim Park again {short} {tag}")
        rep.page.fill("#f-wechat", wechat)
        rep.page.click("#save")
        rep.page.wait_for_url(re.compile(r"/records/contact/[0-9a-f]{32}$"))
        notices = rep.page.inner_text(".notice-warning")
        assert WARNED[locale] in notices and (rule_label in notices or f"同一微信 {short} {tag}" in notices), notices
        rep.shot(f"rules-rep-warned-{locale}-{tag}.png")
