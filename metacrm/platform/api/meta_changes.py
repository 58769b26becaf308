"""/meta/changes: the metadata change log (admins only: it holds metadata, not records), and
revert of an entry (POST .../revert, with dry_run for the diff it would apply)."""

from __future__ import annotations

from datetime import datetime

from flask import jsonify, request

from ...metadata.schema import KINDS
from .. import changelog
from ..errors import BadRequest, NotFound
from . import api, runtime
from .meta import _dry_run, access, require_metadata_admin
from .outbox import int_arg


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def _out(entry: dict) -> dict:
    return {**entry, "at": _time(entry["at"])}


def _filters() -> changelog.Filters:
    kind = request.args.get("kind") or None
    if kind is not None and kind not in KINDS:
        raise BadRequest(f"Unknown metadata kind {kind!r}; kinds are {', '.join(KINDS)}.", code="bad_parameter",
                         parameter="kind")
    document = request.args.get("document") or None
    user = changelog.check_parameter(request.args.get("user") or None, "user")
    return changelog.Filters(kind=kind, document=changelog.parse_document(document) if document else None, user=user)


@api.get("/meta/changes")
def list_changes():
    require_metadata_admin(access())
    filters = _filters()
    limit = int_arg("limit", changelog.DEFAULT_LIMIT, high=changelog.MAX_LIMIT)
    with runtime().reading() as conn:
        items, cursor = changelog.list_changes(conn, filters, limit, request.args.get("cursor") or None)
    return jsonify({"items": [_out(i) for i in items], "next_cursor": cursor})


def _change_id(change_id: int) -> int:
    if not 0 < change_id <= changelog.MAX_ID:
        raise NotFound(f"No metadata change {change_id}.", code="unknown_change")
    return change_id


@api.get("/meta/changes/<int:change_id>")
def get_change(change_id: int):
    require_metadata_admin(access())
    with runtime().reading() as conn:
        entry = changelog.get_change(conn, _change_id(change_id))
    return jsonify(_out(entry))


@api.post("/meta/changes/<int:change_id>/revert")
def revert_change(change_id: int):
    """Body (optional): {"document": "kind/name"} to revert one document of the entry."""
    require_metadata_admin(access())
    from . import json_body

    body = json_body({}) or {}
    if not isinstance(body, dict) or not isinstance(body.get("document", ""), (str, type(None))):
        raise BadRequest('Send {"document": "kind/name"} or no body (the whole change).', code="bad_body")
    document = body.get("document") or request.args.get("document") or None
    key = changelog.parse_document(document) if document else None
    result = changelog.revert(runtime(), _change_id(change_id), key, dry_run=_dry_run())
    out = result.as_dict()
    if result.applied:
        with runtime().reading() as conn:
            out["change"] = changelog.change_for_version(conn, result.version)
    return jsonify(out)


def openapi_paths() -> dict:
    """The change log's paths for the generated OpenAPI document."""
    cid = {"name": "change_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
    entry = {"type": "object", "required": ["id", "version", "at", "user", "via", "documents"], "properties": {
        "id": {"type": "integer"}, "version": {"type": "integer"}, "at": {"type": "string", "format": "date-time"},
        "user": {"type": "string", "description": "a user id, or system"},
        "via": {"type": "string", "enum": ["api", "web", "cli", "boot", "system"]},
        "plugin": {"type": "string", "nullable": True}, "reverts": {"type": "integer", "nullable": True},
        "storage": {"type": "object"},
        "documents": {"type": "array", "items": {"type": "object", "required": ["kind", "name", "action"],
                                                 "properties": {"kind": {"type": "string"}, "name": {"type": "string"},
                                                                "action": {"type": "string",
                                                                           "enum": ["added", "changed", "removed"]},
                                                                "before": {"type": "object", "nullable": True},
                                                                "after": {"type": "object", "nullable": True}}}}}}
    query = [
        {"name": "kind", "in": "query", "schema": {"type": "string", "enum": list(KINDS)}},
        {"name": "document", "in": "query", "schema": {"type": "string"}, "description": "kind/name"},
        {"name": "user", "in": "query", "schema": {"type": "string"}, "description": "a user id, or system"},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": changelog.MAX_LIMIT}},
        {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of the page before"},
    ]
    json = "application/json"
    return {
        "/meta/changes": {"get": {
            "tags": ["metadata"], "summary": "The metadata change log, newest first (admins)", "parameters": query,
            "responses": {"200": {"description": "a page of entries", "content": {json: {"schema": {
                "type": "object", "required": ["items", "next_cursor"], "properties": {
                    "items": {"type": "array", "items": entry}, "next_cursor": {"type": "string", "nullable": True}}}}}}},
        }},
        "/meta/changes/{change_id}": {"parameters": [cid], "get": {
            "tags": ["metadata"], "summary": "One change with each document's body before and after (admins)",
            "responses": {"200": {"description": "the entry", "content": {json: {"schema": entry}}}},
        }},
        "/meta/changes/{change_id}/revert": {"parameters": [cid], "post": {
            "tags": ["metadata"], "summary": "Revert a change (or one of its documents) as a change of its own",
            "parameters": [{"name": "dry_run", "in": "query", "schema": {"type": "string",
                                                                       "enum": ["0", "1", "true", "false"]},
                            "description": "1: return the diff only"}],
            "requestBody": {"required": False, "content": {json: {"schema": {"type": "object", "properties": {
                "document": {"type": "string", "description": "kind/name; absent: every document of the change"}}}}}},
            "responses": {"200": {"description": "the apply plan (and the new entry's id, as change)",
                                  "content": {json: {"schema": {"type": "object"}}}}},
        }},
    }
