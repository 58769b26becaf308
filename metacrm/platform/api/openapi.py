"""GET /openapi.json: generated from the live metadata, one schema per object the caller can read.

The document is meant to be honest enough for a contract fuzzer (tests/test_fuzz_api.py runs
schemathesis against it): every operation lists the error answers it can give with the one error
schema, parameters and bodies carry the types the server checks (money as strings with a pattern,
picklists as enums, path names that must exist as enums of the caller's objects, pools, kinds...).
"""

from __future__ import annotations

import copy

from flask import g, jsonify

from ... import __version__
from ...metadata.model import label_text
from ...metadata.schema import KINDS
from ..schemas import INT64_MAX, INT64_MIN, typed_bound
from ..security import Access
from . import api, runtime

ERROR = {"$ref": "#/components/schemas/Error"}
DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
ANY_OBJECT = {"type": "object"}
# One warning of a save (a possible duplicate, a workflow action that failed...); more keys may follow.
WARNING = {"type": "object", "required": ["code", "message"], "additionalProperties": True,
           "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}
ERROR_TEXT = {
    "400": "invalid input (malformed JSON, wrong types, unknown fields, bad filter / sort / cursor)",
    "401": "no or bad credentials",
    "403": "not allowed",
    "404": "unknown object, record or name (or one the caller may not see)",
    "409": "conflict: stale version, blocked duplicate, claim lost, limit reached, not applicable",
    "422": ("a business rule refuses the change (overpayment, a plan that does not add up, more than is left to "
            "deliver, an owner who may not hold the record), or idempotency_key_reused: this Idempotency-Key "
            "was used for another request"),
    "423": "the record is locked by a pending approval",
    "429": "too_many_attempts: sign-in throttled (see Retry-After)",
}
IDEMPOTENCY_HEADER = {"name": "Idempotency-Key", "in": "header", "required": False,
                      "description": "Do this call at most once per (user, key): a repeat replays the first "
                                     "answer (header Idempotent-Replayed: true); kept 24 h. See docs/api.md.",
                      "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"}}
WRITE_METHODS = ("post", "put", "patch", "delete")
METHODS = ("get", "post", "put", "patch", "delete")


def json_schema_for(fdef, *, for_input: bool = False, role_names: list[str] | None = None) -> dict:
    """The JSON schema of one field's value; `for_input` gives what the server accepts (input limits)."""
    vtype = fdef.value_type
    ftype = fdef.type
    if ftype in ("id", "lookup", "user"):
        schema: dict = {"type": "string"}
    elif vtype in ("decimal", "currency", "percent"):
        schema = {"type": "string", "format": "decimal", "pattern": DECIMAL_PATTERN}
    elif vtype == "integer":
        schema = {"type": "integer", "format": "int64"}
        if for_input:
            low, high = typed_bound(fdef, fdef.min), typed_bound(fdef, fdef.max)
            schema["minimum"] = INT64_MIN if low is None else max(low, INT64_MIN)
            schema["maximum"] = INT64_MAX if high is None else min(high, INT64_MAX)
    elif vtype == "boolean":
        schema = {"type": "boolean"}
    elif vtype == "date":
        schema = {"type": "string", "format": "date"}
    elif vtype == "datetime":
        schema = {"type": "string", "format": "date-time"}
    elif vtype == "multipicklist":
        choices = role_names if fdef.options_from == "role" else fdef.option_values
        items: dict = {"type": "string"}
        if choices:
            items["enum"] = list(choices)
        schema = {"type": "array", "items": items}
    elif vtype == "picklist" and fdef.options:
        schema = {"type": "string", "enum": fdef.option_values}
    elif vtype == "email":
        schema = {"type": "string", "format": "email"}
        if for_input:
            schema["maxLength"] = 255
    else:
        schema = {"type": "string"}
        if for_input:
            limit = fdef.max_length or (None if ftype == "textarea" else 255)
            if ftype == "phone":
                limit = 40
                schema["pattern"] = r"^\+?[0-9()\-\s./]{3,40}$"
            if limit:
                schema["maxLength"] = limit
        elif fdef.max_length:
            schema["maxLength"] = fdef.max_length
    if not (for_input and fdef.required):
        schema["nullable"] = True
        if "enum" in schema:
            # OpenAPI 3.0.3: nullable does not widen an enum; null must be one of its values, or
            # typed clients refuse a record whose picklist is empty.
            schema["enum"] = [*schema["enum"], None]
    elif schema["type"] == "string":
        schema["minLength"] = 1  # a required text may not be empty
    if fdef.label:
        schema["title"] = label_text(fdef.label, "en", fdef.name)
    return schema


