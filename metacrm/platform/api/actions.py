"""Record actions: named operations on one record that built-ins and plugins register
(platform/actions.py), e.g. `convert` on a lead.

GET  /records/{object}/{id}/actions            the actions the caller may run on this record
POST /records/{object}/{id}/actions/{action}   run one; the JSON body is its parameters

The caller must be able to read the record (else 404, as for any read) and hold the
action's permission on it: a record access (`edit`, `delete`, ...) checked against the row,
or a role permission name. The action runs with a RecordService bound to the caller inside
one transaction: if it raises, everything it wrote is rolled back. Its return value is the
JSON answer.
"""

from __future__ import annotations

from flask import g, jsonify

from .. import actions as shared
from ..actions import actions
from ..errors import BadRequest, Forbidden, NotFound, PluginFailed
from ..records import RecordService
from . import api, json_body, runtime

_allowed = shared.allowed
_label = shared.label


def _visible_record(service: RecordService, object_name: str, record: dict) -> dict:
    hidden = service.access.hidden_fields(object_name)
    return {k: v for k, v in record.items() if k not in hidden}


@api.get("/records/<object_name>/<record_id>/actions")
def list_record_actions(object_name: str, record_id: str):
    service = RecordService(runtime(), g.principal, source="api")
    record = service.get_record(object_name, record_id)
    items = [{"name": action.name, "label": _label(action, g.principal.locale), "plugin": action.plugin,
              "permission": action.permission} for action in shared.available(service, object_name, record)]
    return jsonify({"items": items})


@api.post("/records/<object_name>/<record_id>/actions/<action_name>")
def run_record_action(object_name: str, record_id: str, action_name: str):
    service = RecordService(runtime(), g.principal, source="action")
    service.obj(object_name)  # 404 for an unknown object
    action = actions(runtime()).record_action(object_name, action_name)
    if action is None:
        raise NotFound(f"{object_name} records have no action {action_name!r}.", code="unknown_action")
    params = json_body({})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise BadRequest("The action's parameters must be a JSON object.", code="bad_params")
    with service.transaction():
        record = service.get_record(object_name, record_id)
        if not _allowed(service, object_name, action, record):
            raise Forbidden(f"You may not run {action_name!r} on this {object_name} record.",
                            code="action_forbidden", action=action_name)
        result = action.fn(service, _visible_record(service, object_name, record), params)
        try:  # inside the transaction: an answer that cannot be sent undoes the action
            response = jsonify(result if result is not None else {})
        except (TypeError, ValueError) as exc:
            raise PluginFailed(f"The action {action_name!r} returned a value that is not JSON ({exc}).",
                               plugin=action.plugin, hook=f"record action {action_name}") from exc
    return response


def openapi_paths(runtime_, access) -> dict:
    """OpenAPI paths of the record actions the caller's objects have, for api/openapi.py to merge."""
    error = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    id_param = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    registry = runtime_.registry()
    paths: dict = {}
    for (obj, name), action in sorted(actions(runtime_).record.items()):
        objects = sorted(registry.objects) if obj == "*" else [obj]
        for object_name in objects:
            if object_name not in registry.objects or not access.can(object_name, "read"):
                continue
            paths.setdefault(f"/records/{object_name}/{{id}}/actions", {"parameters": [id_param], "get": {
                "summary": "The actions the caller may run on this record", "tags": [object_name],
                "responses": {"200": {"description": "actions", "content": {"application/json": {
                    "schema": {"type": "object"}}}}, "401": error, "404": error}}})
            paths[f"/records/{object_name}/{{id}}/actions/{name}"] = {"parameters": [id_param], "post": {
                "summary": _label(action, "en"), "tags": [object_name],
                "requestBody": {"required": False, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"200": {"description": "the action's answer", "content": {"application/json": {
                    "schema": {"type": "object"}}}}, "400": error, "401": error, "403": error, "404": error,
                    "409": error}}}
    return paths
