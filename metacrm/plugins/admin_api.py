"""Plugin administration over REST (admins only):

GET  /plugins                      installed, archived and available plugins
GET  /plugins/{name}               one plugin: manifest facts, settings (secrets masked), what it applied
POST /plugins/{name}/install       {"grant": ["elevated"], "dry_run": false}  (?dry_run=1 works too)
POST /plugins/{name}/upgrade       {"grant": [...], "dry_run": false}
POST /plugins/{name}/uninstall     {"purge": false, "dry_run": false}
PUT  /plugins/{name}/settings      {"key": value, ...} (null clears one)

Install / upgrade / uninstall answer with the plan: the metadata diff, what the plugin
registers, the permissions asked for and granted, warnings; `applied` says whether it was
applied (a refusal is an error answer and applies nothing).
"""

from __future__ import annotations

from flask import g, jsonify, request

from ..platform.api import json_body, runtime
from ..platform.errors import BadRequest, Forbidden
from ..platform.features import Routes
from ..platform.security import Access
from . import install as plugins

routes = Routes()


def _require_admin() -> None:
    rt = runtime()
    if not Access(rt.registry(), g.principal, rt.directory()).is_admin:
        raise Forbidden("Only administrators manage plugins.", code="admin_only")


def _options(*names: str) -> dict:
    body = json_body({}) or {}
    if not isinstance(body, dict):
        raise BadRequest("Send a JSON object.", code="bad_body")
    unknown = sorted(set(body) - set(names))
    if unknown:
        raise BadRequest(f"Unknown option(s): {', '.join(unknown)}.", code="bad_body",
                         fields={k: ["Unknown option."] for k in unknown})
    if request.args.get("dry_run", "").lower() in ("1", "true", "yes"):
        body["dry_run"] = True
    for flag in ("dry_run", "purge"):
        if flag in body and not isinstance(body[flag], bool):
            raise BadRequest(f"{flag} must be true or false.", fields={flag: ["Not a boolean."]})
    grant = body.get("grant", [])
    if not isinstance(grant, list) or not all(isinstance(p, str) for p in grant):
        raise BadRequest("grant must be a list of permission names.", fields={"grant": ["Not a list of names."]})
    return body


@routes.get("/plugins")
def list_plugins():
    _require_admin()
    return jsonify({"items": plugins.list_plugins(runtime())})


@routes.get("/plugins/<name>")
def show_plugin(name: str):
    _require_admin()
    return jsonify(plugins.show(runtime(), name))


@routes.post("/plugins/<name>/install")
def install_plugin(name: str):
    _require_admin()
    opts = _options("grant", "dry_run")
    result = plugins.install(runtime(), name, grant=opts.get("grant", []), dry_run=opts.get("dry_run", False))
    return jsonify(result), 200 if result["dry_run"] else 201


@routes.post("/plugins/<name>/upgrade")
def upgrade_plugin(name: str):
    _require_admin()
    opts = _options("grant", "dry_run")
    return jsonify(plugins.upgrade(runtime(), name, grant=opts.get("grant", []), dry_run=opts.get("dry_run", False)))


@routes.post("/plugins/<name>/uninstall")
def uninstall_plugin(name: str):
    _require_admin()
    opts = _options("purge", "dry_run")
    return jsonify(plugins.uninstall(runtime(), name, purge=opts.get("purge", False),
                                     dry_run=opts.get("dry_run", False)))


@routes.put("/plugins/<name>/settings")
def plugin_settings(name: str):
    _require_admin()
    body = json_body({}) or {}
    if not isinstance(body, dict):
        raise BadRequest("Send {\"setting\": value, ...}.", code="bad_body")
    return jsonify({"settings": plugins.set_settings(runtime(), name, body)})


def openapi_paths(access) -> dict:
    """The OpenAPI paths of these routes (merged into /api/v1/openapi.json)."""
    from ..platform.api.openapi import ANY_OBJECT, FLAG, _body, _items, _ok, _path, _query
    dry_run = _query("dry_run", FLAG, "1: return the diff only")
    return {
        "/plugins": {"get": {"summary": "Installed, archived and available plugins (admins)",
                             "responses": {"200": _ok(_items())}}},
        "/plugins/{name}": {"parameters": [_path("name")], "get": {"summary": "One plugin (admins)",
                                                                   "responses": {"200": _ok(ANY_OBJECT)}}},
        **{f"/plugins/{{name}}/{verb}": {"parameters": [_path("name"), dry_run], "post": {
            "summary": f"{verb.title()} a plugin (admins)",
            "requestBody": _body({"type": "object", "properties": {
                "dry_run": {"type": "boolean"},
                **({"purge": {"type": "boolean"}} if verb == "uninstall" else
                   {"grant": {"type": "array", "items": {"type": "string"}}})},
                "additionalProperties": False}, required=False),
            "responses": {"200": _ok(ANY_OBJECT), **({"201": _ok(ANY_OBJECT)} if verb == "install" else {})}}}
           for verb in ("install", "upgrade", "uninstall")},
        "/plugins/{name}/settings": {"parameters": [_path("name")], "put": {
            "summary": "Change settings (null clears one; admins)", "requestBody": _body(ANY_OBJECT),
            "responses": {"200": _ok(ANY_OBJECT)}}},
    }
