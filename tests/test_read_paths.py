"""Read paths (issue 13, items 1, 3 and 5), through the REST API on both databases:

- reports are a read path: an aggregate, a saved report, a plugin report or a widget counts only
  rows the caller may read, shows only fields the caller may read, never groups by id or a
  unique field, and refuses (403, the field named) a total of a hidden field;
- derived values inherit access: a formula or rollup over a hidden field is hidden everywhere;
- no oracles: duplicate checks, imports (dry run or not, upserts), lookups and 404s say nothing
  about a record the caller cannot read.
"""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform import derived
from metacrm.platform.apply import apply_change
from metacrm.platform.errors import MetadataInvalid
from metacrm.platform.records import RecordService
from metacrm.platform.security import Access, Principal
from tests import test_ltc_support as support
from tests.conftest import make_user
from tests.test_dedup import fast_hash
from tests.test_ltc_support import active_contract
from tests.test_records import SHOP

ltc = support.ltc  # fixture

ROLES = [
    {"kind": "role", "name": "rp_report_only", "label": "Report only",
     "objects": {"account": {"report": "all"}, "opportunity": {"report": "all"}}},
    {"kind": "role", "name": "rp_amount_blind", "label": "Amount blind",
     "objects": {"opportunity": {"read": "all", "report": "all", "export": "all", "edit": "all"},
                 "account": {"read": "all"}},
     "fields": {"opportunity": {"amount": "hidden"}}},
    {"kind": "role", "name": "rp_own", "label": "Own records",
     "objects": {"account": {"create": "all", "read": "own", "edit": "own", "delete": "own", "export": "all",
                             "report": "all"},
                 "opportunity": {"create": "all", "read": "own", "edit": "own", "report": "all"},
                 "instalment": {"read": "all", "report": "all"},
                 # the test's contracts belong to the account owners; an owner may read what they hold
                 "contract": {"read": "own"}, "payment_plan": {"read": "own"}}},
]
MISSING = "0" * 32


@pytest.fixture
def quick_passwords(monkeypatch):
    monkeypatch.setattr("metacrm.platform.security.hash_password", fast_hash)
    monkeypatch.setattr("metacrm.platform.records.hash_password", fast_hash)


@pytest.fixture
def world(ltc, client, admin_headers, quick_passwords):
    applied = client.post("/api/v1/meta/apply", json={"documents": ROLES}, headers=admin_headers)
    assert applied.status_code == 200, applied.get_json()
    ltc.compiled(force=True)
    w = type("World", (), {})()
    w.runtime, w.client, w.admin = ltc, client, admin_headers
    w.system = RecordService(ltc, Principal.system(), source="test")
    w.reporter = make_user(ltc, client, "rp_reporter", ["rp_report_only"])
    w.blind = make_user(ltc, client, "rp_blind", ["rp_amount_blind"])
    w.rep_a = make_user(ltc, client, "rp_rep_a", ["rp_own"])
    w.rep_b = make_user(ltc, client, "rp_rep_b", ["rp_own"])
    w.acme = w.system.create("account", {"name": "Acme Secret Holdings", "phone": "13800138000",
                                         "owner": w.rep_a.id})
    w.beta = w.system.create("account", {"name": "Beta Own Trading", "owner": w.rep_b.id})
    w.opps = [w.system.create("opportunity", {"name": f"Deal {i}", "amount": amount, "probability": 40,
                                              "stage": "qualification", "close_date": "2025-03-01",
                                              "owner": owner.id, "account": account["id"]})
              for i, (amount, owner, account) in enumerate((("987654.00", w.rep_a, w.acme),
                                                           ("123456.00", w.rep_b, w.beta)))]
    return w


def _text(response) -> str:
    return response.get_data(as_text=True)


# --- 1. reports are a read path ---------------------------------------------------------------


def test_a_report_right_without_read_right_shows_nothing(world):
    c, h = world.client, world.reporter.headers
    # the review's probe: group accounts by id, name and phone
    probe = c.post("/api/v1/aggregate/account", json={"group_by": ["id", "name", "phone"]}, headers=h)
    assert probe.status_code == 404, _text(probe)
    assert "Acme" not in _text(probe) and "13800138000" not in _text(probe)
    for spec in ({}, {"group_by": ["name"]}, {"filter": {"name": "Acme Secret Holdings"}}):
        response = c.post("/api/v1/aggregate/account", json=spec, headers=h)
        assert response.status_code == 404 and "Acme" not in _text(response), spec
    # the same answer as for an object that does not exist at all (nothing to tell them apart)
    assert c.post("/api/v1/aggregate/no_such_object", json={}, headers=h).status_code == 404
    # saved reports on the object: not listed, not runnable; plugin reports over it: refused
    listed = {item["name"] for item in c.get("/api/v1/reports", headers=h).get_json()["items"]}
    assert "accounts_by_rating" not in listed
    assert c.get("/api/v1/reports/accounts_by_rating", headers=h).status_code == 404
    forecast = c.get("/api/v1/reports/forecast", headers=h)
    assert forecast.status_code == 403 and "987654" not in _text(forecast)


