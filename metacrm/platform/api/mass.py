"""POST /records/{object}/mass-update: one change for many records (by ids or a filter), record
by record through the record service as the caller, with a result per record (what was
refused and why); over Config.mass_job_threshold records it is a background job whose state
GET /mass-jobs/{id} reports. The web's mass actions (web/quick/mass.py) run the same code."""

from __future__ import annotations

from flask import g, jsonify

from ..errors import BadRequest, Forbidden
from ..records import RecordService
from . import api, check_text, json_body, runtime

MAX_IDS = 50_000


@api.post("/records/<object_name>/mass-update")
def mass_update(object_name: str):
    from ..web.quick import mass

    body = json_body({})
    if not isinstance(body, dict):
        raise BadRequest("Send an object: {\"ids\": [...] or \"filter\": {...}, \"data\": {...}}.", code="bad_body")
    data = body.get("data")
    if not isinstance(data, dict) or not data:
        raise BadRequest("data must be an object of field values.", code="bad_body", fields={"data": ["Required."]})
    check_text(data)
    rt = runtime()
    service = RecordService(rt, g.principal, source="api")
    obj = service.obj(object_name)
    if not service.access.can(obj.name, "edit"):
        raise Forbidden(f"You may not edit {obj.name} records.")
    writable = {f.name for f in service.writable_fields(obj, False)[0]}
    refused = sorted(name for name in data if name not in writable)
    if refused:
        raise BadRequest("These fields cannot be set: " + ", ".join(n[:64] for n in refused[:10]) + ".",
                         code="bad_field", fields={n[:64]: ["Not writable."] for n in refused[:10]})
    if ("ids" in body) == ("filter" in body):
        raise BadRequest("Send either ids or filter.", code="bad_body", fields={"ids": ["ids or filter."]})
    if "ids" in body:
        ids = body["ids"]
        if not isinstance(ids, list) or not all(isinstance(i, str) and 0 < len(i) <= 64 for i in ids):
            raise BadRequest("ids must be a list of record ids.", code="bad_body", fields={"ids": ["Not a list of ids."]})
        ids = list(dict.fromkeys(ids))
    else:
        ids, cursor = [], None
        while len(ids) <= MAX_IDS:
            items, cursor = service.list(obj.name, filter=body["filter"], sort="-created_at", fields=["id"],
                                         limit=500, cursor=cursor)
            ids.extend(item["id"] for item in items)
            if not cursor:
                break
    if len(ids) > MAX_IDS:
        raise BadRequest(f"At most {MAX_IDS} records at once.", code="too_many", fields={"ids": ["Too many."]})
    if len(ids) > rt.config.mass_job_threshold:
        job_id = mass.start(rt, g.principal, obj, ids, "update", data, background=True, source="api")
        return jsonify({"job": job_id, "status": "queued", "total": len(ids),
                        "url": f"/api/v1/mass-jobs/{job_id}"}), 202
    return jsonify(mass.run_mass(rt, g.principal, obj.name, ids, "update", data, source="api"))


@api.get("/mass-jobs/<job_id>")
def mass_job(job_id: str):
    from ..web.quick import mass

    row = mass.load_job(runtime(), g.principal, job_id)
    body = {"id": row.id, "object": row.object, "action": row.action, "status": row.status,
            "progress": {"done": row.done, "total": row.total}}
    if row.status == "done":
        body.update(row.result or {})
    elif row.status == "failed":
        body["error"] = row.error
    return jsonify(body)


def openapi_paths() -> dict:
    answer = {"description": "a result per record: {summary: {done, refused}, results: [{id, status, reason?, "
                             "code?, message?, fields?}]}",
              "content": {"application/json": {"schema": {"type": "object"}}}}
    return {
        "/records/{object}/mass-update": {"post": {
            "tags": ["records"], "summary": "Set the same field values on many records (ids or a filter)",
            "description": "Each record is saved through the record service as the caller: records outside the "
                           "caller's scope, locked by an approval or failing validation are left unchanged and "
                           "reported as refused (reason: permission, lock, validation, conflict). Over the "
                           "configured threshold (METACRM_MASS_JOB_THRESHOLD, default 1000) it runs as a "
                           "background job: 202 with the job's URL.",
            "parameters": [{"name": "object", "in": "path", "required": True, "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["data"], "properties": {
                    "ids": {"type": "array", "items": {"type": "string"}},
                    "filter": {"type": "object"}, "data": {"type": "object"}}}}}},
            "responses": {"200": answer, "202": {"description": "queued as a job"},
                          "400": {"description": "bad body or field"}, "403": {"description": "not allowed"},
                          "404": {"description": "unknown object"}}}},
        "/mass-jobs/{id}": {"get": {
            "tags": ["records"], "summary": "A mass update job: progress, and the per-record results when done",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "ok"}, "404": {"description": "unknown"}}}},
    }
