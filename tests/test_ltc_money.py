"""Money rules that hold on every path: a receipt is recorded once (the bank reference is its
natural key per contract, and its commission is earned once), outstanding never goes negative
(overpayment is refused with the amount outstanding), an active payment plan's instalments sum
to the contract amount."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa

from metacrm.platform.errors import CrmError
from tests import test_ltc_support as support
from tests.conftest import make_user
from tests.test_ltc_flow import Api as FlowApi

ltc = support.ltc  # fixture
org = support.org  # fixture


class Api(FlowApi):
    def call(self, method, path, expect=200, **kw):
        body = super().call(method, path, expect, **kw)
        return body["error"] if expect >= 400 and isinstance(body, dict) and "error" in body else body


def books(org, amounts=("600", "400"), contract_amount="1000", name="Money Co"):
    system = org.system
    account = system.create("account", {"name": name, "owner": org.rep_a.id})
    contract = system.create("contract", {"name": name, "account": account["id"], "amount": contract_amount,
                                          "owner": org.rep_a.id})
    plan = system.create("payment_plan", {"contract": contract["id"]})
    instalments = [system.create("instalment", {"payment_plan": plan["id"], "due_date": support.days(30 + i)
                                                .isoformat(), "amount": a}) for i, a in enumerate(amounts)]
    return contract, plan, instalments


def commission_lines(org, payment_id: str) -> list[dict]:
    table = org.runtime.compiled().tables["commission_line"]
    with org.runtime.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(table.c.id, table.c.line_key).where(
            table.c.payment == payment_id, table.c.deleted_at.is_(None)))]


def test_a_receipt_is_recorded_once_by_its_bank_reference(org, client):
    system = org.system
    plan = system.create("commission_plan", {"name": "Std", "mode": "on_collection", "tier_mode": "whole",
                                             "period": "month", "is_default": True})
    system.create("commission_tier", {"plan": plan["id"], "from_value": "0", "rate": "2"})
    fin = Api(client, make_user(org.runtime, client, "money_fin", ["finance"]).headers)
    contract, _, (i1, i2) = books(org)
    today = support.days(0).isoformat()
    first = fin.post("/records/payment", {"instalment": i1["id"], "amount": "300", "received_on": today,
                                          "reference": "BK 0001"})
    assert first["reference_key"] == f"{contract['id']}:bk0001"
    assert len(commission_lines(org, first["id"])) == 1
    # the same transfer again (spacing and case differ), even against the other instalment: 409, nothing saved
    again = fin.post("/records/payment", {"instalment": i2["id"], "amount": "300", "received_on": today,
                                          "reference": "bk0001 "}, expect=409)
    assert (again["code"], again["existing_id"], again["existing_number"]) == \
           ("duplicate_payment", first["id"], first["number"])
    assert list(again["fields"]) == ["reference"]
    assert fin.get(f"/records/instalment/{i2['id']}")["paid_amount"] == "0.00"
    # editing another receipt onto a used reference is refused the same way
    second = fin.post("/records/payment", {"instalment": i2["id"], "amount": "100", "received_on": today,
                                           "reference": "BK0002"})
    fin.patch(f"/records/payment/{second['id']}", {"reference": "BK0001"}, expect=409)
    # the same reference on another contract is another transfer
    _, _, (o1, _) = books(org, name="Other Co")
    fin.post("/records/payment", {"instalment": o1["id"], "amount": "50", "received_on": today,
                                  "reference": "BK0001"})
    # import: a second row with a used reference is reported with its row number and not saved
    report = fin.call("post", "/records/payment/import", 200, json=[
        {"instalment": i1["id"], "amount": "10", "received_on": today, "reference": "BK0003"},
        {"instalment": i1["id"], "amount": "10", "received_on": today, "reference": "BK0001"},
    ])
    assert [(r["row"], r["status"]) for r in report["rows"]] == [(1, "created"), (2, "error")]
    assert fin.get(f"/records/instalment/{i1['id']}")["paid_amount"] == "310.00"
    # commission is earned once per payment: recomputing changes nothing, and the database
    # refuses a second line for the same rep and payment
    support.run_action(org.runtime, org.fin, "commission_plan", plan["id"], "recompute")
    support.run_action(org.runtime, org.fin, "commission_plan", plan["id"], "recompute")
    (line,) = commission_lines(org, first["id"])
    assert line["line_key"] == f"{org.rep_a.id}|payment:{first['id']}"
    try:
        system.create("commission_line", {"user": org.rep_a.id, "period": today[:7], "kind": "collection",
                                          "source_key": f"payment:{first['id']}", "line_key": line["line_key"]})
    except CrmError as exc:
        assert exc.status == 400 and "line_key" in exc.fields, exc.fields
    else:
        raise AssertionError("a second commission line for one payment was saved")
    assert len(commission_lines(org, first["id"])) == 1


def test_overpayment_is_refused_and_outstanding_never_goes_negative(org, client):
    fin = Api(client, make_user(org.runtime, client, "money_fin2", ["finance"]).headers)
    _, plan, (i1, _) = books(org)
    today = support.days(0).isoformat()
    p1 = fin.post("/records/payment", {"instalment": i1["id"], "amount": "450", "received_on": today})
    over = fin.post("/records/payment", {"instalment": i1["id"], "amount": "151", "received_on": today}, expect=422)
    assert (over["code"], over["outstanding"], list(over["fields"])) == ("overpayment", "150.00", ["amount"])
    assert "150.00" in over["message"]
    # raising a receipt past the amount due
    fin.patch(f"/records/payment/{p1['id']}", {"amount": "601"}, expect=422)
    p2 = fin.post("/records/payment", {"instalment": i1["id"], "amount": "150", "received_on": today})
    assert fin.get(f"/records/instalment/{i1['id']}")["outstanding"] == "0.00"
    # a refund re-opens 100; deleting the refund once the 100 is collected again would overpay
    refund = fin.post("/records/payment", {"instalment": i1["id"], "amount": "-100", "refund_of": p1["id"],
                                           "received_on": today})
    fin.post("/records/payment", {"instalment": i1["id"], "amount": "100", "received_on": today})
    gone = fin.call("delete", f"/records/payment/{refund['id']}", 422)
    assert gone["code"] == "overpayment"
    assert fin.get(f"/records/payment/{refund['id']}")["amount"] == "-100.00"
    # lowering the instalment below what is collected
    lowered = fin.patch(f"/records/instalment/{i1['id']}", {"amount": "500"}, expect=422)
    assert lowered["code"] == "overpayment"
    # un-flagging a full refund after the money was collected again
    fin.patch(f"/records/payment/{p2['id']}", {"refunded": True})
    fin.post("/records/payment", {"instalment": i1["id"], "amount": "150", "received_on": today})
    fin.patch(f"/records/payment/{p2['id']}", {"refunded": False}, expect=422)
    state = fin.get(f"/records/instalment/{i1['id']}")
    assert (state["paid_amount"], state["outstanding"], state["status"]) == ("600.00", "0.00", "paid")
    assert fin.get(f"/records/payment_plan/{plan['id']}")["outstanding"] == "400.00"
    # import: the overpaying row is an error naming its row, the others are saved
    report = fin.call("post", "/records/payment/import", 200, json=[
        {"instalment": i1["id"], "amount": "1", "received_on": today},
    ])
    assert report["rows"][0]["status"] == "error" and report["rows"][0]["row"] == 1


def test_an_active_plan_sums_to_its_contract_amount(org, client):
    fin = Api(client, make_user(org.runtime, client, "money_fin3", ["finance"]).headers)
    _, plan, (i1, i2) = books(org, amounts=("600", "300"))
    assert plan["status"] == "draft"
    short = fin.patch(f"/records/payment_plan/{plan['id']}", {"status": "active"}, expect=422)
    assert (short["code"], short["difference"], short["instalment_total"], short["contract_amount"]) == \
           ("plan_total_mismatch", "100.00", "900.00", "1000.00")
    assert "100.00 short of the contract amount 1000.00" in short["message"]
    assert fin.get(f"/records/payment_plan/{plan['id']}")["status"] == "draft"
    i3 = fin.post("/records/instalment", {"payment_plan": plan["id"], "due_date": support.days(90).isoformat(),
                                          "amount": "100"})
    assert fin.patch(f"/records/payment_plan/{plan['id']}", {"status": "active"})["status"] == "active"
    # while active, every change of the total is refused with the difference named
    changed = fin.patch(f"/records/instalment/{i2['id']}", {"amount": "350"}, expect=422)
    assert (changed["code"], changed["difference"]) == ("plan_total_mismatch", "-50.00")
    fin.post("/records/instalment", {"payment_plan": plan["id"], "due_date": support.days(99).isoformat(),
                                     "amount": "1"}, expect=422)
    fin.call("delete", f"/records/instalment/{i3['id']}", 422)
    # a change that keeps the total is fine; back to draft to restructure
    fin.patch(f"/records/instalment/{i1['id']}", {"due_date": support.days(40).isoformat()})
    fin.patch(f"/records/payment_plan/{plan['id']}", {"status": "draft"})
    fin.patch(f"/records/instalment/{i2['id']}", {"amount": "350"})
    over = fin.patch(f"/records/payment_plan/{plan['id']}", {"status": "active"}, expect=422)
    assert "50.00 over the contract amount" in over["message"]
    # created active in one go: an empty plan does not add up
    contract, _, _ = books(org, amounts=(), name="Empty Co")
    fin.post("/records/payment_plan", {"contract": contract["id"], "status": "active"}, expect=422)


def test_campaign_costs_roll_up_and_negative_roi_stays_negative(org, client, admin_headers):
    from metacrm.platform.reports import run_report

    api = Api(client, admin_headers)
    plan = api.post("/records/campaign", {"name": "Plan 2026", "record_type": "marketing_plan", "budget": "90000"})
    expo = api.post("/records/campaign", {"name": "Expo", "parent": plan["id"], "budget": "20000",
                                          "expected_revenue": "100000", "other_cost": "4000"})
    web = api.post("/records/campaign", {"name": "Web ads", "parent": plan["id"], "budget": "10000",
                                         "expected_revenue": "30000"})
    assert (expo["task_cost"], expo["actual_cost"], expo["roi"]) == ("0.00", "4000.00", "-100.00")
    assert web["roi"] is None  # nothing spent: no ROI, not 0 %
    # task costs roll up into the campaign's actual cost, and on into the plan's totals
    t1 = api.post("/records/campaign_task", {"name": "Booth", "campaign": expo["id"], "cost": "5000"})
    api.post("/records/campaign_task", {"name": "Banners", "campaign": web["id"], "cost": "1000"})
    expo = api.get(f"/records/campaign/{expo['id']}")
    assert (expo["task_cost"], expo["actual_cost"]) == ("5000.00", "9000.00")
    totals = api.get(f"/records/campaign/{plan['id']}")
    assert (totals["plan_budget"], totals["plan_cost"], totals["plan_expected_revenue"]) == \
           ("30000.00", "10000.00", "130000.00")
    api.patch(f"/records/campaign_task/{t1['id']}", {"cost": "3000"})
    assert api.get(f"/records/campaign/{plan['id']}")["plan_cost"] == "8000.00"
    api.call("delete", f"/records/campaign_task/{t1['id']}", 204)
    assert api.get(f"/records/campaign/{expo['id']}")["actual_cost"] == "4000.00"
    assert api.get(f"/records/campaign/{plan['id']}")["plan_cost"] == "5000.00"
    # a campaign moved out of the plan leaves its totals
    api.patch(f"/records/campaign/{web['id']}", {"parent": None})
    assert api.get(f"/records/campaign/{plan['id']}")["plan_budget"] == "20000.00"
    # a won deal of 3,000 against 4,000 spent: ROI -25 %, on the record and in the report
    account = org.system.create("account", {"name": "ROI Co", "owner": org.rep_a.id})
    opp = org.system.create("opportunity", {"name": "ROI deal", "account": account["id"], "amount": "3000",
                                            "campaign": expo["id"], "owner": org.rep_a.id,
                                            "close_date": support.days(10).isoformat()})
    org.system.update("opportunity", opp["id"], {"stage": "won", "win_loss_reason": "price"})
    expo = api.get(f"/records/campaign/{expo['id']}")
    assert (expo["won_revenue"], expo["roi"]) == ("3000.00", "-25.00")
    report = run_report(org.system, "campaign_roi", {})
    (row,) = [c for c in report["campaigns"] if c["campaign"] == expo["id"]]
    assert (row["actual_cost"], row["won_revenue"], row["roi"]) == ("4000.00", "3000.00", "-25.00")
    # the actual cost is computed: typing it is refused
    typed = api.patch(f"/records/campaign/{expo['id']}", {"actual_cost": "1"}, expect=400)
    assert "actual_cost" in typed["fields"]


def test_lead_score_is_computed_from_metadata_decays_and_marks_key_leads(org, client, admin_headers):
    from metacrm.plugins.lead_to_cash.scoring import compute, scoring_doc

    api = Api(client, admin_headers)
    rep = Api(client, make_user(org.runtime, client, "score_rep", ["sales_rep"]).headers)
    doc = scoring_doc(org.runtime.compiled().registry)
    assert (doc["name"], doc["threshold"]) == ("lead_score", 70)
    # referral 25 + finance 20 + east 10 + recency 20 (touched today) = 75 ≥ 70: a key lead
    lead = api.post("/records/lead", {"company": "Score Co", "email": "s@score.example", "source": "referral",
                                      "industry": "finance", "region": "east", "owner": org.rep_a.id})
    assert (lead["score"], lead["is_key_lead"]) == (75, True)
    # typed scores are refused for a rep (read-only) and ignored for an admin (computed)
    mine = rep.post("/records/lead", {"company": "Typed Co", "email": "t@typed.example", "source": "web"})
    refused = rep.patch(f"/records/lead/{mine['id']}", {"score": 99}, expect=400)
    assert "score" in refused["fields"]
    assert api.patch(f"/records/lead/{lead['id']}", {"score": 5})["score"] == 75
    # a value worth less lowers it below the threshold: 5 + 20 + 10 + 20 = 55
    cooler = api.patch(f"/records/lead/{lead['id']}", {"source": "web_ad"})
    assert (cooler["score"], cooler["is_key_lead"]) == (55, False)
    # follow-ups add 5 each, at most 20: three make 70, a key lead again
    for i in range(3):
        api.post("/records/activity", {"subject": f"Call {i}", "type": "call", "related_to": lead["id"]})
    assert (api.get(f"/records/lead/{lead['id']}")["score"], api.get(f"/records/lead/{lead['id']}")["is_key_lead"]) \
        == (70, True)
    for i in range(3):
        api.post("/records/activity", {"subject": f"Visit {i}", "type": "call", "related_to": lead["id"]})
    assert api.get(f"/records/lead/{lead['id']}")["score"] == 75  # 20 points of follow-ups at most
    # recency halves every 14 days: 28 days later 20 → 5; the sweep re-scores and clears the flag
    table = org.runtime.compiled().tables["lead"]
    with org.runtime.transaction() as tx:
        past = support.days(-28)
        tx.conn.execute(sa.update(table).where(table.c.id == lead["id"]).values(
            last_activity_at=datetime(past.year, past.month, past.day, 9, tzinfo=UTC)))
    assert "re-scored" in support.sweep(org.runtime, "rescore_key_leads")
    swept = api.get(f"/records/lead/{lead['id']}")
    assert (swept["score"], swept["is_key_lead"]) == (60, False)
    assert "0 re-scored" in support.sweep(org.runtime, "rescore_key_leads")  # idempotent
    # the formula itself: clamped to 0 .. max_score, unknown values score 0
    record = {"source": "nope", "industry": None, "created_at": support.days(-14)}
    assert compute(doc, record, 0, support.days(0)) == {"score": 10, "parts": {
        "source": 0, "industry": 0, "region": 0, "activity": 0, "recency": 10}}
    assert compute(dict(doc, max_score=30), {"source": "referral", "industry": "finance"}, 9,
                   support.days(0))["score"] == 30


def test_a_lead_scoring_document_is_validated(ltc, client, admin_headers):
    bad = {"kind": "lead_scoring", "name": "broken", "object": "lead", "score_field": "company",
           "criteria": [{"field": "source", "points": {"carrier_pigeon": 5}}],
           "activity": {"object": "activity", "via": "subject", "points_each": 1}}
    answer = client.put("/api/v1/meta/lead_scoring/broken?dry_run=1", json=bad, headers=admin_headers)
    body = answer.get_json()
    assert answer.status_code == 400, body
    assert {"/score_field", "/criteria/0/points/carrier_pigeon", "/activity/via"} <= \
        {issue["path"] for issue in body["error"]["issues"]}, body


def test_deliveries_and_returns_are_batches_that_never_exceed_the_order(org, client):
    rep_user = make_user(org.runtime, client, "ship_rep", ["sales_rep"])
    rep = Api(client, rep_user.headers)
    account = org.system.create("account", {"name": "Ship Co", "owner": rep_user.id})
    contract = support.active_contract(org.system, {"name": "Ship", "account": account["id"], "amount": "1200",
                                                     "owner": rep_user.id})
    order = rep.post("/records/order", {"account": account["id"], "contract": contract["id"]})
    rack = rep.post("/records/order_line", {"order": order["id"], "description": "Rack", "quantity": "10",
                                            "unit_price": "100"})
    disk = rep.post("/records/order_line", {"order": order["id"], "description": "Disk", "quantity": "4",
                                            "unit_price": "50"})
    # an unconfirmed order is not delivered
    early = rep.post("/records/delivery", {"order": order["id"]}, expect=400)
    assert early["code"] == "order_not_confirmed"
    rep.patch(f"/records/order/{order['id']}", {"status": "confirmed"})
    first = rep.post("/records/delivery", {"order": order["id"], "delivered_on": support.days(-2).isoformat()})
    assert first["kind"] == "delivery" and first["number"].startswith("DL-")
    rep.post("/records/delivery_line", {"delivery": first["id"], "order_line": rack["id"], "quantity": "6"})
    too_many = rep.post("/records/delivery_line", {"delivery": first["id"], "order_line": rack["id"],
                                                   "quantity": "5"}, expect=422)
    assert (too_many["code"], too_many["available"], list(too_many["fields"])) == \
           ("quantity_exceeds", "4.00", ["quantity"])
    assert "Only 4.00 of Rack is left to deliver" in too_many["message"]
    line = rep.get(f"/records/order_line/{rack['id']}")
    assert (line["delivered_qty"], line["delivered_on"]) == ("6.00", support.days(-2).isoformat())
    state = rep.get(f"/records/order/{order['id']}")
    assert (state["delivery_status"], state["delivered_amount"], state["status"]) == ("partial", "600.00", "confirmed")
    # a second batch delivers the rest: the order is delivered
    second = rep.post("/records/delivery", {"order": order["id"]})
    rep.post("/records/delivery_line", {"delivery": second["id"], "order_line": rack["id"], "quantity": "4"})
    d2 = rep.post("/records/delivery_line", {"delivery": second["id"], "order_line": disk["id"], "quantity": "4"})
    state = rep.get(f"/records/order/{order['id']}")
    assert (state["delivery_status"], state["status"], state["delivered_amount"]) == ("delivered", "delivered", "1200.00")
    # a delivered quantity is not edited, and a line of another order is refused
    fixed = rep.patch(f"/records/delivery_line/{d2['id']}", {"quantity": "3"}, expect=409)
    assert fixed["code"] == "delivery_line_fixed"
    other = rep.post("/records/order", {"account": account["id"]})
    stray = rep.post("/records/order_line", {"order": other["id"], "description": "Stray", "quantity": "1"})
    rep.post("/records/delivery_line", {"delivery": second["id"], "order_line": stray["id"], "quantity": "1"},
             expect=400)
    # returns per line, never more than delivered
    back = rep.post("/records/delivery", {"order": order["id"], "kind": "return"})
    rep.post("/records/delivery_line", {"delivery": back["id"], "order_line": disk["id"], "quantity": "3"})
    over = rep.post("/records/delivery_line", {"delivery": back["id"], "order_line": disk["id"], "quantity": "2"},
                    expect=422)
    assert over["available"] == "1.00" and "returnable" in over["message"]
    line = rep.get(f"/records/order_line/{disk['id']}")
    assert (line["returned_qty"], line["returned_amount"]) == ("3.00", "150.00")
    assert rep.get(f"/records/order/{order['id']}")["returned_amount"] == "150.00"
    # deleting a delivery line while its goods are counted as returned would make returned > delivered
    refused = rep.call("delete", f"/records/delivery_line/{d2['id']}", 422)
    assert refused["code"] == "quantity_exceeds"
    # typing a delivered quantity past the order is refused too (the line's own rule)
    typed = rep.patch(f"/records/order_line/{disk['id']}", {"quantity": "2"}, expect=400)
    assert "delivered_qty" in typed["fields"]
    # deleting the return batch gives the quantity back
    rep.call("delete", f"/records/delivery/{back['id']}", 204)
    assert rep.get(f"/records/order_line/{disk['id']}")["returned_qty"] == "0.00"


def test_a_partial_return_claws_back_its_share_of_the_commission_once(org):
    """On a delivery plan, each return batch takes back returned / delivered of its line's
    commission, in the return's period; a recompute replays nothing twice; deleting the batch
    gives the commission back, restoring it takes it again; a whole-order return takes the rest."""
    from metacrm.platform.reports import run_report

    system, rep = org.system, org.rep_b
    plan = system.create("commission_plan", {"name": "On delivery", "mode": "on_delivery", "tier_mode": "whole",
                                             "period": "quarter", "is_default": True})
    system.create("commission_tier", {"plan": plan["id"], "from_value": "0", "rate": "5"})
    account = system.create("account", {"name": "Return Co", "owner": rep.id})
    contract = support.active_contract(system, {"name": "Return", "account": account["id"], "amount": "1200",
                                                "owner": rep.id})
    order = system.create("order", {"contract": contract["id"], "status": "confirmed"})
    rack = system.create("order_line", {"order": order["id"], "description": "Rack", "quantity": "10",
                                        "unit_price": "100"})
    disk = system.create("order_line", {"order": order["id"], "description": "Disk", "quantity": "4",
                                        "unit_price": "50"})

    def batch(kind, day, *items):
        made = system.create("delivery", {"order": order["id"], "kind": kind, "delivered_on": day})
        for line, quantity in items:
            system.create("delivery_line", {"delivery": made["id"], "order_line": line["id"], "quantity": quantity})
        return made

    def statement(period):
        rows = run_report(rep.service(org.runtime), "commission_statement", {"user": rep.id, "period": period})["rows"]
        return rows[0] if rows else {"commission": "0.00", "clawback": "0.00", "total": "0.00", "lines": []}

    def clawbacks():
        table = org.runtime.compiled().tables["commission_line"]
        with org.runtime.engine.connect() as conn:
            return sorted((r.source_key, str(r.total_amount), r.period) for r in conn.execute(
                sa.select(table.c.source_key, table.c.total_amount, table.c.period).where(
                    table.c.kind == "clawback", table.c.deleted_at.is_(None))))

    batch("delivery", "2025-01-20", (rack, "10"), (disk, "4"))  # 1,200 delivered x 5 % = 50.00 + 10.00
    assert (statement("2025-Q1")["commission"], statement("2025-Q1")["total"]) == ("60.00", "60.00")
    back = batch("return", "2025-02-10", (rack, "3"))  # 3 of 10 racks: -15.00, in Q1
    q1 = statement("2025-Q1")
    assert (q1["commission"], q1["clawback"], q1["total"]) == ("60.00", "-15.00", "45.00")
    claw = [line for line in q1["lines"] if line["kind"] == "clawback"]
    assert len(claw) == 1 and claw[0]["order"] == order["id"] and claw[0]["basis"] == "-300.00"
    assert "3.00 of Rack returned" in claw[0]["note"] and back["number"] in claw[0]["note"]
    batch("return", "2025-04-05", (disk, "1"))  # 1 of 4 disks: -2.50, in the return's quarter
    assert (statement("2025-Q2")["clawback"], statement("2025-Q2")["total"]) == ("-2.50", "-2.50")
    assert statement("2025-Q1")["total"] == "45.00"
    # a replay (the plan's recompute, twice) takes nothing back twice
    before = clawbacks()
    for _ in range(2):
        support.run_action(org.runtime, system, "commission_plan", plan["id"], "recompute")
    assert clawbacks() == before and len(before) == 2
    # deleting the return batch gives its commission back; restoring it takes it again
    system.delete("delivery", back["id"])
    assert system.get("order_line", rack["id"])["returned_qty"] == "0.00"
    assert (statement("2025-Q1")["clawback"], statement("2025-Q1")["total"]) == ("0.00", "60.00")
    system.restore("delivery", back["id"])
    assert (statement("2025-Q1")["clawback"], statement("2025-Q1")["total"]) == ("-15.00", "45.00")
    # the whole order back: only what the return batches have not taken (7/10 racks, 3/4 disks)
    system.update("order", order["id"], {"status": "returned", "returned_on": "2025-05-01"})
    q2 = statement("2025-Q2")
    assert (q2["clawback"], q2["total"]) == ("-45.00", "-45.00")  # -2.50 - 35.00 - 7.50
    total = sum(Decimal(statement(p)["total"]) for p in ("2025-Q1", "2025-Q2"))
    assert total == Decimal("0.00")  # everything earned is taken back, nothing twice
