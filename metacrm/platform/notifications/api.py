"""/notifications: the caller's notifications, with the unread count; mark read."""

from __future__ import annotations

from flask import g, jsonify, request

from .. import notifications
from ..api import runtime
from ..api.outbox import checked_id, int_arg
from ..api.records import service
from ..errors import NotFound
from ..features import Routes

routes = Routes()


@routes.get("/notifications")
def list_notifications():
    if g.principal.user_id is None:
        return jsonify({"items": [], "unread": 0})
    unread_only = request.args.get("unread", "").lower() in ("1", "true")
    data = notifications.list_for(runtime(), g.principal.user_id, unread_only=unread_only,
                                  limit=int_arg("limit", 50), before=int_arg("before", None, high=2**62))
    items = notifications.in_locale(service(), data["items"], g.principal.locale)
    return jsonify({**data, "items": [{k: v for k, v in n.items() if k != "texts"} for n in items]})


@routes.post("/notifications/<int:notification_id>/read")
def read_notification(notification_id: int):
    rt = runtime()
    notification_id = checked_id(notification_id, "notification", "notification_not_found")
    if not notifications.exists_for(rt, g.principal.user_id, notification_id):
        raise NotFound("No such notification.", code="notification_not_found")
    notifications.mark_read(rt, g.principal.user_id, notification_id)
    return jsonify({"id": notification_id, "read": True,
                    "unread": notifications.list_for(rt, g.principal.user_id, limit=1)["unread"]})


@routes.post("/notifications/read_all")
def read_all_notifications():
    changed = notifications.mark_read(runtime(), g.principal.user_id)
    return jsonify({"marked": changed, "unread": 0})


def openapi_paths(access) -> dict:
    """The OpenAPI paths of these routes (merged into /api/v1/openapi.json)."""
    from ..api.openapi import ANY_OBJECT, FLAG, _items, _ok, _path, _query
    return {
        "/notifications": {"get": {"summary": "The caller's notifications and unread count", "parameters": [
            _query("unread", FLAG), _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
            _query("before", {"type": "integer", "minimum": 1, "maximum": 2**62})],
            "responses": {"200": _ok(_items(unread={"type": "integer"}))}}},
        "/notifications/{id}/read": {"parameters": [_path("id", {"type": "integer", "minimum": 0})], "post": {
            "summary": "Mark one read", "responses": {"200": _ok(ANY_OBJECT)}}},
        "/notifications/read_all": {"post": {"summary": "Mark all read", "responses": {"200": _ok(ANY_OBJECT)}}},
    }
