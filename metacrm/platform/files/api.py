"""/api/v1: a record's files (list, multipart upload) and one file (download, remove).
Every call reads the record through the record service as the caller (store.py has the rules)."""

from __future__ import annotations

from flask import g, jsonify, request

from ..errors import BadRequest
from ..features import Routes
from ..records import RecordService
from . import store

routes = Routes()


def _service() -> RecordService:
    from ..api import runtime

    return RecordService(runtime(), g.principal, source="api")


def _version() -> int | None:
    raw = request.form.get("version") or request.args.get("version") or request.headers.get("If-Match")
    if raw is None or raw == "":
        return None
    try:
        return int(str(raw).strip().strip('"').removeprefix("W/").strip('"'))
    except ValueError:
        raise BadRequest("version must be an integer.", fields={"version": ["Not an integer."]}) from None


def upload_from_request() -> store.Upload:
    part = request.files.get("file")
    if part is None:
        raise BadRequest("Send the file as multipart/form-data in a part named `file`.", code="file_missing",
                         fields={"file": ["Required."]})
    return store.Upload(part.filename or "file", part.mimetype, part.read())


@routes.get("/records/<object_name>/<record_id>/files", endpoint="files_list")
def files_list(object_name: str, record_id: str):
    return jsonify({"items": store.list_files(_service(), object_name, record_id)})


@routes.post("/records/<object_name>/<record_id>/files", endpoint="files_upload")
def files_upload(object_name: str, record_id: str):
    field = (request.form.get("field") or "").strip() or None
    out = store.add_file(_service(), object_name, record_id, upload_from_request(), field=field,
                         version=_version())
    return jsonify(out), 201


@routes.get("/files/<file_id>", endpoint="files_download")
def files_download(file_id: str):
    row, _obj, _record = store.open_file(_service(), file_id)
    return store.download_response(row)


@routes.delete("/files/<file_id>", endpoint="files_remove")
def files_remove(file_id: str):
    store.remove_file(_service(), file_id, version=_version())
    return "", 204


FILE = {"type": "object", "required": ["id", "name", "content_type", "size"], "properties": {
    "id": {"type": "string"}, "object": {"type": "string"}, "record_id": {"type": "string"},
    "field": {"type": "string", "nullable": True, "description": "the file field holding it; null: an attachment"},
    "name": {"type": "string"}, "content_type": {"type": "string"}, "size": {"type": "integer"},
    "sha256": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"},
    "created_by": {"type": "string", "nullable": True}}}


def openapi_paths(access) -> dict:
    from ..api.openapi import _err, _items, _ok, _path

    return {
        "/records/{object}/{id}/files": {
            "parameters": [_path("object"), _path("id")],
            "get": {"summary": "A record's files: its attachments and the files of the fields the caller may read",
                    "responses": {"200": _ok(_items(FILE)), "404": _err("no such record, or not readable")}},
            "post": {
                "summary": "Upload a file: an attachment, or the value of a file field",
                "description": ("multipart/form-data with the file in `file`; `field` names a file field "
                                "(then `version`, or If-Match, is the version read), else the file joins the "
                                "attachments list (objects with `attachments: true`). Needs edit access to the "
                                "record. Refused: over the size limit (413), programs and scripts, web pages "
                                "and SVG, and content that does not match the declared type (415)."),
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "required": ["file"], "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "field": {"type": "string", "description": "a file field of the object"},
                        "version": {"type": "integer", "description": "the record's version (file fields)"}}}}}},
                "responses": {"201": _ok(FILE, "stored"), "403": _err("may not edit the record"),
                              "404": _err("no such record, or no attachments on this object"),
                              "413": _err("larger than the limit"), "415": _err("refused content")}},
        },
        "/files/{file_id}": {
            "parameters": [_path("file_id")],
            "get": {"summary": "Download a file (as an attachment, with X-Content-Type-Options: nosniff)",
                    "responses": {"200": {"description": "the file's bytes",
                                          "content": {"application/octet-stream": {"schema": {
                                              "type": "string", "format": "binary"}}}},
                                  "404": _err("no such file, or its record is not readable")}},
            "delete": {"summary": "Remove an attachment, or clear a file field (send the version)",
                       "responses": {"204": {"description": "removed"}, "403": _err("may not edit the record"),
                                     "404": _err("no such file")}},
        },
    }
