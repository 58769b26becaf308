"""Per-object list pages generated from metadata: filters, search, sort and keyset paging,
for the live records and for the recycle bin. Every read goes through the record service as
the logged-in user."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import request, url_for

from ...metadata.model import FieldDef, ObjectDef
from ..errors import BadRequest, CrmError
from ..records import RecordService, encode_cursor, parse_sort
from . import display, forms
from .core import current_service, page, redirect_to, render_page
from .i18n import current_locale, t
from .record_views import _object, _visible_fields

PAGE_SIZE = 25
SEARCHABLE = {"text", "email", "phone", "url", "autonumber"}
UNSORTABLE = {"multipicklist", "textarea", "password"}


def _parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def build_filter(service: RecordService, obj: ObjectDef, layout: forms.Layout, args) -> tuple[Any, list, list]:
    """(filter for RecordService.list, controls for the template, active extra conditions)."""
    visible = _visible_fields(service, obj)
    locale = current_locale()
    parts: list[dict] = []
    controls: list[dict] = []
    q = (args.get("q") or "").strip()
    search = [n for n in dict.fromkeys(([obj.name_field] if obj.name_field else []) + layout.list_columns)
              if n in visible and visible[n].value_type in SEARCHABLE]
    if q and search:
        parts.append({"any": [{n: {"contains": q}} for n in search]})
    handled: set[str] = set()
    for name in layout.list_filters:
        fdef = visible.get(name)
        if fdef is None:
            continue
        key = f"f.{name}"
        control = {"name": name, "key": key, "label": fdef.display_label(locale)}
        if fdef.value_type in ("picklist", "multipicklist"):
            value = args.get(key, "")
            opts = display.options(fdef, sorted(service.registry.roles))
            if value and value in {v for v, _ in opts}:
                parts.append({name: value} if fdef.value_type == "picklist" else {name: {"contains": value}})
            else:
                value = ""
            controls.append(dict(control, kind="select", value=value, options=opts))
        elif fdef.value_type == "boolean":
            value = args.get(key, "")
            if value in ("true", "false"):
                parts.append({name: value == "true"})
            else:
                value = ""
            controls.append(dict(control, kind="select", value=value,
                                 options=[("true", t("common.yes")), ("false", t("common.no"))]))
        elif fdef.value_type in ("date", "datetime"):
            start, end = _parse_date(args.get(f"{key}.from", "")), _parse_date(args.get(f"{key}.to", ""))
            if start:
                parts.append({name: {"gte": start.isoformat()}})
            if end:
                if fdef.value_type == "date":
                    parts.append({name: {"lte": end.isoformat()}})
                else:
                    parts.append({name: {"lt": (end + timedelta(days=1)).isoformat()}})
            controls.append(dict(control, kind="date_range", start=start.isoformat() if start else "",
                                 end=end.isoformat() if end else ""))
        elif fdef.type == "lookup" and not fdef.polymorphic:
            value = (args.get(key) or "")[:64]
            if value:
                parts.append({name: value})
            opts = _record_options(service, fdef.target[0], value)
            if opts is not None:
                controls.append(dict(control, kind="select", value=value, options=opts))
        else:
            continue
        handled.add(name)
    owner = args.get("owner", "")
    if "owner" in visible:
        if owner == "me":
            parts.append({"owner": "$user"})
        elif owner == "none":
            parts.append({"owner": None})
        elif owner:
            parts.append({"owner": owner[:64]})
        controls.append({"name": "owner", "key": "owner", "label": t("list.owner"), "kind": "select",
                         "value": owner, "options": _owner_options(service, owner)})
    # Plain equality on any other field (from "show all" links of related lists).
    extra = []
    for key in args:
        if not key.startswith("f.") or key.count(".") != 1:
            continue
        name = key[2:]
        if name in handled or name not in visible or not args.get(key):
            continue
        fdef = visible[name]
        if fdef.value_type in ("multipicklist", "textarea") or fdef.type == "password":
            continue
        parts.append({name: args.get(key)})
        extra.append({"key": key, "label": fdef.display_label(locale), "value": args.get(key)})
    flt = {"all": parts} if len(parts) > 1 else (parts[0] if parts else None)
    return flt, controls, extra


def _record_options(service: RecordService, target: str, current: str) -> list[tuple[str, str]] | None:
    """Up to 100 records of a lookup's target, by name, as filter choices (None: not readable)."""
    if not service.registry.has_object(target) or not service.access.can(target, "read"):
        return None
    obj = service.registry.object(target)
    name_field = obj.name_field if obj.name_field in _visible_fields(service, obj) else None
    try:
        items, _ = service.list(target, fields=[name_field] if name_field else None,
                                sort=name_field or "-created_at", limit=100)
    except CrmError:
        return None
    opts = [(item["id"], display.record_title(obj, item)) for item in items]
    if current and current not in {v for v, _ in opts}:
        names = display.Names(service)
        names.want(target, current)
        names.resolve()
        opts.append((current, names.name(target, current) or current))
    return opts


