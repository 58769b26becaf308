"""/admin/webhooks/deliveries: the admins' log of webhook attempts."""

from __future__ import annotations

from flask import jsonify, request

from ..platform.api import runtime
from ..platform.api.outbox import int_arg, require_admin
from ..platform.features import Routes
from . import webhooks

routes = Routes()


@routes.get("/admin/webhooks/deliveries")
def admin_webhook_deliveries():
    require_admin()
    return jsonify({"items": webhooks.deliveries(runtime(), key=request.args.get("key") or None,
                                                 limit=int_arg("limit", 50))})


def openapi_paths(access) -> dict:
    """The OpenAPI paths of these routes (merged into /api/v1/openapi.json)."""
    from ..platform.api.openapi import _items, _ok, _query
    return {
        "/admin/webhooks/deliveries": {"get": {"summary": "Webhook deliveries (admins)", "parameters": [
            _query("key"), _query("limit", {"type": "integer", "minimum": 1, "maximum": 500})],
            "responses": {"200": _ok(_items())}}},
    }
