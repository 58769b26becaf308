"""Saved views and kanban boards (web pages and the metadata kind), on SQLite and PostgreSQL:
personal views are their owner's only, the last view is remembered per user and object, a
board's counts and sums stay within the read scope, and a card move goes through the one write
path (a refused move changes nothing)."""

from __future__ import annotations

import re

import pytest

from metacrm.metadata.bundle import documents_bundle
from metacrm.platform.apply import MetadataInvalid, apply_change
from tests.conftest import make_user
from tests.test_ltc_support import ltc  # noqa: F401  (the lead-to-cash rules: loss reasons)
from tests.web.conftest import login, post


def _client(app, user):
    web = app.test_client()
    assert login(web, user.username, user.password).status_code == 303
    return web


def admin_web(app):
    from tests.conftest import ADMIN_PASSWORD

    web = app.test_client()
    assert login(web, "admin", ADMIN_PASSWORD).status_code == 303
    return web


def _tabs(html: str) -> list[tuple[str, bool]]:
    return [(name, "active" in cls) for cls, name in re.findall(r'class="view-tab([^"]*)" data-view="([a-z0-9_]+)"', html)]


@pytest.fixture
def deals(runtime, client, system):
    """Two reps with opportunities of their own (stages and amounts differ)."""
    rita = make_user(runtime, client, "rita", ["sales_rep"])
    sam = make_user(runtime, client, "sam", ["sales_rep"])
    account = system.create("account", {"name": "Acme"})["id"]
    made = {}
    for owner, name, stage, amount in ((rita, "R1", "qualification", "100.00"), (rita, "R2", "qualification", "50.00"),
                                       (rita, "R3", "research", "7.00"), (sam, "S1", "qualification", "1000.00"),
                                       (sam, "S2", "research", "3000.00")):
        made[name] = system.create("opportunity", {"name": name, "account": account, "stage": stage,
                                                   "amount": amount, "owner": owner.id, "close_date": "2031-01-01"})
    return rita, sam, made


def test_a_personal_view_is_listed_only_for_its_owner_and_is_remembered(app, deals):
    rita, sam, _ = deals
    web = _client(app, rita)
    html = web.get("/records/opportunity").get_data(as_text=True)
    # The sales rep's role default opens first.
    assert ("my_open_opportunities", True) in _tabs(html)
    assert "R1" in html and "S1" not in html
    response = post(web, "/records/opportunity/views", {"label": "Research deals", "query": "f.stage=research&sort=-amount"})
    assert response.status_code == 303
    name = re.search(r"view=([a-z0-9_]+)", response.headers["Location"]).group(1)
    html = web.get(f"/records/opportunity?view={name}").get_data(as_text=True)
    assert (name, True) in _tabs(html) and "Research deals" in html
    assert "R3" in html and "R1" not in html
    # Remembered: the plain list opens with it.
    assert (name, True) in _tabs(web.get("/records/opportunity").get_data(as_text=True))
    # Another rep neither lists nor opens it.
    other = _client(app, sam)
    html = other.get("/records/opportunity").get_data(as_text=True)
    assert name not in [n for n, _ in _tabs(html)] and "Research deals" not in html
    html = other.get(f"/records/opportunity?view={name}").get_data(as_text=True)
    assert (name, True) not in _tabs(html) and "Research deals" not in html
    # Nor over the metadata API (the kind is admin-only there).
    assert other.get(f"/api/v1/meta/view/{name}").status_code in (403, 404)
    # "All records" is remembered too.
    web.get("/records/opportunity?view=_all")
    assert ("_all", True) in _tabs(web.get("/records/opportunity").get_data(as_text=True))


def test_a_view_needs_a_label_and_only_admins_share_or_delete_shared_views(app, runtime, deals):
    rita, _, _ = deals
    web = _client(app, rita)
    response = post(web, "/records/opportunity/views", {"label": "", "query": ""})
    assert response.status_code == 303
    assert not [d for d in runtime.registry().of_kind("view") if d.get("owner")]
    # A shared view is admins' only: a rep's "share" is refused.
    assert post(web, "/records/opportunity/views", {"label": "X", "query": "", "share": "*"}).status_code == 403
    # Deleting a shared view is refused to a rep.
    assert post(web, "/records/opportunity/views/pipeline/delete").status_code == 404
    assert post(admin_web(app), "/records/lead/views/pipeline/delete").status_code == 404  # not a lead view
    assert runtime.registry().get("view", "pipeline") is not None


