"""Lead-to-cash L1–L3: the default metadata is complete and live, key-lead priority rules,
and lead conversion (create or match the account, contact, optional opportunity, campaign
carried, converting twice refused)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from metacrm.platform.errors import Conflict, CrmError, NotFound
from tests import test_ltc_support as support
from tests.test_ltc_support import run_action, sweep

BUNDLE = Path(__file__).resolve().parent.parent / "metacrm" / "default_schemas"
EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "brief_examples"

OBJECTS = ["campaign", "campaign_task", "lead", "lead_priority_rule", "account", "contact", "activity", "opportunity",
           "product", "quote", "quote_line", "contract", "contract_amendment", "order", "order_line", "payment_plan",
           "instalment", "payment", "commission_plan", "commission_tier", "commission_line", "quota"]

ltc = support.ltc  # fixture
org = support.org  # fixture


def test_default_metadata_is_complete_bilingual_and_live(ltc):
    registry = ltc.registry()
    for name in OBJECTS:
        obj = registry.object(name)
        for label in (obj.label, obj.plural_label):
            assert isinstance(label, dict) and label.get("en") and label.get("zh-CN"), name
        for field in obj.fields.values():
            assert isinstance(field.label, dict) and field.label.get("en") and field.label.get("zh-CN"), \
                f"{name}.{field.name}"
        assert registry.layouts(name), f"no layout for {name}"
        assert any(layout.get("list_columns") for layout in registry.layouts(name))
    assert set(registry.roles) >= {"admin", "sales_rep", "sales_manager", "vp_sales", "marketing", "finance"}
    assert registry.roles["sales_rep"]["parent"] == "sales_manager"
    assert registry.roles["sales_manager"]["parent"] == "vp_sales"
    assert "credit.release" in registry.roles["finance"]["permissions"]
    stages = {o["value"]: o for o in registry.object("opportunity").fields["stage"].options}
    assert {o["forecast_category"] for o in stages.values()} == {"pipeline", "best_case", "commit", "closed", "omitted"}
    assert all("probability" in o for o in stages.values())
    assert all("days_to_stall" in o for o in stages.values() if not o.get("is_closed"))
    assert registry.object("activity").doc["updates_last_activity"] == ["related_to"]
    assert set(registry.object("activity").fields["related_to"].target) >= {"lead", "account", "opportunity",
                                                                          "contract"}
    # documents copied from the brief are the brief's
    # the brief's quote approval, measured (issue 14) on the discount depth, the deepest of any
    # line and of the total, from 10 %, and with what it guards
    approval = json.loads((EXAMPLES / "quote_discount.approval_process.json").read_text())
    shipped_approval = registry.get("approval_process", "quote_discount")
    for key in ("object", "lock_record", "allow_recall", "on_submit", "on_approve", "on_reject", "on_recall"):
        assert shipped_approval[key] == approval[key], key
    assert [(s["name"], s["approver"], s.get("mode")) for s in shipped_approval["steps"]] == \
           [(s["name"], s["approver"], s.get("mode")) for s in approval["steps"]]
    assert shipped_approval["entry"] == {"approval_depth_pct": {"gte": 10}}
    assert shipped_approval["steps"][1]["when"] == {"approval_depth_pct": {"gte": 30}}
    assert shipped_approval["guards"]["transitions"] == [{"field": "status", "to": ["presented", "accepted"]}]
    stalled = json.loads((EXAMPLES / "stalled_opportunity.workflow_rule.json").read_text())
    assert {k: v for k, v in registry.get("workflow_rule", "stalled_opportunity").items() if k != "label"} == stalled
    pool = json.loads((EXAMPLES / "hardware_leads.pool.json").read_text())
    shipped = registry.get("pool", "hardware_leads")
    for key in ("object", "entry", "members", "admins", "claim", "assignment", "warn_before_recycle_days"):
        assert shipped[key] == pool[key], key
    # the shipped rules add a name and a label per locale (display additions) to the brief's example
    assert [{k: v for k, v in rule.items() if k not in ("name", "label")} for rule in shipped["recycle"]] == \
        pool["recycle"]
    assert {p["name"] for p in registry.of_kind("pool")} >= {"hardware_leads", "software_leads", "it_services_leads",
                                                             "solutions_leads", "customer_pool"}
    dedup = registry.get("dedup_rule", "lead_same_company_or_contact")
    assert dedup["match_any"][0] == json.loads((EXAMPLES / "lead.dedup_rule.json").read_text())["match_any"][0]
    assert registry.get("conversion", "lead_conversion")["targets"][0]["object"] == "account"
    assert len(registry.of_kind("report")) >= 10


def test_cli_validates_the_bundle():
    from metacrm.platform.cli import main

    result = CliRunner().invoke(main, ["metadata", "validate", str(BUNDLE)], env={"METACRM_DATABASE_URL": "sqlite://"})
    assert result.exit_code == 0, result.output
    assert "are valid" in result.output


def test_key_leads_follow_the_priority_rules(org):
    system = org.system
    system.create("lead_priority_rule", {"name": "Hardware in the east", "product_lines": ["hardware"],
                                         "regions": ["east"]})
    system.create("lead_priority_rule", {"name": "Hot finance leads", "industries": ["finance"], "min_score": 60})
    system.create("lead_priority_rule", {"name": "Inactive", "active": False})  # would match everything
    rep = org.rep_a.service(org.runtime)

    def lead(i, **values):  # created for rep_a (an explicit owner keeps leads out of the pools)
        return org.system.create("lead", {"company": f"K{i}", "email": f"k{i}@example.com", "source": "web",
                                   "owner": org.rep_a.id, **values})

    assert lead(1, product_line="hardware", region="east")["is_key_lead"] is True
    assert lead(2, product_line="hardware", region="west")["is_key_lead"] is False
    # the default scoring: web 15 + finance 20 + east 10 + recency 20 = 65 (the rule wants 60)
    warm = lead(3, industry="finance", region="east")
    assert (warm["score"], warm["is_key_lead"]) == (65, True)
    hot = lead(4, industry="finance")  # 55
    assert (hot["score"], hot["is_key_lead"]) == (55, False)
    updated = rep.update("lead", hot["id"], {"region": "north"})  # the rep edits their lead: 65
    assert (updated["score"], updated["is_key_lead"]) == (65, True)
    # reps cannot set the flag themselves
    with pytest.raises(CrmError) as exc:
        rep.create("lead", {"company": "K5", "email": "k5@example.com", "source": "web", "is_key_lead": True})
    assert "is_key_lead" in exc.value.fields
    # batch path too, and the rescoring job after a rule change
    results = org.system.create_many("lead", [
        {"company": f"B{i}", "email": f"b{i}@example.com", "source": "web", "product_line": "hardware", "owner": org.rep_a.id,
         "region": "east" if i % 2 else "north"} for i in range(4)])
    assert [r["status"] for r in results] == ["created"] * 4
    flags = [rep.get("lead", r["id"])["is_key_lead"] for r in results]
    assert flags == [False, True, False, True]
    system.create("lead_priority_rule", {"name": "All hardware", "product_lines": ["hardware"]})
    assert "changed key-lead flag" in sweep(org.runtime, "rescore_key_leads")
    assert all(rep.get("lead", r["id"])["is_key_lead"] for r in results)


def test_conversion_creates_links_and_carries_the_campaign(org):
    runtime = org.runtime
    campaign = org.system.create("campaign", {"name": "Expo 2025", "channel": "offline_event"})
    rep = org.rep_a.service(runtime)
    lead = org.system.create("lead", {"owner": org.rep_a.id, "company": "Acme Robotics Co., Ltd.", "contact_name": "Ann Lee",
                               "email": "ann@acme.cn",
                               "phone": "+86 138 0013 8000", "source": "offline_event", "campaign": campaign["id"],
                               "project_name": "Warehouse robots", "budget": "120000", "product_line": "hardware",
                               "industry": "manufacturing", "region": "east"})
    result = run_action(runtime, org.rep_a, "lead", lead["id"], "convert")
    account, contact, opp = (rep.get(o, result[o]) for o in ("account", "contact", "opportunity"))
    assert result["account_matched"] is False
    assert account["name"] == "Acme Robotics Co., Ltd." and account["industry"] == "manufacturing"
    assert account["campaign"] == campaign["id"] and account["owner"] == org.rep_a.id
    assert contact["name"] == "Ann Lee" and contact["account"] == account["id"]
    assert contact["campaign"] == campaign["id"] and contact["lead"] == lead["id"]
    assert opp["name"] == "Warehouse robots" and opp["amount"] == "120000.00" and opp["stage"] == "qualification"
    assert opp["account"] == account["id"] and opp["contact"] == contact["id"]
    assert opp["campaign"] == campaign["id"] and opp["lead"] == lead["id"]
    converted = rep.get("lead", lead["id"])
    assert converted["status"] == "converted" and converted["converted_at"]
    assert (converted["converted_account"], converted["converted_contact"], converted["converted_opportunity"]) == \
           (account["id"], contact["id"], opp["id"])
    assert any(h["action"] == "convert" for h in rep.history("lead", lead["id"]))
    with pytest.raises(Conflict) as exc:
        run_action(runtime, org.rep_a, "lead", lead["id"], "convert")
    assert exc.value.code == "already_converted"

    # a second lead of the same company (written differently) reuses the account; no opportunity
    second = org.system.create("lead", {"owner": org.rep_a.id, "company": "ACME Robotics Co Ltd", "contact_name": "Bo Wu", "email": "bo@acme.cn",
                                 "source": "web", "project_name": "Spare parts"})
    again = run_action(runtime, org.rep_a, "lead", second["id"], "convert", {"create_opportunity": False})
    assert again["account"] == account["id"] and again["account_matched"] is True
    assert again["opportunity"] is None
    assert rep.get("contact", again["contact"])["account"] == account["id"]
    assert rep.get("account", account["id"])["contact_count"] == 2

    # explicit overrides, and a user who may not edit the lead cannot convert it
    third = org.system.create("lead", {"owner": org.rep_a.id, "company": "Zeta Ltd", "contact_name": "Cy", "email": "cy@zeta.cn", "source": "web"})
    with pytest.raises(CrmError):
        run_action(runtime, org.rep_b, "lead", third["id"], "convert")
    out = run_action(runtime, org.rep_a, "lead", third["id"], "convert",
                     {"values": {"opportunity": {"name": "Zeta pilot", "amount": "999.90", "close_date": "2030-01-31"}}})
    assert rep.get("opportunity", out["opportunity"])["name"] == "Zeta pilot"
    assert rep.get("opportunity", out["opportunity"])["close_date"] == "2030-01-31"


def test_convert_over_the_api_when_the_actions_endpoint_exists(org, client, admin_headers):
    from tests.conftest import make_user

    rep = make_user(org.runtime, client, "rep_api", ["sales_rep"])
    lead = client.post("/api/v1/records/lead", headers=admin_headers,
                       json={"company": "Api Co", "contact_name": "Al", "email": "al@api.co", "source": "web",
                             "owner": rep.id})
    assert lead.status_code == 201
    answer = client.post(f"/api/v1/records/lead/{lead.get_json()['id']}/actions/convert", headers=rep.headers, json={})
    assert answer.status_code in (200, 201), answer.get_json()
    again = client.post(f"/api/v1/records/lead/{lead.get_json()['id']}/actions/convert", headers=rep.headers, json={})
    assert again.status_code == 409


def test_marketing_and_finance_permissions(org):
    mkt = org.mkt.service(org.runtime)
    campaign = mkt.create("campaign", {"name": "Search Q1", "channel": "search", "budget": "5000"})
    # record_type is not settable by non-admins in the core yet (see the report): the plan is made by the system
    plan = org.system.create("campaign", {"name": "2025 plan", "record_type": "marketing_plan"})
    assert mkt.update("campaign", campaign["id"], {"parent": plan["id"]})["parent"] == plan["id"]
    mkt.create("campaign_task", {"name": "Book ads", "campaign": campaign["id"], "assignee": org.mkt.id})
    lead = mkt.create("lead", {"company": "Mkt lead", "email": "m@l.cn", "source": "search", "campaign": campaign["id"]})
    with pytest.raises(CrmError):
        mkt.create("opportunity", {"name": "Not for marketing"})
    with pytest.raises(CrmError):
        org.rep_a.service(org.runtime).create("campaign", {"name": "Rep campaign"})
    assert org.rep_a.service(org.runtime).get("campaign", campaign["id"])["name"] == "Search Q1"
    with pytest.raises(NotFound):  # finance has no access to leads at all
        org.fin.service(org.runtime).create("lead", {"company": "F", "email": "f@f.cn", "source": "web"})
    assert lead["campaign"] == campaign["id"]


def test_the_default_pools_take_imports_and_ownerless_leads(org):
    rep = org.rep_a.service(org.runtime)
    mine = rep.create("lead", {"company": "Own Co", "email": "own@co.cn", "source": "referral",
                               "product_line": "software"})
    assert (mine["owner"], mine["pool"]) == (org.rep_a.id, None)  # a user's own new record stays theirs
    imported = org.mkt.service(org.runtime).create_many("lead", [
        {"company": "Import Co", "email": "imp@co.cn", "source": "purchased_list"},
        {"company": "Soft Co", "email": "soft@co.cn", "source": "purchased_list", "product_line": "software"}],
        source="import")
    pools = [org.system.get("lead", r["id"])["pool"] for r in imported]
    assert pools == ["general_leads", "software_leads"]
    web = org.system.create("lead", {"company": "Web Co", "email": "web@co.cn", "source": "web",
                                     "product_line": "it_services"})
    assert (web["owner"], web["pool"]) == (None, "it_services_leads")
    prospect = org.system.create("account", {"name": "Pooled Prospect", "type": "prospect"})
    assert prospect["pool"] == "customer_pool"


def test_conversion_never_links_to_an_account_the_converter_cannot_read(org):
    """rep_b converts a lead whose company is rep_a's account: the account is neither linked
    (its id would leak through the lead) nor duplicated — the blocking rule refuses, without
    naming it."""
    from metacrm.platform.errors import DuplicateBlocked

    runtime = org.runtime
    hidden = org.system.create("account", {"name": "Hidden Robotics Ltd", "owner": org.rep_a.id})
    lead = org.system.create("lead", {"owner": org.rep_b.id, "company": "Hidden Robotics Ltd", "contact_name": "Di",
                                      "email": "di@hidden.cn", "source": "web"})
    with pytest.raises(DuplicateBlocked) as exc:
        run_action(runtime, org.rep_b, "lead", lead["id"], "convert")
    body = exc.value.to_dict()
    assert hidden["id"] not in str(body) and "cannot see" in body["message"]
    assert org.system.get("lead", lead["id"])["status"] != "converted"
    # the owner of the account converts onto it
    mine = org.system.create("lead", {"owner": org.rep_a.id, "company": "Hidden Robotics Ltd", "contact_name": "Ed",
                                      "email": "ed@hidden.cn", "source": "web"})
    assert run_action(runtime, org.rep_a, "lead", mine["id"], "convert")["account"] == hidden["id"]
