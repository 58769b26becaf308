"""The lead-to-cash analytics pages (/analytics/campaign-roi, /analytics/win-loss, /analytics/aging,
/analytics/commissions): the same figures as the reports of the API, in the reader's locale, the
report scope of each viewer (a rep limited to their own, marketing refused receivables and
commissions), the filters with errors beside the field, rows linking to their records, CSV, and
the links in the right app of the navigation. Flask client on the small company of the
lead-to-cash tests."""

from __future__ import annotations

import re

from tests import test_ltc_support as support
from tests.test_ltc_analytics import seed as seed_deals
from tests.test_ltc_forecast import PASSWORD
from tests.web.conftest import login

ltc = support.ltc  # fixture
org = support.org  # fixture


def _client(app, org, person):
    org.system.update("user", person.id, {"password": PASSWORD})
    client = app.test_client()
    assert login(client, person.username, PASSWORD).status_code == 303
    return client


def seed_campaigns(org) -> dict:
    system = org.system
    c1 = system.create("campaign", {"name": "C1 search", "channel": "search", "other_cost": "1000"})
    c2 = system.create("campaign", {"name": "C2 search", "channel": "search", "other_cost": "500"})
    c3 = system.create("campaign", {"name": "C3 email", "channel": "email", "other_cost": "0"})
    for i, (campaign, status) in enumerate([(c1, "converted"), (c1, "converted"), (c1, "working"), (c1, "new"),
                                            (c2, "new"), (c2, "disqualified"), (c3, "converted")]):
        system.create("lead", {"company": f"L{i}", "email": f"l{i}@roi.cn", "source": "search", "status": status,
                               "owner": org.rep_a.id, "campaign": campaign["id"]})
    for campaign, stage, amount in ((c1, "won", "3000"), (c1, "trial", "900"), (c3, "won", "200")):
        system.create("opportunity", {"name": f"O{amount}", "stage": stage, "amount": amount, "owner": org.rep_a.id,
                                      "campaign": campaign["id"]})
    return {"c1": c1, "c2": c2, "c3": c3}


def seed_receivables(org) -> dict:
    fin = org.fin.service(org.runtime)
    out = {}
    for name, owner, dues in (("Acme Aging", org.rep_a, [(-45, "1000"), (-5, "2000"), (20, "3000")]),
                              ("Beta Aging", org.rep_b, [(-100, "500")])):
        account = org.system.create("account", {"name": name, "owner": owner.id})
        contract = support.active_contract(org.system, {"name": name, "account": account["id"], "owner": owner.id})
        plan = fin.create("payment_plan", {"contract": contract["id"]})
        for d, amount in dues:
            fin.create("instalment", {"payment_plan": plan["id"], "due_date": support.days(d).isoformat(),
                                      "amount": amount})
        out[name] = account
    return out


def seed_commission(org) -> None:
    system = org.system
    plan = system.create("commission_plan", {"name": "Std", "mode": "on_collection", "tier_mode": "marginal",
                                             "period": "quarter", "is_default": True})
    system.create("commission_tier", {"plan": plan["id"], "from_value": "0", "to_value": None, "rate": "2"})
    fin = org.fin.service(org.runtime)
    for rep, amount in ((org.rep_a, "10000"), (org.rep_b, "5000")):
        account = system.create("account", {"name": f"Comm {rep.username}", "owner": rep.id})
        contract = support.active_contract(system, {"name": f"Comm {rep.username}", "account": account["id"],
                                                    "owner": rep.id})
        payment_plan = fin.create("payment_plan", {"contract": contract["id"]})
        inst = fin.create("instalment", {"payment_plan": payment_plan["id"], "due_date": "2025-02-15",
                                         "amount": amount})
        fin.create("payment", {"instalment": inst["id"], "amount": amount, "received_on": "2025-02-15"})


def _nav_links(html: str) -> list[str]:
    nav = html[html.index('<nav class="sidebar"'):html.index("</nav>")]
    return re.findall(r'href="(/analytics/[a-z-]+)"', nav)


