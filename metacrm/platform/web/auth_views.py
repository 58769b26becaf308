"""Login, logout and the profile page (language and password, for oneself only)."""

from __future__ import annotations

from flask import current_app, g, redirect, request, session, url_for

from ..errors import CrmError, Unauthorized, ValidationFailed
from ..metadata_fields import DATETIME
from ..records import RecordService
from ..security import Principal
from ..throttle import LoginThrottle, client_ip, throttle_for
from .core import (
    current_principal,
    log_in,
    log_out,
    notify,
    page,
    redirect_to,
    render_page,
    runtime,
    safe_next,
)
from .i18n import LOCALE_NAMES, LOCALES, message, normalise_locale, t


def _throttle() -> LoginThrottle:
    return throttle_for(current_app)


_client_ip = client_ip


@page("/login", methods=("GET", "POST"), public=True)
def login():
    from ..api.auth import authenticate_user

    if request.args.get("lang") in LOCALES:
        session["lang"] = request.args["lang"]
    target = safe_next(request.values.get("next"), url_for("web.home"))
    if request.method == "GET" and current_principal() is not None:
        return redirect_to("web.home")
    error, status = None, 200
    username = (request.form.get("username") or "").strip() if request.method == "POST" else ""
    if request.method == "POST":
        password = request.form.get("password") or ""
        ip = _client_ip()
        wait = _throttle().wait_seconds(username, ip)
        if wait:
            error, status = t("login.throttled", seconds=wait), 429
        elif not username or not password:
            error, status = t("login.required"), 400
        else:
            try:
                user_id = authenticate_user(username, password)
            except Unauthorized:
                _throttle().failed(username, ip)
                error, status = t("login.failed"), 401
            else:
                _throttle().succeeded(username, ip)
                log_in(user_id)
                return redirect(target, code=303)
    return render_page("login.html", status, error=error, username=username, next=target,
                       locales=[(code, LOCALE_NAMES[code]) for code in LOCALES])


@page("/logout", methods=("POST",), public=True)
def logout():
    log_out()
    notify(t("logout.done"), "info")
    return redirect_to("web.login")


def _system_update(user_id: str, values: dict) -> None:
    """The profile writes only these fields of the user's own record, as the platform."""
    service = RecordService(runtime(), Principal.system(), source="web")
    service.update("user", user_id, values)
    runtime().directory_changed()


def agent_summary(agent: str | None) -> str:
    """'Mozilla/5.0 (X11; Linux x86_64) ... Chrome/120.0 ...' -> 'Chrome, Linux'."""
    if not agent:
        return ""
    browsers = [("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("HeadlessChrome", "Chrome (headless)"),
                ("Chrome/", "Chrome"), ("Safari/", "Safari"), ("curl/", "curl"), ("python-requests", "Python"),
                ("python-httpx", "Python"), ("Werkzeug", "Werkzeug")]
    systems = [("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"), ("Windows", "Windows"),
               ("Mac OS X", "macOS"), ("Linux", "Linux")]
    browser = next((name for marker, name in browsers if marker in agent), None)
    system = next((name for marker, name in systems if marker in agent), None)
    if browser and system:
        return t("profile.agent", browser=browser, system=system)
    return browser or system or agent[:40]


def _credentials(me: Principal) -> tuple[list[dict], list[dict]]:
    from ..schemas import to_json_value
    from ..sessions import credentials
    from .display import datetime_text

    def when(value):
        return datetime_text(to_json_value(DATETIME, value)) if value else t("profile.never")

    current = g.get("metacrm_credential")
    sessions, tokens = credentials(runtime().engine, me.user_id)
    for row in sessions:
        row.update(created=when(row["created_at"]), used=when(row["last_used_at"]), where=row["ip"] or "",
                   agent_text=agent_summary(row["agent"]),
                   current=bool(current and current[0] == "session" and current[1] == row["id"]))
    for row in tokens:
        row.update(created=when(row["created_at"]), used=when(row["last_used_at"]),
                   expires=when(row["expires_at"]), where=row["ip"] or "", agent_text=agent_summary(row["agent"]))
    return sessions, tokens


def _end(action: str) -> bool:
    """End one of the user's sessions or tokens, or all but this session. False: bad input."""
    from ..sessions import end_credentials

    me = current_principal()
    current = g.get("metacrm_credential")
    keep = current[1] if current and current[0] == "session" else None
    try:
        target = int(request.form.get("id") or "0") if action != "end_all" else None
    except ValueError:
        return False
    with runtime().transaction() as tx:
        if action == "end_all":
            ended = end_credentials(tx.conn, me.user_id, everything=True, keep_session=keep)
        elif action == "end_session":
            if target == keep:
                return False  # this session ends with "Sign out"
            ended = end_credentials(tx.conn, me.user_id, session_id=target)
        else:
            ended = end_credentials(tx.conn, me.user_id, token_id=target)
    notify(t("profile.ended", count=ended))
    return True


@page("/profile", methods=("GET", "POST"))
def profile():
    from ..api.auth import authenticate_user

    me = current_principal()
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        action = request.form.get("_action")
        if action in ("end_session", "end_token", "end_all"):
            if _end(action):
                return redirect_to("web.profile")
            status = 400
        elif action == "locale":
            locale = request.form.get("locale", "")
            if locale not in LOCALES:
                errors["locale"] = message("Not allowed.")
                status = 400
            else:
                _system_update(me.user_id, {"locale": locale})
                session["lang"] = locale
                g.locale = normalise_locale(locale)
                notify(t("profile.language_saved"))
                return redirect_to("web.profile")
        elif action == "password":
            current = request.form.get("current_password") or ""
            new = request.form.get("new_password") or ""
            again = request.form.get("confirm_password") or ""
            wait = _throttle().wait_seconds(me.username, _client_ip())
            if wait:
                errors["current_password"] = t("login.throttled", seconds=wait)
            else:
                try:
                    authenticate_user(me.username, current)
                except Unauthorized:
                    _throttle().failed(me.username, _client_ip())
                    errors["current_password"] = t("profile.password_wrong")
            if len(new) < 8:
                errors["new_password"] = t("profile.password_short")
            elif new != again:
                errors["confirm_password"] = t("profile.password_mismatch")
            if not errors:
                try:
                    _system_update(me.user_id, {"password": new})
                except ValidationFailed as exc:
                    errors["new_password"] = "; ".join(message(str(m)) for m in exc.fields.get("password", [exc.message]))
                except CrmError as exc:
                    errors["new_password"] = exc.message
                else:
                    notify(t("profile.password_changed"))
                    return redirect_to("web.profile")
            status = 400
        else:
            status = 400
    sessions, tokens = _credentials(me)
    return render_page("profile.html", status, me=me, errors=errors, sessions=sessions, tokens=tokens,
                       locales=[(code, LOCALE_NAMES[code]) for code in LOCALES])
