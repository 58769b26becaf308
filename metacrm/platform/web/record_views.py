"""Per-object pages generated from metadata: list (filters, sort, keyset paging), detail
(sections, related lists, history), create / edit forms, delete to the recycle bin and
restore. Every read and write goes through the record service as the logged-in user."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import request, url_for

from ...metadata.model import FieldDef, ObjectDef
from ..errors import BadRequest, CrmError, Forbidden, NotFound, StaleVersion, ValidationFailed
from ..records import RecordService, encode_cursor, parse_sort
from . import display, forms
from .core import current_service, notify, page, redirect_to, render_page, runtime
from .i18n import current_locale, t

PAGE_SIZE = 25
SEARCHABLE = {"text", "email", "phone", "url", "autonumber"}
UNSORTABLE = {"multipicklist", "textarea", "password"}
RELATED_LIMIT = 5


def _object(service: RecordService, name: str) -> ObjectDef:
    obj = service.obj(name)
    if not service.access.can(obj.name, "read"):
        raise NotFound(f"Unknown object {name!r}.", code="unknown_object")
    return obj


def _visible_fields(service: RecordService, obj: ObjectDef) -> dict[str, FieldDef]:
    hidden = service.access.hidden_fields(obj.name)
    return {n: f for n, f in obj.all_fields.items() if n not in hidden and f.type != "password"}


# --- list -----------------------------------------------------------------------------------


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
    layout = forms.layout_for(service, obj)
    visible = _visible_fields(service, obj)
    locale = current_locale()
    args = request.args
    flt, controls, extra = build_filter(service, obj, layout, args)
    sort = _sort(args, layout, visible, deleted)
    order = parse_sort(sort, visible)
    columns = list(layout.list_columns)
    if deleted and "deleted_at" in visible and "deleted_at" not in columns:
        columns.append("deleted_at")
    fetch = list(dict.fromkeys(columns + [n for n, _ in order] + ["owner", "record_type"]
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
    rows = []
    for item in items:
        cells = [{"name": n, "label": obj.all_fields[n].display_label(locale),
                  "shown": display.show(obj.all_fields[n], item.get(n), names, item)} for n in columns]
        rows.append({"id": item["id"], "title": display.record_title(obj, item), "cells": cells,
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
        filters_active=bool(flt), clear_url=url_for(request.endpoint, object_name=obj.name),
        record_types=obj.record_types,
        export_url=None if deleted else _export_url(service, obj.name),
    )


def _export_url(service: RecordService, object_name: str) -> str | None:
    from .export_views import export_url  # imports this module

    return export_url(service, object_name)


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


# --- detail ---------------------------------------------------------------------------------


def _related(service: RecordService, obj: ObjectDef, record: dict, layout: forms.Layout) -> list[dict]:
    locale = current_locale()
    lists = []
    for rel in layout.related_lists:
        child = service.registry.object(rel["object"])
        via = rel.get("via") or next((f.name for c, f in service.registry.children_of(obj.name)
                                      if c.name == child.name), None)
        if via is None or via not in child.fields:
            continue
        visible = _visible_fields(service, child)
        if via not in visible:
            continue
        columns = [c for c in rel.get("columns") or [] if c in visible] or [
            n for n in ([child.name_field] if child.name_field else []) + ["created_at"] if n in visible]
        limit = int(rel.get("limit") or RELATED_LIMIT)
        try:
            items, more = service.list(child.name, filter={via: record["id"]},
                                       fields=list(dict.fromkeys(columns + ["owner"])), limit=limit)
        except CrmError:
            continue
        names = display.Names(service)
        for item in items:
            names.want_record(child, item, columns)
        names.resolve()
        can_create = service.access.can(child.name, "create") and via in {
            f.name for f in service.writable_fields(child, True)[0]}
        lists.append({
            "obj": child,
            "title": display.label_text(rel.get("label"), locale, child.display_label(locale, plural=True))
            if rel.get("label") else child.display_label(locale, plural=True),
            "headers": [child.all_fields[c].display_label(locale) for c in columns],
            "rows": [{"href": url_for("web.record_detail", object_name=child.name, record_id=item["id"]),
                      "title": display.record_title(child, item),
                      "cells": [{"label": child.all_fields[c].display_label(locale),
                                 "shown": display.show(child.all_fields[c], item.get(c), names, item)}
                                for c in columns]} for item in items],
            "more": url_for("web.record_list", object_name=child.name, **{f"f.{via}": record["id"]})
            if more else None,
            "new": url_for("web.record_new", object_name=child.name, **{via: record["id"]}) if can_create else None,
        })
    return lists


def _history(service: RecordService, obj: ObjectDef, record_id: str, names: display.Names) -> list[dict]:
    locale = current_locale()
    entries = service.history(obj.name, record_id)
    for entry in entries:
        names.want("user", entry.get("user"))
        for name, (old, new) in (entry.get("changes") or {}).items():
            fdef = obj.all_fields.get(name)
            if fdef is not None and fdef.is_reference and not fdef.polymorphic:
                names.want(fdef.target[0], old)
                names.want(fdef.target[0], new)
    names.resolve()
    out = []
    for entry in reversed(entries):
        changes = []
        for name, pair in (entry.get("changes") or {}).items():
            fdef = obj.all_fields.get(name)
            if fdef is None or fdef.type == "password" or not isinstance(pair, list) or len(pair) != 2:
                continue
            changes.append({"label": fdef.display_label(locale),
                            "old": display.show(fdef, pair[0], names, {}).text,
                            "new": display.show(fdef, pair[1], names, {}).text})
        key = f"history.{entry['action']}"
        action = t(key) if t(key) != key else entry["action"].replace("_", " ").capitalize()
        user = names.name("user", entry.get("user")) if entry.get("user") else t("history.system")
        out.append({"at": display.datetime_text(entry["at"]), "action": action, "user": user or entry.get("user"),
                    "changes": changes, "note": entry.get("note")})
    return out


SYSTEM_SHOWN = ("owner", "record_type", "created_at", "created_by", "updated_at", "updated_by", "pool",
                "last_activity_at")


@page("/records/<object_name>/<record_id>")
def record_detail(object_name: str, record_id: str):
    service = current_service()
    obj = _object(service, object_name)
    record = service.get(obj.name, record_id)
    layout = forms.layout_for(service, obj, record.get("record_type"))
    locale = current_locale()
    names = display.Names(service)
    shown_fields = [n for s in layout.sections for n in s.fields]
    system = [n for n in SYSTEM_SHOWN if n in record and n not in shown_fields and record.get(n) is not None]
    names.want_record(obj, record, shown_fields + system)
    names.resolve()

    def cell(name: str) -> dict:
        fdef = obj.all_fields[name]
        return {"name": name, "label": fdef.display_label(locale), "shown": display.show(fdef, record.get(name),
                                                                                          names, record),
                "long": fdef.type in forms.LONG_TYPES}

    sections = [{"label": s.label, "columns": s.columns,
                 "cells": [cell(n) for n in s.fields if n in record]} for s in layout.sections]
    history = _history(service, obj, record_id, display.Names(service))
    return render_page(
        "detail.html", obj=obj, record=record, title=display.record_title(obj, record),
        obj_label=obj.display_label(locale), sections=sections, system=[cell(n) for n in system],
        related=_related(service, obj, record, layout), history=history,
        can_edit=service.access.allows_row(obj.name, "edit", record),
        can_delete=service.access.allows_row(obj.name, "delete", record),
    )


# --- create and edit ----------------------------------------------------------------------


def _record_type(service: RecordService, obj: ObjectDef) -> tuple[str | None, bool]:
    """(the record type of a new record, whether the user may choose it)."""
    default = obj.record_types[0] if obj.record_types else None
    choose = len(obj.record_types) > 1 and "record_type" in {f.name for f in service.writable_fields(obj, True)[0]}
    wanted = request.form.get("_record_type") or request.args.get("record_type")
    return (wanted if choose and wanted in obj.record_types else default), choose


def _refused(detail: str, back: str):
    return render_page("error.html", 400, title=t("error.bad_request"), message=t("form.tampered", detail=detail),
                       back=back)


def _more_errors(service: RecordService, obj: ObjectDef, data: dict, creating: bool,
                 old: dict | None = None) -> dict:
    """The record service's own validation, for showing every problem at once."""
    try:
        with runtime().reading() as conn:
            service.coerce(obj, data, creating=creating, conn=conn, old=old)
    except ValidationFailed as exc:
        return exc.fields
    except CrmError:
        return {}
    return {}


