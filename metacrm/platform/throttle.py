"""Slowing down password guessing, for the web login and POST /api/v1/auth/token alike.

Failures are counted per key in the database table mc_login_failure, so every app server (and
the REST API and the web form) shares one count: a guesser spread over several servers gets no
extra tries. Three keys per attempt, each with its own policy (a lockout window that doubles
with every failure past a free allowance):

- the pair (username, address): 5 free failures, then 15 s doubling up to 15 min. This is what
  stops a guesser at one address; the real user at another address is not affected, so knowing
  a username is not enough to lock its owner out.
- the address: 30 free failures (any usernames), then the same backoff: one address guessing
  many usernames.
- the username from anywhere: 100 free failures, then 1 s doubling up to 60 s: a guess spread
  over many addresses is slowed, while the owner is never kept out for long.

A right password clears the pair and the username's count (the address keeps its record).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from . import db


@dataclass(frozen=True)
class Policy:
    free_attempts: int  # failures allowed before any lockout
    base_seconds: float  # the first lockout; doubles per further failure
    max_seconds: float  # the longest lockout
    forget_seconds: float  # a key with no failure for this long starts over


PAIR_POLICY = Policy(free_attempts=5, base_seconds=15, max_seconds=900, forget_seconds=3600)
IP_POLICY = Policy(free_attempts=30, base_seconds=15, max_seconds=900, forget_seconds=3600)
USER_POLICY = Policy(free_attempts=100, base_seconds=1, max_seconds=60, forget_seconds=3600)


def client_ip() -> str:
    """The request's address. Behind a proxy, configure werkzeug's ProxyFix so it is the client's."""
    from flask import request

    return request.remote_addr or "?"


def throttle_for(app) -> LoginThrottle:
    """The app's throttle (one per app, on its runtime's engine)."""
    found = app.extensions.get("metacrm.web.throttle")
    if found is None:
        found = app.extensions["metacrm.web.throttle"] = LoginThrottle(app.extensions["metacrm"].engine)
    return found


class LoginThrottle:
    def __init__(self, engine: sa.Engine, clock: Callable[[], float] = time.time,
                 pair_policy: Policy = PAIR_POLICY, ip_policy: Policy = IP_POLICY,
                 user_policy: Policy = USER_POLICY):
        self.engine = engine
        self.clock = clock
        self.policies = {"pair": pair_policy, "ip": ip_policy, "user": user_policy}

    @staticmethod
    def _keys(username: str, ip: str) -> list[tuple[str, str]]:
        name, address = (username or "").strip().lower()[:150], (ip or "?")[:100]
        return [("pair", f"pair:{name}|{address}"), ("ip", f"ip:{address}"), ("user", f"user:{name}")]

    def wait_seconds(self, username: str, ip: str) -> int:
        """Seconds until another attempt is allowed for this username from this address (0: now)."""
        now = self.clock()
        keys = [key for _, key in self._keys(username, ip)]
        t = db.login_failure
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.locked_until).where(t.c.key.in_(keys))).all()
        wait = max([row.locked_until - now for row in rows] + [0.0])
        return int(wait + 0.999) if wait > 0 else 0

    def failed(self, username: str, ip: str) -> None:
        now = self.clock()
        t = db.login_failure
        for attempt in range(5):
            try:
                with self.engine.connect() as conn:
                    conn = conn.execution_options(write=True)
                    with conn.begin():
                        for kind, key in self._keys(username, ip):
                            self._count(conn, t, self.policies[kind], key, now)
                return
            except sa.exc.IntegrityError:  # another server inserted the same key first: count again
                if attempt == 4:
                    raise

    @staticmethod
    def _count(conn: sa.Connection, t: sa.Table, policy: Policy, key: str, now: float) -> None:
        query = sa.select(t.c.failures, t.c.last_at).where(t.c.key == key)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        failures = 1 if row is None or now - row.last_at > policy.forget_seconds else row.failures + 1
        extra = failures - policy.free_attempts
        locked = now + min(policy.base_seconds * 2 ** min(extra - 1, 30), policy.max_seconds) if extra > 0 else 0.0
        values = {"failures": failures, "last_at": now, "locked_until": locked}
        if row is None:
            conn.execute(t.insert().values(key=key, **values))
        else:
            conn.execute(t.update().where(t.c.key == key).values(**values))

    def succeeded(self, username: str, ip: str) -> None:
        """A right password clears the pair's and the username's counts (not the address's)."""
        pair, _, user = self._keys(username, ip)
        with self.engine.connect() as conn:
            conn = conn.execution_options(write=True)
            with conn.begin():
                conn.execute(db.login_failure.delete().where(db.login_failure.c.key.in_([pair[1], user[1]])))

    def forget_old(self) -> int:
        """Drop keys with no failure for longer than any policy remembers (the sweep)."""
        horizon = self.clock() - max(p.forget_seconds for p in self.policies.values())
        with self.engine.connect() as conn:
            conn = conn.execution_options(write=True)
            with conn.begin():
                return conn.execute(db.login_failure.delete().where(db.login_failure.c.last_at < horizon)).rowcount
