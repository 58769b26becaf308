"""Admin → Layouts: every object's layouts (who each serves), a new one, and the designer.

- `/admin/layouts`: the layouts of every object, with the roles and record types each serves;
- `/admin/layouts/new/<object>`: a new layout for some roles / record types, started from an
  existing one or from every field;
- `/admin/layouts/<name>`: the designer (draft.py): sections (labels in en and zh-CN, one or two
  columns, order), fields, related lists and list columns placed by drag and drop or by the
  buttons beside each item, and a preview at desktop and phone width on a sample record.

Every save is the raw editor's dry run first (`admin._run`): "Review changes" shows the diff,
"Apply changes" applies it with the version the page was loaded with (someone else's change in
between is a 409 and nothing is saved). Only metadata admins reach these pages (403 otherwise).
"""

from __future__ import annotations

from typing import Any

from flask import request, url_for

from ...metadata.model import NAME_RE, label_text
from ...platform.errors import BadRequest, CrmError, NotFound
from ...platform.features import Routes
from ...platform.metastore import ABSENT
from ...platform.web import display
from ...platform.web.admin import _form_versions, _require_admin, _run, slug, versions_of
from ...platform.web.core import NavEntry, current_service, notify, redirect_to, render_page
from ...platform.web.forms import LONG_TYPES, default_layout_doc
from ...platform.web.i18n import current_locale, t
from . import draft as drafts

routes = Routes()
NAV = (NavEntry("admin_layouts", "nav.admin_layouts", "web.studio_layout_list", section="admin", order=16,
                visible=lambda access: access.has_permission("metadata.apply")),)
WIDTHS = ("desktop", "phone")


def _object(name: str):
    registry = current_service().registry
    if not registry.has_object(name):
        raise NotFound(f"Unknown object {name!r}.", code="unknown_object")
    return registry.object(name)


def _live(name: str) -> dict:
    doc = current_service().registry.get("layout", name)
    if doc is None or not current_service().registry.has_object(doc.get("object")):
        raise NotFound(f"No layout named {name!r}.", code="unknown_layout")
    return doc


def _role_label(name: str) -> str:
    if name == "*":
        return t("layouts.all_roles")
    doc = current_service().registry.roles.get(name)
    return label_text((doc or {}).get("label"), current_locale(), name)


def _type_label(obj, name: str) -> str:
    return t("layouts.all_types") if name == "*" else obj.record_type_label(name, current_locale())


def _doc_label(doc: dict, obj) -> str:
    return label_text(doc.get("label"), current_locale(), "") or t("layouts.unnamed", object=obj.display_label(
        current_locale()))


# --- the list ------------------------------------------------------------------------------


@routes.page("/admin/layouts")
def studio_layout_list():
    _require_admin()
    registry = current_service().registry
    locale = current_locale()
    groups = []
    for name, obj in sorted(registry.objects.items(), key=lambda item: item[1].display_label(locale).casefold()):
        items = []
        for doc in registry.layouts(name):
            applies = doc.get("applies_to") or {}
            items.append({"name": doc["name"], "label": _doc_label(doc, obj),
                          "roles": [_role_label(r) for r in applies.get("roles") or ["*"]],
                          "types": [_type_label(obj, r) for r in applies.get("record_types") or ["*"]],
                          "sections": len(doc.get("sections") or []),
                          "href": url_for("web.studio_layout_designer", name=doc["name"])})
        groups.append({"name": name, "label": obj.display_label(locale), "layouts": items,
                       "has_types": bool(obj.record_types),
                       "new": url_for("web.studio_layout_new", of_object=name)})
    return render_page("studio_layouts/list.html", groups=groups)


# --- a new layout ----------------------------------------------------------------------------


def _new_context(obj, values: dict, **extra: Any) -> dict:
    registry = current_service().registry
    locale = current_locale()
    roles = sorted(((n, _role_label(n)) for n in registry.roles), key=lambda pair: pair[1].casefold())
    return dict(obj=obj, obj_label=obj.display_label(locale), values=values, roles=roles,
                types=[(n, _type_label(obj, n)) for n in obj.record_types or []],
                sources=[(d["name"], _doc_label(d, obj)) for d in registry.layouts(obj.name)],
                errors=extra.pop("errors", {}), issues=extra.pop("issues", []), **extra)


