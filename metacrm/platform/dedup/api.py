"""/records/{object}/duplicates (check a payload or an id) and /records/{object}/{id}/merge."""

from __future__ import annotations

from flask import g, jsonify

from ..api import json_body, runtime
from ..errors import BadRequest
from ..features import Routes
from ..records import RecordService
from .checks import check
from .merging import merge

routes = Routes()

WRAPPERS = ("record", "values")


def _service() -> RecordService:
    return RecordService(runtime(), g.principal, source="api")


@routes.post("/records/<object_name>/duplicates")
def check_duplicates(object_name: str):
    """Body: the payload bare, {"record": {...}}, {"values": {...}} or {"id": "..."}."""
    body = json_body()
    if not isinstance(body, dict):
        raise BadRequest("Send the record to check as a JSON object, or {\"id\": ...}.", code="bad_record")
    svc = _service()
    obj = svc.obj(object_name)
    if set(body) == {"id"}:
        matches = check(svc, object_name, record_id=str(body["id"]))
    else:
        record = body
        if len(body) == 1:
            (key, value), = body.items()
            if key in WRAPPERS and isinstance(value, dict) and key not in obj.fields:
                record = value
        matches = check(svc, object_name, record=record)
    return jsonify({"matches": matches})


@routes.post("/records/<object_name>/<record_id>/merge")
def merge_records(object_name: str, record_id: str):
    """Body: {"losers": [ids], "values": {field: value | {"from": id}}, "versions"?: {id: version}}."""
    body = json_body()
    if not isinstance(body, dict):
        raise BadRequest("Send {\"losers\": [...], \"values\": {...}}.", code="bad_request")
    versions = body.get("versions")
    if versions is not None and not (isinstance(versions, dict) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in versions.values())):
        raise BadRequest("versions must be an object of id: version number.",
                         fields={"versions": ["Not an object of integers."]})
    result = merge(_service(), object_name, record_id, body.get("losers"), body.get("values") or {}, versions)
    return jsonify(result)


def openapi_paths() -> dict:
    """Paths for the generated OpenAPI document (api/openapi.py may merge them)."""
    obj = {"name": "object", "in": "path", "required": True, "schema": {"type": "string"}}
    rid = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    body = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
    answer = {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}
    return {
        "/records/{object}/duplicates": {"parameters": [obj], "post": {
            "tags": ["duplicates"], "summary": "Matches of a payload (bare, {record} or {values}) or of {id}",
            "requestBody": body, "responses": {"200": answer, "400": {"description": "invalid"},
                                               "404": {"description": "unknown"}}}},
        "/records/{object}/{id}/merge": {"parameters": [obj, rid], "post": {
            "tags": ["duplicates"], "summary": "Merge losers into this record",
            "requestBody": body, "responses": {"200": answer, "400": {"description": "invalid"},
                                               "403": {"description": "not allowed"},
                                               "404": {"description": "unknown"},
                                               "409": {"description": "duplicate"}}}},
    }