def test_campaign_roi_page_per_channel_and_campaign(app, org):
    campaigns = seed_campaigns(org)
    mkt = _client(app, org, org.mkt)
    page = mkt.get("/analytics/campaign-roi")
    assert page.status_code == 200, page.text[:500]
    html = page.text
    # the overall funnel 7 → 3 → 3 → 2; (3,200 - 1,500) / 1,500 = 113.3 %
    overall = html[html.index('id="roi-overall"'):]
    assert ">7<" in overall and "3,200.00" in overall and "113.3%" in overall
    assert "/analytics/campaign-roi" in _nav_links(html)  # marketing's app lists it
    c1 = campaigns["c1"]["id"]
    assert f'href="/records/campaign/{c1}"' in html and f'href="/records/lead?f.campaign={c1}"' in html
    # one channel: its campaigns only
    search = mkt.get("/analytics/campaign-roi?channel=search").text
    table = search[search.index('id="roi-campaigns"'):]
    assert "C1 search" in table and "C2 search" in table and "C3 email" not in table
    # one campaign: its funnel, linked to its leads
    one = mkt.get(f"/analytics/campaign-roi?campaign={c1}").text
    assert 'id="roi-focus">C1 search<' in one and "200.0%" in one and f"/records/lead?f.campaign={c1}" in one
    assert mkt.get("/analytics/campaign-roi?channel=nonsense&campaign=nope").status_code == 200  # ignored
    csv = mkt.get("/analytics/campaign-roi?format=csv")
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    lines = csv.data.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("Campaign,Channel,Leads") and any(line.startswith("C1 search,") for line in lines)
    # Chinese: labels and numbers in the reader's locale
    org.system.update("user", org.mkt.id, {"locale": "zh-CN"})
    zh = _client(app, org, org.mkt).get("/analytics/campaign-roi").text
    assert "营销ROI与漏斗" in zh and "按渠道" in zh and "3,200.00" in zh and "113.3%" in zh


def test_win_loss_page_by_rep_and_team_and_a_rep_sees_their_own(app, org):
    seed_deals(org)
    mgr = _client(app, org, org.mgr)
    html = mgr.get("/analytics/win-loss").text
    assert "/analytics/win-loss" in _nav_links(html)
    table = html[html.index('id="wl-table"'):]
    assert "REP_A" in table and "REP_B" in table and "50.0%" in table and "40.0 days" in table
    assert f"owner={org.rep_a.id}" in table  # the rep's row opens their deals
    teams = mgr.get("/analytics/win-loss?by=team").text
    assert "hardware" in teams[teams.index('id="wl-table"'):]
    narrowed = mgr.get("/analytics/win-loss?from=2025-02-01&to=2025-12-31").text
    assert 'id="stat-won-lost"><span class="stat-value">0 / 1<' in narrowed
    # bad dates: 400 with the error beside the field, the page still there
    bad = mgr.get("/analytics/win-loss?from=yesterday&to=2025-01-01")
    assert bad.status_code == 400 and 'id="err-from"' in bad.text and 'id="wl-table"' in bad.text
    backwards = mgr.get("/analytics/win-loss?from=2025-03-01&to=2025-01-01")
    assert backwards.status_code == 400 and 'id="err-to"' in backwards.text
    # a rep: their own deals only
    rep = _client(app, org, org.rep_b)
    mine = rep.get("/analytics/win-loss").text
    table = mine[mine.index('id="wl-table"'):mine.index("</table>", mine.index('id="wl-table"'))]
    assert "REP_B" in table and "REP_A" not in table
    csv = mgr.get("/analytics/win-loss?format=csv&by=rep").data.decode("utf-8-sig")
    assert csv.splitlines()[0].startswith("Rep,") and "REP_A,2,1,1,50.00,100.00" in csv


