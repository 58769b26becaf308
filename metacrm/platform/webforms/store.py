"""Submissions of public forms, one row each (mc_web_form_submission): which form, when, what
became of it (created / duplicate / spam) and the record made. The token's nonce is unique here,
so a replayed token is refused. The address is kept only as a hash (for an admin spotting a
flood, never shown in clear)."""

from __future__ import annotations

import hashlib
import threading

import sqlalchemy as sa

from .. import db
from ..clock import utcnow
from ..storage import UtcDateTime

submission = sa.Table(
    "mc_web_form_submission",
    db.system_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("form", sa.String(64), nullable=False, index=True),
    sa.Column("nonce", sa.String(64), nullable=False, unique=True),
    sa.Column("outcome", sa.String(16), nullable=False),  # pending, created, duplicate, spam, invalid
    sa.Column("object", sa.String(64)),
    sa.Column("record_id", sa.String(32)),
    sa.Column("ip_hash", sa.String(16)),
    sa.Column("created_at", UtcDateTime, nullable=False, index=True),
)

_ready: set[int] = set()
_lock = threading.Lock()


def ensure_table(engine: sa.Engine) -> None:
    with _lock:
        if id(engine) in _ready:
            return
        try:
            submission.create(engine, checkfirst=True)
        except sa.exc.DatabaseError:  # another process created it meanwhile
            if not sa.inspect(engine).has_table(submission.name):
                raise
        _ready.add(id(engine))


def ip_hash(ip: str) -> str:
    return hashlib.sha256(f"web_form|{ip}".encode()).hexdigest()[:16]


def claim(engine: sa.Engine, form: str, nonce: str, ip: str) -> int | None:
    """Record that a token was used (outcome pending); None if it was used before (a replay)."""
    ensure_table(engine)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(write=True)
            with conn.begin():
                result = conn.execute(submission.insert().values(
                    form=form, nonce=nonce[:64], outcome="pending", ip_hash=ip_hash(ip), created_at=utcnow()))
                return int(result.inserted_primary_key[0])
    except sa.exc.IntegrityError:
        return None


def settle(engine: sa.Engine, row_id: int, outcome: str, object_name: str | None = None,
           record_id: str | None = None) -> None:
    with engine.connect() as conn:
        conn = conn.execution_options(write=True)
        with conn.begin():
            conn.execute(submission.update().where(submission.c.id == row_id).values(
                outcome=outcome, object=object_name, record_id=record_id))


def summary(engine: sa.Engine) -> dict[str, dict]:
    """form -> {"count": records created or matched, "spam": n, "last": datetime | None}."""
    ensure_table(engine)
    s = submission
    found: dict[str, dict] = {}
    with engine.connect() as conn:
        rows = conn.execute(sa.select(s.c.form, s.c.outcome, sa.func.count(), sa.func.max(s.c.created_at))
                            .where(s.c.outcome.in_(("created", "duplicate", "spam")))
                            .group_by(s.c.form, s.c.outcome)).all()
    for form, outcome, count, last in rows:
        entry = found.setdefault(form, {"count": 0, "spam": 0, "last": None})
        if outcome == "spam":
            entry["spam"] += count
        else:
            entry["count"] += count
            if last is not None and (entry["last"] is None or last > entry["last"]):
                entry["last"] = last
    return found


def recent(engine: sa.Engine, form: str, limit: int = 100) -> list[dict]:
    """The form's latest real submissions (created or duplicate), newest first."""
    ensure_table(engine)
    s = submission
    with engine.connect() as conn:
        rows = conn.execute(sa.select(s).where(s.c.form == form, s.c.outcome.in_(("created", "duplicate")))
                            .order_by(s.c.created_at.desc(), s.c.id.desc()).limit(limit)).all()
    return [dict(row._mapping) for row in rows]