def _merge(errors: dict, more: dict) -> dict:
    merged = {k: list(v) for k, v in errors.items()}
    for name, messages in more.items():
        merged.setdefault(name, [])
        merged[name].extend(m for m in (messages if isinstance(messages, list) else [messages])
                            if m not in merged[name])
    return merged


@page("/records/<object_name>/new", methods=("GET", "POST"))
def record_new(object_name: str):
    service = current_service()
    obj = _object(service, object_name)
    if not service.access.can(obj.name, "create"):
        raise Forbidden(f"You may not create {obj.name} records.")
    record_type, choose_type = _record_type(service, obj)
    layout = forms.layout_for(service, obj, record_type)
    prefill = {k: v for k, v in request.args.items() if k in obj.fields} if request.method == "GET" else {}
    form = forms.build_form(service, obj, layout, creating=True, prefill=prefill)
    form.record_type = record_type
    status = 200
    if request.method == "POST":
        try:
            data = forms.parse(form, request.form)
        except forms.Tampered as exc:
            return _refused(exc.detail, url_for("web.record_new", object_name=obj.name))
        if choose_type and record_type:
            data["record_type"] = record_type
        errors = forms.required_errors(form, data)
        try:
            if errors:
                raise ValidationFailed("layout", fields=_merge(errors, _more_errors(service, obj, data, True)))
            ctx = service.create_record(obj.name, data)
        except ValidationFailed as exc:
            form = forms.build_form(service, obj, layout, creating=True, posted=request.form)
            form.record_type = record_type
            forms.attach_errors(form, exc.fields or {})
            if not exc.fields:
                form.errors.append(exc.message)
            status = 400
        except CrmError as exc:
            if exc.status in (403, 404) and exc.code != "record_not_found":
                raise
            form = forms.build_form(service, obj, layout, creating=True, posted=request.form)
            form.record_type = record_type
            form.errors.append(exc.message)
            forms.attach_errors(form, exc.fields or {})
            status = exc.status
        else:
            for warning in ctx.warnings:
                notify(str(warning.get("message") if isinstance(warning, dict) else warning), "warning")
            notify(t("flash.created", object=obj.display_label(current_locale())))
            if not service.access.allows_row(obj.name, "read", ctx.record):
                # e.g. a pool took it on entry: the list, not a "not found" page
                return redirect_to("web.record_list", object_name=obj.name)
            return redirect_to("web.record_detail", object_name=obj.name, record_id=ctx.record["id"])
    return render_page("form.html", status, form=form, obj=obj, title=t(
        "form.new_title", object=obj.display_label(current_locale())),
        action=url_for("web.record_new", object_name=obj.name),
        cancel=url_for("web.record_list", object_name=obj.name),
        type_links=[(rt, display.humanise(rt), url_for("web.record_new", object_name=obj.name, record_type=rt))
                    for rt in obj.record_types] if choose_type else [])


