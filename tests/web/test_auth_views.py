"""Login, logout, sessions, CSRF, the throttle, the profile page and the API's cookie login."""

from __future__ import annotations

import pytest

from metacrm.platform.web import CSP
from tests.conftest import ADMIN_PASSWORD, make_user
from tests.web.conftest import csrf_of, login, post


def test_pages_need_a_login_and_come_back_after_it(client):
    response = client.get("/records/lead?q=acme")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/login?next=/records/lead")
    client.get("/login")
    response = post(client, "/login", {"username": "admin", "password": ADMIN_PASSWORD, "next": "/records/lead?q=acme"})
    assert response.status_code == 303 and response.headers["Location"] == "/records/lead?q=acme"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example"])
def test_login_never_redirects_off_site(client, target):
    client.get("/login")
    response = post(client, "/login", {"username": "admin", "password": ADMIN_PASSWORD, "next": target})
    assert response.headers["Location"] == "/"


def test_session_cookie_is_httponly_and_samesite_lax(client):
    response = login(client, "admin", ADMIN_PASSWORD)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_wrong_password_says_so_keeps_the_username_and_logs_nobody_in(client):
    response = login(client, "admin", "not-the-password")
    assert response.status_code == 401
    assert "Wrong username or password." in response.text
    assert 'value="admin"' in response.text
    with client.session_transaction() as session:
        assert "uid" not in session
    assert client.get("/").status_code == 303


def test_unknown_user_gets_the_same_message(client):
    response = login(client, "nobody", "whatever-123")
    assert response.status_code == 401 and "Wrong username or password." in response.text


def test_repeated_failures_lock_the_username_even_for_the_right_password(client):
    for _ in range(5):
        assert login(client, "admin", "wrong-password").status_code == 401
    response = login(client, "admin", "wrong-password")
    assert response.status_code == 401  # the sixth failure starts the lockout
    response = login(client, "admin", ADMIN_PASSWORD)
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.text
    with client.session_transaction() as session:
        assert "uid" not in session


def test_login_without_csrf_token_is_refused(client):
    client.get("/login")
    response = client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD})
    assert response.status_code == 400
    assert "security token" in response.text
    with client.session_transaction() as session:
        assert "uid" not in session


def test_login_rotates_the_session(client):
    client.get("/login")
    before = csrf_of(client)
    post(client, "/login", {"username": "admin", "password": ADMIN_PASSWORD})
    assert csrf_of(client) != before


def test_logout_ends_the_session_and_needs_csrf(admin_client):
    assert admin_client.post("/logout").status_code == 400
    assert admin_client.get("/").status_code == 200
    response = post(admin_client, "/logout")
    assert response.status_code == 303
    assert admin_client.get("/").status_code == 303


def test_inactive_users_cannot_log_in(runtime, client, system):
    user = make_user(runtime, client, "gone", ["sales_rep"])
    system.update("user", user.id, {"active": False})
    assert login(client, "gone", user.password).status_code == 401


def test_deactivating_a_user_ends_their_web_session(runtime, app, client, system):
    user = make_user(runtime, client, "leaver", ["sales_rep"])
    web = app.test_client()
    assert login(web, "leaver", user.password).status_code == 303
    assert web.get("/").status_code == 200
    system.update("user", user.id, {"active": False})
    assert web.get("/").status_code == 303


def test_pages_carry_a_csp_without_unsafe_inline(admin_client):
    for url in ("/", "/login", "/records/lead", "/profile"):
        response = admin_client.get(url)
        assert response.headers["Content-Security-Policy"] == CSP
    assert "unsafe-inline" not in CSP and "script-src 'self'" in CSP and "style-src 'self'" in CSP


# --- profile ------------------------------------------------------------------------------------


def test_profile_changes_only_the_users_own_locale(runtime, app, client, system):
    user = make_user(runtime, client, "lin", ["sales_rep"])
    web = app.test_client()
    login(web, "lin", user.password)
    response = post(web, "/profile", {"_action": "locale", "locale": "zh-CN", "roles": "admin", "username": "x"})
    assert response.status_code == 303
    stored = system.get("user", user.id)
    assert stored["locale"] == "zh-CN"
    assert stored["roles"] == ["sales_rep"] and stored["username"] == "lin"
    page = web.get("/profile").text
    assert "个人设置" in page and "退出登录" in page
    admin = system.get("user", next(u["id"] for u in system.list("user")[0] if u["username"] == "admin"))
    assert admin["locale"] == "en"


def test_profile_refuses_an_unknown_locale(admin_client):
    response = post(admin_client, "/profile", {"_action": "locale", "locale": "xx"})
    assert response.status_code == 400


def test_profile_password_change_checks_the_current_password(runtime, app, client):
    user = make_user(runtime, client, "pat", ["sales_rep"])
    web = app.test_client()
    login(web, "pat", user.password)
    bad = post(web, "/profile", {"_action": "password", "current_password": "nope-nope",
                                 "new_password": "brand-new-pass", "confirm_password": "brand-new-pass"})
    assert bad.status_code == 400 and "The current password is wrong." in bad.text
    mismatch = post(web, "/profile", {"_action": "password", "current_password": user.password,
                                      "new_password": "brand-new-pass", "confirm_password": "other-pass-1"})
    assert mismatch.status_code == 400 and "differ" in mismatch.text
    ok = post(web, "/profile", {"_action": "password", "current_password": user.password,
                                "new_password": "brand-new-pass", "confirm_password": "brand-new-pass"})
    assert ok.status_code == 303
    fresh = app.test_client()
    assert login(fresh, "pat", user.password).status_code == 401
    assert login(fresh, "pat", "brand-new-pass").status_code == 303


# --- the REST API with the session cookie ----------------------------------------------------------


def test_api_accepts_the_session_cookie_and_needs_the_csrf_header_to_write(admin_client):
    me = admin_client.get("/api/v1/me")
    assert me.status_code == 200 and me.get_json()["username"] == "admin"
    body = {"company": "Cookie Co", "source": "web", "email": "cookie@example.com"}
    refused = admin_client.post("/api/v1/records/lead", json=body)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "csrf_failed"
    wrong = admin_client.post("/api/v1/records/lead", json=body, headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    assert admin_client.get("/api/v1/records/lead?filter=" + '{"company":"Cookie Co"}').get_json()["items"] == []
    created = admin_client.post("/api/v1/records/lead", json=body, headers={"X-CSRF-Token": csrf_of(admin_client)})
    assert created.status_code == 201, created.get_json()


def test_api_without_any_login_is_401(client):
    assert client.get("/api/v1/me").status_code == 401
