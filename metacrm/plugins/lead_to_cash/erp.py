"""The ERP link of the default metadata: orders go out as signed webhooks, statuses come back.

Out: when an order's status changes to confirmed (or later: processing, shipped, delivered,
returned, cancelled), the after_save hook writes a `webhook` outbox row in the saving
transaction; after commit the workflow webhook sender (metacrm/workflow/webhooks.py) POSTs it
with `X-Metacrm-Signature: sha256=<HMAC-SHA256 of the body>` and `Idempotency-Key`, retries
with backoff, and logs each attempt in mc_webhook_delivery. The body carries the order and its
lines. A rolled-back save sends nothing.

Off until an admin sets both the URL and the secret (web: /admin/erp). The URL is the setting
`erp:url`; the secret is `webhook_secret:erp` (the sender's `secret_ref` "erp", so the
environment variable METACRM_WEBHOOK_SECRET_ERP overrides it). The secret is never shown again.

Admins read / set the same settings at `GET` / `PUT /api/v1/x/lead_to_cash/erp/settings`
({"url", "secret"}; the answer never holds the secret).

In: `POST /api/v1/x/lead_to_cash/erp/status` (an API user's bearer token and the body signed
with the same secret) moves an order forward along created → confirmed → processing → shipped
→ delivered; a repeat or an older status changes nothing.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Blueprint, jsonify, request

from ...platform import db, outbox
from ...platform.clock import utcnow
from ...platform.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    StaleVersion,
    Unauthorized,
    ValidationFailed,
)
from ...workflow import webhooks
from .common import rows

URL_KEY = "erp:url"
SECRET_REF = "erp"
SECRET_KEY = f"webhook_secret:{SECRET_REF}"
SECRET_MIN = 16
FLOW = ("created", "confirmed", "processing", "shipped", "delivered")
SENT_ON = ("confirmed", "processing", "shipped", "delivered", "returned", "cancelled")
INBOUND = ("processing", "shipped", "delivered")
INBOUND_FIELDS = ("order", "status", "erp_reference", "at")


# --- settings ---------------------------------------------------------------------------------


def _get(conn: sa.Connection, key: str) -> str | None:
    return conn.execute(sa.select(db.setting.c.value).where(db.setting.c.key == key)).scalar()


def _put(conn: sa.Connection, key: str, value: str | None) -> None:
    conn.execute(db.setting.delete().where(db.setting.c.key == key))
    if value:
        conn.execute(db.setting.insert().values(key=key, value=value))


def _secret(conn: sa.Connection) -> str | None:
    return os.environ.get(webhooks.secret_env_name(SECRET_REF)) or _get(conn, SECRET_KEY)


def config(conn: sa.Connection) -> dict:
    """What an admin sees: the URL, whether a secret is set and its last 4 characters, enabled."""
    url, secret = _get(conn, URL_KEY), _secret(conn)
    return {"url": url or "", "secret_set": bool(secret), "secret_last4": secret[-4:] if secret else "",
            "enabled": bool(url and secret)}


def check_url(url: str) -> str | None:
    """An error message for a bad URL, None when it is fine (empty switches the link off)."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c in url for c in " \r\n\x00"):
        return "erp.bad_url"
    if len(url) > 2000:
        return "erp.bad_url"
    return None


def save_config(runtime: Any, url: str, secret: str | None) -> dict:
    """Store the URL (empty = off) and, if given, a new secret; validated first."""
    url = (url or "").strip()
    errors = {}
    if check_url(url):
        errors["url"] = "erp.bad_url"
    if secret is not None and secret != "" and (len(secret) < SECRET_MIN or len(secret) > 200
                                                 or any(c in secret for c in "\r\n\x00")):
        errors["secret"] = "erp.bad_secret"
    if errors:
        return {"errors": errors}
    with runtime.transaction() as tx:
        _put(tx.conn, URL_KEY, url)
        if secret:
            _put(tx.conn, SECRET_KEY, secret)
    with runtime.reading() as conn:
        return config(conn)


# --- out: order status changes -> the ERP -------------------------------------------------------


def order_message(service, conn: sa.Connection, order: dict, event: str) -> str:
    order_obj = service.registry.object("order")
    line_obj = service.registry.object("order_line")
    lines = rows(service, conn, "order_line", service.table("order_line").c.order == order["id"])
    return json.dumps({
        "event": event,
        "order": service.to_json(order_obj, order),
        "lines": [service.to_json(line_obj, line) for line in lines],
        "occurred_at": utcnow().isoformat(timespec="seconds") + "Z",
    }, ensure_ascii=False, sort_keys=True, default=str)


