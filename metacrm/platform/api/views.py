"""Saved views over REST: GET /views?object= lists the views the caller may use (shared views
of the caller's roles, and the caller's own personal views: nobody else's), POST /views saves
one (personal; with `roles`, a shared view, admins only), DELETE /views/{name} deletes one's
own (admins: any). The rules are platform/views.py's, the same as the list page's."""

from __future__ import annotations

from flask import g, jsonify, request

from .. import views as saved
from ..errors import BadRequest, NotFound
from . import api, json_body
from .records import service


@api.get("/views")
def list_views():
    svc = service()
    name = request.args.get("object") or ""
    if not name:
        raise BadRequest("Give the object: /views?object=<name>.", code="bad_parameter", parameter="object")
    if not svc.registry.has_object(name) or not svc.access.can(name, "read"):
        raise NotFound(f"Unknown object {name!r}.", code="unknown_object")
    locale = request.args.get("locale") or g.principal.locale
    return jsonify({"items": [saved.view_summary(doc, locale) for doc in saved.usable_views(svc, name)]})


@api.post("/views")
def create_view():
    svc = service()
    body = json_body()
    if not isinstance(body, dict):
        raise BadRequest("The body must be a view: {object, label, columns, filter, sort, mode, ...}.",
                         code="bad_view")
    body = dict(body)
    name = body.pop("object", None)
    if not isinstance(name, str) or not svc.registry.has_object(name):
        raise BadRequest("object must name an object.", code="bad_view", fields={"object": ["Unknown object."]})
    body.pop("kind", None)
    doc = saved.save_view(svc, name, body, shared="roles" in body or "default_for_roles" in body)
    return jsonify(saved.view_summary(doc, g.principal.locale)), 201


@api.delete("/views/<name>")
def delete_view(name: str):
    saved.delete_view(service(), name)
    return "", 204