def test_aging_page_per_account_and_marketing_is_refused(app, org):
    accounts = seed_receivables(org)
    fin = _client(app, org, org.fin)
    page = fin.get("/analytics/aging")
    assert page.status_code == 200
    html = page.text
    assert "/analytics/aging" in _nav_links(html) and "/analytics/commissions" in _nav_links(html)
    # Acme: 1,000 (45 days: 31-60) + 2,000 (5 days: 1-30) overdue, 3,000 not due; Beta 500 over 90 days
    row = html[html.index(f'data-account="{accounts["Acme Aging"]["id"]}"'):]
    row = row[:row.index("</tr>")]
    assert "3,000.00" in row and "2,000.00" in row and "1,000.00" in row and "6,000.00" in row
    assert f'href="/records/account/{accounts["Acme Aging"]["id"]}"' in row
    total = html[html.index('id="aging-total"'):]
    assert "3,500.00" in total and "6,500.00" in total
    later = fin.get(f"/analytics/aging?as_of={support.days(40).isoformat()}").text
    assert "6,500.00" in later
    bad = fin.get("/analytics/aging?as_of=31/12/2025")
    assert bad.status_code == 400 and 'id="err-as_of"' in bad.text
    one = fin.get(f"/analytics/aging?account={accounts['Beta Aging']['id']}").text
    assert "Acme Aging" not in one[one.index('id="aging-table"'):] and "Beta Aging" in one
    # a rep sees only their own accounts' receivables (the report's scope)
    rep = _client(app, org, org.rep_b).get("/analytics/aging")
    if rep.status_code == 200:
        assert "Acme Aging" not in rep.text
    else:
        assert rep.status_code in (403, 404)
    # marketing may not report on receivables: refused, as the API refuses it
    mkt = _client(app, org, org.mkt)
    assert mkt.get("/analytics/aging").status_code == 403
    assert "/analytics/aging" not in _nav_links(mkt.get("/analytics/campaign-roi").text)


def test_commission_statement_page_per_rep_and_period(app, org):
    seed_commission(org)
    fin = _client(app, org, org.fin)
    html = fin.get("/analytics/commissions").text
    table = html[html.index('id="comm-table"'):]
    assert "REP_A" in table and "REP_B" in table and "200.00" in table and "100.00" in table
    assert "Q1 2025" in table  # the period as the reader reads it
    one = fin.get(f"/analytics/commissions?user={org.rep_a.id}&period=2025-Q1").text
    assert "comm-lines" in one and "10,000.00" in one and "REP_B" not in one[one.index('id="comm-table"'):]
    assert "/records/commission_line/" in one  # each line opens its record
    bad = fin.get("/analytics/commissions?period=spring")
    assert bad.status_code == 400 and 'id="err-period"' in bad.text
    # the rep sees their own statement only, even when asking for another's
    rep = _client(app, org, org.rep_a)
    mine = rep.get("/analytics/commissions").text
    table = mine[mine.index('id="comm-table"'):mine.index("</table>", mine.index('id="comm-table"'))]
    assert "REP_A" in table and "REP_B" not in table
    assert "/analytics/commissions" in _nav_links(mine)  # the page opens its app (Finance) for the rep
    other = rep.get(f"/analytics/commissions?user={org.rep_b.id}").text
    assert "REP_B" not in other[other.index('id="comm-table"'):]
    assert _client(app, org, org.mkt).get("/analytics/commissions").status_code == 403
    csv = fin.get("/analytics/commissions?format=csv").data.decode("utf-8-sig")
    assert csv.splitlines()[0].startswith("Rep,Period,") and len(csv.splitlines()) == 3


def test_a_hidden_field_refuses_the_page_as_it_refuses_the_report(app, org):
    from metacrm.metadata.bundle import documents_bundle
    from metacrm.platform.apply import apply_change
    from metacrm.platform.records import RecordService
    from metacrm.platform.security import Principal

    seed_campaigns(org)
    role = {"kind": "role", "name": "cost_blind",
            "objects": {"campaign": {"read": "all", "report": "all"}, "lead": {"read": "all", "report": "all"}},
            "fields": {"campaign": {"actual_cost": "hidden"}}}
    apply_change(org.runtime, documents_bundle([role]))
    created = RecordService(org.runtime, Principal.system()).create(
        "user", {"username": "blind", "roles": ["cost_blind"], "display_name": "Blind", "password": PASSWORD})
    org.runtime.directory_changed()
    client = app.test_client()
    assert login(client, "blind", PASSWORD).status_code == 303
    refused = client.get("/analytics/campaign-roi")
    assert refused.status_code == 403 and "3,200.00" not in refused.text
    assert client.get("/analytics/campaign-roi?format=csv").status_code == 403
    assert created["id"]
