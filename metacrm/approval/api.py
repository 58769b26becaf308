"""Approvals over REST: submit a record, the caller's queue, one request with its steps and
decisions, approve / reject / recall, and delegation while away."""

from __future__ import annotations

from flask import g, jsonify, request
from marshmallow import ValidationError

from ..platform.api import json_body, runtime
from ..platform.errors import BadRequest
from ..platform.features import Routes
from ..platform.schemas import UtcDateTimeField
from . import decisions, delegation, submission, transfers, views

routes = Routes()


def _body(*strings: str) -> dict:
    """The JSON object body; `comment` and the names in `strings` must be strings (or null)."""
    body = json_body({}) or {}
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.", code="bad_body")
    for name in ("comment", *strings):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"{name} must be a string.", fields={name: ["Not a string."]})
    return body


@routes.post("/records/<object_name>/<record_id>/submit")
def submit_for_approval(object_name: str, record_id: str):
    body = _body("process")
    result = submission.submit(runtime(), g.principal, object_name, record_id, comment=body.get("comment"),
                               process=body.get("process") or None)
    return jsonify(result), 201


@routes.post("/transfer-requests")
def create_transfer_request():
    """Body: {"object", "record": the blocked payload} or {"object", "id"}; optional comment."""
    return jsonify({"requests": transfers.create(runtime(), g.principal, json_body({}))}), 201


@routes.get("/transfer-requests")
def list_transfer_requests():
    return jsonify({"items": transfers.mine(runtime(), g.principal)})


@routes.get("/approvals")
def approval_queue():
    as_submitter = request.args.get("as") == "submitter"
    return jsonify({"items": views.queue(runtime(), g.principal, as_submitter=as_submitter)})


@routes.get("/approvals/delegation")
def get_delegation():
    return jsonify(delegation.get_delegation(runtime(), g.principal.user_id))


@routes.put("/approvals/delegation")
def put_delegation():
    body = _body("delegate_to")
    until = body.get("until")
    if until is not None:
        try:
            until = UtcDateTimeField().deserialize(until)
        except ValidationError:
            raise BadRequest("until must be an ISO 8601 time.", fields={"until": ["Not a valid time."]}) from None
    return jsonify(delegation.set_delegation(runtime(), g.principal, body.get("delegate_to"), until))


@routes.delete("/approvals/delegation")
def delete_delegation():
    return jsonify(delegation.set_delegation(runtime(), g.principal, None, None))


@routes.get("/approvals/<request_id>")
def get_approval(request_id: str):
    return jsonify(views.get_request(runtime(), g.principal, request_id))


@routes.post("/approvals/<request_id>/approve")
def approve(request_id: str):
    return jsonify(decisions.decide(runtime(), g.principal, request_id, "approve", _body().get("comment")))


@routes.post("/approvals/<request_id>/reject")
def reject(request_id: str):
    return jsonify(decisions.decide(runtime(), g.principal, request_id, "reject", _body().get("comment")))


@routes.post("/approvals/<request_id>/recall")
def recall(request_id: str):
    return jsonify(decisions.recall(runtime(), g.principal, request_id, _body().get("comment")))


def openapi_paths(access) -> dict:
    """The OpenAPI paths of these routes (merged into /api/v1/openapi.json)."""
    from ..platform.api.openapi import ANY_OBJECT, COMMENT_BODY, _body, _items, _ok, _path, _query
    obj_param, id_param = _path("object"), _path("id")
    return {
        "/records/{object}/{id}/submit": {"parameters": [obj_param, id_param], "post": {
            "summary": "Submit for approval", "requestBody": _body({"type": "object", "properties": {
                "comment": {"type": "string", "nullable": True}, "process": {"type": "string", "nullable": True}}},
                required=False),
            "responses": {"201": _ok({"type": "object", "required": ["id", "status"]}, "the approval request")}}},
        "/approvals": {"get": {"summary": "Requests awaiting the caller's decision (?as=submitter: the caller's own)",
                               "parameters": [_query("as", {"type": "string", "enum": ["approver", "submitter"]})],
                               "responses": {"200": _ok(_items())}}},
        "/approvals/delegation": {
            "get": {"summary": "The caller's delegation", "responses": {"200": _ok(ANY_OBJECT)}},
            "put": {"summary": "Delegate approvals while away", "requestBody": _body({"type": "object", "properties": {
                "delegate_to": {"type": "string", "nullable": True},
                "until": {"type": "string", "format": "date-time", "nullable": True},
                "comment": {"type": "string", "nullable": True}}}), "responses": {"200": _ok(ANY_OBJECT)}},
            "delete": {"summary": "End the delegation", "responses": {"200": _ok(ANY_OBJECT)}},
        },
        "/transfer-requests": {
            "post": {"summary": "Ask for a record another user holds (after a registration / duplicate conflict): "
                                "the holder's manager decides", "requestBody": _body({"type": "object", "properties": {
                                    "object": {"type": "string"},
                                    "record": {"type": "object", "description": "the blocked payload"},
                                    "id": {"type": "string", "description": "or a record the caller can read"},
                                    "comment": {"type": "string", "nullable": True}}, "required": ["object"]}),
                     "responses": {"201": _ok(ANY_OBJECT), "400": {"description": "invalid"},
                                   "404": {"description": "unknown"},
                                   "409": {"description": "no_transfer_needed, transfer_pending, approval_pending"},
                                   "422": {"description": "owner_not_eligible"}}},
            "get": {"summary": "The caller's transfer requests", "responses": {"200": _ok(_items())}},
        },
        "/approvals/{id}": {"parameters": [id_param], "get": {
            "summary": "One request with its steps and decisions", "responses": {"200": _ok(ANY_OBJECT)}}},
        **{f"/approvals/{{id}}/{verb}": {"parameters": [id_param], "post": {
            "summary": f"{verb.title()} a request", "requestBody": _body(COMMENT_BODY, required=False),
            "responses": {"200": _ok(ANY_OBJECT)}}} for verb in ("approve", "reject", "recall")},
    }