def object_schemas(obj, access: Access, role_names: list[str] | None = None) -> tuple[dict, dict, dict]:
    """(record, create input, update input) schemas of one object, as the caller sees it."""
    hidden = access.hidden_fields(obj.name)
    props, inputs, required = {}, {}, []
    for name, fdef in obj.all_fields.items():
        if name in hidden:
            continue
        if fdef.type != "password":
            props[name] = json_schema_for(fdef, role_names=role_names)
        if not fdef.system and not fdef.read_only and access.field_access(obj.name, name) == "edit":
            if fdef.type == "password":
                inputs[name] = {"type": "string", "writeOnly": True, "nullable": not fdef.required}
            else:
                inputs[name] = json_schema_for(fdef, for_input=True, role_names=role_names)
            if fdef.required:
                required.append(name)
        if fdef.polymorphic:
            props[f"{name}__object"] = {"type": "string", "nullable": True}
    props["_warnings"] = {"type": "array", "items": WARNING,
                          "description": "warnings of the save (create and update answers)"}
    record = {"type": "object", "properties": props, "required": ["id", "version"]}
    create = {"type": "object", "properties": {**inputs, "owner": {"type": "string"}}, "additionalProperties": False}
    if required:
        create["required"] = required
    update = {"type": "object", "properties": {
        **{k: v for k, v in create["properties"].items()},
        "version": {"type": "integer", "description": "the version read (or send If-Match)"}},
        "additionalProperties": False}
    return record, create, update


def _ok(schema: dict, description: str = "ok") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


def _items(item: dict | None = None, **extra) -> dict:
    return {"type": "object", "required": ["items"],
            "properties": {"items": {"type": "array", "items": item or ANY_OBJECT}, **extra}}


