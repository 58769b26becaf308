"""/pools: browse, claim, assign; /records/{object}/{id}/release and .../recycle (the
computed recycle date)."""

from __future__ import annotations

from flask import g, jsonify, request

from ..api import json_body, parse_json, runtime
from ..errors import BadRequest
from ..features import Routes
from . import browsing, claims, recycle

routes = Routes()


def _body() -> dict:
    body = json_body({})
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.", code="bad_request")
    return body


@routes.get("/pools")
def list_pools():
    return jsonify({"items": browsing.list_pools(runtime(), g.principal, g.principal.locale)})


@routes.get("/pools/<pool_name>/records")
def pool_records(pool_name: str):
    raw_filter = request.args.get("filter")
    flt = parse_json(raw_filter, "filter", "bad_filter") if raw_filter else None
    limit = request.args.get("limit")
    try:
        limit = int(limit) if limit is not None else None
    except ValueError:
        raise BadRequest("limit must be an integer.", fields={"limit": ["Not an integer."]}) from None
    fields = [f.strip() for f in request.args.get("fields", "").split(",") if f.strip()] or None
    items, cursor = browsing.list_records(
        runtime(), g.principal, pool_name, filter=flt, sort=request.args.get("sort"), fields=fields,
        limit=limit, cursor=request.args.get("cursor"),
    )
    return jsonify({"items": items, "next_cursor": cursor})


@routes.post("/pools/<pool_name>/claim")
def claim(pool_name: str):
    return jsonify(claims.claim(runtime(), g.principal, pool_name, _body().get("ids")))


@routes.post("/pools/<pool_name>/assign")
def assign(pool_name: str):
    body = _body()
    return jsonify(claims.assign(runtime(), g.principal, pool_name, body.get("ids"), body.get("user")))


@routes.post("/records/<object_name>/<record_id>/release")
def release(object_name: str, record_id: str):
    return jsonify(claims.release(runtime(), g.principal, object_name, record_id, _body().get("reason")))


@routes.get("/records/<object_name>/<record_id>/recycle")
def recycle_date(object_name: str, record_id: str):
    return jsonify(recycle.recycle_info(runtime(), g.principal, object_name, record_id))


def openapi_paths() -> dict:
    """Paths for the generated OpenAPI document (api/openapi.py may merge them)."""
    answer = {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}
    body = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
    pool = {"name": "pool", "in": "path", "required": True, "schema": {"type": "string"}}
    obj = {"name": "object", "in": "path", "required": True, "schema": {"type": "string"}}
    rid = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    failed = {"404": {"description": "unknown pool or record"}, "400": {"description": "invalid"}}
    return {
        "/pools": {"get": {"tags": ["pools"], "summary": "Pools the caller is a member of", "responses": {"200": answer}}},
        "/pools/{pool}/records": {"parameters": [pool], "get": {"tags": ["pools"], "responses": {"200": answer, **failed}}},
        "/pools/{pool}/claim": {"parameters": [pool], "post": {
            "tags": ["pools"], "summary": "{ids} -> {claimed, failed: [{id, code, message}]}", "requestBody": body,
            "responses": {"200": answer, **failed}}},
        "/pools/{pool}/assign": {"parameters": [pool], "post": {
            "tags": ["pools"], "summary": "{ids, user} (pool admins)", "requestBody": body,
            "responses": {"200": answer, "403": {"description": "not a pool admin"}, **failed}}},
        "/records/{object}/{id}/release": {"parameters": [obj, rid], "post": {
            "tags": ["pools"], "summary": "{reason}: back to the pool", "requestBody": body,
            "responses": {"200": answer, "403": {"description": "not the owner"}, "409": {"description": "no pool"},
                          **failed}}},
        "/records/{object}/{id}/recycle": {"parameters": [obj, rid], "get": {
            "tags": ["pools"], "summary": "The computed recycle date", "responses": {"200": answer, **failed}}},
    }
