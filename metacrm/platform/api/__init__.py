"""REST API /api/v1: authentication, the error mapping, and the generic route modules.

`api` is a route table (metacrm.platform.features.Routes) that the generic modules (auth, meta,
openapi, records, exports, actions, outbox) fill at import; every feature brings its own table.
`build_blueprint(runtime)` makes a fresh /api/v1 blueprint per app from all of them."""

from __future__ import annotations

import logging
import threading
import time

import sqlalchemy as sa
from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from ..errors import CrmError, Unauthorized
from ..features import Routes
from ..security import Principal, principal_from_row, token_user

log = logging.getLogger(__name__)
api = Routes()

PUBLIC_ENDPOINTS = {"api.issue_token"}
PRINCIPAL_CACHE_SECONDS = 2.0
_principal_cache: dict[str, tuple[float, Principal]] = {}
_cache_lock = threading.Lock()


def runtime():
    return current_app.extensions["metacrm"]


def load_principal(user_id: str) -> Principal | None:
    rt = runtime()
    users = rt.compiled().tables["user"]
    with rt.engine.connect() as conn:
        row = conn.execute(
            sa.select(users).where(users.c.id == user_id, users.c.deleted_at.is_(None))
        ).mappings().first()
    if row is None or not row["active"]:
        return None
    from ..schemas import from_storage

    data = dict(row)
    data["roles"] = from_storage(rt.registry().object("user").fields["roles"], row["roles"]) or []
    return principal_from_row(data)


def principal_for_token(token: str) -> Principal | None:
    now = time.monotonic()
    cached = _principal_cache.get(token)
    if cached and now - cached[0] < PRINCIPAL_CACHE_SECONDS:
        return cached[1]
    rt = runtime()
    with rt.engine.connect() as conn:
        user_id = token_user(conn, token)
    principal = load_principal(user_id) if user_id else None
    with _cache_lock:
        if len(_principal_cache) > 10000:
            _principal_cache.clear()
        if principal is not None:
            _principal_cache[token] = (now, principal)
        else:
            _principal_cache.pop(token, None)
    return principal


def forget_token(token: str) -> None:
    with _cache_lock:
        _principal_cache.pop(token, None)


def forget_all_tokens() -> None:
    """Tokens were revoked in bulk (a password change): drop this process's principal cache
    (other processes drop theirs within PRINCIPAL_CACHE_SECONDS)."""
    with _cache_lock:
        _principal_cache.clear()


def authenticate():
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    header = request.headers.get("Authorization", "")
    principal = None
    if header.startswith("Bearer "):
        token = header[7:].strip()
        principal = principal_for_token(token)
        if principal is None:
            raise Unauthorized("The token is not valid (unknown, expired or revoked).", code="invalid_token")
        from ..security import hash_token
        from ..sessions import touch_token

        g.metacrm_credential = ("token", hash_token(token), principal.user_id)
        touch_token(runtime().engine, token, request.remote_addr, request.headers.get("User-Agent"))
    else:
        web_user = current_app.extensions.get("metacrm.session_principal")
        principal = web_user() if web_user else None
    if principal is None:
        raise Unauthorized("Authentication required: send Authorization: Bearer <token>.", code="unauthorized")
    g.principal = principal
    return


def error_response(exc: CrmError):
    response = jsonify({"error": exc.to_dict()})
    response.status_code = exc.status
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    if getattr(exc, "retry_after", None):
        response.headers["Retry-After"] = str(int(exc.retry_after))
    return response


def handle_crm_error(exc: CrmError):
    return error_response(exc)


def handle_http_error(exc: HTTPException):
    codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 413: "too_large", 415: "unsupported_media"}
    response = jsonify({"error": {"code": codes.get(exc.code, "http_error"), "message": exc.description}})
    response.status_code = exc.code or 500
    return response


def handle_unexpected(exc: Exception):
    from ..db import is_database_unavailable

    if is_database_unavailable(exc):
        return database_unavailable(exc)
    if too_large_total(exc):
        return value_out_of_range_response()
    log.exception("unexpected error on %s %s", request.method, request.path)
    response = jsonify({"error": {"code": "internal_error", "message": "An unexpected error occurred; it was logged."}})
    response.status_code = 500
    return response


def too_large_total(exc: BaseException) -> bool:
    """A total the database could not add up (SQLite's SUM past 2^63, in a query that has no exact
    fallback of its own, e.g. a plugin's report): the caller's request, not the server, is at fault."""
    from ..sums import overflowed

    return overflowed(exc) or isinstance(exc, OverflowError)


def value_out_of_range_response():
    log.warning("a total out of range on %s %s", request.method, request.path)
    response = jsonify({"error": {"code": "value_out_of_range",
                                  "message": "A total here is too large to compute; narrow the filter or the period."}})
    response.status_code = 422
    return response


def database_unavailable(exc: Exception):
    """The database is down or unreachable: a 503 the client may retry (never a 500 traceback)."""
    log.warning("database unavailable on %s %s: %s", request.method, request.path,
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    response = jsonify({"error": {"code": "database_unavailable",
                                  "message": "The database is not reachable right now; try again shortly."}})
    response.status_code = 503
    response.headers["Retry-After"] = "2"
    return response


def check_text(value, what: str = "The JSON"):
    """Refuse text that no database stores: lone UTF-16 surrogates (JSON allows the escape
    "\\ud800") and NUL characters (PostgreSQL text cannot hold U+0000). A 400, not a crash."""
    from ..errors import BadRequest

    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                raise BadRequest(f"{what} contains a NUL character (U+0000), which text may not hold.",
                                 code="invalid_text")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise BadRequest(f"{what} contains a lone UTF-16 surrogate (e.g. \\ud800), which is not text.",
                                 code="invalid_text") from None
    return value


def parse_json(raw, what: str, code: str):
    """JSON text from a query parameter or body: malformed JSON (or text no database can store)
    is a 400 naming `what`, with the parser's position."""
    import json

    from ..errors import BadRequest

    try:
        value = json.loads(raw)
    except ValueError as exc:  # UnicodeDecodeError (bytes that are not UTF-8) is a ValueError too
        raise BadRequest(f"{what} is not valid JSON: {exc}", code=code) from None
    except RecursionError:
        raise BadRequest(f"{what} is nested too deeply.", code=code) from None
    return check_text(value, what)


def json_body(default=None):
    """The request's JSON; malformed JSON is a 400 with the parser's position."""
    if not request.data:
        return default
    return parse_json(request.data, "The body", "malformed_json")


def build_blueprint(runtime) -> Blueprint:
    """The /api/v1 blueprint for one app: the generic routes, then every registered feature's."""
    bp = Blueprint("api", __name__, url_prefix="/api/v1")
    bp.before_request(authenticate)
    bp.before_request(idempotency.before_request)  # after authenticate: keys are per user
    bp.after_request(idempotency.after_request)
    bp.teardown_request(idempotency.teardown_request)
    bp.register_error_handler(CrmError, handle_crm_error)
    bp.register_error_handler(HTTPException, handle_http_error)
    bp.register_error_handler(Exception, handle_unexpected)
    tables = [api] + [feature.api for feature in runtime.features if feature.api is not None]
    for table in tables:
        for route in table:
            bp.add_url_rule(route.rule, endpoint=route.endpoint, view_func=route.view, methods=list(route.methods))
    return bp


from . import actions, auth, exports, idempotency, mass, meta, meta_changes, openapi, outbox, records, views  # noqa: F401  (routes register on import)
