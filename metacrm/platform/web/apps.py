"""Navigation by app: `app` metadata groups objects (Marketing, Sales, Finance, ...).

The sidebar shows the current app's objects in the app's order, a switcher between the apps the
user can use, and under "More" the objects no app lists (so an object an admin just made is
never unreachable). Child objects — a required lookup that deletes with its parent (order lines,
commission tiers, instalments) — are reached from their parent's page and never listed.

The current app is chosen among the apps that list the object being viewed (all apps on other
pages): the remembered one (`/apps/<name>` remembers it in the session), else the first whose
`default_for_roles` names one of the user's roles, else the first in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import redirect, session, url_for

from ...metadata.registry import Registry
from ..errors import NotFound
from ..security import Access, Principal
from . import i18n
from .core import current_access, current_principal, current_service, page

SESSION_KEY = "metacrm_app"
HIDDEN_OBJECTS = ("user", "department")


@dataclass(frozen=True)
class App:
    name: str
    label: str
    order: int
    objects: tuple[str, ...]  # readable by the user, in the app's order
    default_for_roles: frozenset[str]


def child_objects(registry: Registry) -> set[str]:
    """Objects that live inside a parent: a required lookup whose parent's delete removes them."""
    children = set()
    for name, obj in registry.objects.items():
        for fdef in obj.fields.values():
            if fdef.type == "lookup" and fdef.required and fdef.on_delete == "cascade":
                children.add(name)
                break
    return children


def _listable(registry: Registry, access: Access) -> list[str]:
    return [name for name, obj in registry.objects.items()
            if not obj.system_object and name not in HIDDEN_OBJECTS and access.can(name, "read")]


def visible_apps(registry: Registry, access: Access, listable: list[str] | None = None) -> list[App]:
    """The apps with at least one object the user may read, in switcher order."""
    readable = set(_listable(registry, access) if listable is None else listable)
    apps = []
    for doc in registry.of_kind("app"):
        objects = tuple(o for o in doc.get("objects") or () if o in readable)
        if objects:
            apps.append(App(doc["name"], i18n.label(doc.get("label"), doc["name"]), int(doc.get("order", 1000)),
                            objects, frozenset(doc.get("default_for_roles") or ())))
    return sorted(apps, key=lambda a: (a.order, a.name))


def current_app(apps: list[App], principal: Principal, current_object: str | None) -> App | None:
    if not apps:
        return None
    remembered = next((a for a in apps if a.name == session.get(SESSION_KEY)), None)
    candidates = apps
    if current_object and any(current_object in a.objects for a in apps):
        candidates = [a for a in apps if current_object in a.objects]
    if remembered is not None and remembered in candidates:
        return remembered
    return next((a for a in candidates if a.default_for_roles & principal.roles), candidates[0])


def sections(current_object: str | None) -> dict[str, list[dict]]:
    """The sidebar's app switcher ("apps"), the current app's objects ("records") and the
    unlisted objects ("more")."""
    principal, access = current_principal(), current_access()
    registry = current_service().registry
    listable = _listable(registry, access)
    apps = visible_apps(registry, access, listable)
    app = current_app(apps, principal, current_object)
    locale = i18n.current_locale()
    entries = {name: {"key": f"object:{name}", "text": registry.objects[name].display_label(locale, plural=True),
                      "href": url_for("web.record_list", object_name=name), "active": current_object == name}
               for name in listable}
    out: dict[str, list[dict]] = {
        "apps": [{"key": f"app:{a.name}", "text": a.label, "href": url_for("web.switch_app", name=a.name),
                  "active": app is not None and a.name == app.name} for a in apps],
        "records": [entries[name] for name in app.objects] if app is not None else [],
    }
    in_some_app = {o for doc in registry.of_kind("app") for o in doc.get("objects") or ()}
    children = child_objects(registry)
    more = [entries[name] for name in listable if name not in in_some_app and name not in children]
    out["more"] = sorted(more, key=lambda e: e["text"].casefold())
    if app is not None:
        out["current_app"] = [{"key": app.name, "text": app.label, "href": url_for("web.switch_app", name=app.name),
                               "active": True}]
    return out


@page("/apps/<name>", endpoint="switch_app")
def switch_app(name: str):
    """Open an app: remember it and show its first object's list."""
    apps = visible_apps(current_service().registry, current_access())
    app = next((a for a in apps if a.name == name), None)
    if app is None:
        raise NotFound(f"No app named {name!r}.", code="not_found")
    session[SESSION_KEY] = app.name
    return redirect(url_for("web.record_list", object_name=app.objects[0]))