@routes.page("/admin/layouts/new/<of_object>", methods=("GET", "POST"))
def studio_layout_new(of_object: str):
    """(`of_object`, not `object_name`: the navigation would take this page for the object's list.)"""
    _require_admin()
    obj = _object(of_object)
    registry = current_service().registry
    if request.method == "GET":
        first = registry.layouts(obj.name)
        return render_page("studio_layouts/new.html", **_new_context(
            obj, {"roles": [], "record_types": [], "copy_from": first[0]["name"] if first else ""}))
    form = request.form
    values: dict[str, Any] = {k: form.get(k, "").strip() for k in ("name", "label_en", "label_zh", "copy_from")}
    values["roles"] = form.getlist("roles")
    values["record_types"] = form.getlist("record_types")
    name = values["name"] or slug(f"{obj.name} {values['label_en']}")
    errors: dict[str, str] = {}
    if not NAME_RE.match(name or ""):
        errors["name"] = t("admin.bad_name")
    elif registry.get("layout", name) is not None:
        errors["name"] = t("layouts.exists")
    if not values["label_en"] and not values["label_zh"]:
        errors["label_en"] = t("form.required_missing")
    if any(r not in registry.roles for r in values["roles"]):
        errors["roles"] = t("layouts.unknown_role", role=", ".join(r for r in values["roles"]
                                                                   if r not in registry.roles))
    if any(r not in (obj.record_types or []) for r in values["record_types"]):
        errors["record_types"] = t("layouts.unknown_record_type", type=", ".join(
            r for r in values["record_types"] if r not in (obj.record_types or [])))
    source = registry.get("layout", values["copy_from"]) if values["copy_from"] else None
    if values["copy_from"] and (source is None or source.get("object") != obj.name):
        errors["copy_from"] = t("layouts.unknown_layout")
    if errors:
        return render_page("studio_layouts/new.html", 400, **_new_context(obj, values, errors=errors))
    start = dict(source or default_layout_doc(obj))
    for key in ("label", "applies_to", "description", "plugin"):
        start.pop(key, None)
    start["name"] = name
    draft = drafts.from_document(start, registry, obj)
    draft.label_en, draft.label_zh = values["label_en"], values["label_zh"]
    draft.roles = values["roles"] or ["*"]
    draft.record_types = values["record_types"] or ["*"]
    doc = drafts.to_document(draft, None, registry, obj)
    for key in ("list_filters", "sort", "required", "read_only", "hidden"):
        if key in start:
            doc[key] = start[key]
    action = form.get("_action", "preview")
    outcome = _run([doc], [], action, {("layout", name): ABSENT})
    status = outcome.pop("status")
    outcome.pop("stale", None)
    if "issues" in outcome and status == 409:
        errors["name"] = t("layouts.exists")
    if action == "apply" and "result" in outcome:
        notify(t("layouts.created", name=_doc_label(doc, obj)))
        return redirect_to("web.studio_layout_designer", name=name)
    values["name"] = name
    return render_page("studio_layouts/new.html", status, **_new_context(obj, values, errors=errors, **outcome))


# --- the designer ----------------------------------------------------------------------------


def _field_label(obj, name: str) -> str:
    fdef = obj.all_fields.get(name)
    return fdef.display_label(current_locale()) if fdef is not None else name


def _related_label(registry, key: str) -> str:
    child_name, _, via = key.partition(".")
    if not registry.has_object(child_name):
        return key
    child = registry.object(child_name)
    locale = current_locale()
    text = child.display_label(locale, plural=True)
    vdef = child.all_fields.get(via)
    return f"{text} · {vdef.display_label(locale)}" if vdef is not None else text


