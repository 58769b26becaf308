"""L4–L5 behaviour: stage-driven opportunity fields, stalled deals, quotes, contract and order
lifecycles, partial deliveries, and the credit limit (numbers worked out by hand)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from metacrm import approval
from metacrm.platform.clock import utcnow
from metacrm.platform.errors import Conflict, CrmError, Forbidden, Locked, ValidationFailed
from tests import test_ltc_support as support
from tests.test_ltc_support import days, run_action, sweep

ltc = support.ltc  # fixture
org = support.org  # fixture


def test_opportunity_stages_drive_probability_category_and_history(org):
    rep = org.rep_a.service(org.runtime)
    opp = org.system.create("opportunity", {"name": "Deal", "amount": "1000", "owner": org.rep_a.id})
    assert (opp["stage"], opp["probability"], opp["forecast_category"], opp["weighted_amount"]) == \
           ("qualification", "10.00", "pipeline", "100.00")
    first_change = opp["stage_changed_at"]
    opp = rep.update("opportunity", opp["id"], {"stage": "trial"})
    assert (opp["probability"], opp["forecast_category"], opp["weighted_amount"]) == ("50.00", "best_case", "500.00")
    assert opp["stage_changed_at"] >= first_change
    # the rep commits the deal (an override), and it survives edits that do not move the stage
    opp = rep.update("opportunity", opp["id"], {"forecast_category": "commit"})
    assert opp["forecast_category"] == "commit"
    assert rep.update("opportunity", opp["id"], {"amount": "2000"})["forecast_category"] == "commit"
    # a stage move sets the stage's category unless the user changed the category in the same
    # save: resending the stored one (as the web edit form does) is no choice
    assert rep.update("opportunity", opp["id"], {"stage": "research", "forecast_category": "commit"})[
        "forecast_category"] == "pipeline"
    assert rep.update("opportunity", opp["id"], {"stage": "negotiation", "forecast_category": "best_case"})[
        "forecast_category"] == "best_case"
    assert rep.update("opportunity", opp["id"], {"stage": "trial"})["forecast_category"] == "best_case"
    with pytest.raises(ValidationFailed):
        rep.update("opportunity", opp["id"], {"forecast_category": "closed"})
    with pytest.raises(CrmError):  # read-only: the stage decides it
        rep.update("opportunity", opp["id"], {"probability": "99"})
    with pytest.raises(ValidationFailed) as exc:  # lost needs a loss reason
        rep.update("opportunity", opp["id"], {"stage": "lost"})
    assert exc.value.status == 422 and "win_loss_reason" in exc.value.fields
    lost = rep.update("opportunity", opp["id"], {"stage": "lost", "forecast_category": "commit",
                                                 "win_loss_reason": "price"})
    assert (lost["forecast_category"], lost["probability"]) == ("omitted", "0.00")
    assert lost["closed_at"] and lost["close_date"] == days(0).isoformat()
    reopened = rep.update("opportunity", opp["id"], {"stage": "negotiation"})
    assert reopened["closed_at"] is None and reopened["forecast_category"] == "commit"
    stages = [h["changes"]["stage"] for h in rep.history("opportunity", opp["id"]) if "stage" in h["changes"]]
    assert stages == [[None, "qualification"], ["qualification", "trial"], ["trial", "research"],
                      ["research", "negotiation"], ["negotiation", "trial"], ["trial", "lost"],
                      ["lost", "negotiation"]]


def test_stalled_deals_are_flagged_and_a_follow_up_clears_them(org):
    runtime, system = org.runtime, org.system
    long_ago = (utcnow() - timedelta(days=30)).isoformat() + "Z"
    recent = (utcnow() - timedelta(days=5)).isoformat() + "Z"
    # qualification stalls after 14 days, research after 21, won never
    stale = system.create("opportunity", {"name": "Stale", "owner": org.rep_a.id, "stage_changed_at": long_ago})
    young = system.create("opportunity", {"name": "Young", "owner": org.rep_a.id, "stage_changed_at": recent})
    research = system.create("opportunity", {"name": "R", "stage": "research", "owner": org.rep_a.id,
                                             "stage_changed_at": (utcnow() - timedelta(days=20)).isoformat() + "Z"})
    won = system.create("opportunity", {"name": "Won", "stage": "won", "owner": org.rep_a.id,
                                        "stage_changed_at": long_ago})
    assert "1 opportunities flagged stalled" in sweep(runtime, "stalled_opportunities")
    flags = {o: system.get("opportunity", x["id"])["is_stalled"] for o, x in
             (("stale", stale), ("young", young), ("research", research), ("won", won))}
    assert flags == {"stale": True, "young": False, "research": False, "won": False}
    assert any("stalled" in (h["note"] or "") for h in system.history("opportunity", stale["id"]))
    # a follow-up resets the clock at once
    org.rep_a.service(runtime).create("activity", {"subject": "Call", "related_to": {"object": "opportunity",
                                                                                      "id": stale["id"]}})
    assert system.get("opportunity", stale["id"])["is_stalled"] is False
    assert "0 opportunities flagged stalled" in sweep(runtime, "stalled_opportunities")
    # the reminder task the platform creates is not a follow-up: the flag stays, with the stage's threshold
    system.system_update("opportunity", young["id"], {"stage_changed_at": utcnow() - timedelta(days=15)})
    assert "1 opportunities flagged stalled" in sweep(runtime, "stalled_opportunities")
    system.create("activity", {"subject": "Move Young forward", "type": "task", "owner": org.rep_a.id,
                               "related_to": {"object": "opportunity", "id": young["id"]}})
    flagged = system.get("opportunity", young["id"])
    assert flagged["is_stalled"] is True and flagged["days_to_stall"] == 14
    assert "0 opportunities flagged stalled" in sweep(runtime, "stalled_opportunities")
    assert system.get("opportunity", young["id"])["is_stalled"] is True
    # moving the stage also un-stalls
    system.system_update("opportunity", stale["id"], {"is_stalled": True})
    moved = org.rep_a.service(runtime).update("opportunity", stale["id"], {"stage": "research"})
    assert moved["is_stalled"] is False


def test_quotes_lines_totals_and_approval_reset(org):
    rep = org.rep_a.service(org.runtime)
    product = org.system.create("product", {"name": "Router", "code": "R1", "list_price": "1250.50"})
    opp = org.system.create("opportunity", {"name": "Net", "owner": org.rep_a.id,
                                            "account": org.system.create("account", {"name": "Quote Co",
                                                                                     "owner": org.rep_a.id})["id"]})
    quote = rep.create("quote", {"name": "Q", "opportunity": opp["id"], "discount_pct": "12.5"})
    assert quote["number"].startswith("Q-") and quote["account"] == opp["account"]
    line = rep.create("quote_line", {"quote": quote["id"], "product": product["id"], "quantity": "3"})
    assert (line["unit_price"], line["amount"], line["description"]) == ("1250.50", "3751.50", "Router")
    rep.create("quote_line", {"quote": quote["id"], "description": "Install", "quantity": "1.5", "unit_price": "100"})
    quote = rep.get("quote", quote["id"])
    # subtotal 3751.50 + 150.00 = 3901.50; 12.5 % off = 487.6875 → 487.69; total 3413.8125 → 3413.81
    assert (quote["subtotal"], quote["discount_amount"], quote["total"], quote["line_count"]) == \
           ("3901.50", "487.69", "3413.81", 2)
    rep.delete("quote_line", line["id"])
    assert rep.get("quote", quote["id"])["total"] == "131.25"
    # 12.5 % needs the supervisor; lines of a quote pending approval cannot change
    request = approval.submit(org.runtime, org.rep_a.principal, "quote", quote["id"])
    with pytest.raises(Locked):
        rep.create("quote_line", {"quote": quote["id"], "description": "More", "quantity": "1", "unit_price": "1"})
    approval.decide(org.runtime, org.mgr.principal, request["id"], "approve")
    assert rep.get("quote", quote["id"])["approval_status"] == "approved"
    # an approved discount that changes needs a new approval
    changed = rep.update_record("quote", quote["id"], {"discount_pct": "20"})
    assert changed.record["approval_status"] == "none"
    assert changed.warnings[0]["code"] == "approval_reset"
    with pytest.raises(CrmError):  # the approval status is the engine's to set
        rep.update("quote", quote["id"], {"approval_status": "approved"})


def test_contract_lifecycle_and_amendments(org):
    rep = org.rep_a.service(org.runtime)
    account = org.system.create("account", {"name": "Contract Co", "owner": org.rep_a.id})
    with pytest.raises(ValidationFailed) as exc:
        rep.create("contract", {"name": "C", "account": account["id"], "status": "active"})
    assert exc.value.code == "bad_transition"
    with pytest.raises(ValidationFailed):
        rep.create("contract", {"name": "No account"})
    contract = rep.create("contract", {"name": "C", "account": account["id"], "amount": "5000"})
    assert contract["status"] == "draft" and contract["number"].startswith("C-")
    with pytest.raises(ValidationFailed):  # not active yet
        rep.create("contract_amendment", {"contract": contract["id"], "title": "Too early"})
    for bad in ("active", "completed"):
        with pytest.raises(ValidationFailed):
            rep.update("contract", contract["id"], {"status": bad})
    with pytest.raises(Conflict) as exc:  # in review only by submitting it
        rep.update("contract", contract["id"], {"status": "in_review"})
    assert (exc.value.code, exc.value.extra["process"]) == ("approval_required", "contract_review")
    request = approval.submit(org.runtime, org.rep_a.principal, "contract", contract["id"])
    assert rep.get("contract", contract["id"])["status"] == "in_review"
    approval.decide(org.runtime, org.mgr.principal, request["id"], "reject", "terms")
    assert rep.get("contract", contract["id"])["status"] == "draft"  # sent back
    request = approval.submit(org.runtime, org.rep_a.principal, "contract", contract["id"])
    with pytest.raises(Conflict) as exc:  # not even an admin sets it active past the review
        support.admin_service(org.runtime).update("contract", contract["id"], {"status": "active"})
    assert exc.value.code == "approval_required"
    approval.decide(org.runtime, org.mgr.principal, request["id"], "approve")
    approval.decide(org.runtime, org.fin.principal, request["id"], "approve")
    active = rep.get("contract", contract["id"])
    assert active["status"] == "active" and active["signed_on"] == days(0).isoformat()
    amendment = org.mgr.service(org.runtime).create("contract_amendment", {
        "contract": contract["id"], "title": "More seats", "amount_change": "750.25"})
    assert amendment["owner"] == org.rep_a.id  # follows the contract, so the rep sees it
    rep.create("contract_amendment", {"contract": contract["id"], "title": "Less", "amount_change": "-50"})
    contract = rep.get("contract", contract["id"])
    assert (contract["amendment_count"], contract["amendment_total"]) == (2, "700.25")
    rep.update("contract", contract["id"], {"status": "completed"})
    for bad in ("active", "terminated", "draft"):
        with pytest.raises(ValidationFailed):
            rep.update("contract", contract["id"], {"status": bad})


def test_orders_lifecycle_partial_delivery_and_credit(org):
    runtime, system = org.runtime, org.system
    rep = org.rep_a.service(runtime)
    account = system.create("account", {"name": "Credit Co", "owner": org.rep_a.id, "credit_limit": "10000"})
    contract = support.active_contract(system, {"name": "Billed", "account": account["id"], "owner": org.rep_a.id,
                                                "amount": "6000"})
    unbilled = support.active_contract(system, {"name": "Unbilled", "account": account["id"], "owner": org.rep_a.id})
    plan = system.create("payment_plan", {"contract": contract["id"]})
    # receivables: 6,000 due, 1,500 paid → 4,500 open
    inst = system.create("instalment", {"payment_plan": plan["id"], "due_date": days(30).isoformat(), "amount": "6000"})
    system.create("payment", {"instalment": inst["id"], "amount": "1500", "received_on": days(0).isoformat()})
    # an order confirms only against an active contract
    loose = rep.create("order", {"account": account["id"]})
    with pytest.raises(Conflict) as exc:
        rep.update("order", loose["id"], {"status": "confirmed"})
    assert exc.value.code == "contract_not_active" and "contract" in exc.value.fields
    draft = rep.create("contract", {"name": "Not yet", "account": account["id"]})
    with pytest.raises(Conflict) as exc:
        rep.update("order", loose["id"], {"contract": draft["id"], "status": "confirmed"})
    assert exc.value.code == "contract_not_active"
    # an unbilled confirmed order of 3,000 (its contract has no payment plan)
    other = rep.create("order", {"contract": unbilled["id"]})
    rep.create("order_line", {"order": other["id"], "description": "Kit", "quantity": "3", "unit_price": "1000"})
    assert rep.update("order", other["id"], {"status": "confirmed"})["status"] == "confirmed"  # 4,500 + 3,000 ≤ 10,000
    # a billed order (its contract has a plan) adds nothing new: 7,500 ≤ 10,000
    billed = rep.create("order", {"contract": contract["id"]})
    assert billed["account"] == account["id"] and billed["sales_rep"] == org.rep_a.id
    rep.create("order_line", {"order": billed["id"], "description": "Boxes", "quantity": "4", "unit_price": "1500"})
    assert rep.update("order", billed["id"], {"status": "confirmed"})["status"] == "confirmed"
    # an unbilled 2,600 more: 4,500 + 3,000 + 2,600 = 10,100 > 10,000
    big = rep.create("order", {"contract": unbilled["id"]})
    line = rep.create("order_line", {"order": big["id"], "description": "Rack", "quantity": "2", "unit_price": "1300"})
    with pytest.raises(Conflict) as exc:
        rep.update("order", big["id"], {"status": "confirmed"})
    assert exc.value.code == "credit_limit_exceeded"
    assert {k: exc.value.extra[k] for k in ("receivables", "unbilled_orders", "this_order", "exposure")} == \
           {"receivables": "4500.00", "unbilled_orders": "3000.00", "this_order": "2600.00", "exposure": "10100.00"}
    with pytest.raises(Forbidden):
        run_action(runtime, org.mgr, "order", big["id"], "release_credit")
    released = run_action(runtime, org.fin, "order", big["id"], "release_credit", {"reason": "prepaid"})
    assert released["credit_released"] is True
    assert rep.update("order", big["id"], {"status": "confirmed"})["status"] == "confirmed"
    assert any(h["action"] == "credit_release" for h in system.history("order", big["id"]))
    # lifecycle: forward jumps are fine, backwards is not; partial deliveries roll up
    with pytest.raises(ValidationFailed):
        rep.update("order", big["id"], {"status": "created"})
    with pytest.raises(ValidationFailed):
        rep.update("order", big["id"], {"status": "returned"})
    rep.update("order", big["id"], {"status": "shipped"})
    with pytest.raises(ValidationFailed):
        rep.update("order_line", line["id"], {"delivered_qty": "3"})
    rep.update("order_line", line["id"], {"delivered_qty": "1"})
    order = rep.get("order", big["id"])
    assert (order["delivery_status"], order["delivered_amount"], order["status"]) == ("partial", "1300.00", "shipped")
    rep.update("order_line", line["id"], {"delivered_qty": "2"})
    order = rep.get("order", big["id"])
    assert (order["delivery_status"], order["status"], order["delivered_on"]) == \
           ("delivered", "delivered", days(0).isoformat())
    returned = rep.update("order", big["id"], {"status": "returned"})
    assert returned["returned_on"] == days(0).isoformat()
    # marking an order delivered delivers its lines
    rep.update("order", other["id"], {"status": "delivered"})
    assert rep.get("order", other["id"])["delivery_status"] == "delivered"
