"""Forecast (categories cumulated as in Salesforce, weighted, quotas, roll-up the reporting line),
campaign ROI and funnel, and opportunity analytics — against figures worked out by hand."""

from __future__ import annotations

import pytest

from metacrm.platform.errors import Forbidden
from metacrm.platform.reports import run_report
from tests import test_ltc_support as support

ltc = support.ltc  # fixture
org = support.org  # fixture

DEALS = [  # owner, amount, stage, close date, extra
    ("rep_a", "100", "won", "2025-01-10", {"opened_on": "2024-12-01", "win_loss_reason": "product_fit"}),
    ("rep_a", "200", "negotiation", "2025-02-10", {}),
    ("rep_a", "300", "trial", "2025-03-10", {}),
    ("rep_a", "400", "qualification", "2025-03-20", {}),
    ("rep_a", "500", "research", "2025-03-25", {"forecast_category": "omitted"}),
    ("rep_a", "50", "lost", "2025-02-15", {"opened_on": "2025-01-01", "win_loss_reason": "price"}),
    ("rep_b", "1000", "won", "2025-01-31", {"opened_on": "2024-11-01", "win_loss_reason": "relationship"}),
    ("rep_b", "2000", "trial", "2025-03-01", {"forecast_category": "commit"}),
    ("rep_c", "700", "negotiation", "2025-04-15", {}),
]


def seed(org) -> None:
    people = {"rep_a": org.rep_a, "rep_b": org.rep_b, "rep_c": org.rep_c}
    for i, (owner, amount, stage, close, extra) in enumerate(DEALS):
        org.system.create("opportunity", {"name": f"D{i}", "owner": people[owner].id, "amount": amount,
                                          "stage": stage, "close_date": close, **extra})
    org.system.create("quota", {"user": org.rep_a.id, "period": "2025-Q1", "amount": "1000"})
    for month, amount in (("2025-01", "500"), ("2025-02", "500"), ("2025-03", "1000")):
        org.system.create("quota", {"user": org.rep_b.id, "period": month, "amount": amount})


def rows_by(result):
    return {(r["user"], r["period"]): r for r in result["rows"]}


def test_forecast_categories_quotas_and_rollup(org):
    seed(org)
    result = run_report(org.system, "forecast", {"period": "quarter"})
    assert result["periods"] == ["2025-Q1", "2025-Q2"]
    rows = rows_by(result)
    a = rows[(org.rep_a.id, "2025-Q1")]["own"]
    # closed 100; commit 200 + 100; best case 300 + 200 + 100; pipeline (open) 400 + 300 + 200;
    # weighted 200 x 75 % + 300 x 50 % + 400 x 10 % + 100 won; the omitted 500 counts nowhere
    assert {k: a[k] for k in ("closed", "commit", "best_case", "pipeline", "weighted", "omitted", "quota",
                              "attainment", "open_count", "won_count")} == {
        "closed": "100.00", "commit": "300.00", "best_case": "600.00", "pipeline": "900.00", "weighted": "440.00",
        "omitted": "500.00", "quota": "1000.00", "attainment": "10.00", "open_count": 3, "won_count": 1}
    b = rows[(org.rep_b.id, "2025-Q1")]["own"]
    # the rep committed a trial deal: commit 2,000 + 1,000; quota = three monthly quotas
    assert (b["closed"], b["commit"], b["best_case"], b["pipeline"], b["weighted"], b["quota"], b["attainment"]) == \
           ("1000.00", "3000.00", "3000.00", "2000.00", "2000.00", "2000.00", "50.00")
    team = rows[(org.mgr.id, "2025-Q1")]
    assert team["team_size"] == 3 and team["own"]["closed"] == "0.00"
    assert (team["team"]["closed"], team["team"]["commit"], team["team"]["best_case"], team["team"]["pipeline"],
            team["team"]["weighted"], team["team"]["quota"], team["team"]["attainment"]) == \
           ("1100.00", "3300.00", "3600.00", "2900.00", "2440.00", "3000.00", "36.67")
    vp = rows[(org.vp.id, "2025-Q2")]["team"]
    assert (vp["commit"], vp["pipeline"], vp["weighted"]) == ("700.00", "700.00", "525.00")
    assert result["totals"]["2025-Q1"]["closed"] == "1100.00"
    # months: rep_b's January has 1,000 won against a 500 quota
    months = rows_by(run_report(org.system, "forecast", {"period": "month", "from": "2025-01", "to": "2025-01"}))
    assert months[(org.rep_b.id, "2025-01")]["own"]["attainment"] == "200.00"
    assert {period for _, period in months} == {"2025-01"}
    # a rep sees only their own numbers; the manager sees the team's
    mine = run_report(org.rep_a.service(org.runtime), "forecast", {})
    assert {user for user, _ in rows_by(mine)} == {org.rep_a.id}
    assert mine["totals"]["2025-Q1"]["closed"] == "100.00"
    managed = rows_by(run_report(org.mgr.service(org.runtime), "forecast", {"from": "2025-Q1", "to": "2025-Q1"}))
    assert managed[(org.mgr.id, "2025-Q1")]["team"]["closed"] == "1100.00"
    assert (org.vp.id, "2025-Q1") not in managed
    # marketing reads and reports on opportunities (the funnel) but not on receivables
    assert run_report(org.mkt.service(org.runtime), "forecast", {})["totals"]["2025-Q1"]["closed"] == "1100.00"
    with pytest.raises(Forbidden):
        run_report(org.mkt.service(org.runtime), "aging", {})
    with pytest.raises(Forbidden):
        run_report(org.mkt.service(org.runtime), "commission_statement", {})


