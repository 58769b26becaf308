"""/reports and /aggregate: saved `report` documents, plugin reports, ad-hoc aggregates.

GET  /api/v1/reports                 the reports the caller may run
GET  /api/v1/reports/{name}          run one (query parameters go to plugin reports; a
                                     report document takes an extra `filter` (JSON text))
POST /api/v1/aggregate/{object}      {"filter", "group_by", "measures", "sort", "limit"}
"""

from __future__ import annotations

from flask import g, jsonify, request

from .. import reports
from ..errors import BadRequest
from ..records import RecordService
from . import api, check_text, json_body, parse_json, runtime


def _service() -> RecordService:
    return RecordService(runtime(), g.principal, source="api")


@api.get("/reports")
def list_reports():
    return jsonify({"items": reports.list_reports(_service())})


@api.get("/reports/<name>")
def run_report(name: str):
    params = check_text(request.args.to_dict(), "The query")
    if "filter" in params:
        raw = params["filter"]
        params["filter"] = parse_json(raw, "filter", "bad_filter") if raw else None
    return jsonify(reports.run_report(_service(), name, params))


@api.post("/aggregate/<object_name>")
def aggregate(object_name: str):
    body = json_body({})
    if not isinstance(body, dict):
        raise BadRequest("The aggregate must be a JSON object.", code="bad_report")
    return jsonify(reports.aggregate(_service(), object_name, body))