def test_board_counts_and_sums_respect_the_read_scope(app, deals):
    rita, _, _ = deals
    html = _client(app, rita).get("/records/opportunity?view=pipeline").get_data(as_text=True)
    col = html[html.index('id="col-qualification"'):html.index('id="col-research"')]
    assert re.search(r'class="kanban-count"[^>]*>2<', col)
    assert "150.00" in col and "1,000.00" not in col and "1,150.00" not in col
    assert "R1" in col and "S1" not in col
    # The manager above both reps sees all.
    boss = make_user(app.extensions["metacrm"], app.test_client(), "mia", ["vp_sales"])
    html = _client(app, boss).get("/records/opportunity?view=pipeline").get_data(as_text=True)
    col = html[html.index('id="col-research"'):html.index('id="col-trial"')]
    assert re.search(r'class="kanban-count"[^>]*>2<', col) and "3,007.00" in col
    # The leads board of the default metadata: a column per status, in the picklist's order.
    html = _client(app, rita).get("/records/lead?view=new_leads").get_data(as_text=True)
    assert re.findall(r'class="kanban-col" data-value="([a-z_]+)"', html) == [
        "new", "working", "nurturing", "qualified", "converted", "disqualified"]


def test_a_card_move_goes_through_the_write_path_and_a_refused_one_changes_nothing(ltc, app, system, deals):  # noqa: F811
    rita, _, made = deals
    web = _client(app, rita)
    deal = made["R1"]
    headers = {"X-Requested-With": "fetch"}
    response = post(web, f"/records/opportunity/{deal['id']}/move",
                    {"view": "pipeline", "value": "research", "version": deal["version"]}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.get_json()
    assert body["ok"] and body["columns"]["research"]["count"] == "2"
    moved = system.get("opportunity", deal["id"])
    assert moved["stage"] == "research" and moved["version"] == body["version"]
    history = system.history("opportunity", deal["id"])
    assert any("stage" in (h.get("changes") or {}) for h in history)
    # A stale version is refused.
    response = post(web, f"/records/opportunity/{deal['id']}/move",
                    {"view": "pipeline", "value": "trial", "version": deal["version"]}, headers=headers)
    assert response.status_code == 409 and not response.get_json()["ok"]
    # Lost without a loss reason: refused with the rule's message, nothing changes.
    response = post(web, f"/records/opportunity/{deal['id']}/move",
                    {"view": "pipeline", "value": "lost", "version": moved["version"]}, headers=headers)
    assert response.status_code == 422, response.get_json()
    assert "loss reason" in response.get_json()["error"].lower()
    after = system.get("opportunity", deal["id"])
    assert after["stage"] == "research" and after["version"] == moved["version"]
    # Without script the form posts and the board says why.
    response = post(web, f"/records/opportunity/{deal['id']}/move",
                    {"view": "pipeline", "value": "lost", "version": moved["version"]})
    assert response.status_code == 303
    html = web.get(response.headers["Location"]).get_data(as_text=True)
    assert "Not moved" in html
    # Someone else's deal is not the rep's to move.
    other = made["S1"]
    response = post(web, f"/records/opportunity/{other['id']}/move",
                    {"view": "pipeline", "value": "research", "version": other["version"]}, headers=headers)
    assert response.status_code in (403, 404)
    assert system.get("opportunity", other["id"])["stage"] == "qualification"


def test_the_board_pages_cards_per_column(app, system, deals):
    rita, _, _ = deals
    account = system.create("account", {"name": "Many"})["id"]
    for i in range(12):
        system.create("opportunity", {"name": f"Bulk {i:02d}", "account": account, "stage": "trial",
                                      "amount": "1.00", "owner": rita.id, "close_date": f"2030-01-{i + 1:02d}"})
    web = _client(app, rita)
    html = web.get("/records/opportunity?view=pipeline").get_data(as_text=True)
    col = html[html.index('id="col-trial"'):html.index('id="col-negotiation"')]
    assert col.count('class="kanban-card card') == 10 and re.search(r'class="kanban-count"[^>]*>12<', col)
    more = re.search(r'href="([^"]+)">More<', col).group(1).replace("&amp;", "&")
    html = web.get(more).get_data(as_text=True)
    col = html[html.index('id="col-trial"'):html.index('id="col-negotiation"')]
    assert col.count('class="kanban-card card') == 2 and "Bulk 11" in col and "Bulk 00" not in col


def _view(**values):
    return {"kind": "view", "name": "bad_view", "object": "opportunity", **values}


@pytest.mark.parametrize("values, path", [
    ({"columns": ["name", "nope"]}, "/columns/1"),
    ({"mode": "kanban", "kanban_field": "amount"}, "/kanban_field"),
    ({"mode": "kanban"}, ""),
    ({"sort": "-nope"}, "/sort"),
    ({"filter": {"stage": {"gt": 3, "zz": 1}}}, "/filter"),
    ({"sum_field": "name"}, "/sum_field"),
    ({"roles": ["nobody"]}, "/roles/0"),
    ({"owner": "u1", "roles": ["sales_rep"]}, "/roles"),
    ({"roles": ["sales_rep"], "default_for_roles": ["finance"]}, "/default_for_roles/0"),
])
def test_view_documents_are_checked_at_apply_with_json_paths(runtime, values, path):
    with pytest.raises(MetadataInvalid) as caught:
        apply_change(runtime, documents_bundle([_view(**values)]))
    paths = [issue.path for issue in caught.value.issues]
    assert any(p.startswith(path) for p in paths) if path else any(
        "kanban_field" in issue.message for issue in caught.value.issues), paths
    assert runtime.registry().get("view", "bad_view") is None


def test_views_over_rest_list_only_the_callers_own_personal_views(client, deals, admin_headers):
    rita, sam, _ = deals
    created = client.post("/api/v1/views", headers=rita.headers, json={
        "object": "opportunity", "label": {"en": "Big", "zh-CN": "大单"}, "columns": ["name", "amount"],
        "filter": {"amount": {"gte": 60}}, "sort": "-amount"})
    assert created.status_code == 201, created.get_json()
    name = created.get_json()["name"]
    mine = client.get("/api/v1/views?object=opportunity", headers=rita.headers).get_json()["items"]
    assert name in [v["name"] for v in mine] and "pipeline" in [v["name"] for v in mine]
    theirs = client.get("/api/v1/views?object=opportunity", headers=sam.headers).get_json()["items"]
    assert name not in [v["name"] for v in theirs]
    # Bad input: a precise 400 at the document's JSON path, and nothing saved.
    bad = client.post("/api/v1/views", headers=rita.headers, json={
        "object": "opportunity", "label": "Bad", "columns": ["name", "nope"]})
    assert bad.status_code == 400
    assert any(i["path"] == "/columns/1" for i in bad.get_json()["error"]["issues"])
    # Only admins share; nobody deletes another's view.
    shared = client.post("/api/v1/views", headers=rita.headers,
                         json={"object": "opportunity", "label": "Team", "roles": ["sales_rep"]})
    assert shared.status_code == 403
    assert client.delete(f"/api/v1/views/{name}", headers=sam.headers).status_code == 404
    taken = client.post("/api/v1/views", headers=sam.headers, json={"object": "opportunity", "label": "Mine now",
                                                                     "name": name})
    assert taken.status_code == 403
    assert client.post("/api/v1/views", headers=admin_headers, json={
        "object": "opportunity", "label": "Team", "roles": ["sales_rep"]}).status_code == 201
    assert client.delete(f"/api/v1/views/{name}", headers=rita.headers).status_code == 204
    mine = client.get("/api/v1/views?object=opportunity", headers=rita.headers).get_json()["items"]
    assert name not in [v["name"] for v in mine] and "Team" in [v["label"] for v in mine]


def test_a_view_never_shows_a_field_the_users_roles_hide(app, runtime, client, deals):
    apply_change(runtime, documents_bundle([
        {"kind": "role", "name": "viewer", "objects": {"opportunity": {"read": "all"}},
         "fields": {"opportunity": {"amount": "hidden"}}},
        {"kind": "view", "name": "viewer_list", "object": "opportunity", "label": "Amounts",
         "columns": ["name", "amount", "stage"], "roles": ["viewer"], "sort": "-amount"},
        {"kind": "view", "name": "viewer_board", "object": "opportunity", "label": "Board", "mode": "kanban",
         "kanban_field": "stage", "sum_field": "amount", "columns": ["name", "amount"], "roles": ["viewer"]},
    ]))
    viewer = make_user(runtime, client, "vic", ["viewer"])
    web = _client(app, viewer)
    html = web.get("/records/opportunity?view=viewer_list").get_data(as_text=True)
    assert ("viewer_list", True) in _tabs(html), re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))[-600:]
    assert "R1" in html and "S1" in html  # the read scope is "all"
    assert ">Amount<" not in html and "1,000.00" not in html
    html = web.get("/records/opportunity?view=viewer_board").get_data(as_text=True)
    assert 'id="kanban"' in html and "kanban-sum" not in html and "1,000.00" not in html
    # Nor may the user save a view naming it.
    refused = client.post("/api/v1/views", headers=viewer.headers,
                          json={"object": "opportunity", "label": "Peek", "filter": {"amount": {"gt": 0}}})
    assert refused.status_code == 400 and "amount" in refused.get_json()["error"]["fields"]


