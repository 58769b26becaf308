"""The ERP link of the default metadata, through the API on both databases: off until an admin
sets URL and secret; an order's confirmation (and later status changes) goes out through the
outbox as a webhook signed with HMAC-SHA256 over the body, with the order's lines; status
updates come back signed, idempotently, never moving an order back."""

from __future__ import annotations

import hashlib
import hmac
import json

from metacrm.platform.outbox import outbox
from metacrm.plugins.lead_to_cash import erp
from tests import test_ltc_support as support
from tests.conftest import make_user
from tests.test_ltc_money import Api
from tests.test_workflow import Receiver

ltc = support.ltc  # fixture
org = support.org  # fixture
SECRET = "erp-shared-secret-0001"
STATUS = "/api/v1/x/lead_to_cash/erp/status"


def signed(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def confirmed_order(org, rep, rep_user, name="ERP Co"):
    account = org.system.create("account", {"name": name, "owner": rep_user.id})
    contract = support.active_contract(org.system, {"name": name, "account": account["id"], "amount": "500",
                                                     "owner": rep_user.id})
    order = rep.post("/records/order", {"account": account["id"], "contract": contract["id"]})
    line = rep.post("/records/order_line", {"order": order["id"], "description": "Rack", "quantity": "5",
                                            "unit_price": "100"})
    rep.patch(f"/records/order/{order['id']}", {"status": "confirmed"})
    return order, line


def push(client, token_headers, body: dict | bytes, secret: str = SECRET, signature: str | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = dict(token_headers, **{"Content-Type": "application/json",
                                     "X-Metacrm-Signature": signed(secret, raw) if signature is None else signature})
    return client.post(STATUS, data=raw, headers=headers)


def test_orders_go_to_the_erp_signed_with_lines_only_once_switched_on(org, client, admin_headers):
    box = outbox(org.runtime)
    box.max_attempts, box.backoff_base = 2, 0.0
    box.drain()
    rep_user = make_user(org.runtime, client, "erp_rep", ["sales_rep"])
    rep = Api(client, rep_user.headers)
    with Receiver() as receiver:
        # off: nothing is queued for an order confirmed before the admin sets URL and secret
        confirmed_order(org, rep, rep_user, "Before Co")
        box.drain()
        assert receiver.requests == []
        # a URL alone is not enough (never sent unsigned)
        assert erp.save_config(org.runtime, receiver.url, None)["enabled"] is False
        confirmed_order(org, rep, rep_user, "Half Co")
        box.drain()
        assert receiver.requests == []
        shown = erp.save_config(org.runtime, receiver.url, SECRET)
        assert shown == {"url": receiver.url, "secret_set": True, "secret_last4": "0001", "enabled": True}
        assert erp.save_config(org.runtime, "ftp://x", None)["errors"] == {"url": "erp.bad_url"}
        assert erp.save_config(org.runtime, receiver.url, "short")["errors"] == {"secret": "erp.bad_secret"}
        order, line = confirmed_order(org, rep, rep_user, "Live Co")
        box.drain()
        assert len(receiver.requests) == 1
        headers, body = receiver.requests[0]
        assert headers["X-Metacrm-Signature"] == signed(SECRET, body)
        message = json.loads(body)
        assert message["event"] == "order.confirmed" and message["order"]["id"] == order["id"]
        assert [(x["id"], x["quantity"], x["unit_price"]) for x in message["lines"]] == [(line["id"], "5.00", "100.00")]
        assert headers["Idempotency-Key"].startswith(f"erp:order:{order['id']}:")
        # a later status change is sent too; a save that does not change the status is not
        rep.patch(f"/records/order/{order['id']}", {"notes": "call first"} if "notes" in message["order"] else {})
        rep.patch(f"/records/order/{order['id']}", {"status": "processing"})
        box.drain()
        assert [json.loads(b)["event"] for _, b in receiver.requests] == ["order.confirmed", "order.processing"]
        # the secret can be replaced; the next message is signed with the new one
        erp.save_config(org.runtime, receiver.url, "a-brand-new-secret-9999")
        rep.patch(f"/records/order/{order['id']}", {"status": "shipped"})
        box.drain()
        headers, body = receiver.requests[-1]
        assert headers["X-Metacrm-Signature"] == signed("a-brand-new-secret-9999", body)
        # switched off again (empty URL): nothing more goes out
        erp.save_config(org.runtime, "", None)
        rep.patch(f"/records/order/{order['id']}", {"status": "delivered"})
        box.drain()
        assert len(receiver.requests) == 3


def test_the_inbound_status_endpoint_is_signed_idempotent_and_never_goes_back(org, client, admin_headers):
    rep_user = make_user(org.runtime, client, "erp_rep2", ["sales_rep"])
    erp_user = make_user(org.runtime, client, "erp_api", ["sales_rep"])
    rep = Api(client, rep_user.headers)
    order, _line = confirmed_order(org, rep, rep_user, "Inbound Co")
    body = {"order": order["id"], "status": "shipped"}
    # off: refused until configured
    off = push(client, erp_user.headers, body)
    assert (off.status_code, off.get_json()["error"]["code"]) == (409, "erp_link_disabled")
    erp.save_config(org.runtime, "https://erp.example.com/hook", SECRET)
    # no token -> 401; bad signature -> 401; nothing changes
    assert client.post(STATUS, data=json.dumps(body), headers={"Content-Type": "application/json",
                       "X-Metacrm-Signature": signed(SECRET, json.dumps(body).encode())}).status_code == 401
    bad = push(client, erp_user.headers, body, secret="not-the-secret-at-all")
    assert (bad.status_code, bad.get_json()["error"]["code"]) == (401, "bad_signature")
    assert push(client, erp_user.headers, body, signature="").status_code == 401
    assert rep.get(f"/records/order/{order['id']}")["status"] == "confirmed"
    # bad bodies name the field; an unknown order is a 404
    not_json = push(client, erp_user.headers, b"{nope")
    assert (not_json.status_code, not_json.get_json()["error"]["code"]) == (400, "bad_body")
    wrong = push(client, erp_user.headers, {"order": order["id"], "status": "teleported", "colour": "red"})
    assert wrong.status_code == 400 and set(wrong.get_json()["error"]["fields"]) == {"status", "colour"}
    missing = push(client, erp_user.headers, {"status": "shipped"})
    assert missing.status_code == 400 and set(missing.get_json()["error"]["fields"]) == {"order"}
    unknown = push(client, erp_user.headers, {"order": "nosuchorder", "status": "shipped"})
    assert (unknown.status_code, unknown.get_json()["error"]["fields"]) == (404, {"order": ["No such order."]})
    # the update applies once; the same update again changes nothing (no new version)
    too_long = push(client, erp_user.headers, dict(body, erp_reference="x" * 101))
    assert too_long.status_code == 400 and set(too_long.get_json()["error"]["fields"]) == {"erp_reference"}
    body = dict(body, erp_reference="SO-1001")
    first = push(client, erp_user.headers, body)
    assert first.status_code == 200 and first.get_json() == {"order": order["id"], "status": "shipped", "changed": True}
    after = rep.get(f"/records/order/{order['id']}")
    assert after["status"] == "shipped" and after["shipped_on"] and after["erp_reference"] == "SO-1001"
    # the reference is the ERP's to set: a rep cannot type it
    typed = rep.patch(f"/records/order/{order['id']}", {"erp_reference": "FAKE"}, expect=400)
    assert "erp_reference" in typed["fields"]
    after = rep.get(f"/records/order/{order['id']}")
    again = push(client, erp_user.headers, body)
    assert again.get_json() == {"order": order["id"], "status": "shipped", "changed": False}
    assert rep.get(f"/records/order/{order['id']}")["version"] == after["version"]
    # a replay of an older status never moves the order back
    old = push(client, erp_user.headers, {"order": order["id"], "status": "processing"})
    assert old.status_code == 200 and old.get_json()["changed"] is False and "behind" in old.get_json()["note"]
    assert rep.get(f"/records/order/{order['id']}")["version"] == after["version"]
    # forward again works; a cancelled order is not moved by the ERP
    assert push(client, erp_user.headers, {"order": order["id"], "status": "delivered"}).get_json()["changed"] is True
    other, _ = confirmed_order(org, rep, rep_user, "Cancel Co")
    rep.patch(f"/records/order/{other['id']}", {"status": "cancelled"})
    closed = push(client, erp_user.headers, {"order": other["id"], "status": "shipped"})
    assert (closed.status_code, closed.get_json()["error"]["code"]) == (409, "order_closed")


def test_admins_set_the_erp_link_through_the_api_and_never_read_the_secret(org, client, admin_headers):
    rep_user = make_user(org.runtime, client, "erp_rep3", ["sales_rep"])
    settings = "/api/v1/x/lead_to_cash/erp/settings"
    assert client.get(settings, headers=rep_user.headers).status_code == 403
    assert client.put(settings, json={"url": "https://evil.example.com"}, headers=rep_user.headers).status_code == 403
    assert client.get(settings, headers=admin_headers).get_json()["enabled"] is False
    bad = client.put(settings, json={"url": "ftp://erp", "secret": "short", "colour": 1}, headers=admin_headers)
    assert bad.status_code == 400 and set(bad.get_json()["error"]["fields"]) == {"colour"}
    bad = client.put(settings, json={"url": "ftp://erp", "secret": "short"}, headers=admin_headers)
    assert bad.status_code == 400 and set(bad.get_json()["error"]["fields"]) == {"url", "secret"}
    assert client.get(settings, headers=admin_headers).get_json()["url"] == ""
    done = client.put(settings, json={"url": "https://erp.example.com/h", "secret": SECRET}, headers=admin_headers)
    assert done.get_json() == {"url": "https://erp.example.com/h", "secret_set": True, "secret_last4": "0001",
                               "enabled": True}
    shown = client.get(settings, headers=admin_headers)
    assert SECRET not in shown.get_data(as_text=True)
    # only the URL: the secret stays
    kept = client.put(settings, json={"url": "https://erp.example.com/h2"}, headers=admin_headers).get_json()
    assert kept["secret_last4"] == "0001" and kept["enabled"] is True
