"""Commission: tiers (whole vs marginal), the four modes, pro rata partial payments, early bonus
and late penalty, clawbacks, periods, and the statement — every figure worked out by hand.

The receipts are dated in 2025 (fixed quarters); the rep is the contract's owner."""

from __future__ import annotations

from decimal import Decimal

from metacrm.platform.reports import run_report
from metacrm.plugins.lead_to_cash.commission import period_range, target_commission, tier_commission
from tests import test_ltc_support as support
from tests.test_ltc_support import D

ltc = support.ltc  # fixture
org = support.org  # fixture

TIERS = [{"from_value": D(0), "to_value": D(10000), "rate": D(2)},
         {"from_value": D(10000), "to_value": D(30000), "rate": D(4)},
         {"from_value": D(30000), "to_value": None, "rate": D(5)}]


def test_tier_functions_and_periods():
    # marginal: 10,000 x 2 % + 20,000 x 4 % + 4,000 x 5 % = 200 + 800 + 200
    assert tier_commission(D(34000), TIERS, "marginal") == D(1200)
    assert tier_commission(D(14000), TIERS, "marginal") == D(360)
    # whole: all of it at the reached tier's rate
    assert tier_commission(D(34000), TIERS, "whole") == D(1700)
    assert tier_commission(D(10000), TIERS, "whole") == D(400)  # a boundary belongs to the upper tier
    assert tier_commission(D(0), TIERS, "whole") == 0
    bands = [{"from_value": D(0), "to_value": D(80), "rate": D(0)},
             {"from_value": D(80), "to_value": D(100), "rate": D(3)},
             {"from_value": D(100), "to_value": None, "rate": D(6)}]
    # 110 % of a 100,000 quota: 20,000 x 3 % + 10,000 x 6 % (marginal); 110,000 x 6 % (whole)
    assert target_commission(D(110000), D(100000), bands, "marginal") == (D(1200), D(110))
    assert target_commission(D(110000), D(100000), bands, "whole")[0] == D(6600)
    assert target_commission(D(70000), D(100000), bands, "marginal")[0] == 0
    assert [str(d) for d in period_range("2025-Q1")] == ["2025-01-01", "2025-03-31"]
    assert [str(d) for d in period_range("2024-02")] == ["2024-02-01", "2024-02-29"]
    assert [str(d) for d in period_range("2025-Q4")] == ["2025-10-01", "2025-12-31"]


class Books:
    """Contracts, plans and instalments of a rep, with finance recording receipts."""

    def __init__(self, org, rep, name):
        self.org, self.system, self.fin = org, org.system, org.fin.service(org.runtime)
        account = self.system.create("account", {"name": f"{name} Co", "owner": rep.id})
        self.contract = support.active_contract(self.system, {"name": name, "account": account["id"],
                                                              "owner": rep.id})
        self.plan = self.fin.create("payment_plan", {"contract": self.contract["id"]})

    def instalment(self, due, amount):
        return self.fin.create("instalment", {"payment_plan": self.plan["id"], "due_date": due, "amount": amount})

    def pay(self, instalment, amount, received, **extra):
        return self.fin.create("payment", {"instalment": instalment["id"], "amount": amount, "received_on": received,
                                           **extra})


def lines(service, user, period=None):
    params = {"user": user.id} | ({"period": period} if period else {})
    rows = run_report(service, "commission_statement", params)["rows"]
    return {row["period"]: row for row in rows}