def erp_order_after_save(ctx) -> None:
    """after_save on order: a status change the ERP cares about becomes one outbox row."""
    if ctx.op not in ("create", "update"):
        return
    record = ctx.record
    status = record.get("status")
    if status not in SENT_ON or (ctx.op == "update" and not ctx.changed("status")):
        return
    url, secret = _get(ctx.conn, URL_KEY), _secret(ctx.conn)
    if not (url and secret):
        return  # the link is off until an admin sets both
    event = f"order.{status}"
    payload = {"url": url, "secret_ref": SECRET_REF, "headers": {}, "event": event, "object": "order",
               "record_id": record["id"], "rule": "erp_link",
               "body": order_message(ctx.service, ctx.conn, record, event)}
    outbox.enqueue(ctx.tx, "webhook", payload, f"erp:order:{record['id']}:{record.get('version')}:{status}",
                   runtime=ctx.service.runtime)


# --- in: status updates from the ERP -----------------------------------------------------------


def _parse(raw: bytes) -> dict:
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("The body is not JSON.", code="bad_body") from None
    if not isinstance(body, dict):
        raise BadRequest("Send a JSON object.", code="bad_body")
    errors: dict[str, list[str]] = {}
    if not isinstance(body.get("order"), str) or not body["order"].strip() or len(body["order"]) > 64:
        errors["order"] = ["The order's id: a string (required)."]
    if body.get("status") not in INBOUND:
        errors["status"] = [f"One of {', '.join(INBOUND)}."]
    if body.get("erp_reference") is not None and (not isinstance(body["erp_reference"], str)
                                                  or len(body["erp_reference"]) > 100):
        errors["erp_reference"] = ["A string of at most 100 characters."]
    for key in sorted(set(body) - set(INBOUND_FIELDS)):
        errors[key] = ["Unknown field."]
    if errors:
        raise ValidationFailed("The status update is not valid.", code="validation_failed", fields=errors)
    return body


def apply_status(ctx, update: dict) -> dict:
    """Move the order forward, never back; the same status twice changes nothing."""
    service = ctx.system_service()
    for _attempt in range(3):
        order = service.get_record("order", update["order"])
        current = order.get("status") or "created"
        if current not in FLOW:
            raise Conflict(f"The order is {current}; the ERP's update ({update['status']}) does not apply.",
                           code="order_closed", fields={"status": [f"The order is {current}."]})
        changes = {}
        if FLOW.index(update["status"]) > FLOW.index(current):
            changes["status"] = update["status"]
        if update.get("erp_reference") and order.get("erp_reference") != update["erp_reference"]:
            changes["erp_reference"] = update["erp_reference"]
        if not changes:
            return {"order": order["id"], "status": current, "changed": False,
                    **({} if update["status"] == current else
                       {"note": f"the order is already {current}; {update['status']} is behind it"})}
        try:
            saved = service.update("order", order["id"], changes, version=order["version"])
        except StaleVersion:
            continue  # changed meanwhile (e.g. the same update twice at once): look again
        return {"order": order["id"], "status": saved.get("status") or current, "changed": True}
    raise Conflict("The order keeps changing; retry.", code="stale_version")


def blueprint(ctx) -> Blueprint:
    bp = Blueprint("lead_to_cash_erp", __name__, url_prefix="/erp")

    @bp.post("/status")
    def erp_status():
        raw = request.get_data(cache=True)
        with ctx.runtime.reading() as conn:
            url, secret = _get(conn, URL_KEY), _secret(conn)
        if not (url and secret):
            raise Conflict("The ERP link is off: an admin sets its URL and secret first.",
                           code="erp_link_disabled")
        if not webhooks.verify(secret.encode(), raw, request.headers.get("X-Metacrm-Signature")):
            raise Unauthorized("The X-Metacrm-Signature header is missing or does not match the body.",
                               code="bad_signature")
        update = _parse(raw)
        try:
            return jsonify(apply_status(ctx, update))
        except NotFound:
            raise NotFound(f"No order {update['order']!r}.", code="record_not_found",
                           fields={"order": ["No such order."]}) from None

    def _admin_only():
        if ctx.principal is None or not ctx.service().access.is_admin:
            raise Forbidden("Only administrators configure the ERP link.", code="permission_required")

    @bp.get("/settings")
    def erp_settings():
        _admin_only()
        with ctx.runtime.reading() as conn:
            return jsonify(config(conn))

    @bp.put("/settings")
    def erp_settings_save():
        _admin_only()
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise BadRequest("Send a JSON object.", code="bad_body")
        unknown = sorted(set(body) - {"url", "secret"})
        bad = {k: ["Unknown field."] for k in unknown}
        for key in ("url", "secret"):
            if body.get(key) is not None and not isinstance(body[key], str):
                bad[key] = ["A string."]
        if bad:
            raise ValidationFailed("The ERP settings are not valid.", code="validation_failed", fields=bad)
        with ctx.runtime.reading() as conn:
            url = body["url"] if "url" in body else (_get(conn, URL_KEY) or "")
        result = save_config(ctx.runtime, url or "", body.get("secret") or None)
        if "errors" in result:
            messages = {"erp.bad_url": "An http or https address.",
                        "erp.bad_secret": f"{SECRET_MIN} to 200 characters, on one line."}
            raise ValidationFailed("The ERP settings are not valid.", code="validation_failed",
                                   fields={k: [messages[v]] for k, v in result["errors"].items()})
        return jsonify(result)

    return bp
