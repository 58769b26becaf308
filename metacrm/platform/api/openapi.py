"""GET /openapi.json: generated from the live metadata, one schema per object the caller can read."""

from __future__ import annotations

from flask import g, jsonify

from ... import __version__
from ...metadata.model import label_text
from ..security import Access
from . import api, runtime

ERROR = {"$ref": "#/components/schemas/Error"}


def json_schema_for(fdef) -> dict:
    vtype = fdef.value_type
    if fdef.type in ("id", "lookup", "user"):
        schema = {"type": "string"}
    elif vtype in ("decimal", "currency", "percent"):
        schema = {"type": "string", "format": "decimal", "pattern": r"^-?\d+(\.\d+)?$"}
    elif vtype == "integer":
        schema = {"type": "integer"}
    elif vtype == "boolean":
        schema = {"type": "boolean"}
    elif vtype == "date":
        schema = {"type": "string", "format": "date"}
    elif vtype == "datetime":
        schema = {"type": "string", "format": "date-time"}
    elif vtype == "multipicklist":
        schema = {"type": "array", "items": {"type": "string"}}
    elif vtype == "picklist":
        schema = {"type": "string", "enum": fdef.option_values}
    elif vtype == "email":
        schema = {"type": "string", "format": "email"}
    else:
        schema = {"type": "string"}
        if fdef.max_length:
            schema["maxLength"] = fdef.max_length
    schema["nullable"] = True
    if fdef.label:
        schema["title"] = label_text(fdef.label, "en", fdef.name)
    return schema


def object_schemas(obj, access: Access) -> tuple[dict, dict]:
    hidden = access.hidden_fields(obj.name)
    props, inputs, required = {}, {}, []
    for name, fdef in obj.all_fields.items():
        if name in hidden:
            continue
        if fdef.type != "password":
            props[name] = json_schema_for(fdef)
        if not fdef.system and not fdef.read_only and access.field_access(obj.name, name) == "edit":
            inputs[name] = json_schema_for(fdef) if fdef.type != "password" else {"type": "string", "writeOnly": True}
            if fdef.required:
                required.append(name)
        if fdef.polymorphic:
            props[f"{name}__object"] = {"type": "string", "nullable": True}
    record = {"type": "object", "properties": props, "required": ["id", "version"]}
    create = {"type": "object", "properties": {**inputs, "owner": {"type": "string"}}, "additionalProperties": False}
    if required:
        create["required"] = required
    return record, create


def build_document(access: Access) -> dict:
    registry = runtime().registry()
    schemas = {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string"}, "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
            }}},
        }
    }
    paths: dict = {
        "/auth/token": {"post": {
            "summary": "Log in: a bearer token", "security": [],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["username", "password"],
                "properties": {"username": {"type": "string"}, "password": {"type": "string"}}}}}},
            "responses": {"201": {"description": "token", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"token": {"type": "string"}, "expires_at": {"type": "string"}}}}}},
                "400": _err("bad input"), "401": _err("wrong credentials")},
        }},
        "/meta/objects": {"get": {"summary": "Objects the caller can read", "responses": {
            "200": {"description": "objects", "content": {"application/json": {"schema": {"type": "object"}}}},
            "401": _err("no credentials")}}},
    }
    for name, obj in sorted(registry.objects.items()):
        if not access.can(name, "read"):
            continue
        record, create = object_schemas(obj, access)
        schemas[name] = record
        schemas[f"{name}.input"] = create
        ref, ref_in = {"$ref": f"#/components/schemas/{name}"}, {"$ref": f"#/components/schemas/{name}.input"}
        list_schema = {"type": "object", "required": ["items", "next_cursor"], "properties": {
            "items": {"type": "array", "items": ref}, "next_cursor": {"type": "string", "nullable": True}}}
        id_param = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
        title = label_text(obj.plural_label, "en", name)
        paths[f"/records/{name}"] = {
            "get": {"summary": f"List {title}", "tags": [name], "parameters": [
                {"name": "filter", "in": "query", "schema": {"type": "string"}, "description": "JSON filter"},
                {"name": "sort", "in": "query", "schema": {"type": "string"}},
                {"name": "fields", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "a page", "content": {"application/json": {"schema": list_schema}}},
                              "400": _err("bad query"), "401": _err("no credentials"), "404": _err("unknown")}},
            "post": {"summary": f"Create a {label_text(obj.label, 'en', name)}", "tags": [name],
                     "requestBody": {"required": True, "content": {"application/json": {"schema": ref_in}}},
                     "responses": {"201": {"description": "created", "content": {"application/json": {"schema": ref}}},
                                   "400": _err("invalid"), "403": _err("not allowed"), "409": _err("duplicate"),
                                   "401": _err("no credentials"), "404": _err("unknown")}},
        }
        paths[f"/records/{name}/{{id}}"] = {
            "parameters": [id_param],
            "get": {"tags": [name], "responses": {"200": {"description": "the record", "content": {
                "application/json": {"schema": ref}}}, "404": _err("unknown"), "401": _err("no credentials")}},
            "patch": {"tags": [name], "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "allOf": [{"type": "object", "properties": {"version": {"type": "integer"}}}]}}}},
                "responses": {"200": {"description": "updated", "content": {"application/json": {"schema": ref}}},
                              "400": _err("invalid"), "403": _err("not allowed"), "404": _err("unknown"),
                              "409": _err("stale version"), "423": _err("locked"), "401": _err("no credentials")}},
            "delete": {"tags": [name], "responses": {"204": {"description": "in the recycle bin"},
                                                     "403": _err("not allowed"), "404": _err("unknown"),
                                                     "409": _err("restricted"), "401": _err("no credentials")}},
        }
        paths[f"/records/{name}/{{id}}/history"] = {"parameters": [id_param], "get": {"tags": [name], "responses": {
            "200": {"description": "history", "content": {"application/json": {"schema": {"type": "object"}}}},
            "404": _err("unknown"), "401": _err("no credentials")}}}
    paths.update(feature_paths(access))
    return {
        "openapi": "3.0.3",
        "info": {"title": "metacrm", "version": __version__,
                 "description": f"Generated from the live metadata (version {registry.version})."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def feature_paths(access: Access) -> dict:
    """Paths that later features' route modules describe themselves (openapi_paths())."""
    import importlib
    import inspect

    from . import OPTIONAL_ROUTES

    paths: dict = {}
    for name in OPTIONAL_ROUTES:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError:
            continue
        describe = getattr(module, "openapi_paths", None)
        if describe is None:
            continue
        params = inspect.signature(describe).parameters
        paths.update(describe(runtime(), access) if len(params) == 2 else describe())
    return paths


def _err(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


@api.get("/openapi.json")
def openapi():
    rt = runtime()
    return jsonify(build_document(Access(rt.registry(), g.principal, rt.directory())))
