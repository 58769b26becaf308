"""/api/v1/web_forms: the public forms with their submission counts, and one form's submissions
(admins: the `metadata.apply` permission, as the admin pages). The forms themselves are `web_form`
metadata, read and changed through /api/v1/meta like every kind."""

from __future__ import annotations

from flask import g, jsonify, url_for

from ..api import runtime
from ..errors import Forbidden, NotFound
from ..features import Routes
from ..records import RecordService
from . import store

routes = Routes()


def _admin() -> RecordService:
    service = RecordService(runtime(), g.principal, source="api")
    if not service.access.has_permission("metadata.apply"):
        raise Forbidden("Only administrators may see web form submissions.")
    return service


@routes.get("/web_forms")
def list_web_forms():
    service = _admin()
    counts = store.summary(runtime().engine)
    data = []
    for doc in service.registry.of_kind("web_form"):
        seen = counts.get(doc["name"], {})
        last = seen.get("last")
        data.append({"name": doc["name"], "object": doc.get("object"), "active": doc.get("active", True),
                     "url": url_for("web.web_form_public", name=doc["name"], _external=True),
                     "submissions": seen.get("count", 0), "spam": seen.get("spam", 0),
                     "last_submission_at": last.isoformat().replace("+00:00", "Z") if last else None})
    return jsonify({"data": data})


@routes.get("/web_forms/<name>/submissions")
def web_form_submissions(name: str):
    service = _admin()
    if service.registry.get("web_form", name) is None:
        raise NotFound(f"No web form named {name!r}.", code="unknown_form")
    rows = store.recent(runtime().engine, name)
    return jsonify({"data": [{"at": r["created_at"].isoformat().replace("+00:00", "Z"), "outcome": r["outcome"],
                              "object": r["object"], "id": r["record_id"]} for r in rows]})


def openapi_paths() -> dict:
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    answer = {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}
    return {
        "/web_forms": {"get": {"tags": ["web forms"], "summary": "Public web forms with their submission counts",
                               "responses": {"200": answer, "403": {"description": "not an administrator"}}}},
        "/web_forms/{name}/submissions": {"parameters": [name], "get": {
            "tags": ["web forms"], "summary": "A form's latest submissions (created or matched a duplicate)",
            "responses": {"200": answer, "403": {"description": "not an administrator"},
                          "404": {"description": "unknown form"}}}},
    }
