"""Sessions and tokens as the server knows them: web sessions kept in mc_session (the cookie
carries only a random id), API tokens in mc_token (+ where they were last used, mc_token_use).

- logging out ends the session row, so a copied cookie stops working on every server;
- a password change (by any path: the profile page, REST, import) ends every other session and
  every token of that user: the after_save hook below, on the one write path; the session or
  token making the change survives only if it is the user's own;
- the profile page lists both and can end one or all (web/auth_views.py).
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import timedelta

import sqlalchemy as sa

from . import db
from .clock import utcnow
from .security import TOKEN_TTL, hash_token

SESSION_TTL = TOKEN_TTL
TOUCH_SECONDS = 60  # last_used_at is written at most this often per session or token
KEEP_ENDED = timedelta(days=7)  # ended or expired rows are swept after this
_touched: dict[str, float] = {}
_touch_lock = threading.Lock()


def _clip(value: str | None, size: int) -> str | None:
    return value[:size] if value else None


def start_session(engine: sa.Engine, user_id: str, ip: str | None, agent: str | None) -> str:
    """A new server-side session; returns the random id the cookie will carry."""
    sid = secrets.token_urlsafe(32)
    now = utcnow()
    with engine.connect() as conn:
        conn = conn.execution_options(write=True)
        with conn.begin():
            conn.execute(db.web_session.insert().values(
                sid_hash=hash_token(sid), user_id=user_id, created_at=now, last_used_at=now,
                expires_at=now + SESSION_TTL, ip=_clip(ip, 100), agent=_clip(agent, 300)))
    _due(f"s:{hash_token(sid)}")  # just used: no touch for the next TOUCH_SECONDS
    return sid


def session_row(engine: sa.Engine, sid: str):
    """The live session row for a cookie's id (None: unknown, ended or expired); touches it."""
    if not isinstance(sid, str) or not sid or len(sid) > 100:
        return None
    t = db.web_session
    digest = hash_token(sid)
    with engine.connect() as conn:
        row = conn.execute(sa.select(t).where(t.c.sid_hash == digest)).first()
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        return None
    if _due(f"s:{digest}"):
        with engine.connect() as conn:
            conn = conn.execution_options(write=True)
            with conn.begin():
                conn.execute(t.update().where(t.c.id == row.id).values(last_used_at=utcnow()))
    return row


def end_session(engine: sa.Engine, sid: str) -> None:
    t = db.web_session
    with engine.connect() as conn:
        conn = conn.execution_options(write=True)
        with conn.begin():
            conn.execute(t.update().where(t.c.sid_hash == hash_token(sid), t.c.revoked_at.is_(None))
                         .values(revoked_at=utcnow()))


def _due(key: str) -> bool:
    now = time.monotonic()
    with _touch_lock:
        if now - _touched.get(key, -1e9) < TOUCH_SECONDS:
            return False
        if len(_touched) > 50_000:
            _touched.clear()
        _touched[key] = now
        return True


def note_token_issued(conn: sa.Connection, token: str, ip: str | None, agent: str | None) -> None:
    conn.execute(db.token_use.insert().values(token_hash=hash_token(token), ip=_clip(ip, 100),
                                              agent=_clip(agent, 300), last_used_at=None))


def touch_token(engine: sa.Engine, token: str, ip: str | None, agent: str | None) -> None:
    digest = hash_token(token)
    if not _due(f"t:{digest}"):
        return
    t = db.token_use
    values = {"last_used_at": utcnow(), "ip": _clip(ip, 100), "agent": _clip(agent, 300)}
    with engine.connect() as conn:
        conn = conn.execution_options(write=True)
        with conn.begin():
            if conn.execute(t.update().where(t.c.token_hash == digest).values(**values)).rowcount == 0:
                try:
                    with conn.begin_nested():
                        conn.execute(t.insert().values(token_hash=digest, **values))
                except sa.exc.IntegrityError:
                    pass  # another request recorded it first


