"""POST /records/{object}/import (JSON array or CSV; ?key=, ?dry_run=1, ?async=1,
?batch_size=) and GET /jobs/{id} for background imports."""

from __future__ import annotations

import json

from flask import g, jsonify, request

from ..api import check_text, runtime
from ..errors import BadRequest
from ..features import Routes
from ..records import RecordService
from .jobs import ASYNC_THRESHOLD, job_status, start_job
from .parsing import apply_mapping, parse
from .run import DEFAULT_BATCH, import_parsed, prepare
from .xlsx import XLSX_MIMETYPE

routes = Routes()

TRUE = ("1", "true", "yes", "on")
FALSE = ("", "0", "false", "no", "off")


def _flag(value, name: str) -> bool:
    """A yes/no option; anything else is refused (dry_run=maybe must not run a real import)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text not in TRUE + FALSE:
        raise BadRequest(f"{name} must be true or false, not {str(value)[:40]!r}.", code="bad_parameter",
                         fields={name: ["Not true or false."]})
    return text in TRUE


def _upload() -> tuple[bytes, str | None]:
    """The file: a multipart `file` part, or the request body itself."""
    if request.files:
        upload = request.files.get("file") or next(iter(request.files.values()))
        name = (upload.filename or "").lower()
        fmt = ("json" if name.endswith(".json") else "csv" if name.endswith((".csv", ".txt", ".tsv"))
               else "xlsx" if name.endswith(".xlsx") else None)
        return upload.read(), fmt
    mimetype = request.mimetype or ""
    fmt = ("csv" if mimetype in ("text/csv", "text/tab-separated-values") else "json" if mimetype.endswith("json")
           else "xlsx" if mimetype == XLSX_MIMETYPE else None)
    return request.get_data(cache=False), fmt


def _json_option(name: str):
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise BadRequest(f"{name} must be JSON.", code="bad_parameter", fields={name: ["Not JSON."]}) from None


def _lookups(raw: str | None) -> dict[str, str]:
    """?lookup=account:name,owner:username — match those lookup columns by that target field."""
    out = {}
    for part in (raw or "").split(","):
        if not part.strip():
            continue
        name, sep, by = part.partition(":")
        if not sep or not name.strip() or not by.strip():
            raise BadRequest("lookup is a list of field:target_field.", code="bad_parameter",
                             fields={"lookup": [f"Not field:target_field: {part[:40]!r}."]})
        out[name.strip()] = by.strip()
    return out


@routes.post("/records/<object_name>/import")
def import_records(object_name: str):
    data, fmt = _upload()
    if not data.strip():
        raise BadRequest("Send a JSON array of records or a CSV file with a header.", code="empty_file")
    parsed = parse(data, fmt, request.args.get("encoding") or None)
    parsed = apply_mapping(parsed, _json_option("mapping"))
    lookups = _lookups(request.args.get("lookup"))
    check_text([values for _, values in parsed.rows if isinstance(values, dict)], "The file")
    options = {**parsed.options, **{k: v for k, v in request.args.items()}}
    key = options.get("key") or None
    dry_run = _flag(options.get("dry_run"), "dry_run")
    try:
        batch_size = int(options.get("batch_size") or DEFAULT_BATCH)
    except (TypeError, ValueError):
        raise BadRequest("batch_size must be an integer.", fields={"batch_size": ["Not an integer."]}) from None
    rt = runtime()
    prepare(RecordService(rt, g.principal, source="import"), object_name, parsed, key, lookups)
    asked = options.get("async")
    background = _flag(asked, "async") if asked is not None else len(parsed.rows) > ASYNC_THRESHOLD
    if background:
        job_id = start_job(rt, g.principal, object_name, parsed, key=key, dry_run=dry_run,
                           batch_size=batch_size, lookups=lookups)
        return jsonify({"job": job_id, "status": "queued", "url": f"/api/v1/jobs/{job_id}"}), 202
    report = import_parsed(rt, g.principal, object_name, parsed, key=key, dry_run=dry_run,
                           batch_size=batch_size, lookups=lookups)
    return jsonify(report)


@routes.get("/jobs/<job_id>")
def job(job_id: str):
    return jsonify(job_status(runtime(), g.principal, job_id))


def openapi_paths() -> dict:
    """Paths for the generated OpenAPI document (api/openapi.py may merge them)."""
    answer = {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}
    flags = [{"name": name, "in": "query", "schema": {"type": "string"}}
             for name in ("key", "dry_run", "async", "batch_size", "encoding", "mapping", "lookup")]
    return {
        "/records/{object}/import": {"post": {
            "tags": ["import"], "summary": "Import a JSON array or a CSV file (a report row per input row)",
            "parameters": [{"name": "object", "in": "path", "required": True, "schema": {"type": "string"}}, *flags],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                "text/csv": {"schema": {"type": "string"}}}},
            "responses": {"200": answer, "202": answer, "400": {"description": "bad file"},
                          "403": {"description": "not allowed"}, "404": {"description": "unknown"}}}},
        "/jobs/{id}": {"get": {
            "tags": ["import"], "summary": "A background job: progress, and the report when done",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": answer, "404": {"description": "unknown"}}}},
    }