def test_report_rows_stay_within_the_read_scope(world):
    c, h = world.client, world.rep_b.headers  # report scope all, read scope own
    counted = c.post("/api/v1/aggregate/account", json={}, headers=h).get_json()
    assert counted["totals"] == {"count": 1}
    by_name = c.post("/api/v1/aggregate/account", json={"group_by": ["name"]}, headers=h)
    assert by_name.status_code == 200
    assert [row["name"] for row in by_name.get_json()["rows"]] == ["Beta Own Trading"]
    summed = c.post("/api/v1/aggregate/opportunity", json={"measures": [{"function": "sum", "field": "amount"}]},
                    headers=h).get_json()
    assert summed["totals"] == {"sum_amount": "123456.00"}
    # a filter that names another rep's record finds nothing (no existence oracle)
    probe = c.post("/api/v1/aggregate/account", json={"filter": {"name": "Acme Secret Holdings"}}, headers=h)
    assert probe.get_json()["totals"] == {"count": 0}
    # group by owner: labels of the owners the caller may read only
    owners = c.post("/api/v1/aggregate/opportunity", json={"group_by": ["account"]}, headers=h).get_json()
    assert [(r["account"], r.get("account__label")) for r in owners["rows"]] == [(world.beta["id"],
                                                                                  "Beta Own Trading")]
    # plugin reports: the forecast counts the read scope only
    forecast = c.get("/api/v1/reports/forecast", headers=h).get_json()
    assert {row["user"] for row in forecast["rows"]} == {world.rep_b.id}
    assert "987654" not in json.dumps(forecast)


def test_an_export_right_wider_than_the_read_right_exports_the_read_scope(world):
    response = world.client.get("/api/v1/records/account/export", headers=world.rep_b.headers)
    assert response.status_code == 200, _text(response)
    rows = list(csv.DictReader(io.StringIO(_text(response).lstrip("\ufeff"))))
    assert [row["name"] for row in rows] == ["Beta Own Trading"]
    assert "Acme" not in _text(response)


def test_never_grouped_by_id_or_a_unique_field(world):
    c = world.client
    for who in (world.admin, world.rep_b.headers):
        response = c.post("/api/v1/aggregate/account", json={"group_by": ["name", "id"]}, headers=who)
        assert response.status_code == 400, _text(response)
        body = response.get_json()["error"]
        assert body["code"] == "not_groupable" and "group_by/1" in body["fields"]
    # a unique field (product.code) and an autonumber (contract number) identify single records too
    for obj, name in (("product", "code"), ("contract", "number")):
        response = c.post(f"/api/v1/aggregate/{obj}", json={"group_by": [name]}, headers=world.admin)
        assert response.status_code == 400 and response.get_json()["error"]["code"] == "not_groupable", obj


