"""POST /auth/token (log in), DELETE /auth/token (revoke), GET /me."""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app, g, jsonify, request

from ..errors import BadRequest, CrmError, Unauthorized
from ..metadata_fields import DATETIME
from ..schemas import to_json_value
from ..security import issue_token, revoke_token, verify_password
from ..sessions import note_token_issued
from ..throttle import client_ip, throttle_for
from . import api, forget_token, json_body, runtime


def authenticate_user(username: str, password: str) -> str:
    """The user's id if the password is right; one 401 for every failure, no hints."""
    rt = runtime()
    users = rt.compiled().tables["user"]
    with rt.engine.connect() as conn:
        row = conn.execute(
            sa.select(users.c.id, users.c.password, users.c.active).where(
                users.c.username == username, users.c.deleted_at.is_(None)
            )
        ).first()
    ok = verify_password(row.password if row else None, password)
    if not ok or not row.active:
        raise Unauthorized("Wrong username or password.", code="invalid_credentials")
    return row.id


class TooManyAttempts(CrmError):
    """429 with Retry-After: the login throttle (shared with the web login) holds this
    username at this address, or this address, for `retry_after` more seconds."""

    status = 429
    code = "too_many_attempts"

    def __init__(self, seconds: int):
        super().__init__(f"Too many failed sign-in attempts; try again in {seconds} seconds.",
                         retry_after=seconds)
        self.retry_after = seconds


@api.post("/auth/token", endpoint="issue_token")
def issue_token_endpoint():
    body = json_body({}) or {}
    if not isinstance(body, dict):
        raise BadRequest("Send {\"username\": ..., \"password\": ...}.")
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        raise BadRequest("username and password are required.",
                         fields={k: ["Required."] for k in ("username", "password") if not body.get(k)})
    label = body.get("label")
    if label is not None and (not isinstance(label, str) or len(label) > 100):
        raise BadRequest("label must be text of at most 100 characters.", fields={"label": ["At most 100 characters."]})
    throttle, ip = throttle_for(current_app), client_ip()
    wait = throttle.wait_seconds(username, ip)
    if wait:
        raise TooManyAttempts(wait)
    try:
        user_id = authenticate_user(username, password)
    except Unauthorized:
        throttle.failed(username, ip)
        raise
    throttle.succeeded(username, ip)
    with runtime().transaction() as tx:
        token, expires = issue_token(tx.conn, user_id, label=label)
        note_token_issued(tx.conn, token, ip, request.headers.get("User-Agent"))
    return jsonify({"token": token, "expires_at": to_json_value(DATETIME, expires), "user": user_id}), 201


@api.delete("/auth/token")
def revoke_token_endpoint():
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.startswith("Bearer ") else ""
    with runtime().transaction() as tx:
        revoke_token(tx.conn, token)
    forget_token(token)
    return "", 204


@api.get("/me")
def me():
    p = g.principal
    return jsonify({"id": p.user_id, "username": p.username, "roles": sorted(p.roles),
                    "department": p.department, "locale": p.locale})
