"""Saved views on list pages: the switcher at the top of a list, the remembered choice per user
and object, and saving the current filters / sort / columns as a personal view (an admin may
share it with roles). The rules live in platform/views.py; every list still reads through
RecordService as the user."""

from __future__ import annotations

from typing import Any

from flask import request, url_for
from werkzeug.datastructures import MultiDict

from ...metadata.model import ObjectDef, label_text
from .. import views as saved
from ..errors import BadRequest, CrmError, ValidationFailed
from ..records import RecordService
from . import forms
from .core import current_service, notify, page, redirect_to
from .i18n import current_locale, t
from .record_views import _object


def pick(service: RecordService, obj: ObjectDef) -> tuple[dict | None, list[dict]]:
    """(the view to show, the views the user may switch to). A view filtering on a field the
    user cannot see is not applied (a notice says so): its filter would tell what the field holds."""
    chosen, views = _pick(service, obj)
    if chosen is not None:
        from .. import filters as flt

        visible = saved.visible_fields(service, obj)
        if any(n not in visible for n in flt.referenced_fields(chosen.get("filter") or {})):
            notify(t("views.hidden_filter"), "error")
            return None, views
    return chosen, views


def _pick(service: RecordService, obj: ObjectDef) -> tuple[dict | None, list[dict]]:
    """`?view=` picks (and is remembered); without it the remembered view, else the user's
    role default, else the layout's list."""
    views = saved.usable_views(service, obj.name)
    wanted = request.args.get("view") or None
    if wanted == saved.ALL:
        chosen = None
    elif wanted is not None:
        chosen = next((v for v in views if v["name"] == wanted), None)
        if chosen is None:
            notify(t("views.unknown"), "info")
            wanted = None
    if wanted is None:
        return saved.default_view(service, obj.name, views), views
    if saved.remembered(service, obj.name) != wanted:
        saved.remember(service, obj.name, wanted)
    return chosen, views


def switcher(service: RecordService, obj: ObjectDef, chosen: dict | None, views: list[dict]) -> dict:
    """What the template's view bar needs: tabs, the save form's choices."""
    locale = current_locale()
    tabs = [{"name": saved.ALL, "label": t("views.all"), "personal": False, "mode": "list",
             "href": url_for("web.record_list", object_name=obj.name, view=saved.ALL), "active": chosen is None}]
    for v in views:
        tabs.append({"name": v["name"], "label": label_text(v.get("label"), locale, v["name"]),
                     "personal": v.get("owner") is not None, "mode": v.get("mode", "list"),
                     "href": url_for("web.record_list", object_name=obj.name, view=v["name"]),
                     "active": chosen is not None and v["name"] == chosen["name"]})
    admin = service.access.has_permission("metadata.apply")
    share = [("", t("views.share_me"))]
    if admin:
        share += [("*", t("views.share_everyone"))] + [
            (name, label_text(doc.get("label"), locale, name)) for name, doc in sorted(service.registry.roles.items())
            if name != "admin"]
    current = chosen if chosen is not None else None
    return {"tabs": tabs, "share": share, "can_share": admin,
            "save_url": url_for("web.view_save", object_name=obj.name),
            "query": request.query_string.decode("utf-8", "replace")[:4000],
            "current": current["name"] if current else saved.ALL,
            "can_delete": current is not None and (current.get("owner") == service.principal.user_id or admin),
            "delete_url": url_for("web.view_delete", object_name=obj.name, name=current["name"]) if current else None}


def usable_sort(sort: str | None, visible: dict) -> str | None:
    """A view's sort if the user may sort by it (a hidden field is dropped, not an error)."""
    from ..records import parse_sort

    if not sort:
        return None
    try:
        parse_sort(sort, {n: f for n, f in visible.items() if f.value_type not in ("multipicklist", "textarea")})
    except BadRequest:
        return None
    return sort


def combine(*conditions: Any) -> Any:
    parts = [c for c in conditions if c not in (None, {}, "")]
    return {"all": parts} if len(parts) > 1 else (parts[0] if parts else None)


@page("/records/<object_name>/views", methods=("POST",), endpoint="view_save")
def view_save(object_name: str):
    """Save what the list shows now (its query string is posted back) as a view."""
    from .list_views import build_filter

    service = current_service()
    obj = _object(service, object_name)
    args = MultiDict()
    from urllib.parse import parse_qsl

    for key, value in parse_qsl(request.form.get("query", ""), keep_blank_values=False):
        args.add(key, value)
    base = None
    if args.get("view") and args.get("view") != saved.ALL:
        base = next((v for v in saved.usable_views(service, obj.name) if v["name"] == args.get("view")), None)
    record_type = args.get("record_type") if args.get("record_type") in (obj.record_types or []) else None
    layout = forms.layout_for(service, obj, record_type)
    flt, _, _ = build_filter(service, obj, layout, args)
    condition = combine((base or {}).get("filter"), flt, {"record_type": record_type} if record_type else None)
    spec: dict[str, Any] = {"label": (request.form.get("label") or "").strip()}
    columns = (base or {}).get("columns") or list(layout.list_columns)
    if columns:
        spec["columns"] = columns
    if condition is not None:
        spec["filter"] = condition
    sort = args.get("sort") or (base or {}).get("sort")
    if sort:
        spec["sort"] = sort
    if base is not None and base.get("mode") == "kanban":
        spec.update({k: base[k] for k in ("mode", "kanban_field", "sum_field") if base.get(k)})
    share = request.form.get("share", "")
    shared = bool(share)
    if shared:
        spec["roles"] = [share]
        if request.form.get("default") == "on" and share != "*":
            spec["default_for_roles"] = [share]
    try:
        doc = saved.save_view(service, obj.name, spec, shared=shared)
    except ValidationFailed as exc:
        notify(t("views.label_required") if "label" in (exc.fields or {}) else t("views.not_saved"), "error")
        return redirect_to("web.record_list", object_name=obj.name, **args.to_dict())
    except CrmError as exc:
        if exc.status == 403:
            raise
        notify(t("views.not_saved"), "error")
        return redirect_to("web.record_list", object_name=obj.name, **args.to_dict())
    notify(t("views.saved", label=spec["label"]))
    return redirect_to("web.record_list", object_name=obj.name, view=doc["name"])


@page("/records/<object_name>/views/<name>/delete", methods=("POST",), endpoint="view_delete")
def view_delete(object_name: str, name: str):
    service = current_service()
    obj = _object(service, object_name)
    saved.delete_view(service, name, obj.name)
    saved.remember(service, obj.name, saved.ALL)
    notify(t("views.deleted"))
    return redirect_to("web.record_list", object_name=obj.name, view=saved.ALL)
