"""The whole lead-to-cash flow over the REST API, as the people of a small company do it:

campaign → lead → conversion → opportunity → quote at 30 % off (supervisor, then VP) →
contract (review) → order past the credit limit (refused, released by finance) → payment
plan → partial and late payments, a partial refund → aging, credit rating, commission,
forecast and campaign ROI, each checked against figures worked out by hand below.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from metacrm.platform.records import RecordService
from metacrm.platform.reports import period_key
from metacrm.platform.security import Principal
from tests import test_ltc_support as support
from tests.conftest import make_user
from tests.test_ltc_support import days

ltc = support.ltc  # fixture


class Api:
    def __init__(self, client, headers):
        self.client, self.headers = client, headers

    def call(self, method, path, expect=200, **kw):
        response = getattr(self.client, method)(f"/api/v1{path}", headers=self.headers, **kw)
        assert response.status_code == expect, (method, path, response.status_code, response.get_json())
        return response.get_json()

    def post(self, path, body=None, expect=201):
        return self.call("post", path, expect, json=body or {})

    def patch(self, path, body, expect=200):
        current = self.call("get", path)
        return self.call("patch", path, expect, json={**body, "version": current["version"]})

    def get(self, path, expect=200):
        return self.call("get", path, expect)


def test_lead_to_cash_end_to_end(ltc, client, admin_headers):
    system = RecordService(ltc, Principal.system())
    hardware = system.create("department", {"name": "hardware"})["id"]
    users = {}
    users["vp"] = make_user(ltc, client, "e2e_vp", ["vp_sales"], department=hardware)
    users["mgr"] = make_user(ltc, client, "e2e_mgr", ["sales_manager"], department=hardware, manager=users["vp"].id)
    users["rep"] = make_user(ltc, client, "e2e_rep", ["sales_rep"], department=hardware, manager=users["mgr"].id)
    users["fin"] = make_user(ltc, client, "e2e_fin", ["finance"])
    admin = Api(client, admin_headers)
    vp, mgr, rep, fin = (Api(client, users[n].headers) for n in ("vp", "mgr", "rep", "fin"))
    rep_id = users["rep"].id

    # L1 campaign, L2 lead attributed to it (entered for the rep: an explicit owner keeps it out of the pools)
    campaign = admin.post("/records/campaign", {"name": "Expo 2025", "channel": "offline_event",
                                                "budget": "12000", "other_cost": "10000"})
    lead = admin.post("/records/lead", {"company": "Northwind Trading Co., Ltd.", "contact_name": "Wei Zhang",
                                        "email": "wei@northwind.cn", "source": "offline_event",
                                        "campaign": campaign["id"], "project_name": "Data centre refresh",
                                        "budget": "100000", "product_line": "hardware", "owner": rep_id})
    # L2 → L3/L4 conversion by the rep
    converted = rep.post(f"/records/lead/{lead['id']}/actions/convert", {}, expect=200)
    rep.post(f"/records/lead/{lead['id']}/actions/convert", {}, expect=409)
    account_id, opp_id = converted["account"], converted["opportunity"]
    assert rep.get(f"/records/account/{account_id}")["campaign"] == campaign["id"]
    opp = rep.patch(f"/records/opportunity/{opp_id}", {"stage": "negotiation", "close_date": days(20).isoformat()})
    assert (opp["probability"], opp["forecast_category"], opp["weighted_amount"]) == ("75.00", "commit", "75000.00")

    # L4 quote at 30 % off: supervisor, then VP
    product = admin.post("/records/product", {"name": "Server X", "code": "SRV-X", "list_price": "10000",
                                              "product_line": "hardware"})
    quote = rep.post("/records/quote", {"name": "Northwind servers", "opportunity": opp_id})
    assert quote["account"] == account_id and quote["approval_status"] == "none"
    rep.post("/records/quote_line", {"quote": quote["id"], "product": product["id"], "quantity": "10"})
    quote = rep.patch(f"/records/quote/{quote['id']}", {"discount_pct": "30"})
    assert (quote["subtotal"], quote["discount_amount"], quote["total"]) == ("100000.00", "30000.00", "70000.00")
    request = rep.post(f"/records/quote/{quote['id']}/submit", {})
    assert request["status"] == "pending" and request["step"] == "supervisor"
    assert request["approvers"] == [users["mgr"].id]
    assert rep.get(f"/records/quote/{quote['id']}")["approval_status"] == "pending"
    rep.patch(f"/records/quote/{quote['id']}", {"discount_pct": "40"}, expect=423)
    rep.post("/records/quote_line", {"quote": quote["id"], "product": product["id"], "quantity": "1"}, expect=423)
    step = mgr.post(f"/approvals/{request['id']}/approve", {"comment": "ok"}, expect=200)
    assert step["status"] == "pending" and step["step"] == "vp" and step["approvers"] == [users["vp"].id]
    done = vp.post(f"/approvals/{request['id']}/approve", {}, expect=200)
    assert done["status"] == "approved"
    assert rep.get(f"/records/quote/{quote['id']}")["approval_status"] == "approved"
    opp = rep.patch(f"/records/opportunity/{opp_id}", {"stage": "won", "amount": "70000", "win_loss_reason": "price"})
    assert (opp["forecast_category"], opp["probability"]) == ("closed", "100.00") and opp["closed_at"]

    # L5 contract through its review (supervisor, then finance below 500,000), lifecycle enforced
    contract = rep.post("/records/contract", {"name": "Northwind servers 2025", "opportunity": opp_id,
                                              "quote": quote["id"], "type": "sales"})
    assert (contract["account"], contract["amount"], contract["status"]) == (account_id, "70000.00", "draft")
    rep.patch(f"/records/contract/{contract['id']}", {"status": "active"}, expect=400)
    review = rep.post(f"/records/contract/{contract['id']}/submit", {})
    assert rep.get(f"/records/contract/{contract['id']}")["status"] == "in_review"
    mgr.post(f"/approvals/{review['id']}/approve", {}, expect=200)
    assert fin.post(f"/approvals/{review['id']}/approve", {}, expect=200)["status"] == "approved"
    contract = rep.get(f"/records/contract/{contract['id']}")
    assert contract["status"] == "active" and contract["signed_on"]

    # credit: 70,000 unbilled against a 50,000 limit is refused until finance releases it
    fin.patch(f"/records/account/{account_id}", {"credit_limit": "50000"})
    order = rep.post("/records/order", {"account": account_id, "contract": contract["id"]})
    rep.post("/records/order_line", {"order": order["id"], "product": product["id"], "quantity": "7"})
    refused = rep.call("patch", f"/records/order/{order['id']}", 409,
                       json={"status": "confirmed", "version": rep.get(f"/records/order/{order['id']}")["version"]})
    assert refused["error"]["code"] == "credit_limit_exceeded"
    assert (refused["error"]["exposure"], refused["error"]["credit_limit"]) == ("70000.00", "50000.00")
    rep.post(f"/records/order/{order['id']}/actions/release_credit", {}, expect=403)
    released = fin.post(f"/records/order/{order['id']}/actions/release_credit", {"reason": "key account"}, expect=200)
    assert released["credit_released"] is True
    order = rep.patch(f"/records/order/{order['id']}", {"status": "confirmed"})
    assert order["status"] == "confirmed" and order["sales_rep"] == rep_id
    rep.patch(f"/records/order/{order['id']}", {"status": "created"}, expect=400)

    # L6 payment plan: two instalments of 35,000 due 40 and 10 days ago; partial and late receipts
    plan = fin.post("/records/payment_plan", {"contract": contract["id"]})
    first = fin.post("/records/instalment", {"payment_plan": plan["id"], "due_date": days(-40).isoformat(),
                                             "amount": "35000"})
    second = fin.post("/records/instalment", {"payment_plan": plan["id"], "due_date": days(-10).isoformat(),
                                              "amount": "35000"})
    assert (first["sequence"], second["sequence"]) == (1, 2) and first["owner"] == rep_id
    assert first["status"] == "overdue" and first["account"] == account_id
    commission_plan = fin.post("/records/commission_plan", {"name": "Standard", "mode": "on_collection",
                                                            "tier_mode": "marginal", "is_default": True,
                                                            "early_bonus_pct_per_day": "1",
                                                            "late_penalty_pct_per_day": "1",
                                                            "max_adjustment_pct": "50"})
    fin.post("/records/commission_tier", {"plan": commission_plan["id"], "from_value": "0", "rate": "5"})
    p1 = fin.post("/records/payment", {"instalment": first["id"], "amount": "20000",
                                       "received_on": days(-30).isoformat()})
    assert p1["sales_rep"] == rep_id and p1["account"] == account_id
    assert fin.get(f"/records/instalment/{first['id']}")["status"] == "overdue"
    fin.post("/records/payment", {"instalment": first["id"], "amount": "15000", "received_on": days(-5).isoformat()})
    first = fin.get(f"/records/instalment/{first['id']}")
    assert (first["status"], first["paid_amount"], first["paid_on"], first["days_overdue"]) == \
           ("paid", "35000.00", days(-5).isoformat(), 35)
    p3 = fin.post("/records/payment", {"instalment": second["id"], "amount": "10000",
                                       "received_on": days(-2).isoformat()})
    refund = fin.post("/records/payment", {"instalment": second["id"], "amount": "-5000", "refund_of": p3["id"],
                                           "received_on": days(-1).isoformat()})
    second = fin.get(f"/records/instalment/{second['id']}")
    assert (second["status"], second["paid_amount"], second["outstanding"]) == ("overdue", "5000.00", "30000.00")
    assert rep.get(f"/records/payment/{refund['id']}")["amount"] == "-5000.00"  # the rep sees their collections

    # aging: only the second instalment is open, 10 days past due
    aging = fin.get("/reports/aging")
    assert aging["buckets"] == {"not_due": "0.00", "0-30": "30000.00", "31-60": "0.00", "61-90": "0.00",
                                "90+": "0.00"}
    assert aging["accounts"][0]["account"] == account_id

    # credit rating: 0 of 2 instalments on time (D); worst lateness 35 days (C) → D
    account = fin.get(f"/records/account/{account_id}")
    assert (account["credit_rating"], account["on_time_ratio"], account["max_days_overdue"]) == ("D", "0.00", 35)

    # commission at 5 %, 1 % per day late: 20,000 10 days late → 1,000 - 100; 15,000 35 days late →
    # 750 - 262.50; 10,000 8 days late → 500 - 40; the 5,000 refund claws back half of 460 → -230
    statement = rep.get(f"/reports/commission_statement?user={rep_id}")
    total = sum(Decimal(row["total"]) for row in statement["rows"])
    commission = sum(Decimal(row["commission"]) for row in statement["rows"])
    adjustment = sum(Decimal(row["adjustment"]) for row in statement["rows"])
    clawback = sum(Decimal(row["clawback"]) for row in statement["rows"])
    assert (commission, adjustment, clawback, total) == (Decimal("2250.00"), Decimal("-402.50"),
                                                         Decimal("-230.00"), Decimal("1617.50"))
    lines = [line for row in statement["rows"] for line in row["lines"]]
    assert sorted(line["days_early"] for line in lines if line["kind"] == "collection") == [-35, -10, -8]
    assert mgr.get(f"/reports/commission_statement?user={rep_id}")["rows"]  # the manager sees the team's

    # forecast: 70,000 won in the close quarter against a 200,000 quota; the manager sees the team
    quarter = period_key(days(20), "quarter")
    vp.post("/records/quota", {"user": rep_id, "period": quarter, "amount": "200000"})
    forecast = mgr.get(f"/reports/forecast?period=quarter&from={quarter}&to={quarter}")
    mine = {(r["user"], r["period"]): r for r in forecast["rows"]}
    rep_row = mine[(rep_id, quarter)]["own"]
    assert (rep_row["closed"], rep_row["commit"], rep_row["quota"], rep_row["attainment"]) == \
           ("70000.00", "70000.00", "200000.00", "35.00")
    team = mine[(users["mgr"].id, quarter)]
    assert team["team"]["closed"] == "70000.00" and team["team_size"] == 2

    # campaign ROI: 1 lead → 1 customer → 1 opportunity → 1 won; (70,000 - 10,000) / 10,000 = 600 %
    roi = admin.get("/reports/campaign_roi")
    row = next(c for c in roi["campaigns"] if c["campaign"] == campaign["id"])
    assert (row["leads"], row["converted"], row["opportunities"], row["won"]) == (1, 1, 1, 1)
    assert (row["won_revenue"], row["cost_per_lead"], row["roi"]) == ("70000.00", "10000.00", "600.00")


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_dashboard_widgets_return_chart_specs(ltc):
    widgets = ltc.extensions["dashboard_widgets"]
    assert set(widgets) >= {"ltc_funnel", "ltc_forecast", "ltc_roi", "ltc_aging"}
    service = RecordService(ltc, Principal.system())
    from metacrm.platform.web import charts

    for name, fn in widgets.items():
        if not name.startswith("ltc_"):
            continue
        spec = fn(service)  # the chart spec of docs/web.md
        assert spec["type"] in charts.RENDERERS and spec["title"] and spec["format"] in ("count", "money")
        assert isinstance(spec["categories"], list) and spec["series"]
        for series in spec["series"]:
            assert series["label"] and len(series["values"]) == len(spec["categories"])
        assert "<svg" in str(charts.render(spec))
    marketing = RecordService(ltc, Principal(user_id="nobody", username="m", roles=frozenset({"marketing"})))
    assert widgets["ltc_aging"](marketing) is None  # nothing to show for who may not see receivables