def _body(schema: dict, required: bool = True) -> dict:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _path(name: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


def _query(name: str, schema: dict | None = None, description: str | None = None) -> dict:
    out = {"name": name, "in": "query", "required": False, "schema": schema or {"type": "string"}}
    if description:
        out["description"] = description
    return out


FLAG = {"type": "string", "enum": ["0", "1", "true", "false"]}
COMMENT_BODY = {"type": "object", "properties": {"comment": {"type": "string", "nullable": True}}}


def core_paths(registry, access: Access, readable: list[str]) -> dict:
    """The routes of the platform's own modules that are not per object."""
    obj_param = _path("object", {"type": "string", "enum": readable} if readable else None)
    id_param = _path("id")
    kind = _path("kind", {"type": "string", "enum": list(KINDS)})
    document = {"type": "object", "description": "a metadata document (kind, name, ...)"}
    plan = _ok({"type": "object", "description": "the apply plan: the diff, and whether it was applied"})
    dry_run = _query("dry_run", FLAG, "1: return the diff only")
    return {
        "/auth/token": {
            "delete": {"summary": "Revoke the caller's token", "responses": {"204": {"description": "revoked"}}},
        },
        "/me": {"get": {"summary": "The caller", "responses": {"200": _ok({
            "type": "object", "required": ["id", "username", "roles"], "properties": {
                "id": {"type": "string", "nullable": True}, "username": {"type": "string", "nullable": True},
                "roles": {"type": "array", "items": {"type": "string"}},
                "department": {"type": "string", "nullable": True}, "locale": {"type": "string", "nullable": True}}})}}},
        "/meta/objects/{name}": {"parameters": [_path("name", {"type": "string", "enum": readable} if readable
                                                      else None), _query("locale")],
                                 "get": {"summary": "Describe an object: fields, picklists, layouts, permissions",
                                         "responses": {"200": _ok({"type": "object", "required": ["name", "fields"]})}}},
        "/meta/{kind}": {"parameters": [kind], "get": {"summary": "The documents of one kind",
                                                       "responses": {"200": _ok(_items(document))}}},
        "/meta/{kind}/{name}": {
            "parameters": [kind, _path("name")],
            "get": {"summary": "One document as applied", "responses": {"200": _ok(document)}},
            "put": {"summary": "Add or replace one document", "parameters": [dry_run],
                    "requestBody": _body(document), "responses": {"200": plan}},
            "delete": {"summary": "Remove one document", "parameters": [dry_run], "responses": {"200": plan}},
        },
        "/meta/apply": {"post": {
            "summary": "Apply a bundle: {documents, delete}", "parameters": [dry_run],
            "requestBody": _body({"type": "object", "properties": {
                "documents": {"type": "array", "items": document},
                "delete": {"type": "array", "items": {"type": "object", "required": ["kind", "name"], "properties": {
                    "kind": {"type": "string", "enum": list(KINDS)}, "name": {"type": "string"}}}}}}),
            "responses": {"200": plan}}},
        "/views": {
            "get": {"summary": "The saved views the caller may use on an object (shared, and the caller's own)",
                    "parameters": [_query("object", {"type": "string", "enum": readable} if readable else None),
                                   _query("locale")],
                    "responses": {"200": _ok(_items({"type": "object", "required": ["name", "label", "mode"]}))}},
            "post": {"summary": "Save a view: personal, or with roles shared (admins)",
                     "requestBody": _body({"type": "object", "required": ["object", "label"], "properties": {
                         "object": {"type": "string"}, "label": {"type": "string"}, "name": {"type": "string"},
                         "columns": {"type": "array", "items": {"type": "string"}},
                         "filter": {"type": "object"}, "sort": {"type": "string"},
                         "mode": {"type": "string", "enum": ["list", "kanban"]}, "kanban_field": {"type": "string"},
                         "sum_field": {"type": "string"}, "roles": {"type": "array", "items": {"type": "string"}},
                         "default_for_roles": {"type": "array", "items": {"type": "string"}}}}),
                     "responses": {"201": _ok({"type": "object", "required": ["name"]}, "saved")}},
        },
        "/views/{name}": {"parameters": [_path("name")], "delete": {
            "summary": "Delete one's own view (admins: any)", "responses": {"204": {"description": "deleted"}}}},
        "/records/{object}/{id}/restore": {"parameters": [obj_param, id_param], "post": {
            "summary": "Restore from the recycle bin", "responses": {"200": _ok({"type": "object"})}}},
        "/admin/outbox": {"get": {"summary": "The outbox (admins)", "parameters": [
            _query("status"), _query("topic"), _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
            _query("before", {"type": "integer", "minimum": 1, "maximum": 2**62})],
            "responses": {"200": _ok(_items())}}},
        "/admin/outbox/{id}/retry": {"parameters": [_path("id", {"type": "integer", "minimum": 0})], "post": {
            "summary": "Retry a dead or skipped row (admins)", "responses": {"200": _ok(ANY_OBJECT)}}},
    }


def build_document(access: Access) -> dict:
    registry = runtime().registry()
    role_names = sorted(registry.roles)
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
    readable = [name for name in sorted(registry.objects) if access.can(name, "read")]
    paths: dict = {
        "/auth/token": {"post": {
            "summary": "Log in: a bearer token", "security": [],
            "requestBody": _body({
                "type": "object", "required": ["username", "password"],
                "properties": {"username": {"type": "string", "minLength": 1},
                               "password": {"type": "string", "minLength": 1},
                               "label": {"type": "string", "nullable": True, "maxLength": 100}}}),
            "responses": {"201": _ok({"type": "object", "required": ["token", "expires_at"], "properties": {
                "token": {"type": "string"}, "expires_at": {"type": "string"}, "user": {"type": "string"}}}, "token"),
                "400": _err("bad input"), "401": _err("wrong credentials")},
        }},
        "/meta/objects": {"get": {"summary": "Objects the caller can read", "parameters": [_query("locale")],
                                  "responses": {"200": _ok(_items())}}},
    }
    for name in readable:
        obj = registry.object(name)
        record, create, update = object_schemas(obj, access, role_names)
        schemas[name] = record
        schemas[f"{name}.input"] = create
        schemas[f"{name}.update"] = update
        ref = {"$ref": f"#/components/schemas/{name}"}
        list_schema = {"type": "object", "required": ["items", "next_cursor"], "properties": {
            "items": {"type": "array", "items": ref}, "next_cursor": {"type": "string", "nullable": True}}}
        id_param = _path("id")
        title = label_text(obj.plural_label, "en", name)
        paths[f"/records/{name}"] = {
            "get": {"summary": f"List {title}", "tags": [name], "parameters": [
                _query("filter", description="JSON filter"),
                _query("sort", description="comma-separated field names, - for descending"),
                _query("fields", description="comma-separated field names"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                _query("cursor", description="next_cursor of the previous page"),
                _query("deleted", FLAG, "1: the recycle bin")],
                "responses": {"200": _ok(list_schema, "a page")}},
            "post": {"summary": f"Create a {label_text(obj.label, 'en', name)}", "tags": [name],
                     "requestBody": _body({"$ref": f"#/components/schemas/{name}.input"}),
                     "responses": {"201": _ok(ref, "created")}},
        }
        paths[f"/records/{name}/{{id}}"] = {
            "parameters": [id_param],
            "get": {"tags": [name], "responses": {"200": _ok(ref, "the record")}},
            "patch": {"tags": [name], "parameters": [{"name": "If-Match", "in": "header", "required": False,
                                                      "schema": {"type": "string"}, "description": "the version read"}],
                      "requestBody": _body({"$ref": f"#/components/schemas/{name}.update"}),
                      "responses": {"200": _ok(ref, "updated")}},
            "delete": {"tags": [name], "responses": {"204": {"description": "in the recycle bin"}}},
        }
        paths[f"/records/{name}/{{id}}/history"] = {"parameters": [id_param], "get": {"tags": [name], "responses": {
            "200": _ok(_items(), "history")}}}
    _merge(paths, core_paths(registry, access, readable))
    _merge(paths, feature_paths(access))
    normalise(paths, readable, sorted(_pool_names(registry, access)))
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


def _pool_names(registry, access: Access) -> list[str]:
    return [doc["name"] for doc in registry.of_kind("pool") if access.can(doc.get("object", ""), "read")]


def normalise(paths: dict, readable: list[str], pools: list[str]) -> None:
    """Make every operation honest in the same way, whichever module described it: the standard
    error answers with the error schema, and path names that must exist as enums."""
    for template, item in paths.items():
        for key, value in list(item.items()):
            if key == "parameters":
                item[key] = [_param(p, readable, pools) for p in value]
                continue
            if key not in METHODS:
                continue
            value["parameters"] = [_param(p, readable, pools) for p in value.get("parameters", [])]
            if not value["parameters"]:
                del value["parameters"]
            responses = value.setdefault("responses", {})
            codes = ["400", "401", "403", "404"]
            if key in WRITE_METHODS:
                codes += ["409", "422", "423"]
            if template == "/auth/token" and key == "post":
                codes = ["400", "401", "429"]
            elif key in WRITE_METHODS:
                codes.append("422")
                if not any(p.get("name") == "Idempotency-Key" for p in value.get("parameters", [])):
                    value.setdefault("parameters", []).append(dict(IDEMPOTENCY_HEADER))
            for code in codes:
                current = responses.get(code)
                if current is None or "content" not in current:
                    responses[code] = _err((current or {}).get("description") or ERROR_TEXT[code])
            for code, response in list(responses.items()):
                if code == "204" or "content" in response:
                    continue
                if code.startswith("2"):
                    responses[code] = {**response, "content": {"application/json": {"schema": ANY_OBJECT}}}
            if key in ("post", "put", "patch") and "requestBody" in value:
                value["requestBody"] = copy.deepcopy(value["requestBody"])


def _param(param: dict, readable: list[str], pools: list[str]) -> dict:
    if param.get("in") != "path" or param.get("schema", {}).get("enum"):
        return param
    if param["name"] == "object" and readable:
        return {**param, "schema": {"type": "string", "enum": readable}}
    if param["name"] == "pool" and pools:
        return {**param, "schema": {"type": "string", "enum": pools}}
    return param


def feature_paths(access: Access) -> dict:
    """Paths that the generic route modules (records' exports and actions) and every registered
    feature describe themselves: openapi_paths() or openapi_paths(access) or (runtime, access)."""
    import inspect

    from . import actions, exports, mass, meta_changes

    describers = [exports.openapi_paths, actions.openapi_paths, meta_changes.openapi_paths, mass.openapi_paths]
    describers += [feature.openapi for feature in runtime().features if feature.openapi is not None]
    paths: dict = {}
    for describe in describers:
        count = len(inspect.signature(describe).parameters)
        more = describe() if count == 0 else describe(access) if count == 1 else describe(runtime(), access)
        _merge(paths, copy.deepcopy(more))
    return paths


def _merge(paths: dict, more: dict) -> None:
    """Add `more`'s operations; several modules may describe methods of one path (e.g. /auth/token)."""
    for template, item in more.items():
        paths.setdefault(template, {}).update(item)


@api.get("/openapi.json")
def openapi():
    rt = runtime()
    return jsonify(build_document(Access(rt.registry(), g.principal, rt.directory())))
