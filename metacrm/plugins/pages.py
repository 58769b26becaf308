"""Admin page for plugins: the list (discovered and installed), and install / upgrade /
uninstall through a confirmation page that shows the dry run first. The same calls as the
REST API (metacrm/platform/api/plugins.py): `metacrm.plugins.install`."""

from __future__ import annotations

from typing import Any

from flask import request, url_for

from ..metadata.model import label_text
from ..platform.errors import CrmError, Forbidden, NotFound
from ..platform.features import Routes
from ..platform.web.admin import _storage_lines
from ..platform.web.core import NavEntry, current_access, notify, redirect_to, render_page, runtime
from ..platform.web.i18n import current_locale, t
from . import install as plugins

routes = Routes()
page = routes.page

ACTIONS = ("install", "upgrade", "uninstall")

def _require_admin() -> None:
    if not current_access().is_admin:
        raise Forbidden("Only administrators manage plugins.")


def _action_label(action: str) -> str:
    return t(f"plugins.{action}")


def _actions_for(item: dict) -> list[str]:
    status = item["status"]
    if status == "installed":
        out = ["upgrade"] if item.get("available_version") else []
        return out + ["uninstall"]
    if status == "archived":
        return ["install", "uninstall"]
    return ["install"]


@page("/admin/plugins")
def admin_plugins():
    _require_admin()
    locale = current_locale()
    items = []
    for item in plugins.list_plugins(runtime()):
        items.append(dict(item, title=label_text(item.get("label"), locale, item["name"]),
                          status_text=t(f"plugins.status_{item['status']}")
                          if item["status"] in ("installed", "archived", "available") else item["status"],
                          actions=[(a, _action_label(a), url_for("web.admin_plugin_preview", name=item["name"],
                                                                 action=a)) for a in _actions_for(item)],
                          description=label_text(item.get("description"), locale, "")))
    return render_page("plugins/list.html", items=items)


def _run(name: str, action: str, dry_run: bool) -> dict:
    rt = runtime()
    form = request.form
    if action == "uninstall":
        return plugins.uninstall(rt, name, purge=bool(form.get("purge")), dry_run=dry_run)
    grant = form.getlist("grant")
    fn = plugins.install if action == "install" else plugins.upgrade
    return fn(rt, name, grant=grant, dry_run=dry_run)


def _check_action(action: str) -> None:
    if action not in ACTIONS:
        raise NotFound(f"Unknown plugin action {action!r}.", code="unknown_action")


def _confirm_context(name: str, action: str, result: dict) -> dict[str, Any]:
    diff = result.get("diff") or {}
    docs = diff.get("documents") or {}
    storage = _storage_lines(diff.get("storage") or {})
    perms = result.get("permissions") or {}
    requested = list(perms.get("requested") or [])
    granted = set(perms.get("granted") or [])
    purge = result.get("purge") or {}
    purge_lines = [f"table {x}" for x in purge.get("tables", [])]
    purge_lines += [f"column {c.get('table')}.{c.get('column')}" if isinstance(c, dict) else f"column {c}"
                    for c in purge.get("columns", [])]
    return {
        "name": name, "action": action, "action_text": _action_label(action), "result": result,
        "docs_diff": docs, "storage": storage,
        "unchanged": not (docs.get("added") or docs.get("changed") or docs.get("removed") or storage),
        "permissions": [{"name": p, "checked": p in granted} for p in requested],
        "purge": bool(request.form.get("purge")), "purge_lines": purge_lines,
        "from_version": result.get("version") if action == "uninstall" else result.get("from_version"),
        "to_version": None if action == "uninstall" else result.get("version"),
        "warnings": result.get("warnings") or [],
        "apply_url": url_for("web.admin_plugin_apply", name=name, action=action),
    }


@page("/admin/plugins/<name>/<action>", methods=("POST",))
def admin_plugin_preview(name: str, action: str):
    """The dry run: what the action would change, with the confirm form."""
    _require_admin()
    _check_action(action)
    try:
        result = _run(name, action, dry_run=True)
    except CrmError as exc:
        notify(t("plugins.failed", action=_action_label(action), name=name, message=exc.message), kind="error")
        return redirect_to("web.admin_plugins")
    return render_page("plugins/confirm.html", **_confirm_context(name, action, result))


@page("/admin/plugins/<name>/<action>/apply", methods=("POST",))
def admin_plugin_apply(name: str, action: str):
    _require_admin()
    _check_action(action)
    try:
        _run(name, action, dry_run=False)
    except CrmError as exc:
        notify(t("plugins.failed", action=_action_label(action), name=name, message=exc.message), kind="error")
    else:
        notify(t("plugins.done", action=_action_label(action), name=name))
    return redirect_to("web.admin_plugins")


# Navigation this feature adds (FEATURE.nav).
NAV = (
    NavEntry("admin_plugins", "nav.admin_plugins", "web.admin_plugins", section="admin", order=30,
                     visible=lambda access: access.is_admin),
)
