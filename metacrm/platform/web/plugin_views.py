"""Admin page for plugins: the list (discovered and installed), and install / upgrade /
uninstall through a confirmation page that shows the dry run first. The same calls as the
REST API (metacrm/platform/api/plugins.py): `metacrm.plugins.install`."""

from __future__ import annotations

from typing import Any

from flask import request, url_for

from ...metadata.model import label_text
from ...plugins import install as plugins
from ..errors import CrmError, Forbidden, NotFound
from .admin import _storage_lines
from .core import NavEntry, add_nav, current_access, notify, page, redirect_to, render_page, runtime
from .i18n import add_messages, current_locale, t

ACTIONS = ("install", "upgrade", "uninstall")

add_messages({
    "en": {
        "nav.admin_plugins": "Plugins",
        "plugins.title": "Plugins",
        "plugins.intro": "Plugins found in the installed Python packages, and those installed here.",
        "plugins.none": "No plugins found.",
        "plugins.name": "Plugin",
        "plugins.installed_version": "Installed",
        "plugins.available_version": "Available",
        "plugins.status": "Status",
        "plugins.granted": "Granted permissions",
        "plugins.error": "Load error",
        "plugins.actions": "Actions",
        "plugins.status_installed": "Installed",
        "plugins.status_archived": "Uninstalled (data kept)",
        "plugins.status_available": "Available",
        "plugins.incompatible": "Not compatible with this version of metaCRM",
        "plugins.install": "Install",
        "plugins.upgrade": "Upgrade",
        "plugins.uninstall": "Uninstall",
        "plugins.purge": "Purge data",
        "plugins.confirm_title": "{action}: {name}",
        "plugins.confirm_intro": "Nothing has been changed yet. Check what this will do, then confirm.",
        "plugins.version_change": "Version",
        "plugins.no_changes": "No metadata or storage changes.",
        "plugins.permissions": "Requested permissions",
        "plugins.permissions_help": "Tick the permissions to grant to the plugin.",
        "plugins.no_permissions": "This plugin asks for no permissions.",
        "plugins.purge_plan": "Data that will be dropped",
        "plugins.warnings": "Warnings",
        "plugins.confirm": "Confirm",
        "plugins.cancel": "Cancel",
        "plugins.done": "{action}: {name} done.",
        "plugins.failed": "{action} {name}: {message}",
    },
    "zh-CN": {
        "nav.admin_plugins": "插件",
        "plugins.title": "插件",
        "plugins.intro": "已安装的 Python 包中发现的插件，以及本系统已安装的插件。",
        "plugins.none": "未发现插件。",
        "plugins.name": "插件",
        "plugins.installed_version": "已安装版本",
        "plugins.available_version": "可用版本",
        "plugins.status": "状态",
        "plugins.granted": "已授予的权限",
        "plugins.error": "加载错误",
        "plugins.actions": "操作",
        "plugins.status_installed": "已安装",
        "plugins.status_archived": "已卸载（数据保留）",
        "plugins.status_available": "可安装",
        "plugins.incompatible": "与当前 metaCRM 版本不兼容",
        "plugins.install": "安装",
        "plugins.upgrade": "升级",
        "plugins.uninstall": "卸载",
        "plugins.purge": "清除数据",
        "plugins.confirm_title": "{action}：{name}",
        "plugins.confirm_intro": "尚未做任何更改。请核对将要进行的变更，然后确认。",
        "plugins.version_change": "版本",
        "plugins.no_changes": "没有元数据或存储变更。",
        "plugins.permissions": "请求的权限",
        "plugins.permissions_help": "勾选要授予插件的权限。",
        "plugins.no_permissions": "此插件不请求任何权限。",
        "plugins.purge_plan": "将被删除的数据",
        "plugins.warnings": "警告",
        "plugins.confirm": "确认",
        "plugins.cancel": "取消",
        "plugins.done": "{action}：{name} 已完成。",
        "plugins.failed": "{action} {name}：{message}",
    },
})


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


add_nav(NavEntry("admin_plugins", "nav.admin_plugins", "web.admin_plugins", section="admin", order=30,
                 visible=lambda access: access.is_admin))
