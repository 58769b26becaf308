"""Admin → Rules: every pool and duplicate rule, each with its form, and "new" for either."""

from __future__ import annotations

from flask import url_for

from ...metadata.model import label_text
from ...platform.web.admin import _require_admin
from ...platform.web.core import NavEntry, current_access, current_service, render_page
from ...platform.web.i18n import current_locale, t
from .pages import page


def _object_label(registry, name: str, locale: str) -> str:
    return registry.object(name).display_label(locale, plural=True) if registry.has_object(name) else name


@page("/admin/rules")
def studio_rules():
    _require_admin()
    registry = current_service().registry
    locale = current_locale()
    pools = [{"name": d["name"], "label": label_text(d.get("label"), locale, d["name"]),
              "object": _object_label(registry, d.get("object", ""), locale),
              "recycle": len(d.get("recycle") or []),
              "href": url_for("web.studio_pool_edit", name=d["name"])}
             for d in registry.of_kind("pool")]
    rules = [{"name": d["name"], "label": label_text(d.get("label"), locale, d["name"]),
              "object": _object_label(registry, d.get("object", ""), locale),
              "active": d.get("active", True) is not False,
              "on_create": t(f"studio.on_{d.get('on_create') or 'block'}"),
              "href": url_for("web.studio_dedup_edit", name=d["name"])}
             for d in registry.of_kind("dedup_rule")]
    pools.sort(key=lambda p: p["label"].casefold())
    rules.sort(key=lambda r: r["label"].casefold())
    objects = sorted(((n, o.display_label(locale)) for n, o in registry.objects.items() if not o.system_object),
                     key=lambda pair: pair[1].casefold())
    return render_page("studio_rules/index.html", pools=pools, rules=rules, objects=objects,
                       title=t("studio.rules_title"))


NAV = (NavEntry("admin_rules", "nav.admin_rules", "web.studio_rules", section="admin", order=17,
                visible=lambda access: access.has_permission("metadata.apply")),)


EDIT_ENDPOINTS = {"pool": "web.studio_pool_edit", "dedup_rule": "web.studio_dedup_edit"}


def edit_url(kind: str, name: str) -> str | None:
    """Templates' `studio_edit_url(kind, name)`: the form of a pool or duplicate rule, for admins."""
    if kind not in EDIT_ENDPOINTS or not current_access().has_permission("metadata.apply"):
        return None
    return url_for(EDIT_ENDPOINTS[kind], name=name)


def on_app(app) -> None:
    app.jinja_env.globals["studio_edit_url"] = edit_url
