"""metacrm ERP connector: confirmed orders go to the ERP as signed webhooks (through the
outbox, after commit); shipment updates come back, idempotently, through the plugin's API.

Everything here uses the public plugin API only (metacrm.plugins.api.PluginContext), and
every record read or write goes through a record service bound to the acting user.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from datetime import timedelta

import sqlalchemy as sa
from flask import Blueprint, jsonify, request

from metacrm.platform.clock import utcnow
from metacrm.platform.errors import BadRequest, Conflict, NotFound
from metacrm.plugins.api import PluginContext, Skip

NAME = "erp_connector"
NUMBER = f"{NAME}__order_number"
TRACKING = f"{NAME}__tracking_number"
FLOW = ("created", "confirmed", "processing", "shipped", "delivered")
INBOUND = ("processing", "shipped", "delivered")
KEY_DAYS = 30
SIGNATURE_HEADER = "X-Metacrm-Signature"

MANIFEST = {
    "name": NAME,
    "version": "1.0.0",
    "metacrm": ">=0.1,<1",
    "label": {"en": "ERP connector", "zh-CN": "ERP 连接器"},
    "description": "Pushes confirmed orders to the ERP as signed webhooks and takes shipment updates back.",
    "bundle": "metadata",
    "extends": {
        "order": [
            {"name": NUMBER, "type": "text", "max_length": 64, "indexed": True,
             "label": {"en": "ERP order number", "zh-CN": "ERP 订单号"}},
            {"name": TRACKING, "type": "text", "max_length": 100,
             "label": {"en": "Tracking number", "zh-CN": "运单号"}},
        ]
    },
    "hooks": {"after_save": ["order"]},
    "record_actions": {"order": ["resend_to_erp"]},
    "jobs": ["expire_keys"],
    "blueprint": True,
    "settings": {
        "url": {"label": "ERP webhook URL", "env": "METACRM_ERP_URL"},
        "secret": {"label": "Webhook signing secret", "env": "METACRM_ERP_SECRET", "secret": True},
        "timeout": {"label": "Seconds to wait for the ERP", "default": 10},
    },
}


def sign(secret: str, body: bytes) -> str:
    """The signature header value: sha256=<hex HMAC-SHA256 of the exact body bytes>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def setup(ctx: PluginContext) -> None:
    keys = ctx.define_table(
        "idempotency",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("user_id", sa.String(32)),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("response", sa.JSON),
        sa.Column("created_at", sa.DateTime, nullable=False, index=True),
    )

    # --- out: confirmed orders -> ERP ----------------------------------------------------

    def order_message(service, obj, record: dict) -> dict:
        return {"event": "order.confirmed", "object": obj.name, "order": service.to_json(obj, record)}

    def push_confirmed(sctx) -> None:
        """after_save on order: the row is written in the saving transaction, so a rolled-back
        save sends nothing; the key makes a retried save one message."""
        if sctx.op not in ("create", "update") or sctx.record.get("status") != "confirmed":
            return
        if not sctx.changed("status"):
            return
        record = sctx.record
        ctx.enqueue(sctx, "push", order_message(sctx.service, sctx.obj, record),
                    key=f"{NAME}:push:{record['id']}:{record['version']}")

    def send(payload: dict) -> None:
        """Outbox handler: POST the signed message; raising means "retry later"."""
        url, secret = ctx.setting("url"), ctx.setting("secret")
        if not url:
            raise Skip("no ERP URL configured (METACRM_ERP_URL or `metacrm plugin set erp_connector url=...`)")
        if not secret:
            raise Skip("no signing secret configured (METACRM_ERP_SECRET); refusing to send unsigned")
        message = {k: v for k, v in payload.items() if not k.startswith("_")}
        body = json.dumps(message, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        req = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(str(secret), body),
            "X-Metacrm-Event": message.get("event", ""),
            "Idempotency-Key": payload.get("_key", ""),
        })
        try:
            with urllib.request.urlopen(req, timeout=float(ctx.setting("timeout") or 10)) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"the ERP answered {exc.code}") from None

    def resend(service, record: dict, params: dict) -> dict:
        """Record action: queue the order again (e.g. after fixing the ERP side)."""
        if record.get("status") not in FLOW[1:]:
            raise Conflict("Only a confirmed (or later) order goes to the ERP.", code="order_not_confirmed")
        obj = service.obj("order")
        with service.transaction() as tx:
            ctx.enqueue(tx, "push", order_message(service, obj, record),
                        key=f"{NAME}:resend:{record['id']}:{utcnow().isoformat()}")
        return {"queued": True, "order": record["id"]}

    ctx.after_save("order", push_confirmed)
    ctx.outbox_handler("push", send)
    ctx.record_action("order", "resend_to_erp", resend, label={"en": "Send to ERP again", "zh-CN": "重新发送到 ERP"})

    # --- in: shipment updates ---------------------------------------------------------------

    bp = Blueprint(NAME, __name__)

    @bp.post("/shipments")
    def shipments():
        key = (request.headers.get("Idempotency-Key") or "").strip()
        if not key or len(key) > 200:
            raise BadRequest("Send an Idempotency-Key header (at most 200 characters) with every update.",
                             code="idempotency_key_required")
        update = _parse_update(request.get_json(silent=True))
        digest = hashlib.sha256(json.dumps(update, sort_keys=True).encode()).hexdigest()
        service = ctx.service()  # the caller: the ERP's API user
        try:
            with service.transaction() as tx:
                seen = tx.conn.execute(sa.select(keys).where(keys.c.key == key)).first()
                if seen is not None:
                    return _replay(seen, digest, service.principal.user_id)
                tx.conn.execute(keys.insert().values(key=key, user_id=service.principal.user_id, digest=digest,
                                                     created_at=utcnow()))
                answer = apply_update(service, update)
                tx.conn.execute(keys.update().where(keys.c.key == key).values(response=answer))
        except sa.exc.IntegrityError:  # the same key, concurrently: the other request won
            with ctx.runtime.reading() as conn:
                seen = conn.execute(sa.select(keys).where(keys.c.key == key)).first()
            if seen is None or seen.response is None:
                raise Conflict("An update with this Idempotency-Key is in progress; retry.",
                               code="idempotency_in_progress") from None
            return _replay(seen, digest, service.principal.user_id)
        return jsonify(answer)

    def apply_update(service, update: dict) -> dict:
        if update.get("order"):
            order = service.get_record("order", update["order"])
        else:
            found, _ = service.list("order", filter={NUMBER: update["erp_order_number"]}, limit=2)
            if len(found) != 1:
                raise NotFound("No order with that ERP order number.", code="record_not_found")
            order = service.get_record("order", found[0]["id"])
        current = order.get("status") or "created"
        if current not in FLOW:
            raise Conflict(f"The order is {current}; the ERP's update ({update['status']}) does not apply.",
                           code="order_closed")
        changes = {}
        moved = FLOW.index(update["status"]) > FLOW.index(current)
        if moved:
            changes["status"] = update["status"]
        for field, key in ((NUMBER, "erp_order_number"), (TRACKING, "tracking_number")):
            if update.get(key) and order.get(field) != update[key]:
                changes[field] = update[key]
        if changes:
            service.update("order", order["id"], changes, version=order["version"])
        return {"order": order["id"], "status": changes.get("status", current), "changed": bool(changes),
                **({} if moved or update["status"] == current else
                   {"note": f"the order is already {current}; {update['status']} is behind it"})}

    ctx.blueprint(bp)

    # --- housekeeping ---------------------------------------------------------------------------

    def expire_keys(runtime) -> str:
        with runtime.transaction() as tx:
            cutoff = utcnow() - timedelta(days=KEY_DAYS)
            gone = tx.conn.execute(keys.delete().where(keys.c.created_at < cutoff)).rowcount
        return f"{gone} idempotency key(s) older than {KEY_DAYS} days forgotten"

    ctx.job("expire_keys", expire_keys)


