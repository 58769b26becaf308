"""The demo company's money: commission plans and quotas, orders (partial deliveries, one
blocked by its credit limit), payment plans with paid, late, partial and overdue
instalments."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from ....platform.errors import CrmError
from ....platform.reports import period_key
from .data import BUS, PRODUCTS
from .seeder import Seeder


def commission_setup(demo: Seeder) -> None:
    s = demo.system
    standard = s.create("commission_plan", {
        "name": "Standard (on collection)", "mode": "on_collection", "tier_mode": "marginal", "period": "quarter",
        "is_default": True, "early_bonus_pct_per_day": "0.1", "late_penalty_pct_per_day": "0.2",
        "max_adjustment_pct": "20"})
    for low, high, rate in (("0", "300000", "3"), ("300000", "800000", "4"), ("800000", None, "5")):
        s.create("commission_tier", {"plan": standard["id"], "from_value": low, "to_value": high, "rate": rate})
    services = s.create("commission_plan", {"name": "IT services (on delivery)", "mode": "on_delivery",
                                            "tier_mode": "whole", "period": "quarter"})
    for low, high, rate in (("0", "500000", "4"), ("500000", None, "6")):
        s.create("commission_tier", {"plan": services["id"], "from_value": low, "to_value": high, "rate": rate})
    solutions = s.create("commission_plan", {"name": "Solutions (collection + delivery)",
                                             "mode": "on_collection_and_delivery", "tier_mode": "marginal",
                                             "period": "quarter", "late_penalty_pct_per_day": "0.1",
                                             "max_adjustment_pct": "10"})
    s.create("commission_tier", {"plan": solutions["id"], "from_value": "0", "rate": "4.5"})
    target = s.create("commission_plan", {"name": "Target bonus (on target completion)", "mode": "on_target",
                                          "tier_mode": "marginal", "period": "quarter", "active": True})
    for low, high, rate in (("0", "80", "0"), ("80", "100", "3"), ("100", None, "6")):
        s.create("commission_tier", {"plan": target["id"], "from_value": low, "to_value": high, "rate": rate})
    plan_for = {"it_services": services["id"], "solutions": solutions["id"]}
    quarters = sorted({period_key(demo.day(offset), "quarter") for offset in (-270, -180, -90, 0, 90)})
    for code, _, _ in BUS:
        for rep in demo.reps[code]:
            for quarter in quarters:
                values = {"user": demo.uid(rep), "period": quarter,
                          "amount": str(demo.rng.choice([1500000, 2000000, 2500000, 3000000]))}
                if code in plan_for:
                    values["commission_plan"] = plan_for[code]
                s.create("quota", values)
                demo.count("quotas")
    demo.count("commission_plans", 4)


def orders(demo: Seeder) -> None:
    s = demo.system
    by_line = {}
    for code, _, line, price in PRODUCTS:
        by_line.setdefault(line, []).append((code, Decimal(price)))
    for contract, opp in demo.active_contracts[: demo.n(18)]:
        amount = Decimal(contract["amount"] or 0)
        completed = contract["id"] in demo.to_complete
        status = "delivered" if completed else demo.rng.choice(["confirmed", "processing", "shipped", "delivered",
                                                              "shipped"])
        order = s.create("order", {"contract": contract["id"], "owner": contract["owner"], "status": "created",
                                   "order_date": contract["signed_on"]})
        products = by_line.get(opp.get("product_line")) or by_line["hardware"]
        code, price = demo.rng.choice(products)
        quantity = max(1, int(amount / price)) if price else 1
        line = s.create("order_line", {"order": order["id"], "product": demo.products[code]["id"],
                                       "quantity": str(quantity), "unit_price": str(price)})
        try:
            s.update("order", order["id"], {"status": status if status != "delivered" else "shipped"})
            if status == "delivered":
                s.update("order", order["id"], {"status": "delivered"})
            elif status == "shipped" and quantity > 1 and demo.rng.random() < 0.5:
                s.update("order_line", line["id"], {"delivered_qty": str(quantity // 2)})  # a partial delivery
                demo.count("partial_deliveries")
        except CrmError:  # e.g. over the credit limit: left created, finance can release it
            demo.count("orders_blocked_by_credit")
        demo.count("orders")
    for contract_id in demo.to_complete:
        s.update("contract", contract_id, {"status": "completed"})


def credit_block_example(demo: Seeder) -> None:
    """One order that the account's credit limit stops, waiting for finance to release it."""
    s = demo.system
    active = [c for c, _ in demo.active_contracts if c["id"] not in demo.to_complete]
    if not active:
        return
    contract = active[0]
    s.update("account", contract["account"], {"credit_limit": "100000"})
    order = s.create("order", {"contract": contract["id"], "owner": contract["owner"],
                               "notes": "Over the credit limit: confirm needs finance's release."})
    s.create("order_line", {"order": order["id"], "product": demo.products["STO-A800"]["id"], "quantity": "2"})
    try:
        s.update("order", order["id"], {"status": "confirmed"})
    except CrmError:
        demo.count("orders_blocked_by_credit")
    demo.count("orders")

