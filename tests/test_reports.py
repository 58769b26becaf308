"""The reports runtime: report documents, ad-hoc aggregates, date periods on both databases,
the caller's scope, hidden fields, plugin reports, and the REST endpoints. Every expected
number below is computed by hand from the small data set built here."""

from __future__ import annotations

import json

import pytest

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform.apply import apply_change
from metacrm.platform.errors import BadRequest, Forbidden, NotFound
from metacrm.platform.records import RecordService
from metacrm.platform.reports import aggregate, list_reports, period_key, run_report
from metacrm.platform.security import Principal
from tests import test_ltc_support as support
from tests.conftest import make_user
from tests.test_ltc_support import D

LEADS = [  # owner, source, status
    ("rep_a", "web", "new"), ("rep_a", "web", "working"), ("rep_a", "search", "converted"),
    ("rep_b", "web", "new"), ("rep_b", "offline_event", "new"),
    ("rep_c", "search", "disqualified"),
]
OPPS = [  # owner, amount, close date, stage
    ("rep_a", "100.00", "2025-01-15", "won"),
    ("rep_a", "250.50", "2025-02-20", "trial"),
    ("rep_a", "50.25", "2025-04-01", "lost"),
    ("rep_b", "1000.00", "2025-03-31", "negotiation"),
]

ltc = support.ltc  # fixture
org = support.org  # fixture


def seed(org) -> None:
    people = {"rep_a": org.rep_a, "rep_b": org.rep_b, "rep_c": org.rep_c}
    for i, (owner, source, status) in enumerate(LEADS):
        org.system.create("lead", {"company": f"Company {i}", "email": f"c{i}@example.com", "source": source,
                                   "status": status, "owner": people[owner].id})
    for i, (owner, amount, close, stage) in enumerate(OPPS):
        reason = {"win_loss_reason": "price"} if stage == "lost" else {}  # lost needs a loss reason
        org.system.create("opportunity", {"name": f"Deal {i}", "amount": amount, "close_date": close, "stage": stage,
                                          "owner": people[owner].id, **reason})


def simple(rows: list[dict], *keys: str) -> list[tuple]:
    return [tuple(row[k] for k in keys) for row in rows]


def test_report_documents_group_count_and_respect_scope(org):
    seed(org)
    result = run_report(org.system, "leads_by_source_and_status")
    assert simple(result["rows"], "source", "status", "count") == [
        ("offline_event", "new", 1), ("search", "converted", 1), ("search", "disqualified", 1),
        ("web", "new", 2), ("web", "working", 1),
    ]
    assert result["totals"] == {"count": 6}
    assert result["chart_data"]["type"] == "bar"
    assert result["chart_data"]["labels"] == ["offline_event", "search", "web"]
    # rep_a reports on their own leads only
    mine = run_report(org.rep_a.service(org.runtime), "leads_by_source_and_status")
    assert simple(mine["rows"], "source", "status", "count") == [
        ("search", "converted", 1), ("web", "new", 1), ("web", "working", 1)]
    # pipeline: open stages only, with sums and the weighted formula field
    pipeline = run_report(org.system, "pipeline_by_stage")
    assert simple(pipeline["rows"], "stage", "count", "amount", "weighted") == [
        ("negotiation", 1, "1000.00", "750.00"), ("trial", 1, "250.50", "125.25")]
    assert pipeline["totals"] == {"count": 2, "amount": "1250.50", "weighted": "875.25"}
    # an extra filter narrows a saved report
    narrowed = run_report(org.system, "leads_by_source_and_status", {"filter": {"source": "web"}})
    assert narrowed["totals"] == {"count": 3}


