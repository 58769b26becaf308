"""Sessions and sign-in: the shared login throttle (web and POST /auth/token, counted in the
database so every server sees the same count), server-side sessions and tokens, and salts."""

from __future__ import annotations

import sqlalchemy as sa

from metacrm.platform import db
from metacrm.platform.throttle import LoginThrottle, Policy
from tests.conftest import ADMIN_PASSWORD, make_user


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def make_throttle(engine, clock):
    return LoginThrottle(engine, clock, pair_policy=Policy(3, 10, 60, 600), ip_policy=Policy(10, 10, 60, 600),
                         user_policy=Policy(20, 1, 5, 600))


# --- the throttle on its own (both databases) ---------------------------------------------------


def test_throttle_allows_the_free_attempts_then_doubles_the_lockout(engine):
    clock = Clock()
    throttle = make_throttle(engine, clock)
    for _ in range(3):
        assert throttle.wait_seconds("ann", "1.1.1.1") == 0
        throttle.failed("ann", "1.1.1.1")
    assert throttle.wait_seconds("ann", "1.1.1.1") == 0  # three free failures
    throttle.failed("ann", "1.1.1.1")
    assert throttle.wait_seconds("ann", "1.1.1.1") == 10
    clock.now += 10
    assert throttle.wait_seconds("ann", "1.1.1.1") == 0
    throttle.failed("ann", "1.1.1.1")
    assert throttle.wait_seconds("ann", "1.1.1.1") == 20
    clock.now += 20
    for _ in range(5):
        throttle.failed("ann", "1.1.1.1")
    assert throttle.wait_seconds("ann", "1.1.1.1") == 60  # capped


def test_a_guesser_at_one_address_does_not_lock_the_user_out_elsewhere(engine):
    clock = Clock()
    throttle = make_throttle(engine, clock)
    for _ in range(6):
        throttle.failed("Ann", "6.6.6.6")
    assert throttle.wait_seconds("ann", "6.6.6.6") > 0  # the guesser waits
    assert throttle.wait_seconds("ann", "1.1.1.1") == 0  # ann at her own address does not
    assert throttle.wait_seconds("bob", "6.6.6.6") == 0  # the address is not locked yet
    for i in range(5):
        throttle.failed(f"user{i}", "6.6.6.6")
    assert throttle.wait_seconds("bob", "6.6.6.6") > 0  # eleven failures from one address


def test_a_guess_spread_over_many_addresses_is_slowed_but_only_briefly(engine):
    clock = Clock()
    throttle = make_throttle(engine, clock)
    for i in range(21):
        throttle.failed("ann", f"10.0.0.{i}")
    wait = throttle.wait_seconds("ann", "1.1.1.1")
    assert 0 < wait <= 5  # the per-username policy's short cap


def test_throttle_success_clears_the_pair_and_old_failures_are_forgotten(engine):
    clock = Clock()
    throttle = make_throttle(engine, clock)
    for _ in range(3):
        throttle.failed("ann", "1.1.1.1")
    throttle.succeeded("ann", "1.1.1.1")
    throttle.failed("ann", "1.1.1.1")
    assert throttle.wait_seconds("ann", "1.1.1.1") == 0
    for _ in range(2):
        throttle.failed("ann", "1.1.1.1")
    clock.now += 601
    throttle.failed("ann", "1.1.1.1")
    assert throttle.wait_seconds("ann", "1.1.1.1") == 0
    clock.now += 601
    assert throttle.forget_old() == 3  # pair, address and username rows
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.login_failure)).scalar() == 0


def test_two_servers_share_one_count(engine):
    """Two throttles (two app servers) on one database: failures on either count for both."""
    clock = Clock()
    one, two = make_throttle(engine, clock), make_throttle(engine, clock)
    one.failed("ann", "1.1.1.1")
    two.failed("ann", "1.1.1.1")
    one.failed("ann", "1.1.1.1")
    assert two.wait_seconds("ann", "1.1.1.1") == 0
    two.failed("ann", "1.1.1.1")
    assert one.wait_seconds("ann", "1.1.1.1") == 10


# --- POST /api/v1/auth/token and the web login share it ------------------------------------------


def _token(client, username, password, ip="127.0.0.1"):
    return client.post("/api/v1/auth/token", json={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": ip})


def test_the_token_endpoint_is_throttled_with_retry_after(client):
    for _ in range(5):
        assert _token(client, "admin", "wrong").status_code == 401
    assert _token(client, "admin", "wrong").status_code == 401  # the sixth failure starts the lockout
    response = _token(client, "admin", ADMIN_PASSWORD)
    assert response.status_code == 429
    body = response.get_json()["error"]
    assert body["code"] == "too_many_attempts" and body["retry_after"] >= 1
    assert int(response.headers["Retry-After"]) == body["retry_after"]
    assert "token" not in response.get_json()


def test_api_guessing_does_not_lock_the_user_out_of_the_web(app, client):
    from tests.web.conftest import login

    for _ in range(8):
        _token(client, "admin", "wrong", ip="6.6.6.6")
    assert _token(client, "admin", ADMIN_PASSWORD, ip="6.6.6.6").status_code == 429
    web = app.test_client()
    assert login(web, "admin", ADMIN_PASSWORD).status_code == 303  # the real admin, at 127.0.0.1
    assert _token(client, "admin", ADMIN_PASSWORD).status_code == 201


def test_web_failures_count_for_the_api_at_the_same_address(app, client):
    from tests.web.conftest import login

    web = app.test_client()
    for _ in range(6):
        assert login(web, "admin", "wrong").status_code == 401
    assert _token(client, "admin", ADMIN_PASSWORD).status_code == 429


# --- salts (issue 13.11) ----------------------------------------------------------------------


def test_every_password_hash_has_its_own_salt(runtime, admin):
    import pytest

    from metacrm.platform.security import verify_password

    ids = [admin.create("user", {"username": f"same{i}", "display_name": f"Same {i}", "roles": ["sales_rep"],
                                 "password": "one-password-for-all"})["id"] for i in range(3)]
    users = runtime.compiled().tables["user"]
    with runtime.engine.connect() as conn:
        hashes = [conn.execute(sa.select(users.c.password).where(users.c.id == i)).scalar() for i in ids]
    assert len(set(hashes)) == 3 and len({h.split("$")[1] for h in hashes}) == 3
    assert all(verify_password(h, "one-password-for-all") for h in hashes)
    # the mechanism that made the demo users share one: a hash copied in by a raw platform write
    with pytest.raises(ValueError, match="password"):
        admin.system_update("user", ids[1], {"password": hashes[0]})
