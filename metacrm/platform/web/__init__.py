"""The generated web UI: server-rendered pages built from the live metadata.

`register(app)` (called by the app factory) builds the `web` blueprint from the generic pages
(registered with `page(...)` by this package's modules) and every registered feature's pages
(FEATURE.pages), adds the features' templates and navigation, installs the session-cookie
principal for the REST API (with its CSRF check), and the security headers. Adding a page in
a feature's own folder: docs/web.md.
"""

from __future__ import annotations

import logging

import jinja2
from flask import Blueprint, Flask, current_app, g, redirect, request, session, url_for

from ..errors import CrmError, Forbidden, Unauthorized
from ..throttle import LoginThrottle
from . import csrf, i18n
from .core import (
    PAGES,
    NavEntry,
    add_nav,
    current_access,
    current_display_name,
    current_principal,
    current_service,
    nav,
    notify,
    page,
    pop_notices,
    redirect_to,
    render_page,
    template_folders,
)

__all__ = [
    "CSP",
    "NavEntry",
    "add_nav",
    "current_access",
    "current_principal",
    "current_service",
    "nav",
    "notify",
    "page",
    "redirect_to",
    "register",
    "render_page",
    "template_folders",
]

log = logging.getLogger(__name__)

# No inline script or style anywhere: every script and stylesheet is a static file.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
       "form-action 'self'; frame-ancestors 'none'")

from . import (  # noqa: F401  (pages)
    action_views,
    admin,
    admin_changes,
    admin_roles,
    apps,
    auth_views,
    dashboard,
    export_views,
    form_views,
    kanban,
    list_views,
    pwa,
    quick,
    record_views,
    saved_views,
    stage_path,
)


def _default_nav() -> None:
    add_nav(NavEntry("home", "nav.home", "web.home", order=0))
    add_nav(NavEntry("admin_objects", "nav.admin_objects", "web.admin_objects", section="admin", order=10,
                     visible=lambda access: access.has_permission("metadata.apply")))
    add_nav(NavEntry("admin_metadata", "nav.admin_metadata", "web.admin_metadata", section="admin", order=20,
                     visible=lambda access: access.has_permission("metadata.apply")))


def register(app: Flask) -> None:
    if not any(e.key == "home" for e in nav):
        _default_nav()
    features = list(app.extensions["metacrm"].features)

    bp = Blueprint("web", __name__, template_folder="templates")
    public, own_token = set(), set()
    routes = [*PAGES, *(route for f in features if f.pages is not None for route in f.pages)]
    for p in routes:
        bp.add_url_rule(p.rule, endpoint=p.endpoint, view_func=p.view, methods=list(p.methods))
        if p.public:
            public.add(f"web.{p.endpoint}")
        if not getattr(p, "csrf", True):
            own_token.add(f"web.{p.endpoint}")
    entries = {e.key: e for e in nav}
    for f in features:
        entries.update({e.key: e for e in f.nav})
    app.extensions["metacrm.nav"] = list(entries.values())

    @bp.before_request
    def before():
        principal = current_principal()
        g.locale = i18n.normalise_locale(
            principal.locale if principal else session.get("lang")
            or request.accept_languages.best_match(["en", "zh-CN", "zh"])
        )
        if request.endpoint not in public and principal is None:
            if session.get(csrf.SESSION_KEY) and session.get("uid"):
                notify(i18n.t("login.expired"), "info")
            return redirect(url_for("web.login", next=request.full_path.rstrip("?")), code=303)
        if request.endpoint not in own_token and not csrf.request_is_valid():
            return render_page("error.html", 400, title=i18n.t("error.bad_request"), message=i18n.t("csrf.failed"))
        return None

    @bp.after_request
    def headers(response):
        # A page may widen only who may frame it (g.frame_ancestors: the embeddable public forms)
        ancestors = g.get("frame_ancestors")
        response.headers["Content-Security-Policy"] = (
            CSP.replace("frame-ancestors 'none'", f"frame-ancestors {ancestors}") if ancestors else CSP)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @bp.errorhandler(CrmError)
    def crm_error(exc: CrmError):
        keys = {403: ("error.title_forbidden", "error.forbidden"), 404: ("error.title_not_found", "error.not_found")}
        title, text = keys.get(exc.status, ("error.title", None))
        return render_page("error.html", exc.status, title=i18n.t(title),
                           message=i18n.t(text) if text else exc.message, detail=exc.message if text else None)

    app.register_blueprint(bp)
    folders = [*template_folders, *(f.templates for f in features if f.templates is not None)]
    if folders:
        app.jinja_loader = jinja2.ChoiceLoader(
            [app.jinja_loader, *(jinja2.FileSystemLoader(str(p)) for p in folders)]
        )
    # Globals (not a context processor) so imported macros see them too.
    app.jinja_env.globals.update(t=i18n.t, label=i18n.label, csrf_token=csrf.token, nav_sections=_nav_sections,
                                 notices=pop_notices, locale=i18n.current_locale, principal=current_principal,
                                 my_name=current_display_name, record_actions=_record_actions, record_buttons=_record_buttons,
                                 record_banners=_record_banners, record_panels=_record_panels)
    app.extensions["metacrm.web.throttle"] = LoginThrottle(app.extensions["metacrm"].engine)
    app.extensions["metacrm.session_principal"] = _api_session_principal