def test_periods_measures_and_sorting_on_both_databases(org):
    seed(org)
    svc = org.system

    def by(period):
        spec = {"group_by": [{"field": "close_date", "period": period}],
                "measures": [{"function": "count"}, {"function": "sum", "field": "amount"}]}
        return simple(aggregate(svc, "opportunity", spec)["rows"], f"close_date_{period}", "count", "sum_amount")

    assert by("quarter") == [("2025-Q1", 3, "1350.50"), ("2025-Q2", 1, "50.25")]
    assert by("month") == [("2025-01", 1, "100.00"), ("2025-02", 1, "250.50"), ("2025-03", 1, "1000.00"),
                           ("2025-04", 1, "50.25")]
    assert by("week") == [("2025-01-13", 1, "100.00"), ("2025-02-17", 1, "250.50"), ("2025-03-31", 2, "1050.25")]
    assert by("year") == [("2025", 4, "1400.75")]
    assert by("day")[0] == ("2025-01-15", 1, "100.00")
    spec = {"group_by": [{"field": "close_date", "period": "quarter"}],
            "measures": [{"function": "avg", "field": "amount", "name": "avg"},
                         {"function": "min", "field": "close_date", "name": "first"},
                         {"function": "max", "field": "amount", "name": "largest"}],
            "sort": "-avg", "limit": 1}
    result = aggregate(svc, "opportunity", spec)
    assert result["rows"] == [{"close_date_quarter": "2025-Q1", "avg": "450.17", "first": "2025-01-15",
                               "largest": "1000.00"}]
    assert result["totals"]["avg"] == "350.19"  # 1400.75 / 4 = 350.1875
    # datetime fields bucket too (created today), and the Python twin agrees with SQL
    created = aggregate(svc, "lead", {"group_by": [{"field": "created_at", "period": "month"}]})
    from metacrm.platform.clock import today
    assert simple(created["rows"], "created_at_month", "count") == [(period_key(today(), "month"), 6)]
    # group by owner gives display labels
    owners = aggregate(svc, "opportunity", {"group_by": ["owner"], "measures": [{"function": "sum", "field": "amount"}]})
    labelled = {row["owner__label"]: row["sum_amount"] for row in owners["rows"]}
    assert labelled == {"REP_A": "400.75", "REP_B": "1000.00"}
    # an empty group sums to zero, exactly
    none = aggregate(svc, "opportunity", {"filter": {"stage": "research"},
                                          "measures": [{"function": "sum", "field": "amount"}]})
    assert none["totals"] == {"sum_amount": "0.00"}


def test_bad_aggregates_and_hidden_fields(org):
    seed(org)
    svc = org.system
    for spec, code in [
        ({"group_by": ["nope"]}, "unknown_field"),
        ({"group_by": [{"field": "amount", "period": "month"}]}, "bad_report"),
        ({"group_by": [{"field": "close_date", "period": "decade"}]}, "bad_report"),
        ({"measures": [{"function": "sum", "field": "stage"}]}, "bad_report"),
        ({"measures": [{"function": "median", "field": "amount"}]}, "bad_report"),
        ({"filter": {"stage": {"inn": ["won"]}}}, "bad_filter"),
        ({"sort": "nope"}, "bad_sort"),
        ({"colour": "red"}, "bad_report"),
    ]:
        with pytest.raises(BadRequest) as exc:
            aggregate(svc, "opportunity", spec)
        assert exc.value.code == code, spec
    # a report is a read path: marketing may "report" on accounts but not read them, so it
    # gets nothing at all — not even a count (the object is unknown to it, as for a read)
    marketing = org.mkt.service(org.runtime)
    org.system.create("account", {"name": "Hidden Co", "credit_limit": "5000", "owner": org.rep_a.id})
    with pytest.raises(NotFound):
        aggregate(marketing, "account", {})
    # a role that reads accounts with credit_limit hidden: counts, but the field is refused, named
    viewer_role = {"kind": "role", "name": "credit_blind", "objects": {"account": {"read": "all", "report": "all"}},
                   "fields": {"account": {"credit_limit": "hidden"}}}
    doc = {"kind": "report", "name": "credit_exposure_probe", "object": "account",
           "measures": [{"function": "sum", "field": "credit_limit", "name": "limit"}]}
    apply_change(org.runtime, documents_bundle([viewer_role, doc]))
    org.runtime.compiled(force=True)
    blind = RecordService(org.runtime, Principal(user_id=org.mkt.id, username="blind",
                                                 roles=frozenset({"credit_blind"})))
    assert aggregate(blind, "account", {})["totals"] == {"count": 1}
    for spec, path in (({"measures": [{"function": "sum", "field": "credit_limit"}]}, "measures/0"),
                       ({"group_by": ["credit_limit"]}, "group_by/0"),
                       ({"filter": {"credit_limit": {"gt": 1}}}, "filter"),
                       ({"filter": {"any": [{"name": "x"}, {"credit_limit": {"gt": 1}}]}}, "filter")):
        with pytest.raises(Forbidden) as exc:
            aggregate(blind, "account", spec)
        assert exc.value.code == "hidden_field" and "credit_limit" in str(exc.value), spec
        assert list(exc.value.fields) == [path], spec
    fresh = RecordService(org.runtime, Principal.system())
    assert run_report(fresh, "credit_exposure_probe")["totals"] == {"limit": "5000.00"}
    with pytest.raises(Forbidden) as exc:
        run_report(blind, "credit_exposure_probe")
    assert exc.value.code == "hidden_field"
    # no access to the object at all: not found, and not listed
    with pytest.raises(NotFound):
        run_report(marketing, "receivables_by_status")
    names = {item["name"] for item in list_reports(marketing)}
    assert "receivables_by_status" not in names and "leads_by_source_and_status" in names
    assert "accounts_by_rating" not in names  # report right on accounts, but no read right
    assert {"forecast", "campaign_roi", "aging", "commission_statement"} <= names  # plugin reports
    with pytest.raises(NotFound):
        run_report(org.system, "no_such_report")


