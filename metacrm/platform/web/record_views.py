"""Per-object record pages generated from metadata: the detail page (sections, related
lists, history), and delete to the recycle bin and restore; with the guards the list and form
pages share (list_views.py, form_views.py). Every read and write goes through the record
service as the logged-in user."""

from __future__ import annotations

from flask import url_for

from ...metadata.model import FieldDef, ObjectDef
from ..errors import CrmError, NotFound
from ..records import RecordService
from . import display, forms
from .core import current_service, notify, page, redirect_to, render_page
from .history_notes import NoteText
from .i18n import current_locale, t

RELATED_LIMIT = 5


def _object(service: RecordService, name: str) -> ObjectDef:
    obj = service.obj(name)
    if not service.access.can(obj.name, "read"):
        raise NotFound(f"Unknown object {name!r}.", code="unknown_object")
    return obj


def _visible_fields(service: RecordService, obj: ObjectDef) -> dict[str, FieldDef]:
    hidden = service.access.hidden_fields(obj.name)
    return {n: f for n, f in obj.all_fields.items() if n not in hidden and f.type != "password"}


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
    note_text = NoteText(service, names)
    for entry in entries:
        names.want("user", entry.get("user"))
        note_text.want(entry.get("note"))
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
                    "changes": changes, "note": note_text.text(entry.get("note"), entry.get("action"))})
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
    from .quick import inline, recent  # inline edit and recent items (quick/)

    recent.remember(obj.name, record["id"])
    editable = inline.editable_fields(service, obj, layout) if service.access.allows_row(
        obj.name, "edit", record) and not inline.record_locked(service, obj, record["id"]) else set()

    def cell(name: str) -> dict:
        fdef = obj.all_fields[name]
        return {"name": name, "label": fdef.display_label(locale), "shown": display.show(fdef, record.get(name),
                                                                                          names, record),
                "long": fdef.type in forms.LONG_TYPES,
                "inline": inline.inline_url(obj, record["id"], name) if name in editable else None}

    sections = [{"label": s.label, "columns": s.columns,
                 "cells": [cell(n) for n in s.fields if n in record]} for s in layout.sections]
    history = _history(service, obj, record_id, display.Names(service))
    from .stage_path import stage_path

    return render_page(
        "detail.html", obj=obj, record=record, title=display.record_title(obj, record),
        obj_label=obj.display_label(locale), sections=sections, system=[cell(n) for n in system],
        related=_related(service, obj, record, layout), history=history,
        stage=stage_path(service, obj, record),
        can_edit=service.access.allows_row(obj.name, "edit", record),
        can_delete=service.access.allows_row(obj.name, "delete", record),
    )


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
