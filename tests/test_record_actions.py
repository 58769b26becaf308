"""POST /records/{object}/{id}/actions/{action}: the caller must read the record and hold the
action's permission on it; the action runs as the caller in one transaction."""

from __future__ import annotations

import pytest

from metacrm.metadata.bundle import Bundle
from metacrm.platform.apply import apply_change
from metacrm.platform.errors import ValidationFailed
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from metacrm.plugins.api import PluginContext
from tests.conftest import make_user

WIDGET = {"kind": "object", "name": "widget", "name_field": "name", "track_history": ["qty"],
          "fields": [{"name": "name", "type": "text", "required": True}, {"name": "qty", "type": "integer"},
                     {"name": "secret", "type": "text"}]}
READER = {"kind": "role", "name": "widget_reader", "fields": {"widget": {"secret": "hidden"}},
          "objects": {"widget": {"create": "all", "read": "all", "edit": "own"}}}
SPECIAL = {"kind": "role", "name": "widget_special", "permissions": ["widget_special"],
           "objects": {"widget": {"read": "all"}}}
OUTSIDER = {"kind": "role", "name": "widget_outsider", "objects": {}}


def system(runtime) -> RecordService:
    return RecordService(runtime, Principal.system(), source="test")


@pytest.fixture
def setup(runtime, client):
    apply_change(runtime, Bundle(documents=[WIDGET, READER, SPECIAL, OUTSIDER]))
    ctx = PluginContext(runtime, "acts")

    def bump(service, record, params):
        by = params.get("by", 1)
        updated = service.update("widget", record["id"], {"qty": (record.get("qty") or 0) + by},
                                 version=record["version"])
        return {"qty": updated["qty"], "user": service.principal.username}

    def bump_then_fail(service, record, params):
        bump(service, record, params)
        raise ValidationFailed("Not today.", fields={"by": ["Refused."]})

    def bump_then_crash(service, record, params):
        bump(service, record, params)
        return 1 / 0

    ctx.record_action("widget", "bump", bump, label={"en": "Bump", "zh-CN": "加一"})
    ctx.record_action("widget", "bump_then_fail", bump_then_fail)
    ctx.record_action("widget", "bump_then_crash", bump_then_crash)
    ctx.record_action("widget", "peek", lambda s, r, p: {"fields": sorted(r)}, permission="read")
    ctx.record_action("widget", "special", lambda s, r, p: {"ok": True}, permission="widget_special")
    ctx.record_action("widget", "not_json", lambda s, r, p: {"x": object()}, permission="read")
    ctx.record_action("*", "describe", lambda s, r, p: {"object": "any", "id": r["id"]}, permission="read")
    reader = make_user(runtime, client, "rita", ["widget_reader"])
    mine = RecordService(runtime, reader.principal).create("widget", {"name": "mine", "qty": 1})
    theirs = system(runtime).create("widget", {"name": "theirs", "qty": 5, "secret": "s"})
    return reader, mine, theirs


def url(record, action):
    return f"/api/v1/records/widget/{record['id']}/actions/{action}"


def qty(runtime, record) -> int:
    return system(runtime).get("widget", record["id"])["qty"]


def test_an_action_runs_as_the_caller_and_answers_json(runtime, client, setup):
    reader, mine, _ = setup
    answer = client.post(url(mine, "bump"), json={"by": 2}, headers=reader.headers)
    assert answer.status_code == 200
    assert answer.get_json() == {"qty": 3, "user": "rita"}
    history = system(runtime).history("widget", mine["id"])
    assert history[-1]["user"] == reader.id and history[-1]["changes"] == {"qty": [1, 3]}
    assert client.post(url(mine, "bump"), headers=reader.headers).get_json()["qty"] == 4  # no body: {}