def test_totals_of_a_hidden_field_are_refused_with_the_field_named(world):
    c, h = world.client, world.blind.headers
    assert c.post("/api/v1/aggregate/opportunity", json={}, headers=h).get_json()["totals"] == {"count": 2}
    for spec, path in (({"measures": [{"function": "sum", "field": "amount"}]}, "measures/0"),
                       ({"measures": [{"function": "sum", "field": "weighted_amount"}]}, "measures/0"),
                       ({"group_by": ["stage", "weighted_amount"]}, "group_by/1"),
                       ({"filter": {"all": [{"stage": "qualification"}, {"amount": {"gt": 1}}]}}, "filter"),
                       ({"filter": {"weighted_amount": {"gt": 1}}}, "filter")):
        response = c.post("/api/v1/aggregate/opportunity", json=spec, headers=h)
        assert response.status_code == 403, (spec, _text(response))
        error = response.get_json()["error"]
        assert error["code"] == "hidden_field" and list(error["fields"]) == [path], spec
        assert ("amount" in error["message"]), spec
        assert "987654" not in _text(response)
    # plugin reports over the hidden field: 403 naming it; the widgets stay off the dashboard
    for name in ("forecast", "opportunity_analytics"):
        response = c.get(f"/api/v1/reports/{name}", headers=h)
        assert response.status_code == 403, (name, _text(response))
        assert response.get_json()["error"]["code"] == "hidden_field"
        assert "opportunity.amount" in response.get_json()["error"]["message"]
    from metacrm.plugins.lead_to_cash.analytics import WIDGETS
    blind = RecordService(world.runtime, world.blind.principal)
    assert WIDGETS["ltc_forecast"](blind) is None
    from metacrm.platform.web.dashboard import aggregate as widget_aggregate
    assert widget_aggregate(blind, "opportunity", ["stage"], measure="weighted_amount") is None
    assert widget_aggregate(blind, "opportunity", ["stage"], measure="amount", action="report") is None
    # a report document over the hidden field: 403 too
    doc = {"kind": "report", "name": "rp_weighted_pipeline", "object": "opportunity",
           "measures": [{"function": "sum", "field": "weighted_amount", "name": "weighted"}]}
    assert c.post("/api/v1/meta/apply", json={"documents": [doc]}, headers=world.admin).status_code == 200
    world.runtime.compiled(force=True)
    refused = c.get("/api/v1/reports/rp_weighted_pipeline", headers=h)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "hidden_field"
    expected = sum(Decimal(world.system.get("opportunity", o["id"])["weighted_amount"]) for o in world.opps)
    assert c.get("/api/v1/reports/rp_weighted_pipeline", headers=world.admin).get_json()["totals"] == {
        "weighted": str(expected)}


def test_plugin_reports_name_only_readable_records(world):
    """Receivables aging as a role that reads every instalment but only its own accounts: the
    figures of every instalment, the account name of its own account only."""
    system, rep_b = world.system, world.rep_b
    for account in (world.acme, world.beta):
        contract = active_contract(system, {"name": account["name"][:20], "account": account["id"],
                                            "owner": account["owner"]})
        plan = system.create("payment_plan", {"contract": contract["id"]})
        system.create("instalment", {"payment_plan": plan["id"], "due_date": "2025-01-01", "amount": "500"})
    aging = world.client.get("/api/v1/reports/aging", headers=rep_b.headers)
    assert aging.status_code == 200, _text(aging)
    names = {row["account"]: row["name"] for row in aging.get_json()["accounts"]}
    assert names == {world.beta["id"]: "Beta Own Trading", world.acme["id"]: None}
    assert "Acme" not in _text(aging)
    admin = world.client.get("/api/v1/reports/aging", headers=world.admin).get_json()
    assert {row["name"] for row in admin["accounts"]} == {"Beta Own Trading", "Acme Secret Holdings"}


# --- 3. derived values inherit access ---------------------------------------------------------


def test_a_formula_over_a_hidden_field_is_hidden_everywhere(world):
    c, h = world.client, world.blind.headers
    opp = world.opps[0]
    world.system.update("opportunity", opp["id"], {"amount": "876543.00"})  # history of amount + formula
    record = c.get(f"/api/v1/records/opportunity/{opp['id']}", headers=h)
    assert record.status_code == 200
    assert "weighted_amount" not in record.get_json() and "amount" not in record.get_json()
    weighted = world.system.get("opportunity", opp["id"])["weighted_amount"]
    assert Decimal(weighted) > 0  # it is there
    secrets = ("987654", "876543", weighted.split(".")[0])
    for url in ("/api/v1/records/opportunity?fields=name,weighted_amount",
                "/api/v1/records/opportunity?sort=-weighted_amount",
                "/api/v1/records/opportunity?filter=" + json.dumps({"weighted_amount": {"gt": 0}}),
                "/api/v1/records/opportunity/export?fields=id,weighted_amount",
                "/api/v1/records/opportunity/export?filter=" + json.dumps({"weighted_amount": {"gt": 0}})):
        response = c.get(url, headers=h)
        assert response.status_code == 400, (url, _text(response))
        assert not any(s in _text(response) for s in secrets), url
    for url in ("/api/v1/records/opportunity", f"/api/v1/records/opportunity/{opp['id']}/history",
                "/api/v1/records/opportunity/export", "/api/v1/meta/objects/opportunity",
                "/api/v1/search?q=Deal"):
        response = c.get(url, headers=h)
        assert response.status_code == 200, (url, _text(response))
        assert "weighted_amount" not in _text(response), url
        assert not any(s in _text(response) for s in secrets), url
    exported = list(csv.reader(io.StringIO(_text(c.get("/api/v1/records/opportunity/export", headers=h))
                                           .lstrip("\ufeff"))))
    assert "weighted_amount" not in exported[0] and "amount" not in exported[0]
    # whoever may see amount sees the formula
    full = c.get(f"/api/v1/records/opportunity/{opp['id']}", headers=world.admin).get_json()
    assert full["weighted_amount"] == weighted


