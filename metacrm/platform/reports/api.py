"""/reports and /aggregate: saved `report` documents, plugin reports, ad-hoc aggregates.

GET  /api/v1/reports                 the reports the caller may run
GET  /api/v1/reports/{name}          run one (query parameters go to plugin reports; a
                                     report document takes an extra `filter` (JSON text))
POST /api/v1/aggregate/{object}      {"filter", "group_by", "measures", "sort", "limit"}
"""

from __future__ import annotations

from flask import g, jsonify, request

from .. import reports
from ..api import check_text, json_body, parse_json, runtime
from ..errors import BadRequest
from ..features import Routes
from ..records import RecordService

routes = Routes()


def _service() -> RecordService:
    return RecordService(runtime(), g.principal, source="api")


@routes.get("/reports")
def list_reports():
    return jsonify({"items": reports.list_reports(_service())})


@routes.get("/reports/<name>")
def run_report(name: str):
    params = check_text(request.args.to_dict(), "The query")
    if "filter" in params:
        raw = params["filter"]
        params["filter"] = parse_json(raw, "filter", "bad_filter") if raw else None
    return jsonify(reports.run_report(_service(), name, params))


@routes.post("/aggregate/<object_name>")
def aggregate(object_name: str):
    body = json_body({})
    if not isinstance(body, dict):
        raise BadRequest("The aggregate must be a JSON object.", code="bad_report")
    return jsonify(reports.aggregate(_service(), object_name, body))


def openapi_paths(access) -> dict:
    """The OpenAPI paths of these routes (merged into /api/v1/openapi.json)."""
    from ..api.openapi import ANY_OBJECT, _body, _items, _ok, _path, _query
    obj_param = _path("object")
    return {
        "/reports": {"get": {"summary": "The reports the caller may run", "responses": {"200": _ok(_items())}}},
        "/reports/{name}": {"parameters": [_path("name"), _query("filter", description="JSON filter (report documents)")],
                            "get": {"summary": "Run a report", "description": (
                                "A report document, or a plugin report whose query parameters are its params "
                                "(docs/lead-to-cash.md). `forecast`: period (month | quarter), from, to, user; "
                                "answers rows and totals per user, and the caller's roll-up: rollup (team "
                                "subtotals and people, each with adjusted figures and the managers' "
                                "adjustments), rollup_totals, adjustments."),
                                "responses": {"200": _ok(ANY_OBJECT)}}},
        "/aggregate/{object}": {"parameters": [obj_param], "post": {
            "summary": "An ad-hoc aggregate", "requestBody": _body({"type": "object", "properties": {
                "filter": {"description": "JSON filter"}, "group_by": {}, "measures": {}, "sort": {},
                "limit": {"type": "integer", "minimum": 1}}, "additionalProperties": False}, required=False),
            "responses": {"200": _ok(ANY_OBJECT)}}},
    }
