"""Workflow rules: triggers (create, update, create_or_update, delete, `changed`, schedule),
order, update_field in the saving transaction, the loop limit, and the actions that leave
through the outbox (notify, signed webhooks with retries and dead letters)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from metacrm.metadata.validate import EXTRA_ACTIONS
from metacrm.platform.actions import WorkflowAction
from metacrm.platform.actions import actions as platform_actions
from metacrm.platform.clock import today
from metacrm.platform.errors import StaleVersion
from metacrm.platform.outbox import outbox
from metacrm.platform.records import RecordService
from metacrm.platform.sweeps import run_all
from metacrm.workflow import webhooks
from tests.test_outbox import installation, wait_for

OBJECTS = [
    {"kind": "object", "name": "wf_deal", "label": "Deal", "name_field": "name",
     "track_history": ["stage", "status", "counter"],
     "fields": [
         {"name": "name", "type": "text", "required": True},
         {"name": "amount", "type": "currency"},
         {"name": "stage", "type": "picklist", "options": ["new", "won", "lost"], "default": "new"},
         {"name": "status", "type": "text"},
         {"name": "closed_on", "type": "date"},
         {"name": "close_date", "type": "date"},
         {"name": "counter", "type": "integer"},
         {"name": "mirror", "type": "integer"},
         {"name": "region", "type": "text"},
         {"name": "reviewer", "type": "user"},
         {"name": "tag", "type": "text"},
     ]},
    {"kind": "object", "name": "wf_task", "label": "Task", "name_field": "subject",
     "fields": [
         {"name": "subject", "type": "text", "required": True},
         {"name": "related_to", "type": "lookup", "target": "wf_deal"},
         {"name": "due_date", "type": "date"},
     ]},
    {"kind": "role", "name": "wf_rep", "label": "Rep", "parent": "wf_boss",
     "objects": {"wf_deal": {"create": "all", "read": "own", "edit": "own", "delete": "own"},
                 "wf_task": {"create": "all", "read": "own", "edit": "own", "delete": "own"}}},
    {"kind": "role", "name": "wf_boss", "label": "Boss",
     "objects": {"wf_deal": {"create": "all", "read": "all", "edit": "all", "delete": "all"}}},
    {"kind": "pool", "name": "wf_pool", "object": "wf_deal", "label": "Deal pool",
     "entry": {"region": "pool_only"}, "members": {"roles": ["wf_rep"]}},
]


PLUGIN_CALLS: list = []


def rule(name: str, on: str, actions: list, condition: dict | None = None, order: int = 0, **trigger) -> dict:
    """A rule that only sees records tagged with its test's tag, so every test's rules can be
    applied once for the whole module (an apply costs a schema inspection)."""
    tag = {"tag": name.split("__")[0]}
    return {"kind": "workflow_rule", "name": name.replace("__", "_"), "object": "wf_deal", "order": order,
            "trigger": {"on": on, **trigger}, "actions": actions,
            "condition": {"all": [tag, condition]} if condition else tag}


def all_rules(ok_url: str, failing_url: str) -> list[dict]:
    return [
        rule("big__deal", "create", [
            {"action": "update_field", "field": "status", "value": "big {{ record.amount }}"},
            {"action": "create_record", "object": "wf_task",
             "values": {"subject": "Call about {{ record.name }}", "related_to": "{{ record.id }}",
                        "due_date": "$today"}},
        ], condition={"amount": {"gt": 1000}}),
        rule("won__rule", "update", [{"action": "update_field", "field": "closed_on", "value": "$today"}],
             condition={"all": [{"stage": {"changed": True}}, {"stage": "won"}]}),
        rule("region__upper", "create_or_update",
             [{"action": "update_field", "field": "status", "value": "region {{ record.region }}"}],
             condition={"region": {"is_null": False}}),
        rule("region__deleted", "delete", [{"action": "notify", "to": "owner.manager",
                                            "template": "{{ record.name }} was deleted by {{ user.username }}"}]),
        rule("order__b", "create", [{"action": "update_field", "field": "status", "value": "{{ record.status }}b"}],
             order=1),
        rule("order__a", "create", [{"action": "update_field", "field": "status", "value": "{{ record.status }}a"}],
             order=1),
        rule("order__z", "create", [{"action": "update_field", "field": "status", "value": "z"}], order=0),
        rule("loop__mirror", "update", [{"action": "update_field", "field": "mirror", "value": "{{ record.counter }}"}],
             condition={"counter": {"changed": True}}),
        rule("loop__counter", "update",
             [{"action": "update_field", "field": "counter", "value": "{{ record.mirror + 1 }}"}],
             condition={"mirror": {"changed": True}}),
        rule("rollback__rule", "update", [
            {"action": "update_field", "field": "status", "value": "touched"},
            {"action": "notify", "to": "owner", "template": "should never arrive"},
        ]),
        rule("notify__rule", "create", [{"action": "notify", "to": ["owner", "owner.manager", "role:wf_boss", "reviewer"],
                                         "subject": "New {{ record.name }}",
                                         "template": "{{ user.username }} created {{ record.name }}"}]),
        rule("stalled__rule", "schedule", [
            {"action": "notify", "to": ["owner", "owner.manager"], "template": "{{ record.name }} is stalled"},
            {"action": "create_record", "object": "wf_task",
             "values": {"subject": "Move {{ record.name }}", "related_to": "{{ record.id }}", "due_date": "$today"}},
        ], condition={"stage": {"nin": ["won", "lost"]}}, field="close_date", after_days=14),
        rule("plugin__rule", "create", [{"action": "wftest__mark", "params": {"level": 2}}]),
        rule("plugin__pool", "update", [{"action": "assign_to_pool", "pool": "wf_pool"}], condition={"stage": "lost"}),
        rule("hook__rule", "update", [{"action": "webhook", "url": ok_url, "secret_ref": "crm_hook",
                                       "headers": {"X-Tenant": "acme"}}], condition={"stage": "won"}),
        rule("hookfail__rule", "create", [{"action": "webhook", "url": failing_url}]),
    ]


class Receiver:
    """A tiny HTTP endpoint on 127.0.0.1 that records what it is sent."""

    def __init__(self, status: int = 200, delay: float = 0.0):
        self.status, self.delay, self.requests = status, delay, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append((dict(self.headers), body))
                time.sleep(receiver.delay)
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def inst(request, tmp_path_factory):
    plugin = WorkflowAction("wftest__mark", lambda ctx, params: PLUGIN_CALLS.append(
        (ctx.rule, ctx.record["name"], params)), plugin="wftest")
    EXTRA_ACTIONS.add(plugin.name)  # known to the validator before the runtime exists
    with Receiver() as ok, Receiver(status=500, delay=0.3) as failing, \
            installation(request.param, tmp_path_factory.mktemp(request.param),
                         OBJECTS + all_rules(ok.url, failing.url)) as env:
        actions = platform_actions(env.runtime)
        actions.add_workflow_action(plugin)
        try:
            env.boss = env.user("wf_boss_user", ["wf_boss"])
            env.rep = env.user("wf_rep_user", ["wf_rep"], manager=env.boss)
            env.ok, env.failing = ok, failing
            yield env
        finally:
            actions.remove_plugin("wftest")


@pytest.fixture(autouse=True)
def _quiet_outbox(inst):
    box = outbox(inst.runtime)
    box.max_attempts, box.backoff_base = 3, 0.0
    inst.drain()
    yield


def rep_service(inst) -> RecordService:
    return RecordService(inst.runtime, inst.rep.principal)


def tasks_for(inst, deal_id: str) -> list[dict]:
    items, _ = inst.admin.list("wf_task", filter={"related_to": deal_id})
    return items


# --- triggers and conditions -----------------------------------------------------------------


def test_create_rule_updates_field_in_the_same_write_and_creates_a_record(inst):
    big = rep_service(inst).create("wf_deal", {"name": "Big", "amount": "5000", "tag": "big"})
    small = rep_service(inst).create("wf_deal", {"name": "Small", "amount": "10", "tag": "big"})
    assert big["status"] == "big 5000" and big["version"] == 1  # written with the record, not after
    history = inst.admin.history("wf_deal", big["id"])
    assert [h["action"] for h in history] == ["create"]
    assert history[0]["changes"]["status"] == [None, "big 5000"]
    assert small["status"] is None
    created = tasks_for(inst, big["id"])
    assert [(t["subject"], t["due_date"]) for t in created] == [("Call about Big", today().isoformat())]
    assert tasks_for(inst, small["id"]) == []


def test_update_rule_with_changed_fires_only_when_the_field_changes(inst):
    svc = rep_service(inst)
    deal = svc.create("wf_deal", {"name": "Changing", "stage": "new", "tag": "won"})
    renamed = svc.update("wf_deal", deal["id"], {"name": "Renamed"})
    assert renamed["closed_on"] is None
    won = svc.update("wf_deal", deal["id"], {"stage": "won"})
    assert won["closed_on"] == today().isoformat() and won["version"] == renamed["version"] + 1
    svc.update("wf_deal", deal["id"], {"closed_on": None})
    again = svc.update("wf_deal", deal["id"], {"name": "Still won"})
    assert again["closed_on"] is None  # stage did not change this time
    created = svc.create("wf_deal", {"name": "Born won", "stage": "won", "tag": "won"})
    assert created["closed_on"] is None  # an update rule, not a create rule


def test_create_or_update_and_delete_triggers(inst):
    svc = rep_service(inst)
    deal = svc.create("wf_deal", {"name": "Regional", "region": "east", "tag": "region"})
    assert deal["status"] == "region east"
    updated = svc.update("wf_deal", deal["id"], {"region": "west"})
    assert updated["status"] == "region west"
    svc.delete("wf_deal", deal["id"])
    inst.drain()
    bodies = [n.body for n in inst.notifications_of(inst.boss.id)]
    assert "Regional was deleted by wf_rep_user" in bodies


def test_rules_run_in_order_then_name(inst):
    deal = rep_service(inst).create("wf_deal", {"name": "Ordered", "tag": "order"})
    assert deal["status"] == "zab"


def test_field_update_cascades_then_stops_at_the_depth_limit(inst):
    svc = rep_service(inst)
    deal = svc.create("wf_deal", {"name": "Loop", "counter": 0, "mirror": 0, "tag": "loop"})
    started = time.monotonic()
    ctx = svc.update_record("wf_deal", deal["id"], {"counter": 1})
    assert time.monotonic() - started < 5
    # counter=1 -> mirror=1 -> counter=2 -> mirror=2 -> counter=3 -> mirror=3: five levels, then it stops
    assert (ctx.record["counter"], ctx.record["mirror"]) == (3, 3)
    assert any(w["code"] == "workflow_depth_limit" for w in ctx.warnings)
    stored = inst.admin.get("wf_deal", deal["id"])
    assert (stored["counter"], stored["mirror"], stored["version"]) == (3, 3, deal["version"] + 1)


def test_a_failing_save_writes_nothing_a_rule_did(inst):
    svc = rep_service(inst)
    deal = svc.create("wf_deal", {"name": "Rollback", "tag": "rollback"})
    before = len(inst.rows())
    with pytest.raises(StaleVersion):
        svc.update("wf_deal", deal["id"], {"name": "x"}, version=deal["version"] + 5)
    with pytest.raises(RuntimeError), svc.transaction():
        svc.update("wf_deal", deal["id"], {"name": "y"})
        raise RuntimeError("the caller's transaction fails later")
    assert len(inst.rows()) == before
    stored = inst.admin.get("wf_deal", deal["id"])
    assert stored["status"] is None and stored["name"] == "Rollback"
    inst.drain()
    assert "should never arrive" not in [n.body for n in inst.notifications_of(inst.rep.id)]


def test_notify_goes_through_the_outbox_to_owner_manager_and_role(inst):
    deal = rep_service(inst).create("wf_deal", {"name": "Notified", "reviewer": inst.rep.id, "tag": "notify"})
    rows = [r for r in inst.rows(topic="notify") if r.payload.get("record_id") == deal["id"]]
    assert len(rows) == 1 and rows[0].status == "pending"
    assert sorted(rows[0].payload["users"]) == sorted([inst.rep.id, inst.boss.id])
    assert all(n.record_id != deal["id"] for n in inst.notifications_of(inst.rep.id))  # not before dispatch
    inst.drain()
    for user in (inst.rep, inst.boss):
        mine = [n for n in inst.notifications_of(user.id) if n.record_id == deal["id"]]
        assert [(n.subject, n.body) for n in mine] == [("New Notified", "wf_rep_user created Notified")]


def test_scheduled_trigger_fires_once_per_record_and_date(inst):
    svc = rep_service(inst)

    def deal(name, days_ago, **values):
        return svc.create("wf_deal", {"name": name, "tag": "stalled", **values,
                                      "close_date": (today() - timedelta(days=days_ago)).isoformat()})

    due, recent, closed = deal("Due", 15), deal("Recent", 3), deal("Closed", 30, stage="won")
    lines, failed = run_all(inst.runtime)
    assert not failed, lines
    assert "stalled_rule: 1 fired" in " ".join(lines)
    assert [t["subject"] for t in tasks_for(inst, due["id"])] == ["Move Due"]
    assert tasks_for(inst, recent["id"]) == [] and tasks_for(inst, closed["id"]) == []
    lines, _ = run_all(inst.runtime)
    assert "stalled_rule: 0 fired" in " ".join(lines)
    assert len(tasks_for(inst, due["id"])) == 1
    svc.update("wf_deal", due["id"], {"close_date": (today() - timedelta(days=20)).isoformat()})
    run_all(inst.runtime)
    assert len(tasks_for(inst, due["id"])) == 2  # a new date is a new occasion
    inst.drain()
    stalled = [n for n in inst.notifications_of(inst.boss.id) if n.body == "Due is stalled"]
    assert len(stalled) == 2


def test_plugin_action_and_assign_to_pool(inst):
    PLUGIN_CALLS.clear()
    svc = rep_service(inst)
    deal = svc.create("wf_deal", {"name": "Plugged", "tag": "plugin"})
    assert PLUGIN_CALLS == [("plugin_rule", "Plugged", {"level": 2})]
    lost = svc.update("wf_deal", deal["id"], {"stage": "lost"})
    assert lost["pool"] == "wf_pool" and lost["owner"] is None


def test_unknown_fields_and_actions_are_refused_at_apply(inst):
    from metacrm.platform.errors import MetadataInvalid

    with pytest.raises(MetadataInvalid) as info:
        inst.apply([{"kind": "workflow_rule", "name": "wf_bad", "object": "wf_deal", "trigger": {"on": "update"},
                     "condition": {"missing": 1},
                     "actions": [{"action": "update_field", "field": "nope", "value": 1},
                                 {"action": "nobody__nothing"}]}])
    text = str(info.value)
    assert "/condition/missing" in text and "/actions/0/field" in text and "/actions/1/action" in text


# --- webhooks ------------------------------------------------------------------------------


def test_webhook_is_signed_and_carries_an_idempotency_key(inst, monkeypatch):
    secret = "s3cret-" + uuid.uuid4().hex
    monkeypatch.setenv(webhooks.secret_env_name("crm_hook"), secret)
    inst.ok.requests.clear()
    svc = rep_service(inst)
    deal = svc.create("wf_deal", {"name": "Hooked", "amount": "12.50", "tag": "hook"})
    svc.update("wf_deal", deal["id"], {"stage": "won"})
    assert inst.ok.requests == []  # nothing leaves before dispatch
    assert inst.drain().done >= 1
    assert len(inst.ok.requests) == 1
    headers, body = inst.ok.requests[0]
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Metacrm-Signature"] == expected
    assert webhooks.verify(secret.encode(), body, headers["X-Metacrm-Signature"])
    assert not webhooks.verify(b"wrong", body, headers["X-Metacrm-Signature"])
    payload = json.loads(body)
    assert payload["record"]["id"] == deal["id"] and payload["record"]["amount"] == "12.50"
    assert payload["rule"] == "hook_rule" and headers["Idempotency-Key"] == payload["id"]
    assert headers["X-Tenant"] == "acme"
    log = webhooks.deliveries(inst.runtime, key=payload["id"])
    assert [(d["status_code"], d["ok"]) for d in log] == [(200, True)]


def test_failing_webhook_never_blocks_the_save_and_ends_dead_after_retries(inst):
    box = outbox(inst.runtime)
    inst.failing.requests.clear()
    box.poll_seconds = 0.1
    box.start()  # the embedded dispatcher, as in `metacrm serve`
    try:
        started = time.monotonic()
        deal = rep_service(inst).create("wf_deal", {"name": "Unlucky", "tag": "hookfail"})
        assert time.monotonic() - started < 0.3  # the save did not wait for the endpoint
        row = wait_for(lambda: next((r for r in inst.rows(topic="webhook")
                                     if r.payload["record_id"] == deal["id"] and r.status == "dead"), None),
                       timeout=15)
    finally:
        box.stop()
        box.embedded_thread, box.poll_seconds = False, 1.0
    assert row is not None and row.attempts == 3 and "500" in row.last_error
    assert len(inst.failing.requests) == 3
    assert {h["Idempotency-Key"] for h, _ in inst.failing.requests} == {row.key}
    log = webhooks.deliveries(inst.runtime, key=row.key)
    assert sorted(d["attempt"] for d in log) == [1, 2, 3] and not any(d["ok"] for d in log)
    assert inst.admin.get("wf_deal", deal["id"])["name"] == "Unlucky"
    dead = inst.client.get("/api/v1/admin/outbox?status=dead&topic=webhook", headers=inst.admin_headers)
    assert row.id in [item["id"] for item in dead.get_json()["items"]]