def test_rollups_and_chains_inherit_access(runtime):
    """shop_order.total sums shop_line.price, shop_order.gross = total * 1.13: hiding price hides
    both, for reads and for reports."""
    role = {"kind": "role", "name": "rp_price_blind", "label": "Price blind",
            "objects": {"shop_order": {"read": "all", "report": "all"}, "shop_line": {"read": "all"}},
            "fields": {"shop_line": {"price": "hidden"}}}
    seer = {"kind": "role", "name": "rp_price_seer", "label": "Price seer",
            "objects": {"shop_order": {"read": "all"}, "shop_line": {"read": "all"}}}
    apply_change(runtime, documents_bundle([*SHOP, role, seer]))
    registry = runtime.compiled(force=True).registry
    assert derived.dependencies(registry, "shop_order", "gross") == [("shop_order", "total")]
    assert derived.dependencies(registry, "shop_order", "total") == [("shop_line", "price")]
    system = RecordService(runtime, Principal.system())
    order = system.create("shop_order", {"title": "O1"})
    system.create("shop_line", {"sku": "A", "order": order["id"], "price": "10.00"})
    blind = RecordService(runtime, Principal(user_id="u1", username="u1", roles=frozenset({"rp_price_blind"})))
    got = blind.get("shop_order", order["id"])
    assert "total" not in got and "gross" not in got and got["title"] == "O1"
    seen = RecordService(runtime, Principal(user_id="u2", username="u2", roles=frozenset({"rp_price_seer"})))
    assert seen.get("shop_order", order["id"])["gross"] == "11.30"
    from metacrm.platform.errors import Forbidden
    from metacrm.platform.reports import aggregate
    with pytest.raises(Forbidden) as exc:
        aggregate(blind, "shop_order", {"measures": [{"function": "sum", "field": "gross"}]})
    assert exc.value.code == "hidden_field"


def test_formula_dependencies_are_read_from_the_expression():
    names = derived.formula_names
    assert names("(amount or 0) * (probability or 0) / 100")[0] >= {"amount", "probability"}
    assert "amount" in names("record.amount * 2")[0]
    assert "amount" in names("record['amount'] * 2")[0]
    assert derived.ANY in names("record[key]")[0]  # dynamic: every field
    assert derived.ANY in names("record | length")[0]
    assert ("project", "title") in names("project.title")[1]
    assert names("(((") == (frozenset(), frozenset())  # does not parse: computes nothing


def test_a_formula_cycle_does_not_recurse_forever(runtime):
    doc = {"kind": "object", "name": "rp_loop", "label": "Loop", "name_field": "title",
           "fields": [{"name": "title", "type": "text"}, {"name": "secret", "type": "integer"},
                      {"name": "a", "type": "formula", "expression": "b", "result_type": "integer"},
                      {"name": "b", "type": "formula", "expression": "a + secret", "result_type": "integer"}]}
    role = {"kind": "role", "name": "rp_loop_reader", "label": "Loop",
            "objects": {"rp_loop": {"read": "all"}}, "fields": {"rp_loop": {"secret": "hidden"}}}
    try:
        apply_change(runtime, documents_bundle([doc, role]))
    except MetadataInvalid as exc:  # a validator that refuses the cycle, naming the formula, is as good
        assert "/expression" in str(exc.to_dict()), exc.to_dict()
        return
    registry = runtime.compiled(force=True).registry
    access = Access(registry, Principal(user_id="u", username="u", roles=frozenset({"rp_loop_reader"})),
                    runtime.directory())
    assert access.hidden_fields("rp_loop") >= {"a", "b", "secret"}


# --- 5. no oracles --------------------------------------------------------------------------