def _parse_update(body) -> dict:
    if not isinstance(body, dict):
        raise BadRequest("Send a JSON object.", code="bad_body")
    errors = {}
    status = body.get("status")
    if status not in INBOUND:
        errors["status"] = [f"One of {', '.join(INBOUND)}."]
    if not body.get("order") and not body.get("erp_order_number"):
        errors["order"] = ["Send the order's id (order) or its ERP number (erp_order_number)."]
    for key in ("order", "erp_order_number", "tracking_number"):
        if body.get(key) is not None and (not isinstance(body[key], str) or len(body[key]) > 100):
            errors[key] = ["A string of at most 100 characters."]
    unknown = sorted(set(body) - {"order", "erp_order_number", "tracking_number", "status"})
    for key in unknown:
        errors[key] = ["Unknown field."]
    if errors:
        raise BadRequest("The shipment update is not valid.", code="validation_failed", fields=errors)
    return {k: body[k] for k in ("order", "erp_order_number", "tracking_number", "status") if body.get(k)}


def _replay(seen, digest: str, user_id: str | None):
    if seen.digest != digest or seen.user_id != user_id:
        raise Conflict("This Idempotency-Key was used for a different update.", code="idempotency_key_reused")
    response = jsonify(seen.response if isinstance(seen.response, dict) else json.loads(seen.response))
    response.headers["Idempotent-Replayed"] = "true"
    return response
