"""Admin → Web forms: every public form with its submissions (count, last, links to the records),
the embed snippet, and an editor that writes the `web_form` document through the same dry-run
diff and apply as the other admin pages (web/admin.py `_run`, the versions the form loaded)."""

from __future__ import annotations

import copy
from typing import Any

import sqlalchemy as sa
from flask import request, url_for

from ...metadata.model import NAME_RE, label_text
from ...metadata.validate_web_forms import form_field_problem
from ..errors import BadRequest, NotFound
from ..features import Routes
from ..i18n import format_datetime, format_number
from ..web.admin import _form_versions, _labels, _require_admin, _run, slug, versions_of
from ..web.core import NavEntry, current_service, notify, redirect_to, render_page, runtime
from ..web.i18n import current_locale, t
from . import store

routes = Routes()
KIND = "web_form"
OUTCOMES = ("created", "duplicate")


def _label(doc: dict) -> str:
    return label_text(doc.get("label"), current_locale(), doc["name"])


def _live(name: str) -> dict:
    doc = current_service().registry.get(KIND, name)
    if doc is None:
        raise NotFound(f"No web form named {name!r}.", code="unknown_form")
    return doc


def _public_url(name: str) -> str:
    return url_for("web.web_form_public", name=name, _external=True)


@routes.page("/admin/web-forms")
def admin_web_forms():
    _require_admin()
    registry = current_service().registry
    counts = store.summary(runtime().engine)
    locale = current_locale()
    rows = []
    for doc in sorted(registry.of_kind(KIND), key=lambda d: _label(d).casefold()):
        seen = counts.get(doc["name"], {})
        obj = registry.objects.get(doc.get("object"))
        rows.append({"name": doc["name"], "label": _label(doc), "active": doc.get("active", True),
                     "object": obj.display_label(locale) if obj else doc.get("object"),
                     "count": format_number(seen.get("count", 0), locale),
                     "last": format_datetime(seen.get("last"), locale) if seen.get("last") else "",
                     "href": url_for("web.admin_web_form", name=doc["name"]),
                     "public": url_for("web.web_form_public", name=doc["name"])})
    return render_page("webforms/admin_list.html", forms=rows)


@routes.page("/admin/web-forms/<name>/submissions")
def admin_web_form(name: str):
    _require_admin()
    doc = _live(name)
    service = current_service()
    locale = current_locale()
    obj = service.registry.objects.get(doc.get("object"))
    items = []
    rows = store.recent(runtime().engine, name)
    shown = _record_names(service, doc.get("object"), [r["record_id"] for r in rows if r["record_id"]])
    for row in rows:
        rid = row["record_id"]
        items.append({"at": format_datetime(row["created_at"], locale),
                      "outcome": t(f"webforms.outcome_{row['outcome']}"),
                      "outcome_code": row["outcome"],
                      "record": shown.get(rid) if rid else None,
                      "href": url_for("web.record_detail", object_name=doc["object"], record_id=rid)
                      if rid and rid in shown else None})
    seen = store.summary(runtime().engine).get(name, {})
    url = _public_url(name)
    snippet = (f'<iframe src="{url}" title="{_label(doc)}" width="100%" height="720" '
               'style="border:0;max-width:560px" loading="lazy"></iframe>')
    return render_page("webforms/admin_form.html", doc=doc, label=_label(doc), items=items,
                       object_label=obj.display_label(locale, plural=True) if obj else doc.get("object"),
                       count=format_number(seen.get("count", 0), locale), spam=format_number(seen.get("spam", 0), locale),
                       public_url=url, snippet=snippet)


def _record_names(service, object_name: str | None, ids: list[str]) -> dict[str, str]:
    """id -> name of the records (still there) the admin may read."""
    if not ids or not object_name or not service.registry.has_object(object_name):
        return {}
    obj = service.registry.object(object_name)
    table = service.table(object_name)
    column = table.c[obj.name_field] if obj.name_field else table.c.id
    with runtime().reading() as conn:
        found = conn.execute(sa.select(table.c.id, column).where(
            table.c.id.in_(ids), table.c.deleted_at.is_(None),
            service.access.row_filter(object_name, "read", table))).all()
    return {rid: str(text or rid) for rid, text in found}


# --- the editor ----------------------------------------------------------------------------------


def _objects() -> list[tuple[str, str]]:
    registry = current_service().registry
    locale = current_locale()
    pairs = [(n, o.display_label(locale)) for n, o in registry.objects.items() if not o.system_object]
    return sorted(pairs, key=lambda p: p[1].casefold())


