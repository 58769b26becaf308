"""The Reports page, running a report with filters changed on the page, its exports, and the
report builder (private vs shared reports), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re

from openpyxl import load_workbook

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform.apply import apply_change
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from tests.conftest import make_user
from tests.web.conftest import login, new_lead, post


def _client(app, user):
    client = app.test_client()
    assert login(client, user.username, user.password).status_code == 303
    return client


def test_reports_page_lists_by_folder_what_the_user_may_run(app, client, runtime, rep, rep_client):
    html = rep_client.get("/reports").get_data(as_text=True)
    assert 'data-folder="Marketing"' in html and 'data-report="leads_by_source_and_status"' in html
    assert 'href="/reports"' in rep_client.get("/").get_data(as_text=True)  # the nav entry
    assert 'id="new-report"' not in html  # a rep may not build reports
    assert rep_client.get("/reports/new").status_code == 403
    marketing = _client(app, make_user(runtime, client, "mia", ["marketing"]))
    listed = marketing.get("/reports").get_data(as_text=True)
    assert 'data-report="leads_by_month"' in listed
    assert 'data-report="collections_by_month"' not in listed  # payments: marketing may not read them
    finance = make_user(runtime, client, "fay", ["finance"])
    RecordService(runtime, Principal.system()).update("user", finance.id, {"locale": "zh-CN"})
    fin = _client(app, finance)
    zh = fin.get("/reports").get_data(as_text=True)
    assert 'data-folder="财务"' in zh and "每月回款" in zh and "报表" in zh


def test_run_a_report_with_a_changed_filter_and_group_links(app, system, rep, rep_client):
    for company, source in (("Acme", "web"), ("Bolt", "web"), ("Cray", "referral")):
        new_lead(system, company, source=source, owner=rep.id)
    new_lead(system, "Other", source="web")  # not the rep's
    page = rep_client.get("/reports/leads_by_source_and_status")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="report-table"' in html and "<svg" in html
    assert re.search(r'report-total.*?<strong>3</strong>', html, re.DOTALL)  # only the rep's three leads
    assert "/records/lead?f.source=web&amp;f.status=" in html  # each group links to its records
    filtered = rep_client.get("/reports/leads_by_source_and_status?c.0.field=source&c.0.op=eq&c.0.value=referral")
    text = filtered.get_data(as_text=True)
    assert filtered.status_code == 200
    assert re.search(r'report-total.*?<strong>1</strong>', text, re.DOTALL)
    assert 'value="referral" selected' in text  # the row is kept on the page
    bad = rep_client.get("/reports/leads_by_source_and_status?c.0.field=nope&c.0.op=eq&c.0.value=x")
    assert bad.status_code == 400 and "field-error" in bad.get_data(as_text=True)
    typed = rep_client.get("/reports/leads_by_source_and_status?c.0.field=created_at&c.0.op=gte&c.0.value=soon")
    assert typed.status_code == 400
    assert rep_client.get("/reports/nope").status_code == 404
    loss = rep_client.get("/reports/loss_reasons").get_data(as_text=True)  # the report's own filter, in words
    assert re.search(r'report-base.*Stage is one of Closed won, Closed lost', loss)


def test_a_hidden_field_is_refused(app, client, runtime, system):
    role = {"kind": "role", "name": "credit_blind", "objects": {"account": {"read": "all", "report": "all"}},
            "fields": {"account": {"credit_limit": "hidden"}}}
    apply_change(runtime, documents_bundle([role]))
    runtime.compiled(force=True)
    blind = make_user(runtime, client, "bea", ["credit_blind"])
    system.create("account", {"name": "Acme", "credit_rating": "A"})
    mc = _client(app, blind)
    assert 'data-report="accounts_by_rating"' in mc.get("/reports").get_data(as_text=True)
    assert mc.get("/reports/accounts_by_rating").status_code == 200
    refused = mc.get("/reports/accounts_by_rating?c.0.field=credit_limit&c.0.op=gte&c.0.value=1")
    assert refused.status_code == 403
    assert "credit_limit" not in mc.get("/reports/accounts_by_rating").get_data(as_text=True)
    assert mc.get("/reports/accounts_by_rating/export.csv?c.0.field=credit_limit&c.0.op=gte&c.0.value=1"
                  ).status_code == 403


def test_exports_csv_and_xlsx_keep_to_the_scope_and_filter(app, system, rep, rep_client):
    new_lead(system, "Acme", source="web", owner=rep.id)
    new_lead(system, "Bolt", source="referral", owner=rep.id)
    new_lead(system, "=cmd", source="web")  # another owner's: never counted
    got = rep_client.get("/reports/leads_by_source_and_status/export.csv?c.0.field=source&c.0.op=eq&c.0.value=web")
    assert got.status_code == 200 and got.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(got.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:2] == ["Source", "Status"]
    assert rows[-1][0] == "Total" and rows[-1][-1] == "1"
    assert len(rows) == 3
    xlsx = rep_client.get("/reports/leads_by_source_and_status/export.xlsx")
    assert xlsx.status_code == 200 and "spreadsheetml" in xlsx.mimetype
    sheet = load_workbook(io.BytesIO(xlsx.data)).active
    values = list(sheet.values)
    assert values[0][:2] == ("Source", "Status") and values[-1][0] == "Total" and values[-1][-1] == 2


def test_builder_saves_private_and_shared_reports(app, client, runtime, system, rep, rep_client):
    manager = make_user(runtime, client, "max", ["sales_manager"])
    other = make_user(runtime, client, "mo", ["sales_manager"])
    new_lead(system, "Acme", source="web", owner=manager.id)
    mc = _client(app, manager)
    assert 'id="new-report"' in mc.get("/reports").get_data(as_text=True)
    assert 'name="group1"' in mc.get("/reports/new?object=lead").get_data(as_text=True)
    form = {"object": "lead", "label_en": "My leads by source", "label_zh": "我的线索来源", "folder": "Mine",
            "c.0.field": "source", "c.0.op": "ne", "c.0.value": "referral",
            "group1": "source", "period1": "", "group2": "created_at", "period2": "month",
            "m.0.function": "count", "m.0.field": "", "m.1.function": "min", "m.1.field": "created_at",
            "sort": "-count", "chart": "stacked_bar", "sharing": "private"}
    saved = post(mc, "/reports/new", form)
    assert saved.status_code == 303, saved.get_data(as_text=True)
    doc = runtime.compiled().registry.get("report", "my_leads_by_source")
    assert doc["owner"] == manager.id and "shared_with" not in doc and doc["filter"] == {"source": {"ne": "referral"}}
    assert doc["group_by"] == ["source", {"field": "created_at", "period": "month"}]
    page = mc.get("/reports/my_leads_by_source").get_data(as_text=True)
    assert "My leads by source" in page and "<svg" in page
    assert 'data-report="my_leads_by_source"' in mc.get("/reports").get_data(as_text=True)
    oc = _client(app, other)
    assert 'my_leads_by_source' not in oc.get("/reports").get_data(as_text=True)
    assert oc.get("/reports/my_leads_by_source").status_code == 404
    assert oc.get("/api/v1/reports/my_leads_by_source", headers=other.headers).status_code == 404
    assert "my_leads_by_source" not in {i["name"] for i in client.get(
        "/api/v1/reports", headers=other.headers).get_json()["items"]}
    assert oc.get("/reports/new?name=my_leads_by_source").status_code == 404  # not theirs to edit
    # shared with the reps: now the rep lists and runs it, the other manager still not
    shared = post(mc, "/reports/my_leads_by_source/edit", dict(form, sharing="roles", shared_with="sales_rep"))
    assert shared.status_code == 303, shared.get_data(as_text=True)
    assert runtime.compiled().registry.get("report", "my_leads_by_source")["shared_with"] == ["sales_rep"]
    assert rep_client.get("/reports/my_leads_by_source").status_code == 200
    assert oc.get("/reports/my_leads_by_source").status_code == 404


def test_builder_shows_errors_beside_the_input_and_saves_nothing(app, client, runtime):
    manager = make_user(runtime, client, "max", ["sales_manager"])
    mc = _client(app, manager)
    version = runtime.compiled().registry.version
    base = {"object": "lead", "label_en": "Bad", "chart": "bar", "sharing": "private", "m.0.function": "count"}
    for extra, key in (({"group1": "id"}, "group1"),  # identifies single records
                       ({"m.0.function": "sum", "m.0.field": "company"}, "m0"),  # not a number
                       ({"sort": "nope"}, "sort"),
                       ({"label_en": ""}, "label_en"),
                       ({"sharing": "roles"}, "shared_with"),
                       ({"c.0.field": "created_at", "c.0.op": "gte", "c.0.value": "x"}, None),
                       ({"object": "nope"}, "object")):
        response = post(mc, "/reports/new", dict(base, **extra))
        html = response.get_data(as_text=True)
        assert response.status_code == 400, extra
        assert "field-error" in html, extra
        if key:
            assert f'id="err-{key}"' in html, (extra, html[:3000])
    assert runtime.compiled().registry.version == version
    assert runtime.compiled().registry.get("report", "bad") is None
    assert mc.post("/reports/new", data=base).status_code in (400, 403)  # no CSRF token
    assert runtime.compiled().registry.get("report", "bad") is None


def test_group_by_a_parent_field_within_the_parents_scope(app, client, runtime, system, rep, rep_client):
    mine = system.create("account", {"name": "Mine Co", "industry": "manufacturing", "owner": rep.id})
    theirs = system.create("account", {"name": "Theirs Co", "industry": "finance"})
    for account in (mine, mine, theirs):
        system.create("opportunity", {"name": "Deal", "account": account["id"], "amount": "100.00", "owner": rep.id,
                                      "close_date": "2025-03-01"})
    spec = {"group_by": ["account.industry"], "measures": [{"function": "sum", "field": "amount"}]}
    got = client.post("/api/v1/aggregate/opportunity", json=spec, headers=rep.headers)
    assert got.status_code == 200, got.get_json()
    rows = {r["account.industry"]: r["sum_amount"] for r in got.get_json()["rows"]}
    assert rows == {"manufacturing": "200.00", None: "100.00"}  # the other account is not the rep's to read
    for bad, status in ((["account.nope"], 400), (["amount.x"], 400), (["account.id"], 400)):
        answer = client.post("/api/v1/aggregate/opportunity", json={"group_by": bad}, headers=rep.headers)
        assert answer.status_code == status, (bad, answer.get_json())
        assert "group_by/0" in answer.get_json()["error"]["fields"]
    role = {"kind": "role", "name": "credit_blind", "objects": {"account": {"read": "all", "report": "all"},
                                                                "opportunity": {"read": "all", "report": "all"}},
            "fields": {"account": {"credit_limit": "hidden"}}}
    apply_change(runtime, documents_bundle([role]))
    runtime.compiled(force=True)
    blind = make_user(runtime, client, "bea", ["credit_blind"])
    refused = client.post("/api/v1/aggregate/opportunity", json={"group_by": ["account.credit_limit"]},
                          headers=blind.headers)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "hidden_field"
    manager = make_user(runtime, client, "max", ["sales_manager"])
    mc = _client(app, manager)
    assert 'value="account.industry"' in mc.get("/reports/new?object=opportunity").get_data(as_text=True)
    form = {"object": "opportunity", "label_en": "Deals by industry", "group1": "account.industry",
            "group2": "close_date", "period2": "quarter", "m.0.function": "count", "chart": "bar",
            "sharing": "roles", "shared_with": "sales_rep"}
    assert post(mc, "/reports/new", form).status_code == 303
    page = rep_client.get("/reports/deals_by_industry").get_data(as_text=True)
    assert "Account › Industry" in page and "2025-Q1" in page
    assert re.search(r'report-total.*?<strong>3</strong>', page, re.DOTALL)