def test_rest_endpoints(org, client):
    seed(org)
    rep = make_user(org.runtime, client, "rep_http", ["sales_rep"])
    org.system.create("lead", {"company": "Mine Ltd", "email": "mine@example.com", "source": "web", "owner": rep.id})
    listed = client.get("/api/v1/reports", headers=rep.headers)
    assert listed.status_code == 200
    kinds = {item["name"]: item["kind"] for item in listed.get_json()["items"]}
    assert kinds["leads_by_source_and_status"] == "report" and kinds["forecast"] == "plugin"
    ran = client.get("/api/v1/reports/leads_by_source_and_status", headers=rep.headers)
    assert ran.status_code == 200 and ran.get_json()["totals"] == {"count": 1}
    filtered = client.get("/api/v1/reports/leads_by_source_and_status?filter=" + json.dumps({"source": "search"}),
                          headers=rep.headers)
    assert filtered.get_json()["totals"] == {"count": 0}
    assert client.get("/api/v1/reports/nope", headers=rep.headers).status_code == 404
    assert client.get("/api/v1/reports", headers={}).status_code == 401
    body = {"group_by": [{"field": "close_date", "period": "quarter"}],
            "measures": [{"function": "sum", "field": "amount", "name": "amount"}]}
    agg = client.post("/api/v1/aggregate/opportunity", json=body, headers=rep.headers)
    assert agg.status_code == 200 and agg.get_json()["rows"] == []  # the rep owns no opportunity
    admin_token = client.post("/api/v1/auth/token", json={"username": "admin", "password": "admin-pass-123"})
    headers = {"Authorization": "Bearer " + admin_token.get_json()["token"]}
    agg = client.post("/api/v1/aggregate/opportunity", json=body, headers=headers).get_json()
    assert [(r["close_date_quarter"], r["amount"]) for r in agg["rows"]] == [("2025-Q1", "1350.50"), ("2025-Q2", "50.25")]
    bad = client.post("/api/v1/aggregate/opportunity", json={"group_by": ["nope"]}, headers=headers)
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "unknown_field"
    assert client.post("/api/v1/aggregate/nothing", json={}, headers=headers).status_code == 404
    plugin = client.get("/api/v1/reports/aging", headers=headers)
    assert plugin.status_code == 200 and plugin.get_json()["name"] == "aging"
    assert D(plugin.get_json()["total"]) == 0