def test_on_collection_tiers_pro_rata_bonus_penalty_and_clawbacks(org):
    system = org.system
    plan = system.create("commission_plan", {"name": "Std", "mode": "on_collection", "tier_mode": "marginal",
                                             "period": "quarter", "is_default": True, "early_bonus_pct_per_day": "1",
                                             "late_penalty_pct_per_day": "2", "max_adjustment_pct": "10"})
    for tier in TIERS:
        system.create("commission_tier", {"plan": plan["id"], "from_value": str(tier["from_value"]),
                                          "to_value": str(tier["to_value"]) if tier["to_value"] else None,
                                          "rate": str(tier["rate"])})
    books = Books(org, org.rep_a, "Collect")
    i1 = books.instalment("2025-01-15", "8000")
    i2 = books.instalment("2025-02-01", "6000")
    i3 = books.instalment("2025-03-10", "20000")
    i4 = books.instalment("2025-04-30", "5000")
    p1 = books.pay(i1, "8000", "2025-01-10")     # C = 8,000: 160.00; 5 days early → +5 % = +8.00
    books.pay(i2, "6000", "2025-02-10")          # C = 14,000: 360 - 160 = 200.00; 9 days late → -18 % capped -10 % = -20.00
    p3 = books.pay(i3, "20000", "2025-03-10")    # C = 34,000: 1,200 - 360 = 840.00; on time
    rep = org.rep_a.service(org.runtime)
    q1 = lines(rep, org.rep_a, "2025-Q1")["2025-Q1"]
    assert (q1["collected"], q1["commission"], q1["adjustment"], q1["clawback"], q1["total"]) == \
           ("34000.00", "1200.00", "-12.00", "0.00", "1188.00")
    assert [(line["basis"], line["commission"], line["days_early"], line["adjustment"], line["total"])
            for line in q1["lines"]] == [("8000.00", "160.00", 5, "8.00", "168.00"),
                                         ("6000.00", "200.00", -9, "-20.00", "180.00"),
                                         ("20000.00", "840.00", 0, "0.00", "840.00")]
    # Q2 starts a new accumulation: 5,000 x 2 % = 100.00
    books.pay(i4, "5000", "2025-04-05")          # 25 days early → capped +10 % = +10.00
    # a partial refund of p3 (4,000 of 20,000 = 20 %) claws back 168.00 in Q2
    books.pay(i3, "-4000", "2025-04-20", refund_of=p3["id"])
    # p1 refunded in full on 2025-04-25: -(160 + 8) = -168.00
    books.fin.update("payment", p1["id"], {"refunded": True, "refunded_on": "2025-04-25"})
    q2 = lines(rep, org.rep_a, "2025-Q2")["2025-Q2"]
    assert (q2["collected"], q2["commission"], q2["adjustment"], q2["clawback"], q2["total"]) == \
           ("5000.00", "100.00", "10.00", "-336.00", "-226.00")
    assert sorted(line["total"] for line in q2["lines"] if line["kind"] == "clawback") == ["-168.00", "-168.00"]
    # Q1 is untouched by later refunds; the instalments follow the receipts
    assert lines(rep, org.rep_a, "2025-Q1")["2025-Q1"]["total"] == "1188.00"
    assert books.fin.get("instalment", i1["id"])["status"] == "overdue"
    assert books.fin.get("instalment", i3["id"])["paid_amount"] == "16000.00"
    # whole tiers: switch the plan, recompute: 8,000 x 2 % = 160; 14,000 x 4 % = 560 → 400; 34,000 x 5 % = 1,700 → 1,140
    system.update("commission_plan", plan["id"], {"tier_mode": "whole"})
    support.run_action(org.runtime, org.fin, "commission_plan", plan["id"], "recompute")
    q1 = lines(rep, org.rep_a, "2025-Q1")["2025-Q1"]
    assert (q1["commission"], q1["adjustment"], q1["total"]) == ("1700.00", "-32.00", "1668.00")
    # other reps see nothing of it; the manager sees the team's
    assert lines(org.rep_b.service(org.runtime), org.rep_a) == {}
    assert lines(org.mgr.service(org.runtime), org.rep_a)["2025-Q1"]["total"] == "1668.00"