def payments(demo: Seeder) -> None:
    s = demo.system
    overdue = 0
    for contract, _ in demo.active_contracts[: demo.n(18)]:
        amount = Decimal(contract["amount"] or 0)
        if amount <= 0:
            continue
        plan = s.create("payment_plan", {"contract": contract["id"]})
        demo.count("payment_plans")
        signed = date.fromisoformat(contract["signed_on"])
        shares = [Decimal("0.3"), Decimal("0.4"), Decimal("0.3")]
        for seq, share in enumerate(shares, start=1):
            due = signed + timedelta(days=15 + 60 * (seq - 1))
            value = (amount * share).quantize(Decimal("0.01"))
            if seq == len(shares):  # the last instalment takes the rounding: the plan adds up
                value = amount - sum((amount * x).quantize(Decimal("0.01")) for x in shares[:-1])
            inst = s.create("instalment", {"payment_plan": plan["id"], "due_date": due.isoformat(),
                                           "amount": str(value), "sequence": seq,
                                           "method": demo.rng.choice(["bank_transfer", "bank_transfer",
                                                                      "acceptance_bill"])})
            demo.count("instalments")
            if due > demo.today + timedelta(days=5) and contract["status"] != "completed":
                continue
            behaviour = demo.rng.choices(["early", "on_time", "late", "partial", "unpaid"],
                                         [18, 35, 20, 12, 15])[0]
            if contract["status"] == "completed":
                behaviour = demo.rng.choice(["early", "on_time", "late"])
            if behaviour == "unpaid":
                overdue += due < demo.today
                continue
            offset = {"early": -demo.rng.randint(1, 10), "on_time": 0,
                      "late": demo.rng.randint(3, 75), "partial": demo.rng.randint(0, 20)}[behaviour]
            received = min(due + timedelta(days=offset), demo.today)
            paid = value if behaviour != "partial" else (value * Decimal("0.5")).quantize(Decimal("0.01"))
            s.create("payment", {"instalment": inst["id"], "amount": str(paid), "received_on": received.isoformat(),
                                 "method": "bank_transfer", "reference": f"BK{demo.rng.randint(10**7, 10**8)}"})
            demo.count("payments")
            overdue += behaviour == "partial" and due < demo.today
        s.update("payment_plan", plan["id"], {"status": "active"})
    demo.count("overdue_instalments", overdue)


def forecast_adjustments(demo: Seeder) -> None:
    """Each unit manager's call on their first rep's current quarter (the Forecast page shows it
    beside the rep's own commit): 90 % of the rep's commit. Draws nothing from the random."""
    from ..analytics.forecast import forecast

    s = demo.system
    quarter = period_key(demo.day(0), "quarter")
    result = forecast(s, {"period": "quarter", "from": quarter, "to": quarter})
    commits = {r["user"]: r["own"]["commit"] for r in result["rows"] if r["period"] == quarter}
    for code, _, _ in BUS:
        rep, manager = demo.uid(demo.reps[code][0]), demo.uid(f"{code}.mgr")
        commit = Decimal(commits.get(rep) or "0")
        if not commit:
            continue
        s.create("forecast_adjustment", {"owner": manager, "rep": rep, "period": quarter,
                                         "commit": str((commit * Decimal("0.9")).quantize(Decimal(1))),
                                         "note": "One deal may slip to next quarter."})
        demo.count("forecast_adjustments")