def _sample(obj, draft: drafts.Draft) -> dict:
    """A record to preview on: the newest one (of the layout's record type, if it has one)."""
    service = current_service()
    flt = {"record_type": draft.record_types[0]} if draft.record_types != ["*"] and obj.record_types else None
    try:
        items, _ = service.list(obj.name, filter=flt, sort="-updated_at", limit=1)
        if not items and flt:
            items, _ = service.list(obj.name, sort="-updated_at", limit=1)
    except CrmError:
        items = []
    return items[0] if items else {}


def _preview(obj, draft: drafts.Draft) -> dict:
    registry = current_service().registry
    locale = current_locale()
    record = _sample(obj, draft)
    names = display.Names(current_service())
    placed = [n for s in draft.sections for n in s.fields if n in obj.all_fields]
    if record:
        names.want_record(obj, record, placed)
        names.resolve()
    sections = []
    for index, sec in enumerate(draft.sections):
        cells = []
        for n in sec.fields:
            fdef = obj.all_fields.get(n)
            if fdef is None:
                continue
            cells.append({"name": n, "label": fdef.display_label(locale),
                          "shown": display.show(fdef, record.get(n), names, record), "long": fdef.type in LONG_TYPES})
        fallback = obj.display_label(locale) if index == 0 else ""
        sections.append({"label": drafts.section_label(sec, locale, fallback),
                         "columns": sec.columns if sec.columns in (1, 2) else 1, "cells": cells})
    related = []
    for key in draft.related:
        child_name, _, _ = key.partition(".")
        if registry.has_object(child_name):
            related.append({"title": registry.object(child_name).display_label(locale, plural=True), "key": key})
    return {"sections": sections, "related": related,
            "title": display.record_title(obj, record) if record else t("layouts.sample_none"),
            "has_record": bool(record)}


def _designer_context(live: dict | None, draft: drafts.Draft, **extra: Any) -> dict:
    registry = current_service().registry
    obj = registry.object(draft.object)
    locale = current_locale()
    errors = extra.pop("errors", {})
    placed = draft.placed()
    allowed = drafts.placeable_fields(obj)
    sections = []
    for index, sec in enumerate(draft.sections):
        sections.append({"index": index, "label_en": sec.label_en, "label_zh": sec.label_zh,
                         "columns": sec.columns_text if sec.columns not in (1, 2) else str(sec.columns),
                         "title": drafts.section_label(sec, locale) or t("layouts.section_n", n=index + 1),
                         "fields": [{"name": n, "label": _field_label(obj, n), "known": n in allowed}
                                    for n in sec.fields],
                         "value": ",".join(sec.fields)})
    palette = [{"name": n, "label": _field_label(obj, n), "system": n not in obj.fields}
               for n in allowed if n not in placed]
    related_all = drafts.related_choices(registry, obj)
    related = [{"key": k, "label": _related_label(registry, k)} for k in draft.related]
    related_palette = [{"key": k, "label": _related_label(registry, k)} for k, _, _ in related_all
                       if k not in draft.related]
    columns = None
    columns_palette: list[dict] = []
    if draft.list_columns is not None:
        columns = [{"name": n, "label": _field_label(obj, n)} for n in draft.list_columns]
        columns_palette = [{"name": n, "label": _field_label(obj, n)} for n in allowed
                           if n not in draft.list_columns and obj.all_fields[n].type != "password"]
    roles = sorted(((n, _role_label(n)) for n in registry.roles), key=lambda pair: pair[1].casefold())
    # required fields a form with this layout would not offer (a new record could not be saved)
    unplaced_required = [f.display_label(locale) for n, f in obj.fields.items()
                         if f.required and f.default is None and not f.read_only and n not in placed
                         and f.type not in ("formula", "rollup", "autonumber")]
    width = request.form.get("preview_width", "desktop") if request.method == "POST" else "desktop"
    return dict(obj=obj, obj_label=obj.display_label(locale), draft=draft, live=live, sections=sections,
                palette=palette, related=related, related_palette=related_palette,
                related_value=",".join(draft.related), columns=columns, columns_palette=columns_palette,
                columns_value=",".join(draft.list_columns or []), roles=roles,
                types=[(n, _type_label(obj, n)) for n in obj.record_types or []],
                width=width if width in WIDTHS else "desktop", preview=_preview(obj, draft),
                layout_label=_doc_label(live or {}, obj) if live else draft.name,
                unplaced_required=unplaced_required,
                errors=errors, issues=extra.pop("issues", []),
                versions=extra.pop("versions", None) or versions_of([("layout", draft.name)]), **extra)