def _owner_options(service: RecordService, current: str) -> list[tuple[str, str]]:
    opts = [("me", t("list.owner_me")), ("none", t("list.owner_nobody"))]
    if service.access.can("user", "read") and service.registry.has_object("user"):
        try:
            users, _ = service.list("user", fields=["display_name", "username"], sort="username", limit=200)
        except CrmError:
            users = []
        opts += [(u["id"], u.get("display_name") or u.get("username") or u["id"]) for u in users]
    if current and current not in {v for v, _ in opts}:
        opts.append((current, current))
    return opts


def _sort(args, layout: forms.Layout, visible: dict[str, FieldDef], deleted: bool) -> str:
    default = "-deleted_at" if deleted else (layout.sort or "-created_at")
    wanted = args.get("sort") or default
    try:
        parse_sort(wanted, {n: f for n, f in visible.items() if f.value_type not in UNSORTABLE})
    except BadRequest:
        return default
    return wanted


def _reverse(order: list[tuple[str, bool]]) -> str:
    return ",".join(("" if descending else "-") + name for name, descending in order if name != "id")


def _list_page(object_name: str, deleted: bool):
    service = current_service()
    obj = _object(service, object_name)
    args = request.args
    # ?record_type=: that type's records, with that type's layout (its list_columns and filters).
    record_type = args.get("record_type") if args.get("record_type") in (obj.record_types or []) else None
    layout = forms.layout_for(service, obj, record_type)
    visible = _visible_fields(service, obj)
    locale = current_locale()
    view, bar = None, None
    if not deleted:  # saved views (saved_views.py); a kanban view renders its board (kanban.py)
        from . import kanban, saved_views

        view, views = saved_views.pick(service, obj)
        bar = saved_views.switcher(service, obj, view, views)
        if view is not None and view.get("mode") == "kanban":
            return kanban.board_page(service, obj, view, bar)
    flt, controls, extra = build_filter(service, obj, layout, args)
    filters_active = bool(flt)  # the controls' own filter (a view's is not one of them)
    if view is not None:
        flt = saved_views.combine(view.get("filter"), flt)
        layout.list_columns = [n for n in view.get("columns") or layout.list_columns if n in visible] \
            or layout.list_columns
        layout.sort = saved_views.usable_sort(view.get("sort"), visible) or layout.sort
    if record_type is not None:
        flt = {"all": [flt, {"record_type": record_type}]} if flt else {"record_type": record_type}
    sort = _sort(args, layout, visible, deleted)
    order = parse_sort(sort, visible)
    columns = list(layout.list_columns)
    if deleted and "deleted_at" in visible and "deleted_at" not in columns:
        columns.append("deleted_at")
    fetch = list(dict.fromkeys(columns + [n for n, _ in order] + ["owner", "record_type", "version"]
                               + ([obj.name_field] if obj.name_field in visible else [])))
    fetch = [n for n in fetch if n in visible]
    try:
        limit = max(5, min(100, int(args.get("limit", PAGE_SIZE))))
    except ValueError:
        limit = PAGE_SIZE
    after, before = args.get("after"), args.get("before")
    try:
        if before:
            items, more = service.list(obj.name, filter=flt, sort=_reverse(order), fields=fetch, limit=limit,
                                       cursor=before, deleted=deleted)
            items.reverse()
            has_newer, has_older = more is not None, True
        else:
            items, more = service.list(obj.name, filter=flt, sort=sort, fields=fetch, limit=limit,
                                       cursor=after, deleted=deleted)
            has_newer, has_older = bool(after), more is not None
    except BadRequest as exc:
        if exc.code != "bad_cursor" or not (after or before):
            raise
        return redirect_to(request.endpoint, **_args_without(("after", "before"), object_name=object_name))
    if not items and (after or before):
        return redirect_to(request.endpoint, **_args_without(("after", "before"), object_name=object_name))
    names = display.Names(service)
    for item in items:
        names.want_record(obj, item, columns)
    names.resolve()
    from .quick import inline, mass  # inline edit and mass actions (quick/)

    editable = set() if deleted else inline.editable_fields(service, obj, layout)
    rows = []
    for item in items:
        row_edit = bool(editable) and service.access.allows_row(obj.name, "edit", item)
        cells = [{"name": n, "label": obj.all_fields[n].display_label(locale),
                  "shown": display.show(obj.all_fields[n], item.get(n), names, item),
                  "inline": inline.inline_url(obj, item["id"], n) if row_edit and n in editable else None}
                 for n in columns]
        rows.append({"id": item["id"], "title": display.record_title(obj, item), "cells": cells,
                     "version": item.get("version"),
                     "href": url_for("web.record_detail", object_name=obj.name, record_id=item["id"]),
                     "can_restore": deleted and service.access.allows_row(obj.name, "delete", item)})
    base = _args_without(("after", "before"), object_name=obj.name)
    newer = url_for(request.endpoint, **base, before=encode_cursor(items[0], parse_sort(_reverse(order), visible),
                                                                    visible)) if has_newer and items else None
    older = url_for(request.endpoint, **base, after=encode_cursor(items[-1], order, visible)) \
        if has_older and items else None
    headers = []
    sort_field, descending = order[0]
    for n in columns:
        fdef = obj.all_fields[n]
        sortable = fdef.value_type not in UNSORTABLE
        active = n == sort_field
        next_sort = (n if descending else f"-{n}") if active else (f"-{n}" if fdef.value_type in (
            "date", "datetime", "integer", "decimal", "currency", "percent") else n)
        headers.append({"name": n, "label": fdef.display_label(locale), "active": active,
                        "descending": descending, "href": url_for(request.endpoint, **dict(
                            _args_without(("after", "before", "sort"), object_name=obj.name), sort=next_sort))
                        if sortable else None})
    return render_page(
        "list.html", obj=obj, obj_label=obj.display_label(locale, plural=True), headers=headers, rows=rows,
        controls=controls, extra=extra, q=args.get("q", ""), sort=sort, newer=newer, older=older,
        deleted=deleted, can_create=service.access.can(obj.name, "create") and not deleted,
        filters_active=filters_active, clear_url=url_for(request.endpoint, object_name=obj.name),
        record_types=obj.record_types,
        export_url=None if deleted else _export_url(service, obj.name), bar=bar, view=view,
        export_xlsx_url=None if deleted else _export_url(service, obj.name, "xlsx"),
        selection=None if deleted else mass.list_toolbar(service, obj, flt, view),
    )


def _export_url(service: RecordService, object_name: str, fmt: str | None = None) -> str | None:
    from .export_views import export_url  # imports this module

    return export_url(service, object_name, fmt)


def _args_without(names: tuple[str, ...], **values: Any) -> dict:
    out = {k: v for k, v in request.args.items() if k not in names and v != ""}
    out.update(values)
    return out


@page("/records/<object_name>")
def record_list(object_name: str):
    return _list_page(object_name, deleted=False)


@page("/records/<object_name>/recycle-bin")
def record_recycle_bin(object_name: str):
    return _list_page(object_name, deleted=True)
