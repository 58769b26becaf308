"""Idempotency-Key on every state-changing /api/v1 call, once, around every route.

A client that sends `Idempotency-Key: <key>` on a POST, PUT, PATCH or DELETE gets the call done
at most once per (user, key):

- before the view runs, the key is *claimed*: a row in mc_idempotency_key (primary key user +
  key) inserted and committed on its own. The database's unique constraint decides between
  concurrent requests, so two requests with one key can never both run the view.
- the request's fingerprint (method, path, query string and body; JSON bodies compared as
  parsed JSON, multipart uploads by their fields and file contents) is stored with the claim.
  The same key with another fingerprint is 422 `idempotency_key_reused`.
- after the view, its answer (status, body, Content-Type / Location / ETag) is stored on the
  row; a repeat gets that answer replayed with `Idempotent-Replayed: true`.
- a repeat while the first is still running waits up to WAIT_SECONDS for it, then gets 409
  `idempotency_key_in_progress` (retry later with the same key).
- a 5xx answer (or a crash) releases the claim, so a retry does the work; a claim whose request
  never finished (its process died) is treated as released after ABANDONED.
- keys are kept KEEP (24 h) and then swept (`idempotency_keys` sweep); a key older than that is
  new again.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import timedelta

import sqlalchemy as sa
from flask import Response, current_app, g, request

from .. import db
from ..clock import utcnow
from ..errors import BadRequest, Conflict, CrmError

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
SAFE = {"GET", "HEAD", "OPTIONS"}
KEEP = timedelta(hours=24)
ABANDONED = timedelta(minutes=10)
WAIT_SECONDS = 10.0
POLL_SECONDS = 0.05
MAX_STORED_BYTES = 5 * 1024 * 1024
KEPT_HEADERS = ("Content-Type", "Location", "ETag", "Retry-After")


class KeyReused(CrmError):
    status = 422
    code = "idempotency_key_reused"


def _runtime():
    return current_app.extensions["metacrm"]


def fingerprint() -> str:
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.path}?{request.query_string.decode('latin-1')}\n".encode())
    if (request.mimetype or "") == "multipart/form-data":
        # a part's name or value may be missing in a malformed body: sort on their text
        for name, value in sorted(request.form.items(multi=True), key=lambda kv: (str(kv[0]), str(kv[1]))):
            digest.update(b"F" + json.dumps([name, value]).encode())
        for name, upload in sorted(request.files.items(multi=True), key=lambda kv: str(kv[0])):
            content = upload.read()
            upload.seek(0)
            digest.update(b"U" + json.dumps([name, upload.filename]).encode() + hashlib.sha256(content).digest())
        return digest.hexdigest()
    data = request.get_data(cache=True)
    if (request.mimetype or "").endswith("json") and data:
        try:
            data = json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()
        except (ValueError, RecursionError):
            pass  # not JSON: compare the bytes (the view will answer 400 anyway)
    digest.update(b"B" + data)
    return digest.hexdigest()


def _key() -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > 255 or not all(32 < ord(ch) < 127 for ch in key):
        raise BadRequest(f"{HEADER} must be 1 to 255 visible ASCII characters.",
                         code="invalid_idempotency_key", fields={HEADER: ["1 to 255 visible ASCII characters."]})
    return key


def before_request():
    """Claim the key (or answer from it) before the view runs; after authenticate()."""
    if request.method in SAFE or request.endpoint is None:
        return None
    key = _key()
    principal = g.get("principal")
    if key is None or principal is None or principal.user_id is None:
        return None
    rt, t, user = _runtime(), db.idempotency_key, principal.user_id
    mark = fingerprint()
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        now = utcnow()
        try:
            with rt.transaction() as tx:
                tx.conn.execute(t.insert().values(user_id=user, key=key, fingerprint=mark, created_at=now))
            g.idempotency = (user, key)
            return None
        except sa.exc.IntegrityError:
            pass
        with rt.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.user_id == user, t.c.key == key)).first()
        if row is None:
            continue  # released (or swept) in between: claim again
        if row.created_at <= now - KEEP or (row.status is None and row.created_at <= now - ABANDONED):
            _release(user, key, only_created_at=row.created_at)  # expired, or its request died
            continue
        if row.fingerprint != mark:
            raise KeyReused(f"This {HEADER} was used for a different request (method, path or body); "
                            "use a new key for a new request.")
        if row.status is not None:
            response = Response(row.body or b"", status=row.status)
            for name, value in (row.headers or {}).items():
                response.headers[name] = value
            response.headers[REPLAYED] = "true"
            return response
        if time.monotonic() >= deadline:
            raise Conflict(f"A request with this {HEADER} is still being processed; retry later with the same key.",
                           code="idempotency_key_in_progress")
        time.sleep(POLL_SECONDS)


def after_request(response: Response) -> Response:
    claim = g.pop("idempotency", None)
    if claim is None:
        return response
    user, key = claim
    if response.status_code >= 500 or response.is_streamed:
        _release(user, key)
        return response
    body = response.get_data()
    if len(body) > MAX_STORED_BYTES:
        _release(user, key)
        return response
    headers = {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}
    t = db.idempotency_key
    with _runtime().transaction() as tx:
        tx.conn.execute(t.update().where(t.c.user_id == user, t.c.key == key).values(
            status=response.status_code, headers=headers, body=body, completed_at=utcnow()))
    return response


def teardown_request(exc):
    """A request that ended without an answer (an exception no handler took) frees its key."""
    claim = g.pop("idempotency", None)
    if claim is not None:
        _release(*claim)


def _release(user: str, key: str, only_created_at=None) -> None:
    t = db.idempotency_key
    query = t.delete().where(t.c.user_id == user, t.c.key == key)
    if only_created_at is not None:
        query = query.where(t.c.created_at == only_created_at)
    with _runtime().transaction() as tx:
        tx.conn.execute(query)


def sweep(runtime) -> str:
    t = db.idempotency_key
    with runtime.transaction() as tx:
        removed = tx.conn.execute(t.delete().where(t.c.created_at < utcnow() - KEEP)).rowcount
    return f"{removed} idempotency key(s) older than {int(KEEP.total_seconds() // 3600)} h removed"
