"""The profile's sessions and tokens in Chromium: listed with address and device, one ended from
the page (that browser is logged out at once), English and Chinese, 1366 and 390 px wide."""

from __future__ import annotations

from tests.web.test_browser import PASSWORD, PHONE, SCREENSHOTS, browser, server, session_for  # noqa: F401

SCREEN_DESKTOP = {"width": 1366, "height": 900}
TEXT = {"en": ("Sessions and API tokens", "this session", "Browser session", "API token"),
        "zh-CN": ("登录会话和 API 令牌", "当前会话", "浏览器会话", "API 令牌")}


def shoot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def test_profile_lists_and_ends_sessions_in_the_browser(session_for, server):  # noqa: F811
    import requests

    token = requests.post(server["url"] + "/api/v1/auth/token", timeout=10,
                          json={"username": "lin", "password": PASSWORD, "label": "nightly sync"}).json()["token"]
    assert requests.get(server["url"] + "/api/v1/me", headers={"Authorization": f"Bearer {token}"},
                        timeout=10).status_code == 200
    done = []
    for locale, viewport, tag in (("en", SCREEN_DESKTOP, "desktop"), ("en", PHONE, "phone"),
                                  ("zh-CN", SCREEN_DESKTOP, "desktop"), ("zh-CN", PHONE, "phone")):
        other = session_for("lin", PASSWORD, viewport=SCREEN_DESKTOP)  # a second browser, signed in too
        s = session_for("lin", PASSWORD, viewport=viewport)
        page = s.page
        s.use_locale(locale)
        page.wait_for_selector("#sessions-table")
        title, this, kind_session, kind_token = TEXT[locale]
        text = page.inner_text("#sessions")
        assert title in text and this in text and kind_session in text and kind_token in text
        assert "nightly sync" in text and "127.0.0.1" in text
        assert "Chrome (headless), Linux" in text or "Chrome（headless）" in text or "Chrome (headless)" in text
        assert "None" not in text and "profile." not in text  # no raw values or message keys
        shoot(page, f"profile-sessions-{locale}-{tag}.png")
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        # end the other browser's session: the newest one that is not this one
        other_rows = page.locator("#sessions-table tbody tr:not(.current)", has_text=kind_session)
        before = other_rows.count()
        assert before >= 1
        other_rows.first.locator("button[type=submit]").click()
        page.wait_for_selector(".notice")
        assert page.locator("#sessions-table tbody tr:not(.current)", has_text=kind_session).count() == before - 1
        other.go("/profile")
        assert "/login" in other.page.url  # the ended session is gone on the server
        done.append(tag)
    assert done == ["desktop", "phone", "desktop", "phone"]
    # end everything else: the API token stops working
    page.click("#end-all-form button[type=submit]")
    page.wait_for_selector(".notice")
    assert page.locator("#sessions-table tbody tr").count() == 1
    assert requests.get(server["url"] + "/api/v1/me", headers={"Authorization": f"Bearer {token}"},
                        timeout=10).status_code == 401
    shoot(page, "profile-sessions-ended-zh-CN-phone.png")
    assert SCREENSHOTS.exists()