def _record_actions(object_name: str, record: dict) -> list[dict]:
    from .action_views import record_actions

    return record_actions(object_name, record)


def _record_buttons(obj, record: dict) -> list[dict]:
    """The buttons every registered feature adds to this record's detail page."""
    buttons: list[dict] = []
    for feature in current_app.extensions["metacrm"].features:
        if feature.record_buttons is None:
            continue
        try:
            buttons.extend(feature.record_buttons(obj, record))
        except CrmError:
            continue
    return buttons


def _record_banners(obj, record: dict) -> list[dict]:
    """The notices every registered feature shows above this record's detail page."""
    banners: list[dict] = []
    for feature in current_app.extensions["metacrm"].features:
        if feature.record_banners is None:
            continue
        try:
            banners.extend(feature.record_banners(obj, record))
        except CrmError:
            continue
    return banners


def _record_panels(obj, record: dict) -> list[dict]:
    """The cards every registered feature adds to this record's detail page."""
    panels: list[dict] = []
    for feature in current_app.extensions["metacrm"].features:
        if feature.record_panels is None:
            continue
        try:
            panels.extend(feature.record_panels(obj, record))
        except CrmError:
            continue
    return panels


def _api_session_principal():
    """The REST API's cookie login: the session's user, with the CSRF header on writes."""
    principal = current_principal()
    if principal is None:
        return None
    if request.method not in csrf.SAFE_METHODS and not csrf.matches(request.headers.get(csrf.HEADER)):
        if not session.get(csrf.SESSION_KEY):
            raise Unauthorized("Session expired; log in again.", code="unauthorized")
        raise Forbidden(f"A cookie-authenticated write must carry the {csrf.HEADER} header.", code="csrf_failed")
    return principal


def _nav_sections() -> dict[str, list[dict]]:
    """Visible navigation for the current user: {"main": [...], "records": [...], "admin": [...]}."""
    principal = current_principal()
    if principal is None:
        return {}
    access = current_access()
    endpoint = request.endpoint or ""
    current_object = (request.view_args or {}).get("object_name")
    sections: dict[str, list[dict]] = {"main": [], "records": [], "admin": []}
    in_apps: list[tuple[str, dict]] = []
    for entry in sorted(current_app.extensions.get("metacrm.nav", nav), key=lambda e: (e.order, e.key)):
        try:
            if not entry.visible(access):
                continue
            href = url_for(entry.endpoint, **entry.values)
        except Exception:  # a feature's broken entry must not break every page
            log.exception("navigation entry %s failed", entry.key)
            continue
        item = {"key": entry.key, "text": entry.text(), "href": href, "active": endpoint == entry.endpoint,
                "title": i18n.t(entry.title) if entry.title else ""}
        if entry.app:
            in_apps.append((entry.app, item))
        else:
            sections.setdefault(entry.section, []).append(item)
    active_app = next((name for name, item in in_apps if item["active"]), None)
    if active_app and session.get(apps.SESSION_KEY) != active_app:
        session[apps.SESSION_KEY] = active_app  # a page of an app opens that app (as /apps/<name> does)
    sections.update(apps.sections(current_object))
    # app-bound links: under the current app's objects; in "main" when the user has no such app
    shown = {e["key"] for e in sections.get("apps", [])}
    current = (sections.get("current_app") or [{}])[0].get("key")
    for app_name, item in in_apps:
        if f"app:{app_name}" not in shown:
            sections["main"].append(item)
        elif app_name == current:
            sections["records"].append(item)
    return sections
