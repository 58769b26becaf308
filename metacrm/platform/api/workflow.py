"""Notifications (the caller's, with the unread count) and the admins' view of the outbox
(dead letters, retry) and of webhook deliveries."""

from __future__ import annotations

from flask import g, jsonify, request

from ...workflow import webhooks
from .. import notifications
from ..errors import BadRequest, Conflict, Forbidden, NotFound
from ..outbox import STATUSES, outbox
from ..security import Access
from . import api, runtime


def _int_arg(name: str, default: int | None, low: int = 1, high: int = 500) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer.", fields={name: ["Not an integer."]}) from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}.", fields={name: ["Out of range."]})
    return value


MAX_ROW_ID = 2**63 - 1  # the largest id a BIGINT column (and SQLite's INTEGER) holds


def _row_id(value: int, what: str, code: str) -> int:
    """An id from the URL: beyond what the database can hold it names nothing (404), not a crash."""
    if value > MAX_ROW_ID:
        raise NotFound(f"No such {what}.", code=code)
    return value


def _require_admin() -> None:
    rt = runtime()
    if not Access(rt.registry(), g.principal, rt.directory()).is_admin:
        raise Forbidden("Only admins may see the outbox.")


@api.get("/notifications")
def list_notifications():
    if g.principal.user_id is None:
        return jsonify({"items": [], "unread": 0})
    unread_only = request.args.get("unread", "").lower() in ("1", "true")
    return jsonify(notifications.list_for(runtime(), g.principal.user_id, unread_only=unread_only,
                                          limit=_int_arg("limit", 50),
                                          before=_int_arg("before", None, high=2**62)))


@api.post("/notifications/<int:notification_id>/read")
def read_notification(notification_id: int):
    rt = runtime()
    notification_id = _row_id(notification_id, "notification", "notification_not_found")
    if not notifications.exists_for(rt, g.principal.user_id, notification_id):
        raise NotFound("No such notification.", code="notification_not_found")
    notifications.mark_read(rt, g.principal.user_id, notification_id)
    return jsonify({"id": notification_id, "read": True,
                    "unread": notifications.list_for(rt, g.principal.user_id, limit=1)["unread"]})


@api.post("/notifications/read_all")
def read_all_notifications():
    changed = notifications.mark_read(runtime(), g.principal.user_id)
    return jsonify({"marked": changed, "unread": 0})


@api.get("/admin/outbox")
def admin_outbox():
    _require_admin()
    status = request.args.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}.", fields={"status": ["Unknown status."]})
    items = outbox(runtime()).list(status=status, topic=request.args.get("topic") or None,
                                   limit=_int_arg("limit", 50), before=_int_arg("before", None, high=2**62))
    return jsonify({"items": items})


@api.post("/admin/outbox/<int:row_id>/retry")
def admin_outbox_retry(row_id: int):
    _require_admin()
    row_id = _row_id(row_id, "outbox row", "outbox_row_not_found")
    box = outbox(runtime())
    if not box.retry(row_id):
        if not any(item["id"] == row_id for item in box.list(limit=1, before=row_id + 1)):
            raise NotFound("No such outbox row.", code="outbox_row_not_found")
        raise Conflict("Only dead or skipped rows can be retried.", code="not_retryable")
    return jsonify(box.list(limit=1, before=row_id + 1)[0])


@api.get("/admin/webhooks/deliveries")
def admin_webhook_deliveries():
    _require_admin()
    return jsonify({"items": webhooks.deliveries(runtime(), key=request.args.get("key") or None,
                                                 limit=_int_arg("limit", 50))})