def credentials(engine: sa.Engine, user_id: str) -> tuple[list[dict], list[dict]]:
    """The user's live sessions and tokens, newest first."""
    now = utcnow()
    s, tk, use = db.web_session, db.auth_token, db.token_use
    with engine.connect() as conn:
        sessions = [dict(r._mapping) for r in conn.execute(
            sa.select(s.c.id, s.c.created_at, s.c.last_used_at, s.c.ip, s.c.agent, s.c.expires_at)
            .where(s.c.user_id == user_id, s.c.revoked_at.is_(None), s.c.expires_at > now)
            .order_by(s.c.created_at.desc(), s.c.id.desc()))]
        tokens = [dict(r._mapping) for r in conn.execute(
            sa.select(tk.c.id, tk.c.token_hash, tk.c.label, tk.c.created_at, tk.c.expires_at, use.c.last_used_at,
                      use.c.ip, use.c.agent)
            .select_from(tk.outerjoin(use, use.c.token_hash == tk.c.token_hash))
            .where(tk.c.user_id == user_id, tk.c.revoked_at.is_(None), tk.c.expires_at > now)
            .order_by(tk.c.created_at.desc(), tk.c.id.desc()))]
    return sessions, tokens


def end_credentials(conn: sa.Connection, user_id: str, *, session_id: int | None = None,
                    token_id: int | None = None, everything: bool = False,
                    keep_session: int | None = None, keep_token: str | None = None) -> int:
    """End one session, one token, or (everything) all of the user's but the kept ones."""
    now, ended = utcnow(), 0
    s, tk = db.web_session, db.auth_token
    if everything or session_id is not None:
        query = s.update().where(s.c.user_id == user_id, s.c.revoked_at.is_(None))
        if session_id is not None:
            query = query.where(s.c.id == session_id)
        if keep_session is not None:
            query = query.where(s.c.id != keep_session)
        ended += conn.execute(query.values(revoked_at=now)).rowcount
    if everything or token_id is not None:
        query = tk.update().where(tk.c.user_id == user_id, tk.c.revoked_at.is_(None))
        if token_id is not None:
            query = query.where(tk.c.id == token_id)
        if keep_token is not None:
            query = query.where(tk.c.token_hash != keep_token)
        ended += conn.execute(query.values(revoked_at=now)).rowcount
    if ended:
        from .api import forget_all_tokens

        forget_all_tokens()
    return ended


def current_credential() -> tuple[str, object, str] | None:
    """("session", id, user) or ("token", hash, user) of the request being served, if any."""
    try:
        from flask import g, has_request_context
    except ImportError:  # pragma: no cover
        return None
    if not has_request_context():
        return None
    return g.get("metacrm_credential")


def _password_changed(ctx) -> None:
    """after_save on user: a new password (or a deactivated user) ends the user's other sessions
    and tokens, in the same transaction as the change."""
    if ctx.op != "update" or not (ctx.changed("password") or (ctx.old.get("active") and not ctx.record.get("active"))):
        return
    user_id = ctx.record["id"]
    keep_session = keep_token = None
    current = current_credential()
    if current is not None and current[2] == user_id and ctx.changed("password"):
        if current[0] == "session":
            keep_session = current[1]
        else:
            keep_token = current[1]
    end_credentials(ctx.conn, user_id, everything=True, keep_session=keep_session, keep_token=keep_token)


def sweep(runtime) -> str:
    horizon = utcnow() - KEEP_ENDED
    s, tk, use = db.web_session, db.auth_token, db.token_use
    with runtime.transaction() as tx:
        removed = tx.conn.execute(s.delete().where(sa.or_(s.c.expires_at < horizon, s.c.revoked_at < horizon))).rowcount
        gone = sa.select(tk.c.token_hash).where(sa.or_(tk.c.expires_at < horizon, tk.c.revoked_at < horizon))
        tx.conn.execute(use.delete().where(use.c.token_hash.in_(gone)))
    return f"{removed} ended web session(s) removed"


def register(runtime) -> None:
    runtime.hooks.register("after_save", _password_changed, name="sessions.password_changed", objects=["user"],
                           ops=["update"])
    if not any(name == "web_sessions" for name, _ in runtime.sweeps):
        runtime.sweeps.append(("web_sessions", sweep))