def test_on_delivery_partial_deliveries_and_returns(org):
    system = org.system
    plan = system.create("commission_plan", {"name": "Delivery", "mode": "on_delivery", "tier_mode": "whole",
                                             "period": "quarter"})
    system.create("commission_tier", {"plan": plan["id"], "from_value": "0", "to_value": "5000", "rate": "3"})
    system.create("commission_tier", {"plan": plan["id"], "from_value": "5000", "rate": "5"})
    system.create("quota", {"user": org.rep_b.id, "period": "2025-Q1", "amount": "50000",
                            "commission_plan": plan["id"]})
    books = Books(org, org.rep_b, "Deliver")
    order = system.create("order", {"contract": books.contract["id"], "status": "confirmed"})
    assert order["sales_rep"] == org.rep_b.id
    line1 = system.create("order_line", {"order": order["id"], "description": "A", "quantity": "10",
                                         "unit_price": "400"})
    line2 = system.create("order_line", {"order": order["id"], "description": "B", "quantity": "5",
                                         "unit_price": "300"})
    system.update("order", order["id"], {"status": "shipped"})
    system.update("order_line", line1["id"], {"delivered_qty": "10", "delivered_on": "2025-01-20"})
    system.update("order_line", line2["id"], {"delivered_qty": "2", "delivered_on": "2025-02-01"})
    rep = org.rep_b.service(org.runtime)
    # 4,000 (3 % = 120.00), then 600 more: 4,600 still 3 % = 138.00 → 18.00
    q1 = lines(rep, org.rep_b, "2025-Q1")["2025-Q1"]
    assert (q1["delivered"], q1["commission"]) == ("4600.00", "138.00")
    system.update("order_line", line2["id"], {"delivered_qty": "5", "delivered_on": "2025-02-15"})
    # the line now counts 1,500 on 02-15: 5,500 x 5 % = 275.00 → 155.00 on the crossing event
    q1 = lines(rep, org.rep_b, "2025-Q1")["2025-Q1"]
    assert (q1["delivered"], q1["commission"], q1["total"]) == ("5500.00", "275.00", "275.00")
    assert [ln["commission"] for ln in q1["lines"]] == ["120.00", "155.00"]
    assert system.get("order", order["id"])["status"] == "delivered"
    system.update("order", order["id"], {"status": "returned", "returned_on": "2025-03-01"})
    q1 = lines(rep, org.rep_b, "2025-Q1")["2025-Q1"]
    assert (q1["clawback"], q1["total"]) == ("-275.00", "0.00")


def test_on_collection_and_delivery_waits_for_delivery(org):
    system = org.system
    plan = system.create("commission_plan", {"name": "Both", "mode": "on_collection_and_delivery",
                                             "period": "month"})
    system.create("commission_tier", {"plan": plan["id"], "from_value": "0", "rate": "10"})
    system.create("quota", {"user": org.rep_c.id, "period": "2025-01", "amount": "1", "commission_plan": plan["id"]})
    books = Books(org, org.rep_c, "Both")
    order = system.create("order", {"contract": books.contract["id"], "status": "confirmed"})
    system.create("order_line", {"order": order["id"], "description": "X", "quantity": "1", "unit_price": "1000"})
    books.pay(books.instalment("2025-01-31", "1000"), "1000", "2025-01-10")
    rep = org.rep_c.service(org.runtime)
    month = lines(rep, org.rep_c, "2025-01")["2025-01"]
    assert (month["pending_basis"], month["total"], month["lines"][0]["status"]) == ("1000.00", "0.00", "pending")
    system.update("order", order["id"], {"status": "delivered"})
    month = lines(rep, org.rep_c, "2025-01")["2025-01"]
    assert (month["pending_basis"], month["collected"], month["total"]) == ("0.00", "1000.00", "100.00")


def test_on_target_pays_by_attainment(org):
    system = org.system
    plan = system.create("commission_plan", {"name": "Target", "mode": "on_target", "tier_mode": "marginal",
                                             "period": "quarter"})
    for low, high, rate in (("0", "80", "0"), ("80", "100", "3"), ("100", None, "6")):
        system.create("commission_tier", {"plan": plan["id"], "from_value": low, "to_value": high, "rate": rate})
    system.create("quota", {"user": org.rep_b.id, "period": "2025-Q2", "amount": "100000",
                            "commission_plan": plan["id"]})
    books = Books(org, org.rep_b, "Target")
    inst = books.instalment("2025-06-30", "200000")
    books.pay(inst, "60000", "2025-04-10")
    rep = org.rep_b.service(org.runtime)
    assert lines(rep, org.rep_b, "2025-Q2")["2025-Q2"]["total"] == "0.00"  # 60 % attained
    books.pay(inst, "50000", "2025-05-10")
    q2 = lines(rep, org.rep_b, "2025-Q2")["2025-Q2"]
    # 110 %: 20,000 x 3 % + 10,000 x 6 % = 1,200.00, one line for the period
    assert (q2["target_basis"], q2["commission"], q2["total"], len(q2["lines"])) == \
           ("110000.00", "1200.00", "1200.00", 1)
    assert "attainment 110.00%" in q2["lines"][0]["note"]
    assert Decimal(q2["lines"][0]["rate"]) == Decimal("1.0909")
