"""Outgoing webhooks: the `webhook` outbox topic.

The body was fixed when the rule fired (the record as it was saved); here it is POSTed with
`X-Metacrm-Signature: sha256=<hex HMAC-SHA256 of the body>` under the endpoint's secret and
`Idempotency-Key: <outbox key>`, so a receiver can drop a repeat after a worker crash.
Every attempt lands in `mc_webhook_delivery`. A timeout or non-2xx answer raises, and the
outbox retries with backoff, then dead-letters; the save that fired it never waits.

Secrets: the action's `secret_ref` names the environment variable
METACRM_WEBHOOK_SECRET_<REF> (upper case, other characters as `_`), or else a row of
mc_setting with the key `webhook_secret:<ref>`. Without `secret_ref` the body is unsigned.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa

from ..platform import db
from ..platform.clock import utcnow
from ..platform.storage import UtcDateTime

log = logging.getLogger("metacrm.webhooks")
DEFAULT_TIMEOUT = 10.0
PARALLEL = 8  # POSTs in flight at once per batch

delivery = sa.Table(
    "mc_webhook_delivery",
    db.system_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("outbox_id", sa.Integer),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("duration_ms", sa.Integer),
    sa.Index("ix_mc_webhook_delivery_key", "key", "id"),
)


class WebhookFailed(Exception):
    pass


def secret_env_name(ref: str) -> str:
    return "METACRM_WEBHOOK_SECRET_" + re.sub(r"[^A-Z0-9]", "_", ref.upper())


def secret_for(runtime: Any, ref: str) -> bytes:
    value = os.environ.get(secret_env_name(ref))
    if not value:
        with runtime.reading() as conn:
            value = conn.execute(
                sa.select(db.setting.c.value).where(db.setting.c.key == f"webhook_secret:{ref}")
            ).scalar()
    if not value:
        raise WebhookFailed(f"no webhook secret {ref!r} ({secret_env_name(ref)} or setting webhook_secret:{ref})")
    return value.encode()


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    """What a receiver does (and the tests do)."""
    return bool(header) and hmac.compare_digest(sign(secret, body), header)


def post(runtime: Any, payload: dict) -> dict:
    """One POST; the delivery-log row describing it (never raises for HTTP or network trouble)."""
    url = payload["url"]
    body = (payload.get("body") or "").encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "metacrm-webhook/1",
        "Idempotency-Key": payload["_key"],
        "X-Metacrm-Delivery": str(payload.get("_id")),
        "X-Metacrm-Event": str(payload.get("event") or ""),
    }
    # Metadata validation refuses CR / LF / NUL in header names and values; a payload queued
    # before that rule (or written around it) still never splits a header.
    headers.update({str(k): str(v) for k, v in (payload.get("headers") or {}).items()
                    if not any(c in f"{k}{v}" for c in "\r\n\x00") and str(k).strip()})
    started = time.monotonic()
    status, error = None, None
    try:
        if payload.get("secret_ref"):
            headers["X-Metacrm-Signature"] = sign(secret_for(runtime, payload["secret_ref"]), body)
        timeout = float(runtime.extensions.get("webhook_timeout") or os.environ.get("METACRM_WEBHOOK_TIMEOUT")
                        or DEFAULT_TIMEOUT)
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
            response.read(65536)
    except urllib.error.HTTPError as exc:
        status, error = exc.code, f"HTTP {exc.code}"
    except Exception as exc:  # noqa: BLE001 - timeouts, refused connections, DNS, a missing secret
        error = f"{type(exc).__name__}: {exc}"
    return {"outbox_id": payload.get("_id"), "key": payload["_key"], "url": url,
            "attempt": payload.get("_attempt") or 1, "at": utcnow(), "status_code": status,
            "ok": status is not None and 200 <= status < 300 and error is None, "error": error,
            "duration_ms": int((time.monotonic() - started) * 1000)}


def handle_webhooks(runtime: Any, items: list) -> dict:
    """Batch handler: the batch's POSTs run side by side (one slow endpoint does not hold up the
    others), then one transaction logs them all."""
    payloads = [dict(item.payload, _key=item.key, _id=item.id, _attempt=item.attempts) for item in items]
    if len(payloads) == 1:
        logs = [post(runtime, payloads[0])]
    else:
        with ThreadPoolExecutor(max_workers=min(PARALLEL, len(payloads)), thread_name_prefix="webhook") as pool:
            logs = list(pool.map(lambda p: post(runtime, p), payloads))
    try:
        with runtime.transaction() as tx:
            tx.conn.execute(delivery.insert(), logs)
    except Exception:
        log.exception("could not log the webhook deliveries")
    return {item.id: None if entry["ok"] else WebhookFailed(entry["error"] or f"HTTP {entry['status_code']}")
            for item, entry in zip(items, logs, strict=True)}


def deliveries(runtime: Any, key: str | None = None, limit: int = 50) -> list[dict]:
    query = sa.select(delivery).order_by(delivery.c.id.desc()).limit(limit)
    if key:
        query = query.where(delivery.c.key == key)
    with runtime.reading() as conn:
        rows = conn.execute(query).fetchall()
    return [{
        "id": r.id, "outbox_id": r.outbox_id, "key": r.key, "url": r.url, "attempt": r.attempt,
        "at": r.at.isoformat(timespec="seconds") + "Z", "status_code": r.status_code, "ok": r.ok, "error": r.error,
        "duration_ms": r.duration_ms,
    } for r in rows]
