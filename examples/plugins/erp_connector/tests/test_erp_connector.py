"""The ERP connector against a fake ERP served on 127.0.0.1 by a thread.

Needs the package installed (`pip install -e examples/plugins/erp_connector`): it is found
through its entry point, like any third-party plugin.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa
from conftest import make_user

from metacrm.metadata.bundle import Bundle
from metacrm.platform import db
from metacrm.platform.apply import apply_change
from metacrm.platform.outbox import outbox
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from metacrm.platform.sweeps import run_all
from metacrm.plugins import install as plugins
from metacrm.plugins import loader

SECRET = "erp-test-secret"
MINIMAL_ORDER = {
    "kind": "object", "name": "order", "name_field": "number", "track_history": ["status"],
    "fields": [{"name": "number", "type": "text"},
               {"name": "status", "type": "picklist", "default": "created",
                "options": ["created", "confirmed", "processing", "shipped", "delivered", "cancelled"]}],
}
NO_ACCESS = {"kind": "role", "name": "erp_test_nobody", "objects": {}}


class FakeERP:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status = 200
        self.url = ""


@pytest.fixture
def fake_erp():
    erp = FakeERP()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            erp.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            self.send_response(erp.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    erp.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/metacrm"
    yield erp
    server.shutdown()
    server.server_close()


def system(runtime) -> RecordService:
    return RecordService(runtime, Principal.system(), source="test")


@pytest.fixture
def erp(runtime, app, fake_erp, monkeypatch):
    """The plugin installed (from its entry point) on a database that has an `order` object."""
    monkeypatch.setenv("METACRM_ERP_URL", fake_erp.url)
    monkeypatch.setenv("METACRM_ERP_SECRET", SECRET)
    docs = [NO_ACCESS] + ([] if runtime.registry().has_object("order") else [MINIMAL_ORDER])
    apply_change(runtime, Bundle(documents=docs))
    plugins.install(runtime, "erp_connector")
    loader.mount_blueprints(app)  # until create_app does it
    box = outbox(runtime)
    box.backoff_base = 0  # a failed send is due again at once (the test drains by hand)
    return box


def make_order(runtime) -> dict:
    service = system(runtime)
    obj = service.registry.object("order")
    data = {"status": "created"}
    account = obj.fields.get("account")
    if account is not None and account.required:
        data["account"] = service.create("account", {"name": "Acme Ltd"})["id"]
    return service.create("order", data)


def set_status(runtime, order: dict, status: str) -> dict:
    current = system(runtime).get("order", order["id"])
    return system(runtime).update("order", order["id"], {"status": status}, version=current["version"])


def erp_rows(runtime) -> list:
    with runtime.engine.connect() as conn:
        return conn.execute(sa.select(db.outbox).where(db.outbox.c.topic.startswith("plugin.erp_connector."))).all()


def test_the_plugin_is_found_through_its_entry_point(runtime, erp):
    candidate = loader.find("erp_connector")
    assert (candidate.origin, candidate.distribution) == ("entry_point", "metacrm-erp-connector")
    fields = runtime.registry().object("order").fields
    assert {"erp_connector__order_number", "erp_connector__tracking_number"} <= set(fields)
    assert runtime.registry().get("role", "erp_connector__integration")["plugin"] == "erp_connector"
    assert "erp_connector" in loader.loaded(runtime)


def test_a_confirmed_order_is_pushed_once_as_a_signed_webhook(runtime, erp, fake_erp):
    order = make_order(runtime)
    erp.drain()
    assert fake_erp.requests == []  # created: nothing to send
    set_status(runtime, order, "confirmed")
    result = erp.drain()
    assert result.done == 1, result.errors
    [sent] = fake_erp.requests
    assert sent["path"] == "/hooks/metacrm"
    expected = "sha256=" + hmac.new(SECRET.encode(), sent["body"], hashlib.sha256).hexdigest()
    assert sent["headers"]["X-Metacrm-Signature"] == expected
    assert sent["headers"]["X-Metacrm-Event"] == "order.confirmed"
    assert sent["headers"]["Idempotency-Key"].startswith(f"erp_connector:push:{order['id']}:")
    body = json.loads(sent["body"])
    assert body["event"] == "order.confirmed" and body["order"]["id"] == order["id"]
    assert body["order"]["status"] == "confirmed"

    set_status(runtime, order, "processing")  # not a confirmation: nothing more goes out
    erp.drain()
    assert len(fake_erp.requests) == 1


def test_a_rolled_back_confirmation_sends_nothing(runtime, erp, fake_erp):
    order = make_order(runtime)
    with pytest.raises(RuntimeError), runtime.transaction() as tx:
        service = RecordService(runtime, Principal.system(), tx=tx)
        service.update("order", order["id"], {"status": "confirmed"}, version=order["version"])
        raise RuntimeError("something later in the same transaction failed")
    assert erp_rows(runtime) == []
    erp.drain()
    assert fake_erp.requests == []


def test_an_erp_outage_is_retried_with_the_same_key(runtime, erp, fake_erp):
    fake_erp.status = 503
    order = make_order(runtime)
    set_status(runtime, order, "confirmed")
    first = erp.drain()
    assert first.failed == 1 and "503" in first.errors[0][1]
    fake_erp.status = 200
    assert erp.drain().done == 1
    keys = {r["headers"]["Idempotency-Key"] for r in fake_erp.requests}
    assert len(fake_erp.requests) == 2 and len(keys) == 1


def test_without_an_endpoint_the_message_is_skipped_not_lost_silently(runtime, erp, fake_erp, monkeypatch):
    monkeypatch.delenv("METACRM_ERP_URL")
    order = make_order(runtime)
    set_status(runtime, order, "confirmed")
    assert erp.drain().skipped == 1 and fake_erp.requests == []
    [row] = erp_rows(runtime)
    assert row.status == "skipped" and "no ERP URL configured" in row.last_error


def test_shipment_updates_are_idempotent(runtime, erp, client):
    order = make_order(runtime)
    set_status(runtime, order, "confirmed")
    erp_user = make_user(runtime, client, "erp_bot", ["erp_connector__integration"])
    url = "/api/v1/x/erp_connector/shipments"
    update = {"order": order["id"], "status": "shipped", "erp_order_number": "SO-1001", "tracking_number": "1Z9"}
    headers = dict(erp_user.headers, **{"Idempotency-Key": "ship-1"})

    first = client.post(url, json=update, headers=headers)
    assert first.status_code == 200, first.get_json()
    assert first.get_json() == {"order": order["id"], "status": "shipped", "changed": True}
    again = client.post(url, json=update, headers=headers)
    assert again.status_code == 200 and again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    stored = system(runtime).get("order", order["id"])
    assert (stored["status"], stored["erp_connector__order_number"], stored["erp_connector__tracking_number"]) \
        == ("shipped", "SO-1001", "1Z9")
    to_shipped = [h for h in system(runtime).history("order", order["id"])
                  if h["changes"].get("status", [None, None])[1] == "shipped"]
    assert len(to_shipped) == 1 and to_shipped[0]["user"] == erp_user.id  # changed once, by the ERP's user

    reused = client.post(url, json=dict(update, status="delivered"), headers=headers)
    assert reused.status_code == 409 and reused.get_json()["error"]["code"] == "idempotency_key_reused"

    delivered = client.post(url, json={"erp_order_number": "SO-1001", "status": "delivered"},
                            headers=dict(erp_user.headers, **{"Idempotency-Key": "ship-2"}))
    assert delivered.get_json()["status"] == "delivered"
    late = client.post(url, json={"order": order["id"], "status": "shipped"},
                       headers=dict(erp_user.headers, **{"Idempotency-Key": "ship-3"}))
    assert late.status_code == 200 and late.get_json()["changed"] is False  # out of order: ignored
    assert system(runtime).get("order", order["id"])["status"] == "delivered"


def test_shipment_updates_that_are_refused(runtime, erp, client):
    order = make_order(runtime)
    url = "/api/v1/x/erp_connector/shipments"
    update = {"order": order["id"], "status": "shipped"}
    erp_user = make_user(runtime, client, "erp_bot", ["erp_connector__integration"])
    nobody = make_user(runtime, client, "nobody", ["erp_test_nobody"])
    key = {"Idempotency-Key": "k"}

    assert client.post(url, json=update, headers=key).status_code == 401
    missing = client.post(url, json=update, headers=erp_user.headers)
    assert missing.status_code == 400 and missing.get_json()["error"]["code"] == "idempotency_key_required"
    bad = client.post(url, json={"order": order["id"], "status": "lost"}, headers=dict(erp_user.headers, **key))
    assert bad.status_code == 400 and "status" in bad.get_json()["error"]["fields"]
    unknown = client.post(url, json={"order": "nope", "status": "shipped"}, headers=dict(erp_user.headers, **key))
    assert unknown.status_code == 404
    hidden = client.post(url, json=update, headers=dict(nobody.headers, **key))
    assert hidden.status_code == 404  # the plugin acts as its caller, who cannot see orders
    assert system(runtime).get("order", order["id"])["status"] == "created"
    ok = client.post(url, json=update, headers=dict(erp_user.headers, **key))  # a refused key was not used up
    assert ok.status_code == 200 and ok.get_json()["changed"] is True


def test_resend_action_and_key_expiry_job(runtime, erp, fake_erp, client, admin_headers):
    order = make_order(runtime)
    action = f"/api/v1/records/order/{order['id']}/actions/resend_to_erp"
    refused = client.post(action, headers=admin_headers)
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "order_not_confirmed"
    set_status(runtime, order, "confirmed")
    assert client.post(action, headers=admin_headers).get_json() == {"queued": True, "order": order["id"]}
    erp.drain()
    assert len(fake_erp.requests) == 2  # the confirmation and the resend
    lines, _ = run_all(runtime)
    assert "erp_connector.expire_keys: 0 idempotency key(s) older than 30 days forgotten" in lines


def test_uninstall_keeps_the_erp_numbers_and_reinstall_brings_them_back(runtime, erp, client):
    order = make_order(runtime)
    system(runtime).update("order", order["id"], {"erp_connector__order_number": "SO-7"}, version=order["version"])
    plugins.uninstall(runtime, "erp_connector")
    assert "erp_connector__order_number" not in system(runtime).get("order", order["id"])
    assert client.post("/api/v1/x/erp_connector/shipments", json={}).status_code == 404
    plugins.install(runtime, "erp_connector")
    assert system(runtime).get("order", order["id"])["erp_connector__order_number"] == "SO-7"

    plan = plugins.uninstall(runtime, "erp_connector", purge=True)
    assert plan["purge"]["tables"] == ["mcx_erp_connector_idempotency"]
    assert sorted(plan["purge"]["columns"]["rec_order"]) == ["erp_connector__order_number",
                                                            "erp_connector__tracking_number"]
    inspector = sa.inspect(runtime.engine)
    assert "mcx_erp_connector_idempotency" not in inspector.get_table_names()
    assert "erp_connector__order_number" not in {c["name"] for c in inspector.get_columns("rec_order")}