def _issue_errors(issues: list[dict], name: str) -> tuple[dict[str, str], list[dict]]:
    """apply_change's issues beside their input where the path says which one."""
    errors, rest = {}, []
    for issue in issues:
        parts = str(issue.get("path", "")).strip("/").split("/")
        if issue.get("document") != f"layout/{name}" or not parts[0]:
            rest.append(issue)
        elif parts[0] == "sections" and len(parts) > 1 and parts[1].isdigit():
            key = "label_en" if len(parts) > 2 and parts[2] == "label" else \
                "columns" if len(parts) > 2 and parts[2] == "columns" else "fields"
            errors.setdefault(f"sec.{parts[1]}.{key}", issue["message"])
        elif parts[0] == "applies_to" and len(parts) > 1:
            errors.setdefault(parts[1], issue["message"])
        elif parts[0] in ("related_lists", "list_columns"):
            errors.setdefault("related" if parts[0] == "related_lists" else "list_columns", issue["message"])
        else:
            rest.append(issue)
    return errors, rest


@routes.page("/admin/layouts/<name>", methods=("GET", "POST"))
def studio_layout_designer(name: str):
    _require_admin()
    live = _live(name)
    registry = current_service().registry
    obj = registry.object(live["object"])
    if request.method == "GET":
        return render_page("studio_layouts/designer.html",
                           **_designer_context(live, drafts.from_document(live, registry, obj)))
    form = request.form
    draft = drafts.from_form(form, name, obj.name)
    loaded = form.get("versions") or None
    op = form.get("_op", "")
    if op.startswith("w."):  # the preview width, without script
        return render_page("studio_layouts/designer.html", **_designer_context(live, draft, versions=loaded))
    if op:
        drafts.apply_op(draft, op, form)
        return render_page("studio_layouts/designer.html", **_designer_context(live, draft, versions=loaded))
    action = form.get("_action", "preview")
    errors, page_errors = drafts.check(draft, registry, obj, t)
    issues = [{"document": f"layout/{name}", "path": "/", "message": m} for m in page_errors]
    try:
        expected = _form_versions()
    except BadRequest as exc:
        issues.append({"document": f"layout/{name}", "path": "/", "message": exc.message})
        expected = {}
    if errors and not issues:
        issues = [{"document": f"layout/{name}", "path": "/", "message": t("layouts.fix_inputs")}]
    if errors or issues:
        return render_page("studio_layouts/designer.html", 400, **_designer_context(
            live, draft, errors=errors, issues=issues, versions=loaded))
    doc = drafts.to_document(draft, live, registry, obj)
    outcome = _run([doc], [], action, expected)
    status = outcome.pop("status")
    stale = outcome.pop("stale", False)
    if "issues" in outcome:
        found, rest = _issue_errors(outcome.pop("issues"), name)
        errors.update(found)
        issues = rest or [{"document": f"layout/{name}", "path": "/", "message": t("layouts.fix_inputs")}]
    if action == "apply" and "result" in outcome:
        notify(t("admin.applied", version=outcome["result"].version) if not outcome["unchanged"]
               else t("admin.no_changes"))
        return redirect_to("web.studio_layout_designer", name=name)
    if stale:  # the page now shows the live layout; a new save starts from it
        return render_page("studio_layouts/designer.html", status, **_designer_context(
            live, drafts.from_document(live, registry, obj), issues=issues))
    return render_page("studio_layouts/designer.html", status, **_designer_context(
        live, draft, errors=errors, issues=issues, versions=loaded, **outcome))
