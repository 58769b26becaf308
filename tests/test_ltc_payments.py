"""L6: instalment status from receipts, refunds, the overdue sweep, aging buckets and the credit
rating (each figure worked out by hand)."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from metacrm.platform.reports import run_report
from metacrm.plugins.lead_to_cash.payments import aging_bucket, collection_state, credit_rating
from tests import test_ltc_support as support
from tests.test_ltc_support import D, days, sweep

ltc = support.ltc  # fixture
org = support.org  # fixture
AS_OF = date(2025, 6, 30)


def inst(due, amount="100", status=None, paid_on=None):
    return {"due_date": due, "amount": D(amount), "status": status, "paid_on": paid_on}


def pay(i, amount, received, refunded=False, refund_of=None):
    return {"id": f"p{i}", "amount": D(amount), "received_on": received, "refunded": refunded, "refund_of": refund_of}


def test_collection_state_from_receipts():
    due = date(2025, 6, 15)
    assert collection_state(inst(due), [], date(2025, 6, 1)) == \
           {"paid_amount": D("0.00"), "status": "open", "paid_on": None, "days_overdue": 0}
    assert collection_state(inst(due), [pay(1, "40", date(2025, 6, 1))], date(2025, 6, 10))["status"] == "partial"
    late = collection_state(inst(due), [pay(1, "40", date(2025, 6, 1))], AS_OF)
    assert (late["status"], late["paid_amount"], late["days_overdue"]) == ("overdue", D("40.00"), 15)
    paid = collection_state(inst(due), [pay(1, "40", date(2025, 6, 1)), pay(2, "60", date(2025, 6, 20))], AS_OF)
    assert (paid["status"], paid["paid_on"], paid["days_overdue"]) == ("paid", date(2025, 6, 20), 5)
    # a refunded receipt no longer counts, nor do partial refunds of it
    receipts = [pay(1, "100", date(2025, 6, 1), refunded=True), pay(2, "-30", date(2025, 6, 2), refund_of="p1"),
                pay(3, "50", date(2025, 6, 3))]
    assert collection_state(inst(due), receipts, date(2025, 6, 10))["paid_amount"] == D("50.00")
    # a partial refund after settling re-opens the instalment
    receipts = [pay(1, "100", date(2025, 6, 1)), pay(2, "-20", date(2025, 6, 5), refund_of="p1")]
    state = collection_state(inst(due), receipts, date(2025, 6, 10))
    assert (state["status"], state["paid_amount"], state["paid_on"]) == ("partial", D("80.00"), None)


def test_aging_buckets_are_days_past_due():
    assert [aging_bucket(date(2025, 6, 30) - (date(2025, 6, 30) - d), AS_OF) for d in (
        date(2025, 7, 1), AS_OF, date(2025, 6, 29), date(2025, 5, 31), date(2025, 5, 30), date(2025, 5, 1),
        date(2025, 4, 1), date(2025, 3, 31))] == \
        ["not_due", "not_due", "0-30", "0-30", "31-60", "31-60", "61-90", "90+"]


def test_credit_rating_formula():
    on_time = [inst(date(2025, m, 1), status="paid", paid_on=date(2025, m, 1)) for m in (1, 2, 3, 4)]
    assert credit_rating(on_time, AS_OF) == {"credit_rating": "A", "on_time_ratio": D("100.00"), "max_days_overdue": 0}
    # 3 of 4 on time (75 % → B), the late one settled 20 days late (≤ 30 → B)
    one_late = on_time[:3] + [inst(date(2025, 4, 1), status="paid", paid_on=date(2025, 4, 21))]
    assert credit_rating(one_late, AS_OF) == {"credit_rating": "B", "on_time_ratio": D("75.00"), "max_days_overdue": 20}
    # 2 of 4 on time (50 % → C); one paid 45 days late (C); one 10 days overdue
    mixed = on_time[:2] + [inst(date(2025, 3, 1), status="paid", paid_on=date(2025, 4, 15)),
                           inst(date(2025, 6, 20), status="overdue")]
    assert credit_rating(mixed, AS_OF) == {"credit_rating": "C", "on_time_ratio": D("50.00"), "max_days_overdue": 45}
    # the worse of the two grades: 80 % on time (B) but 95 days overdue (D)
    worst = on_time + [inst(date(2025, 3, 27), status="partial")]
    assert credit_rating(worst, AS_OF)["credit_rating"] == "D"
    # a lateness older than a year is forgiven; instalments not yet due do not count
    history = [inst(date(2024, m, 1), status="paid", paid_on=date(2024, m, 1)) for m in range(2, 12)]
    history.append(inst(date(2024, 1, 1), status="paid", paid_on=date(2024, 4, 10)))
    history.append(inst(date(2025, 9, 1), status="open"))
    assert credit_rating(history, AS_OF) == {"credit_rating": "A", "on_time_ratio": D("90.91"), "max_days_overdue": 0}
    assert credit_rating([inst(date(2025, 9, 1), status="open")], AS_OF) is None


def test_receipts_update_instalments_accounts_and_aging(org):
    runtime, system = org.runtime, org.system
    fin = org.fin.service(runtime)
    acme = system.create("account", {"name": "Acme Payments", "owner": org.rep_a.id})
    beta = system.create("account", {"name": "Beta Payments", "owner": org.rep_b.id})

    def plan_for(account, dues):
        contract = support.active_contract(system, {"name": account["name"], "account": account["id"],
                                                    "owner": account["owner"]})
        plan = fin.create("payment_plan", {"contract": contract["id"]})
        assert plan["account"] == account["id"] and plan["owner"] == account["owner"]
        return plan, [fin.create("instalment", {"payment_plan": plan["id"], "due_date": days(d).isoformat(),
                                                "amount": amount}) for d, amount in dues]

    # Acme: 1,000 due 45 days ago, 2,000 due 5 days ago, 3,000 due in 20 days
    plan_a, (a1, a2, a3) = plan_for(acme, [(-45, "1000"), (-5, "2000"), (20, "3000")])
    assert [i["status"] for i in (a1, a2, a3)] == ["overdue", "overdue", "open"]
    assert (a3["name"], a3["sequence"]) == (f"{plan_a['number']} #3", 3)
    # Beta: 500 due 100 days ago
    _, (b1,) = plan_for(beta, [(-100, "500")])
    assert system.get("account", acme["id"])["credit_rating"] == "D"  # nothing paid, 45 days overdue
    fin.create("payment", {"instalment": a1["id"], "amount": "1000", "received_on": days(-50).isoformat()})
    # a1 paid 5 days early; a2 still 5 days overdue: 1 of 2 on time (50 % → C), worst 5 days (B) → C
    account = system.get("account", acme["id"])
    assert (account["credit_rating"], account["on_time_ratio"], account["max_days_overdue"]) == ("C", "50.00", 5)
    p2 = fin.create("payment", {"instalment": a2["id"], "amount": "1200", "received_on": days(0).isoformat()})
    assert fin.get("instalment", a2["id"])["outstanding"] == "800.00"
    fin.create("payment", {"instalment": a2["id"], "amount": "800", "received_on": days(0).isoformat()})
    a2 = fin.get("instalment", a2["id"])
    assert (a2["status"], a2["paid_on"], a2["days_overdue"]) == ("paid", days(0).isoformat(), 5)
    # both settled, one 5 days late: 50 % (C), worst 5 (B) → C; then a prepayment of a3 on time → 2 of 3 = 66.67 % → C
    fin.create("payment", {"instalment": a3["id"], "amount": "3000", "received_on": days(0).isoformat()})
    account = system.get("account", acme["id"])
    assert (account["credit_rating"], account["on_time_ratio"]) == ("C", "66.67")
    plan = fin.get("payment_plan", plan_a["id"])
    assert (plan["total_amount"], plan["paid_amount"], plan["outstanding"], plan["instalment_count"]) == \
           ("6000.00", "6000.00", "0.00", 3)
    # a full refund re-opens a2 (overdue again)
    fin.update("payment", p2["id"], {"refunded": True})
    a2 = fin.get("instalment", a2["id"])
    assert (a2["status"], a2["paid_amount"]) == ("overdue", "800.00")
    assert fin.get("payment", p2["id"])["refunded_on"] == days(0).isoformat()

    aging = run_report(fin, "aging", {})
    # open: a2 1,200 (5 days → 0-30), b1 500 (100 days → 90+)
    assert aging["buckets"] == {"not_due": "0.00", "0-30": "1200.00", "31-60": "0.00", "61-90": "0.00", "90+": "500.00"}
    assert (aging["overdue"], aging["total"]) == ("1700.00", "1700.00")
    assert [(a["name"], a["overdue"]) for a in aging["accounts"]] == [("Acme Payments", "1200.00"),
                                                                       ("Beta Payments", "500.00")]
    later = run_report(fin, "aging", {"as_of": days(40).isoformat()})
    assert later["buckets"]["31-60"] == "1200.00" and later["buckets"]["90+"] == "500.00"
    # reps see their own receivables only
    assert run_report(org.rep_b.service(runtime), "aging", {})["total"] == "500.00"
    # validation: zero, refunds without their payment
    for bad in ({"amount": "0"}, {"amount": "-10"}, {"amount": "5", "refund_of": p2["id"]}):
        try:
            fin.create("payment", {"instalment": b1["id"], **bad})
        except Exception as exc:  # noqa: BLE001
            assert getattr(exc, "status", None) == 400, bad
        else:
            raise AssertionError(bad)


def test_overdue_sweep_marks_past_due_instalments(org):
    runtime, system = org.runtime, org.system
    account = system.create("account", {"name": "Sweep Co", "owner": org.rep_a.id})
    contract = support.active_contract(system, {"name": "S", "account": account["id"], "owner": org.rep_a.id})
    plan = system.create("payment_plan", {"contract": contract["id"]})
    due = system.create("instalment", {"payment_plan": plan["id"], "due_date": days(3).isoformat(), "amount": "900"})
    assert due["status"] == "open"
    # time passes: the due date is now 40 days ago (set in the table, as a calendar would)
    table = runtime.compiled().tables["instalment"]
    with runtime.transaction() as tx:
        tx.conn.execute(sa.update(table).where(table.c.id == due["id"]).values(due_date=days(-40)))
    assert "1 instalments became overdue" in sweep(runtime, "overdue_instalments")
    swept = system.get("instalment", due["id"])
    assert (swept["status"], swept["days_overdue"]) == ("overdue", 40)
    assert system.get("account", account["id"])["credit_rating"] == "D"
    assert "0 instalments became overdue, 0 moved" in sweep(runtime, "overdue_instalments")