def _choices(object_name: str, chosen: list[str] | None = None) -> dict[str, Any]:
    """The inputs the form may have (the object's fields a visitor may type), and stamp choices."""
    registry = current_service().registry
    locale = current_locale()
    if not registry.has_object(object_name):
        return {"field_rows": [], "sources": [], "campaigns": []}
    obj = registry.object(object_name)
    field_rows = [{"name": f.name, "label": f.display_label(locale), "required_by_object": f.required}
                  for f in obj.fields.values() if form_field_problem(f) is None and f.name != "source"]
    order = {name: index for index, name in enumerate(chosen or [])}  # the form's own order first
    field_rows.sort(key=lambda row: order.get(row["name"], len(order)))
    source = obj.fields.get("source")
    sources = [(str(o["value"]), label_text(o.get("label"), locale, str(o["value"]))) for o in source.options] \
        if source is not None and source.type == "picklist" else []
    campaigns: list[tuple[str, str]] = []
    campaign = obj.fields.get("campaign")
    if campaign is not None and campaign.type == "lookup" and "campaign" in campaign.target \
            and registry.has_object("campaign"):
        service = current_service()
        table = service.table("campaign")
        cobj = registry.object("campaign")
        name_col = table.c[cobj.name_field] if cobj.name_field else table.c.id
        with runtime().reading() as conn:
            campaigns = [(rid, str(text or rid)) for rid, text in conn.execute(
                sa.select(table.c.id, name_col).where(table.c.deleted_at.is_(None)).order_by(name_col).limit(300))]
    return {"field_rows": field_rows, "sources": sources, "campaigns": campaigns}


def _loc(value: Any, locale: str) -> str:
    if isinstance(value, dict):
        return str(value.get(locale) or "")
    return str(value or "") if locale == "en" else ""


def _values_of(doc: dict) -> dict[str, Any]:
    values: dict[str, Any] = {"name": doc["name"], "object": doc.get("object", ""),
                              "active": doc.get("active", True), "redirect": doc.get("redirect", ""),
                              "embed_origins": "\n".join(doc.get("embed_origins") or [])}
    for key, prefix in (("label", "label"), ("intro", "intro"), ("thank_you", "thanks")):
        values[f"{prefix}_en"] = _loc(doc.get(key), "en")
        values[f"{prefix}_zh"] = _loc(doc.get(key), "zh-CN")
    values["fields"] = [item.get("field") for item in doc.get("fields") or []]
    values["required"] = [item.get("field") for item in doc.get("fields") or [] if item.get("required")]
    stamp = doc.get("stamp") or {}
    values["stamp_source"] = str(stamp.get("source") or "")
    values["stamp_campaign"] = str(stamp.get("campaign") or "")
    return values


def _values_from_form(creating: bool, live: dict | None) -> dict[str, Any]:
    form = request.form
    values: dict[str, Any] = {k: form.get(k, "").strip() for k in (
        "name", "label_en", "label_zh", "intro_en", "intro_zh", "thanks_en", "thanks_zh", "redirect",
        "embed_origins", "stamp_source", "stamp_campaign", "object")}
    if not creating and live is not None:
        values["name"], values["object"] = live["name"], live.get("object", "")
    values["active"] = form.get("active") in ("on", "1", "true")
    values["fields"] = [v for v in form.getlist("fields") if v]
    values["required"] = [v for v in form.getlist("required") if v]
    return values


def _document(values: dict, live: dict | None) -> dict:
    doc: dict[str, Any] = copy.deepcopy(live) if live else {}
    doc.update(kind=KIND, name=values["name"], object=values["object"])
    labels_before = {item.get("field"): item.get("label") for item in (live or {}).get("fields") or []}
    fields = []
    for name in values["fields"]:
        item: dict[str, Any] = {"field": name}
        if labels_before.get(name):
            item["label"] = labels_before[name]
        if name in values["required"]:
            item["required"] = True
        fields.append(item)
    doc["fields"] = fields
    for key, prefix in (("label", "label"), ("intro", "intro"), ("thank_you", "thanks")):
        text = _labels(values[f"{prefix}_en"], values[f"{prefix}_zh"])
        if text:
            doc[key] = text
        else:
            doc.pop(key, None)
    stamp = dict((live or {}).get("stamp") or {})
    for key in ("source", "campaign"):
        if values[f"stamp_{key}"]:
            stamp[key] = values[f"stamp_{key}"]
        else:
            stamp.pop(key, None)
    if stamp:
        doc["stamp"] = stamp
    else:
        doc.pop("stamp", None)
    if values["redirect"]:
        doc["redirect"] = values["redirect"]
    else:
        doc.pop("redirect", None)
    origins = [line.strip().rstrip("/") for line in values["embed_origins"].splitlines() if line.strip()]
    if origins:
        doc["embed_origins"] = origins
    else:
        doc.pop("embed_origins", None)
    if values["active"]:
        doc.pop("active", None)
    else:
        doc["active"] = False
    return doc