def test_a_failing_action_changes_nothing(runtime, client, setup):
    reader, mine, _ = setup
    refused = client.post(url(mine, "bump_then_fail"), json={"by": 2}, headers=reader.headers)
    assert refused.status_code == 400 and refused.get_json()["error"]["fields"] == {"by": ["Refused."]}
    assert refused.get_json()["error"]["plugin"] == "acts"
    crashed = client.post(url(mine, "bump_then_crash"), headers=reader.headers)
    assert crashed.status_code == 500
    error = crashed.get_json()["error"]
    assert (error["code"], error["plugin"], error["hook"]) == ("plugin_error", "acts", "record action bump_then_crash")
    not_json = client.post(url(mine, "not_json"), headers=reader.headers)
    assert not_json.status_code == 500 and not_json.get_json()["error"]["code"] == "plugin_error"
    assert qty(runtime, mine) == 1


def test_the_caller_needs_read_and_the_actions_permission(runtime, client, setup):
    reader, mine, theirs = setup
    forbidden = client.post(url(theirs, "bump"), headers=reader.headers)  # may read, may not edit it
    assert forbidden.status_code == 403 and forbidden.get_json()["error"]["code"] == "action_forbidden"
    assert qty(runtime, theirs) == 5
    assert client.post(url(theirs, "peek"), headers=reader.headers).status_code == 200
    assert client.post(url(theirs, "special"), headers=reader.headers).status_code == 403

    special = make_user(runtime, client, "sam", ["widget_special"])
    assert client.post(url(theirs, "special"), headers=special.headers).get_json() == {"ok": True}
    outsider = make_user(runtime, client, "otto", ["widget_outsider"])
    assert client.post(url(mine, "peek"), headers=outsider.headers).status_code == 404  # cannot read it

    unknown = client.post(url(mine, "explode"), headers=reader.headers)
    assert unknown.status_code == 404 and unknown.get_json()["error"]["code"] == "unknown_action"
    assert client.post("/api/v1/records/widget/nope/actions/bump", headers=reader.headers).status_code == 404
    assert client.post("/api/v1/records/nothing/x/actions/bump", headers=reader.headers).status_code == 404
    assert client.post(url(mine, "bump")).status_code == 401


def test_parameters_are_a_json_object_and_the_record_has_no_hidden_fields(client, setup):
    reader, mine, theirs = setup
    bad = client.post(url(mine, "bump"), json=[1], headers=reader.headers)
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "bad_params"
    malformed = client.post(url(mine, "bump"), data="{", headers=dict(reader.headers, **{
        "Content-Type": "application/json"}))
    assert malformed.status_code == 400
    fields = client.post(url(theirs, "peek"), headers=reader.headers).get_json()["fields"]
    assert "name" in fields and "secret" not in fields


def test_listing_the_actions_a_caller_may_run(runtime, client, setup, admin_headers):
    reader, mine, theirs = setup
    listed = client.get(f"/api/v1/records/widget/{mine['id']}/actions", headers=reader.headers).get_json()["items"]
    names = [a["name"] for a in listed]
    assert {"bump", "peek", "describe"} <= set(names) and "special" not in names
    assert next(a for a in listed if a["name"] == "bump") == {"name": "bump", "label": "Bump", "plugin": "acts",
                                                               "permission": "edit"}
    on_theirs = client.get(f"/api/v1/records/widget/{theirs['id']}/actions", headers=reader.headers).get_json()
    assert "bump" not in [a["name"] for a in on_theirs["items"]]
    described = client.post(url(mine, "describe"), headers=admin_headers)
    assert described.get_json() == {"object": "any", "id": mine["id"]}

    from metacrm.platform.api.actions import openapi_paths
    from metacrm.platform.security import Access

    paths = openapi_paths(runtime, Access(runtime.registry(), reader.principal, runtime.directory()))
    assert paths["/records/widget/{id}/actions/bump"]["post"]["summary"] == "Bump"
    assert "/records/widget/{id}/actions/describe" in paths and "/records/user/{id}/actions/describe" not in paths