def test_a_shared_view_filtering_on_a_hidden_field_is_not_applied(app, runtime, client, deals):
    apply_change(runtime, documents_bundle([
        {"kind": "role", "name": "viewer", "objects": {"opportunity": {"read": "all"}},
         "fields": {"opportunity": {"amount": "hidden"}}},
        {"kind": "view", "name": "big_only", "object": "opportunity", "label": "Big only",
         "filter": {"amount": {"gte": 1000}}, "roles": ["viewer"]},
    ]))
    viewer = make_user(runtime, client, "vic", ["viewer"])
    web = _client(app, viewer)
    response = web.get("/records/opportunity?view=big_only")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "filters on a field you cannot see" in html
    assert ("_all", True) in _tabs(html)


@pytest.mark.parametrize("locale, expected", [
    ("en", "Quote discount approval must approve this record before Status becomes Presented."),
    ("zh-CN", "状态变为“已报价”之前，须先通过报价折扣审批。"),
])
def test_an_approval_gate_refuses_a_card_move_in_the_readers_language(ltc, app, runtime, client, system,  # noqa: F811
                                                                     locale, expected):
    from metacrm.platform.records import RecordService

    apply_change(runtime, documents_bundle([{
        "kind": "view", "name": "quotes_board", "object": "quote", "label": {"en": "Quotes by status"},
        "mode": "kanban", "kanban_field": "status", "roles": ["*"]}]))
    boss = make_user(runtime, client, "gate_boss", ["sales_manager"])
    rep = make_user(runtime, client, "gate_rep", ["sales_rep"], manager=boss.id)
    system.update("user", rep.id, {"locale": locale})
    quote = RecordService(runtime, rep.principal, source="test").create("quote", {"name": "Board quote",
                                                                                 "discount_pct": "20"})
    web = _client(app, rep)
    html = web.get("/records/quote?view=quotes_board").get_data(as_text=True)
    assert f'id="card-{quote["id"]}"' in html
    response = post(web, f"/records/quote/{quote['id']}/move",
                    {"view": "quotes_board", "value": "presented", "version": quote["version"]},
                    headers={"X-Requested-With": "fetch"})
    assert response.status_code == 409
    assert expected in response.get_json()["error"]
    after = system.get("quote", quote["id"])
    assert after["status"] == "draft" and after["version"] == quote["version"]


@pytest.mark.parametrize("body", [
    {"object": "opportunity", "label": "X", "columns": 5},
    {"object": "opportunity", "label": "X", "columns": "name"},
    {"object": "opportunity", "label": 7},
    {"object": "opportunity", "label": {"xx yy": "bad locale"}},
    {"object": "opportunity", "label": "X", "filter": ["not", "a", "filter"]},
    {"object": "opportunity", "label": "X", "sort": 12},
    {"object": "opportunity", "label": "X", "name": 3},
    {"object": "opportunity", "label": "X", "mode": "kanban", "kanban_field": ["stage"]},
    {"object": 5, "label": "X"},
    {"label": "X"},
    ["not", "an", "object"],
])
def test_bad_view_bodies_get_a_400_and_save_nothing(client, runtime, deals, body):
    rita = deals[0]
    response = client.post("/api/v1/views", headers=rita.headers, json=body)
    assert response.status_code == 400, response.get_json()
    assert not [d for d in runtime.registry().of_kind("view") if d.get("owner")]
