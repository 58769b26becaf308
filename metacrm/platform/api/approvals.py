"""Approvals over REST: submit a record, the caller's queue, one request with its steps and
decisions, approve / reject / recall, and delegation while away."""

from __future__ import annotations

from flask import g, jsonify, request
from marshmallow import ValidationError

from ...approval import engine
from ..errors import BadRequest
from ..schemas import UtcDateTimeField
from . import api, json_body, runtime


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


@api.post("/records/<object_name>/<record_id>/submit")
def submit_for_approval(object_name: str, record_id: str):
    body = _body("process")
    result = engine.submit(runtime(), g.principal, object_name, record_id, comment=body.get("comment"),
                           process=body.get("process") or None)
    return jsonify(result), 201


@api.get("/approvals")
def approval_queue():
    as_submitter = request.args.get("as") == "submitter"
    return jsonify({"items": engine.queue(runtime(), g.principal, as_submitter=as_submitter)})


@api.get("/approvals/delegation")
def get_delegation():
    return jsonify(engine.get_delegation(runtime(), g.principal.user_id))


@api.put("/approvals/delegation")
def put_delegation():
    body = _body("delegate_to")
    until = body.get("until")
    if until is not None:
        try:
            until = UtcDateTimeField().deserialize(until)
        except ValidationError:
            raise BadRequest("until must be an ISO 8601 time.", fields={"until": ["Not a valid time."]}) from None
    return jsonify(engine.set_delegation(runtime(), g.principal, body.get("delegate_to"), until))


@api.delete("/approvals/delegation")
def delete_delegation():
    return jsonify(engine.set_delegation(runtime(), g.principal, None, None))


@api.get("/approvals/<request_id>")
def get_approval(request_id: str):
    return jsonify(engine.get_request(runtime(), g.principal, request_id))


@api.post("/approvals/<request_id>/approve")
def approve(request_id: str):
    return jsonify(engine.decide(runtime(), g.principal, request_id, "approve", _body().get("comment")))


@api.post("/approvals/<request_id>/reject")
def reject(request_id: str):
    return jsonify(engine.decide(runtime(), g.principal, request_id, "reject", _body().get("comment")))


@api.post("/approvals/<request_id>/recall")
def recall(request_id: str):
    return jsonify(engine.recall(runtime(), g.principal, request_id, _body().get("comment")))
