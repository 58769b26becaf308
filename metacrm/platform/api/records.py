"""/records/{object}: CRUD, lists with filter / sort / fields / keyset cursor, history,
restore from the recycle bin. Every call goes through the record service."""

from __future__ import annotations

from flask import g, jsonify, request

from ..errors import BadRequest
from ..records import RecordService
from . import api, json_body, parse_json, runtime


def service() -> RecordService:
    return RecordService(runtime(), g.principal, source="api")


def _limit() -> int | None:
    raw = request.args.get("limit")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadRequest("limit must be an integer.", fields={"limit": ["Not an integer."]}) from None


def _filter():
    raw = request.args.get("filter")
    if not raw:
        return None
    return parse_json(raw, "filter", "bad_filter")


@api.get("/records/<object_name>")
def list_records(object_name: str):
    fields = [f.strip() for f in request.args.get("fields", "").split(",") if f.strip()] or None
    items, cursor = service().list(
        object_name,
        filter=_filter(),
        sort=request.args.get("sort"),
        fields=fields,
        limit=_limit(),
        cursor=request.args.get("cursor"),
        deleted=request.args.get("deleted", "").lower() in ("1", "true"),
    )
    return jsonify({"items": items, "next_cursor": cursor})


@api.post("/records/<object_name>")
def create_record(object_name: str):
    body = json_body()
    if not isinstance(body, dict):
        raise BadRequest("The record must be a JSON object.", code="bad_record")
    svc = service()
    ctx = svc.create_record(object_name, body)
    out = svc.to_json(ctx.obj, ctx.record)
    if ctx.warnings:
        out["_warnings"] = ctx.warnings
    return jsonify(out), 201


@api.get("/records/<object_name>/<record_id>")
def get_record(object_name: str, record_id: str):
    return jsonify(service().get(object_name, record_id))


def _version(body: dict):
    version = body.pop("version", None)
    header = request.headers.get("If-Match")
    if version is None and header:
        version = header.strip().strip('"').removeprefix("W/").strip('"')
    if version is None:
        raise BadRequest("Send the version you read (in the body or If-Match) so no change is lost.",
                         code="version_required", fields={"version": ["Required."]})
    if isinstance(version, bool) or (isinstance(version, float) and not version.is_integer()):
        version = None  # true, 1.5: not a version
    try:
        return int(version)
    except (TypeError, ValueError, OverflowError):  # OverflowError: 1e400 is a float infinity
        raise BadRequest("version must be an integer.", fields={"version": ["Not an integer."]}) from None


@api.patch("/records/<object_name>/<record_id>")
def update_record(object_name: str, record_id: str):
    body = json_body()
    if not isinstance(body, dict):
        raise BadRequest("The changes must be a JSON object.", code="bad_record")
    svc = service()
    ctx = svc.update_record(object_name, record_id, body, version=_version(body))
    out = svc.to_json(ctx.obj, ctx.record)
    if ctx.warnings:
        out["_warnings"] = ctx.warnings
    return jsonify(out)


@api.delete("/records/<object_name>/<record_id>")
def delete_record(object_name: str, record_id: str):
    service().delete(object_name, record_id)
    return "", 204


@api.post("/records/<object_name>/<record_id>/restore")
def restore_record(object_name: str, record_id: str):
    return jsonify(service().restore(object_name, record_id))


@api.get("/records/<object_name>/<record_id>/history")
def record_history(object_name: str, record_id: str):
    return jsonify({"items": service().history(object_name, record_id)})