def test_campaign_roi_and_funnel(org):
    system = org.system
    c1 = system.create("campaign", {"name": "C1 search", "channel": "search", "other_cost": "1000"})
    c2 = system.create("campaign", {"name": "C2 search", "channel": "search", "other_cost": "500"})
    c3 = system.create("campaign", {"name": "C3 email", "channel": "email", "other_cost": "0"})
    leads = [(c1, "converted"), (c1, "converted"), (c1, "working"), (c1, "new"), (c2, "new"), (c2, "disqualified"),
             (c3, "converted"), (None, "converted")]
    for i, (campaign, status) in enumerate(leads):
        values = {"company": f"L{i}", "email": f"l{i}@roi.cn", "source": "search", "status": status,
                  "owner": org.rep_a.id}
        if campaign:
            values["campaign"] = campaign["id"]
        system.create("lead", values)
    for campaign, stage, amount in ((c1, "won", "3000"), (c1, "trial", "900"), (c3, "won", "200"), (None, "won", "5")):
        values = {"name": f"O{amount}", "stage": stage, "amount": amount, "owner": org.rep_a.id}
        if campaign:
            values["campaign"] = campaign["id"]
        system.create("opportunity", values)
    result = run_report(org.mkt.service(org.runtime), "campaign_roi", {})
    by_name = {row["name"]: row for row in result["campaigns"]}
    assert by_name["C1 search"] == {**by_name["C1 search"], "leads": 4, "converted": 2, "opportunities": 2, "won": 1,
                                    "lead_to_customer_rate": "50.00", "customer_to_opportunity_rate": "100.00",
                                    "win_rate": "50.00", "lead_to_won_rate": "25.00", "won_revenue": "3000.00",
                                    "actual_cost": "1000.00", "cost_per_lead": "250.00", "roi": "200.00"}
    assert (by_name["C2 search"]["roi"], by_name["C2 search"]["win_rate"], by_name["C2 search"]["cost_per_lead"]) == \
           ("-100.00", None, "250.00")
    assert (by_name["C3 email"]["roi"], by_name["C3 email"]["cost_per_lead"]) == (None, "0.00")
    channels = {row["channel"]: row for row in result["channels"]}
    assert (channels["search"]["leads"], channels["search"]["won_revenue"], channels["search"]["actual_cost"],
            channels["search"]["cost_per_lead"], channels["search"]["roi"]) == (6, "3000.00", "1500.00", "250.00",
                                                                               "100.00")
    overall = result["overall"]
    # unattributed leads and deals do not count: 7 leads → 3 → 3 → 2; (3,200 - 1,500) / 1,500
    assert (overall["leads"], overall["converted"], overall["opportunities"], overall["won"]) == (7, 3, 3, 2)
    assert (overall["won_revenue"], overall["cost_per_lead"], overall["roi"]) == ("3200.00", "214.29", "113.33")
    assert result["chart_data"]["series"][0]["values"] == [7, 3, 3, 2]


def test_opportunity_analytics_by_rep_and_team(org):
    seed(org)
    result = run_report(org.system, "opportunity_analytics", {})
    overall = result["overall"]
    # won 100 (40 days) and 1,000 (91 days), lost 50; six deals are in open stages (the omitted one too)
    assert {k: overall[k] for k in ("closed", "won", "lost", "win_rate", "won_amount", "average_deal_size",
                                    "average_cycle_days", "win_reasons", "loss_reasons", "open")} == {
        "closed": 3, "won": 2, "lost": 1, "win_rate": "66.67", "won_amount": "1100.00", "average_deal_size": "550.00",
        "average_cycle_days": "65.5", "win_reasons": {"product_fit": 1, "relationship": 1},
        "loss_reasons": {"price": 1}, "open": 6}
    reps = {row["name"]: row for row in result["by_rep"]}
    assert (reps["REP_A"]["win_rate"], reps["REP_A"]["average_deal_size"], reps["REP_A"]["average_cycle_days"]) == \
           ("50.00", "100.00", "40.0")
    assert (reps["REP_B"]["win_rate"], reps["REP_B"]["average_cycle_days"]) == ("100.00", "91.0")
    teams = {row["name"]: row for row in result["by_team"]}
    assert teams["hardware"]["closed"] == 3 and teams["hardware"]["win_rate"] == "66.67"
    narrowed = run_report(org.system, "opportunity_analytics", {"from": "2025-02-01", "to": "2025-12-31"})
    assert (narrowed["overall"]["closed"], narrowed["overall"]["win_rate"]) == (1, "0.00")
    mine = run_report(org.rep_b.service(org.runtime), "opportunity_analytics", {})
    assert (mine["overall"]["won"], mine["overall"]["lost"]) == (1, 0)
