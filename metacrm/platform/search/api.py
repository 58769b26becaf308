"""GET /api/v1/search?q=...: records of every readable object whose searchable fields match,
grouped by object, best first (query.py decides what the caller may find)."""

from __future__ import annotations

from flask import jsonify, request

from ..api import runtime
from ..api.records import service
from ..errors import BadRequest
from ..features import Routes
from .query import MAX_QUERY, search

routes = Routes()


def _per_object() -> int:
    raw = request.args.get("limit", "5")
    if not raw.isdigit() or not 1 <= int(raw) <= 50:
        raise BadRequest("limit must be an integer from 1 to 50.", fields={"limit": ["out of range"]})
    return int(raw)


@routes.get("/search")
def search_records():
    from . import ensure_current

    q = request.args.get("q", "")
    if not q.strip():
        raise BadRequest("Give a search text.", code="bad_query", fields={"q": ["Required."]})
    objects = [o for o in request.args.get("objects", "").split(",") if o] or None
    ensure_current(runtime())
    svc = service()
    groups = search(svc, q, per_object=_per_object(), objects=objects)
    out = []
    for group in groups:
        obj = svc.obj(group.object)
        out.append({"object": group.object, "label": obj.plural_label or obj.label,
                    "more": group.more,
                    "records": [{"id": r["id"], "title": _title(obj, r),
                                 "matched": {"field": group.hits[r["id"]].field,
                                             "value": group.hits[r["id"]].body}} for r in group.records]})
    return jsonify({"q": q.strip(), "groups": out})


def _title(obj, record: dict) -> str:
    from ..web.display import record_title
    return record_title(obj, record)


def openapi_paths(access) -> dict:
    from ..api.openapi import _ok, _query
    record = {"type": "object", "required": ["id", "title", "matched"], "properties": {
        "id": {"type": "string"}, "title": {"type": "string"},
        "matched": {"type": "object", "required": ["field", "value"],
                    "properties": {"field": {"type": "string"}, "value": {"type": "string"}}}}}
    group = {"type": "object", "required": ["object", "records", "more"], "properties": {
        "object": {"type": "string"}, "label": {}, "more": {"type": "boolean"},
        "records": {"type": "array", "items": record}}}
    return {"/search": {"get": {
        "summary": "Search every readable object's searchable fields (typo and substring tolerant)",
        "parameters": [
            {**_query("q", {"type": "string", "minLength": 1, "maxLength": MAX_QUERY}), "required": True},
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 50}, "records per object (default 5)"),
            _query("objects", {"type": "string"}, "comma-separated object names to search in")],
        "responses": {"200": _ok({"type": "object", "required": ["q", "groups"], "properties": {
            "q": {"type": "string"}, "groups": {"type": "array", "items": group}}})}}}}
