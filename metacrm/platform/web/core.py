"""The web UI's plumbing: the page registry, navigation, the logged-in principal, and the
helpers every view uses. A new page is a template plus a function decorated with `page`
(see docs/web.md); `register(app)` builds one blueprint per app from everything registered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app, g, redirect, render_template, request, session, url_for

from ..records import RecordService
from ..runtime import Runtime
from ..security import Access, Principal
from .i18n import t

SESSION_USER = "uid"
SESSION_LOGIN_AT = "at"
SESSION_ID = "sid"  # the server-side session's random id (mc_session holds its hash)
SESSION_MAX_AGE = 12 * 3600  # as long as an API token lives


@dataclass
class Page:
    rule: str
    endpoint: str
    view: Callable[..., Any]
    methods: tuple[str, ...] = ("GET",)
    public: bool = False  # reachable without logging in (the login page)


@dataclass
class NavEntry:
    """One link in the navigation. `label` is a catalogue key, or a function returning the text."""

    key: str
    label: str | Callable[[], str]
    endpoint: str
    values: dict = field(default_factory=dict)
    visible: Callable[[Access], bool] = lambda access: True
    section: str = "main"  # "main", "records", "admin", "bell" (header icons) or a group of its own
    order: int = 100
    title: str | None = None  # a catalogue key: the tooltip and screen-reader text (header icons)
    # An app's name: the link is listed under that app's objects while the app is the current one
    # (in "main" when the user has no such app), e.g. a report page in Marketing or Finance.
    app: str | None = None

    def text(self) -> str:
        return self.label() if callable(self.label) else t(self.label)


# Filled at import time by the page modules (ours and other features').
PAGES: list[Page] = []
nav: list[NavEntry] = []
# Extra folders searched for templates (after ours), e.g. a feature package's own templates.
template_folders: list[Path] = []


def page(rule: str, *, methods: tuple[str, ...] | list[str] = ("GET",), endpoint: str | None = None,
         public: bool = False) -> Callable:
    """Register a view on the web blueprint (endpoint `web.<endpoint or function name>`).

    Every page gets the login check, CSRF check on POST, the user's locale, the CSP header
    and the error pages. Register before the app is created (at import time)."""

    def decorate(fn: Callable) -> Callable:
        name = endpoint or fn.__name__
        if any(p.endpoint == name for p in PAGES):
            raise ValueError(f"a web page named {name!r} is registered already")
        PAGES.append(Page(rule, name, fn, tuple(methods), public))
        return fn

    return decorate


def add_nav(entry: NavEntry) -> None:
    """Add (or replace, by key) a navigation entry."""
    nav[:] = [e for e in nav if e.key != entry.key]
    nav.append(entry)


# --- the request's user -------------------------------------------------------------------


def runtime() -> Runtime:
    return current_app.extensions["metacrm"]


def session_user_id() -> str | None:
    """The cookie's user, if its server-side session (mc_session) is live: a logged-out, ended
    or expired session is no login, whatever the signed cookie says."""
    from ..sessions import session_row

    uid = session.get(SESSION_USER)
    at = session.get(SESSION_LOGIN_AT)
    sid = session.get(SESSION_ID)
    if not isinstance(uid, str) or not isinstance(at, (int, float)) or not isinstance(sid, str):
        return None
    if time.time() - at > SESSION_MAX_AGE:
        return None
    if "web_session_row" not in g:
        g.web_session_row = session_row(runtime().engine, sid)
    row = g.web_session_row
    if row is None or row.user_id != uid:
        return None
    g.metacrm_credential = ("session", row.id, uid)
    return uid


def current_principal() -> Principal | None:
    """The logged-in user (loaded once per request), or None."""
    if "web_principal" not in g:
        from ..api import load_principal

        uid = session_user_id()
        g.web_principal = load_principal(uid) if uid else None
    return g.web_principal


def current_display_name() -> str:
    """The logged-in user's display name (their username when they have none), once per request."""
    if "web_display_name" not in g:
        principal, name = current_principal(), ""
        if principal is not None and principal.user_id:
            users = runtime().compiled().tables["user"]
            with runtime().reading() as conn:
                name = conn.execute(sa.select(users.c.display_name).where(users.c.id == principal.user_id)).scalar()
        g.web_display_name = (name or "").strip() or (principal.username if principal else "")
    return g.web_display_name


def current_service() -> RecordService:
    """A RecordService for the logged-in user, shared by one request's views."""
    if "web_service" not in g:
        g.web_service = RecordService(runtime(), current_principal(), source="web")
    return g.web_service


def current_access() -> Access:
    return current_service().access


def log_in(user_id: str) -> None:
    from ..sessions import start_session
    from . import csrf

    session.clear()  # no session fixation: nothing from before the login survives
    session[SESSION_ID] = start_session(runtime().engine, user_id, request.remote_addr,
                                        request.headers.get("User-Agent"))
    session[SESSION_USER] = user_id
    session[SESSION_LOGIN_AT] = int(time.time())
    csrf.rotate()


def log_out() -> None:
    from ..sessions import end_session
    from . import csrf

    locale = session.get("lang")
    if isinstance(session.get(SESSION_ID), str):
        end_session(runtime().engine, session[SESSION_ID])  # on the server: a copied cookie dies too
    session.clear()
    if locale:
        session["lang"] = locale
    csrf.rotate()


# --- responses ------------------------------------------------------------------------------


def render_page(template: str, status: int = 200, **context: Any):
    """Render a template that extends base.html (nav, notices, locale are added for you)."""
    return render_template(template, **context), status


def notify(text: str, kind: str = "success", undo: dict | None = None) -> None:
    """A message shown once on the next page; `undo` = {"url": POST target, "label": text}."""
    notices = list(session.get("notices") or [])
    notices.append({"text": text, "kind": kind, "undo": undo})
    session["notices"] = notices[-5:]


def pop_notices() -> list[dict]:
    return session.pop("notices", None) or []


def safe_next(target: str | None, default: str) -> str:
    """Only local paths: never send a user to another site after login, and never a control
    character (CR / LF would split the Location header; browsers drop tabs and can read
    "/<tab>/evil" as "//evil")."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target) or len(target) > 2000:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def redirect_to(endpoint: str, **values: Any):
    return redirect(url_for(endpoint, **values), code=303)


def wants_form_value(name: str) -> str:
    return (request.form.get(name) or "").strip()