def test_a_duplicate_the_caller_cannot_see_blocks_without_naming_it(world):
    c, b = world.client, world.rep_b.headers
    acme_id = world.acme["id"]
    before = world.system.list("account", limit=100)[0]
    blocked = c.post("/api/v1/records/account", json={"name": "Acme Secret Holdings"}, headers=b)
    assert blocked.status_code == 409, _text(blocked)
    error = blocked.get_json()["error"]
    assert acme_id not in _text(blocked) and "13800138000" not in _text(blocked)
    assert error["duplicates"] and all(d.get("hidden") and "id" not in d for d in error["duplicates"])
    assert "cannot see" in error["message"]
    assert len(world.system.list("account", limit=100)[0]) == len(before)  # still blocked
    # the owner is told which record it is
    named = c.post("/api/v1/records/account", json={"name": "Acme Secret Holdings"}, headers=world.rep_a.headers)
    assert named.status_code == 409 and acme_id in {d.get("id") for d in named.get_json()["error"]["duplicates"]}
    # the duplicate check
    checked = c.post("/api/v1/records/account/duplicates", json={"name": "Acme Secret Holdings"}, headers=b)
    assert checked.status_code == 200
    assert checked.get_json()["matches"] and acme_id not in _text(checked)
    assert all(m.get("hidden") for m in checked.get_json()["matches"])
    by_id = c.post("/api/v1/records/account/duplicates", json={"id": acme_id}, headers=b)
    missing = c.post("/api/v1/records/account/duplicates", json={"id": MISSING}, headers=b)
    assert (by_id.status_code, by_id.get_json()) == (missing.status_code, missing.get_json()) == (404, missing.get_json())
    # imports, dry run and real, plain and upsert on the name
    for query in ("?dry_run=1", "", "?key=name&dry_run=1", "?key=name"):
        response = c.post(f"/api/v1/records/account/import{query}", json=[{"name": "Acme Secret Holdings",
                                                                           "phone": "13900139000"}], headers=b)
        assert response.status_code == 200, (query, _text(response))
        row = response.get_json()["rows"][0]
        assert row["status"] == "duplicate", (query, row)
        assert acme_id not in _text(response) and all(d.get("hidden") for d in row["duplicates"]), query
    assert world.system.get("account", acme_id)["phone"] == "13800138000"  # the upsert changed nothing
    # an import row that duplicates its own earlier row is still told the row number
    own = c.post("/api/v1/records/account/import?dry_run=1", json=[{"name": "Gamma New Co"}, {"name": "Gamma New Co"}],
                 headers=b).get_json()["rows"]
    assert own[1]["status"] == "duplicate" and own[1]["duplicates"][0]["row"] == 1


def test_a_lookup_to_an_unreadable_record_answers_as_a_missing_one(world):
    c, b = world.client, world.rep_b.headers
    answers = []
    for target in (world.acme["id"], MISSING):
        response = c.post("/api/v1/records/opportunity", json={"name": "Probe", "account": target}, headers=b)
        answers.append((response.status_code, response.get_json()))
    assert answers[0] == answers[1] and answers[0][0] == 400
    opp = world.opps[1]  # rep_b's own deal: re-pointing it is the same probe on update
    version = world.system.get("opportunity", opp["id"])["version"]
    answers = []
    for target in (world.acme["id"], MISSING):
        response = c.patch(f"/api/v1/records/opportunity/{opp['id']}", json={"account": target, "version": version},
                           headers=b)
        answers.append((response.status_code, response.get_json()))
    assert answers[0] == answers[1] and answers[0][0] == 400
    # an import (dry run) says the same for both
    rows = c.post("/api/v1/records/opportunity/import?dry_run=1",
                  json=[{"name": "P1", "account": world.acme["id"]}, {"name": "P2", "account": MISSING}],
                  headers=b).get_json()["rows"]
    assert {k: v for k, v in rows[0].items() if k != "row"} == {k: v for k, v in rows[1].items() if k != "row"}


def test_a_record_outside_the_read_scope_is_404_on_every_verb_like_a_missing_one(world):
    c, b = world.client, world.rep_b.headers
    acme = world.acme["id"]
    version = world.system.get("account", acme)["version"]
    verbs = [
        ("GET", "/api/v1/records/account/{id}", None),
        ("PATCH", "/api/v1/records/account/{id}", {"name": "Taken", "version": version}),
        ("DELETE", "/api/v1/records/account/{id}", None),
        ("POST", "/api/v1/records/account/{id}/restore", {}),
        ("GET", "/api/v1/records/account/{id}/history", None),
        ("GET", "/api/v1/records/account/{id}/actions", None),
        ("POST", "/api/v1/records/account/{id}/merge", {"losers": [world.beta["id"]]}),
        ("POST", "/api/v1/records/account/{id}/submit", {}),
    ]
    for method, url, body in verbs:
        answers = []
        for rid in (acme, MISSING):
            kwargs = {"headers": b} if body is None else {"headers": b, "json": body}
            response = c.open(url.format(id=rid), method=method, **kwargs)
            answers.append((response.status_code, response.get_json()))
        assert answers[0][0] == 404, (method, url, answers[0])
        assert answers[0] == answers[1], (method, url, answers)
    assert world.system.get("account", acme)["name"] == "Acme Secret Holdings"