@page("/records/<object_name>/<record_id>/edit", methods=("GET", "POST"))
def record_edit(object_name: str, record_id: str):
    service = current_service()
    obj = _object(service, object_name)
    record = service.get(obj.name, record_id)
    if not service.access.allows_row(obj.name, "edit", record):
        raise Forbidden(f"You may not edit this {obj.name} record.")
    layout = forms.layout_for(service, obj, record.get("record_type"))
    form = forms.build_form(service, obj, layout, creating=False, record=record)
    status = 200
    back = url_for("web.record_edit", object_name=obj.name, record_id=record_id)
    if request.method == "POST":
        if request.form.get("_id") != record_id:
            return _refused(t("form.tamper_record"), back)
        try:
            version = int(request.form.get("_version", ""))
        except ValueError:
            return _refused(t("form.tamper_version"), back)
        try:
            data = forms.parse(form, request.form)
        except forms.Tampered as exc:
            return _refused(exc.detail, back)
        errors = forms.required_errors(form, data)
        try:
            if errors:
                raise ValidationFailed("layout", fields=_merge(errors, _more_errors(service, obj, data, False, record)))
            service.update_record(obj.name, record_id, data, version=version)
        except StaleVersion:
            current = service.get(obj.name, record_id)
            form = forms.build_form(service, obj, layout, creating=False, record=current, posted=request.form)
            forms.show_current(form, current, display.Names(service))
            form.conflict = True
            status = 409
        except ValidationFailed as exc:
            form = forms.build_form(service, obj, layout, creating=False, record=record, posted=request.form)
            form.version = version
            forms.attach_errors(form, exc.fields or {})
            if not exc.fields:
                form.errors.append(exc.message)
            status = 400
        except CrmError as exc:
            if exc.status in (403, 404):
                raise
            form = forms.build_form(service, obj, layout, creating=False, record=record, posted=request.form)
            form.version = version
            form.errors.append(exc.message)
            status = exc.status
        else:
            notify(t("flash.saved"))
            return redirect_to("web.record_detail", object_name=obj.name, record_id=record_id)
    return render_page("form.html", status, form=form, obj=obj,
                       title=t("form.edit_title", object=obj.display_label(current_locale())),
                       subtitle=display.record_title(obj, record), action=back,
                       cancel=url_for("web.record_detail", object_name=obj.name, record_id=record_id), type_links=[])


# --- recycle bin ----------------------------------------------------------------------------


@page("/records/<object_name>/<record_id>/delete", methods=("POST",))
def record_delete(object_name: str, record_id: str):
    service = current_service()
    obj = _object(service, object_name)
    service.delete(obj.name, record_id)
    notify(t("flash.deleted", object=obj.display_label(current_locale())),
           undo={"url": url_for("web.record_restore", object_name=obj.name, record_id=record_id),
                 "label": t("flash.undo")})
    return redirect_to("web.record_list", object_name=obj.name)


@page("/records/<object_name>/<record_id>/restore", methods=("POST",))
def record_restore(object_name: str, record_id: str):
    service = current_service()
    obj = _object(service, object_name)
    service.restore(obj.name, record_id)
    notify(t("flash.restored", object=obj.display_label(current_locale())))
    return redirect_to("web.record_detail", object_name=obj.name, record_id=record_id)