# where an issue at a document path goes on the editor
PATH_INPUTS = {"name": "name", "label": "label_en", "intro": "intro_en", "thank_you": "thanks_en",
               "redirect": "redirect", "embed_origins": "embed_origins", "fields": "fields", "object": "object"}


def _place(issues: list[dict], name: str) -> tuple[dict[str, str], list[dict]]:
    placed: dict[str, str] = {}
    rest = []
    for issue in issues:
        parts = str(issue.get("path", "")).strip("/").split("/")
        key = None
        if issue.get("document") == f"{KIND}/{name}" and parts and parts[0]:
            if parts[0] == "stamp" and len(parts) > 1 and parts[1] in ("source", "campaign"):
                key = f"stamp_{parts[1]}"
            else:
                key = PATH_INPUTS.get(parts[0])
        if key:
            placed[key] = f"{placed[key]} {issue['message']}".strip() if key in placed else issue["message"]
        else:
            rest.append(issue)
    return placed, rest


def _editor(values: dict, creating: bool, live: dict | None, status: int = 200, **extra):
    return render_page("webforms/admin_edit.html", status, values=values, creating=creating, live=live,
                       objects=_objects(), **_choices(values.get("object") or "", values.get("fields")),
                       errors=extra.pop("errors", {}), issues=extra.pop("issues", []),
                       versions=extra.pop("versions", None) or versions_of([(KIND, values.get("name") or "-")]),
                       **extra)


@routes.page("/admin/web-forms/new", methods=("GET", "POST"))
def admin_web_form_new():
    _require_admin()
    if request.method == "GET":
        object_name = request.args.get("object") or ("lead" if current_service().registry.has_object("lead") else "")
        values = {"name": "", "object": object_name, "active": True, "fields": [], "required": [],
                  "stamp_source": "web" if object_name == "lead" else "", "stamp_campaign": "", "redirect": "",
                  "embed_origins": ""}
        return _editor(values, True, None)
    return _save(True, None)


@routes.page("/admin/web-forms/<name>/edit", methods=("GET", "POST"))
def admin_web_form_edit(name: str):
    _require_admin()
    live = _live(name)
    if request.method == "GET":
        return _editor(_values_of(live), False, live)
    return _save(False, live)


def _save(creating: bool, live: dict | None):
    values = _values_from_form(creating, live)
    registry = current_service().registry
    errors: dict[str, str] = {}
    if creating:
        values["name"] = values["name"] or slug(values["label_en"])
        if not NAME_RE.match(values["name"] or ""):
            errors["name"] = t("admin.bad_name")
        elif registry.get(KIND, values["name"]) is not None:
            errors["name"] = t("webforms.exists")
        if not registry.has_object(values["object"]) or registry.object(values["object"]).system_object:
            errors["object"] = t("webforms.pick_object")
    if request.form.get("_action") == "reload":  # the object changed: show its fields
        return _editor(values, creating, live)
    if not values["fields"] and "object" not in errors:
        errors["fields"] = t("webforms.pick_fields")
    action = request.form.get("_action", "preview")
    loaded = request.form.get("versions") or None
    issues: list[dict] = []
    try:
        expected = _form_versions()
    except BadRequest as exc:
        issues.append({"document": f"{KIND}/{values['name']}", "path": "/", "message": exc.message})
        expected = {}
    if errors or issues:
        return _editor(values, creating, live, 400, errors=errors, issues=issues, versions=loaded)
    doc = _document(values, live)
    outcome = _run([doc], [], action, expected)
    status = outcome.pop("status")
    outcome.pop("stale", None)
    if "issues" in outcome:
        placed, rest = _place(outcome.pop("issues"), values["name"])
        errors.update(placed)
        issues = rest
        if placed and not rest:
            issues = []
    elif action == "apply":
        notify(t("admin.applied", version=outcome["result"].version) if not outcome["unchanged"]
               else t("admin.no_changes"))
        return redirect_to("web.admin_web_form", name=values["name"])
    return _editor(values, creating, live, status, errors=errors, issues=issues, versions=loaded, **outcome)


NAV = (NavEntry("admin_web_forms", "nav.admin_web_forms", "web.admin_web_forms", section="admin", order=40,
                visible=lambda access: access.has_permission("metadata.apply")),)
