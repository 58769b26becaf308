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


# --- sessions end on the server (issue 13.10) ------------------------------------------------------


def _copy_cookie(source, target) -> None:
    """Give `target` the exact session cookie `source` holds (a stolen / copied cookie)."""
    cookie = source.get_cookie("session")
    target.set_cookie("session", cookie.value)


def test_logout_ends_the_session_on_the_server(app):
    from tests.web.conftest import login, post

    browser, thief = app.test_client(), app.test_client()
    assert login(browser, "admin", ADMIN_PASSWORD).status_code == 303
    _copy_cookie(browser, thief)
    assert thief.get("/profile").status_code == 200  # the copy works while the session lives
    assert thief.get("/api/v1/me").status_code == 200
    assert post(browser, "/logout").status_code == 303
    assert thief.get("/profile").status_code == 303  # back to the login page
    assert thief.get("/api/v1/me").status_code == 401


def test_a_password_change_ends_every_other_session_and_token(app, runtime, client):
    from tests.web.conftest import login, post

    user = make_user(runtime, client, "pat", ["sales_rep"], password="old-pass-123")
    other_token = _token(client, "pat", "old-pass-123").get_json()["token"]
    here, elsewhere = app.test_client(), app.test_client()
    login(here, "pat", "old-pass-123")
    login(elsewhere, "pat", "old-pass-123")
    answer = post(here, "/profile", {"_action": "password", "current_password": "old-pass-123",
                                     "new_password": "new-pass-456", "confirm_password": "new-pass-456"})
    assert answer.status_code == 303
    assert here.get("/profile").status_code == 200  # the session that changed it goes on
    assert elsewhere.get("/profile").status_code == 303
    for token in (user.headers["Authorization"][7:], other_token):
        assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_an_admin_setting_a_password_over_rest_ends_all_of_that_users_sessions(app, runtime, client, admin_headers):
    from tests.web.conftest import login

    user = make_user(runtime, client, "quinn", ["sales_rep"], password="old-pass-123")
    browser = app.test_client()
    login(browser, "quinn", "old-pass-123")
    record = client.get(f"/api/v1/records/user/{user.id}", headers=admin_headers).get_json()
    changed = client.patch(f"/api/v1/records/user/{user.id}", headers=admin_headers,
                           json={"password": "reset-pass-789", "version": record["version"]})
    assert changed.status_code == 200, changed.get_json()
    assert browser.get("/profile").status_code == 303
    assert client.get("/api/v1/me", headers=user.headers).status_code == 401
    assert client.get("/api/v1/me", headers=admin_headers).status_code == 200  # the admin's own token lives


def test_a_token_changing_its_own_password_keeps_itself(runtime, client):
    user = make_user(runtime, client, "rosa", ["admin"], password="old-pass-123")
    spare = _token(client, "rosa", "old-pass-123").get_json()["token"]
    record = client.get(f"/api/v1/records/user/{user.id}", headers=user.headers).get_json()
    changed = client.patch(f"/api/v1/records/user/{user.id}", headers=user.headers,
                           json={"password": "new-pass-456", "version": record["version"]})
    assert changed.status_code == 200
    assert client.get("/api/v1/me", headers=user.headers).status_code == 200
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {spare}"}).status_code == 401


def test_the_profile_lists_sessions_and_tokens_and_ends_one_or_all(app, runtime, client):
    from tests.web.conftest import csrf_of, login, post

    make_user(runtime, client, "sam", ["sales_rep"])
    token = client.post("/api/v1/auth/token", json={"username": "sam", "password": "user-pass-123",
                                                    "label": "laptop script"},
                        headers={"User-Agent": "python-requests/2.32"}).get_json()["token"]
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}",
                                             "User-Agent": "python-requests/2.32"}).status_code == 200
    phone = app.test_client()
    phone.environ_base["HTTP_USER_AGENT"] = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Version/17.0 Safari/604.1"
    login(phone, "sam", "user-pass-123")
    desk = app.test_client()
    desk.environ_base["HTTP_USER_AGENT"] = "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36"
    login(desk, "sam", "user-pass-123")
    page = desk.get("/profile").text
    assert "laptop script" in page and "Safari, iOS" in page and "Chrome, Linux" in page
    assert "this session" in page and page.count('value="end_session"') == 1  # not for this one
    assert page.count('value="end_token"') == 2  # make_user's token and the labelled one
    from metacrm.platform.sessions import credentials

    sessions, tokens = credentials(runtime.engine, _user_id(runtime, "sam"))
    used = next(k for k in tokens if k["label"] == "laptop script")
    assert used["last_used_at"] is not None and used["agent"].startswith("python-requests")
    phone_id = next(s["id"] for s in sessions if "iPhone" in (s["agent"] or ""))
    assert post(desk, "/profile", {"_action": "end_session", "id": str(phone_id)}).status_code == 303
    assert phone.get("/profile").status_code == 303
    # someone else's session id is not ours to end: nothing happens
    csrf_of(desk)
    assert post(desk, "/profile", {"_action": "end_session", "id": "nonsense"}).status_code == 400
    assert post(desk, "/profile", {"_action": "end_all"}).status_code == 303
    assert desk.get("/profile").status_code == 200
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert 'value="end_token"' not in desk.get("/profile").text


def test_one_user_cannot_end_anothers_session(app, runtime, client):
    from metacrm.platform.sessions import credentials
    from tests.web.conftest import login, post

    make_user(runtime, client, "tia", ["sales_rep"])
    make_user(runtime, client, "uma", ["sales_rep"])
    tia, uma = app.test_client(), app.test_client()
    login(tia, "tia", "user-pass-123")
    login(uma, "uma", "user-pass-123")
    tia_session = credentials(runtime.engine, _user_id(runtime, "tia"))[0][0]["id"]
    post(uma, "/profile", {"_action": "end_session", "id": str(tia_session)})
    assert tia.get("/profile").status_code == 200


def _user_id(runtime, username: str) -> str:
    users = runtime.compiled().tables["user"]
    with runtime.engine.connect() as conn:
        return conn.execute(sa.select(users.c.id).where(users.c.username == username)).scalar()
