"""POST /auth/token (log in), DELETE /auth/token (revoke), GET /me."""

from __future__ import annotations

import sqlalchemy as sa
from flask import g, jsonify, request

from ..errors import BadRequest, Unauthorized
from ..metadata_fields import DATETIME
from ..schemas import to_json_value
from ..security import issue_token, revoke_token, verify_password
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


@api.post("/auth/token", endpoint="issue_token")
def issue_token_endpoint():
    body = json_body({}) or {}
    if not isinstance(body, dict):
        raise BadRequest("Send {\"username\": ..., \"password\": ...}.")
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        raise BadRequest("username and password are required.",
                         fields={k: ["Required."] for k in ("username", "password") if not body.get(k)})
    user_id = authenticate_user(username, password)
    with runtime().transaction() as tx:
        token, expires = issue_token(tx.conn, user_id, label=body.get("label"))
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
