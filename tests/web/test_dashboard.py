"""The home dashboard: SQL aggregates within the caller's scope, SVG charts, widgets."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform.apply import apply_change
from metacrm.platform.records import RecordService
from metacrm.platform.web import dashboard, display
from tests.conftest import make_user
from tests.web.conftest import login, new_lead


@pytest.fixture
def restore_widgets():
    saved = dict(dashboard.WIDGETS)
    yield
    dashboard.WIDGETS.clear()
    dashboard.WIDGETS.update(saved)


def test_aggregate_counts_and_sums_within_the_callers_scope(runtime, client, system):
    rep = make_user(runtime, client, "amy", ["sales_rep"])
    other = make_user(runtime, client, "bob", ["sales_rep"])
    new_lead(system, "A1", owner=rep.id, source="web", budget="10.25")
    new_lead(system, "A2", owner=rep.id, source="email", budget="0.75")
    new_lead(system, "B1", owner=other.id, source="web", budget="100")
    mine = RecordService(runtime, rep.principal)
    counts = {r["source"]: r["value"] for r in dashboard.aggregate(mine, "lead", ["source"])}
    assert counts == {"web": 1, "email": 1}
    total = dashboard.aggregate(mine, "lead", [], measure="budget")
    assert str(total[0]["value"]) == "11.00"
    everyone = {r["source"]: r["value"] for r in dashboard.aggregate(system, "lead", ["source"])}
    assert everyone["web"] == 2
    assert dashboard.aggregate(mine, "lead", ["source"], filter={"source": "email"}) == [{"source": "email", "value": 1}]
    assert dashboard.aggregate(mine, "no_such_object", []) is None


def test_aggregate_refuses_hidden_fields_and_unreadable_objects(runtime, client, system):
    apply_change(runtime, documents_bundle([{"kind": "role", "name": "blind", "objects": {
        "lead": {"read": "own"}}, "fields": {"lead": {"source": "hidden"}}}]))
    user = make_user(runtime, client, "cy", ["blind"])
    service = RecordService(runtime, user.principal)
    assert dashboard.aggregate(service, "lead", ["source"]) is None
    assert dashboard.aggregate(service, "lead", ["status"]) == []
    assert dashboard.aggregate(service, "account", []) is None


def test_home_shows_svg_charts_of_the_users_own_data(runtime, app, client, system):
    rep = make_user(runtime, client, "dee", ["sales_rep"])
    new_lead(system, "Mine 1", owner=rep.id, source="web", status="new")
    new_lead(system, "Mine 2", owner=rep.id, source="referral", status="working")
    new_lead(system, "Not mine", source="web")
    web = app.test_client()
    login(web, "dee", rep.password)
    page = web.get("/").text
    assert page.count("<svg class=\"chart") >= 2
    widget = re.search(r'data-widget="leads_by_source_and_status".*?</section>', page, re.DOTALL).group(0)
    assert "Total: <strong>2</strong>" in widget
    assert "Website" in widget or "Web" in widget
    assert "Referral" in widget and "series-0" in widget
    assert 'href="/records/lead?f.source=web"' in widget
    assert "style=" not in page


def test_pipeline_chart_appears_with_opportunities(admin_client, system):
    registry = system.registry
    if not registry.has_object("opportunity"):
        pytest.skip("no opportunity object in this metadata")
    obj = registry.object("opportunity")
    stage = obj.fields["stage"].option_values[0]
    page = admin_client.get("/").text
    assert 'data-widget="pipeline_by_stage"' in page
    values = {"name": "Big deal", "stage": stage, "amount": "1500000.00"}
    for name, fdef in obj.fields.items():
        if fdef.required and name not in values:
            if fdef.type == "lookup" and fdef.target:
                values[name] = system.create(fdef.target[0], {"name": "Pipeline Account"})["id"]
            elif fdef.type == "date":
                values[name] = "2030-01-01"
            elif fdef.type == "picklist":
                values[name] = fdef.option_values[0]
    system.create("opportunity", values)
    widget = re.search(r'data-widget="pipeline_by_stage".*?</section>', admin_client.get("/").text, re.DOTALL).group(0)
    assert "<svg" in widget and "1.5M" in widget and "1,500,000.00" in widget


def test_pipeline_counts_open_opportunities_only_in_stage_order(admin_client, system):
    registry = system.registry
    if not registry.has_object("opportunity"):
        pytest.skip("no opportunity object in this metadata")
    stage = registry.object("opportunity").fields["stage"]
    closed = [o["value"] for o in stage.options if o.get("is_closed")]
    open_ = [o["value"] for o in stage.options if not o.get("is_closed")]
    if not closed or len(open_) < 2:
        pytest.skip("the stages have no closed stage")
    account = system.create("account", {"name": "Pipeline order Co"})["id"]
    for value, amount in [(open_[1], "200"), (open_[0], "100"), (closed[0], "900000")]:
        extra = {"win_loss_reason": "price"} if value == "lost" else {}
        system.create("opportunity", {"name": f"Deal {value}", "stage": value, "amount": amount, "account": account,
                                      "close_date": "2030-01-01", **extra})
    with admin_client.application.test_request_context("/"):
        chart = dashboard.pipeline_by_stage(system)
    labels = [display.option_label(stage, v) for v in open_[:2]]
    assert chart["categories"] == labels  # the stage order, not the amount order, and no closed stage
    assert display.option_label(stage, closed[0]) not in chart["categories"]
    assert [Decimal(str(v)) for v in chart["series"][0]["values"]] == [100, 200]


def test_widgets_plug_in_and_a_broken_one_does_not_break_the_page(admin_client, restore_widgets):
    dashboard.register_widget("aging", lambda service: {
        "type": "columns", "title": "Receivables aging", "categories": ["0-30", "31-60"],
        "series": [{"label": "Amount", "values": [5, 3]}]}, order=5)
    dashboard.register_widget("hidden_one", lambda service: None)

    def broken(service):
        raise RuntimeError("boom")

    dashboard.register_widget("broken", broken)
    page = admin_client.get("/")
    assert page.status_code == 200
    assert 'data-widget="aging"' in page.text and "Receivables aging" in page.text
    assert 'data-widget="hidden_one"' not in page.text and 'data-widget="broken"' not in page.text
