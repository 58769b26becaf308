"""The report builder (/reports/new, /reports/<name>/edit): object, filters (the simple condition
form), up to two groups (dates bucketed by period), measures, sort, chart, and who sees it
(private or shared with roles). It writes a `report` document through the metadata apply
(validated, versioned), after a trial run of the aggregate as the builder's user, so a hidden
field, an identifying group or a bad measure is shown beside its input and nothing is saved.

Who may build: admins and roles with the `reports.create` permission; one may edit a report
one owns (admins: any report that no plugin ships)."""

from __future__ import annotations

from typing import Any

from flask import request, url_for

from ...metadata.bundle import documents_bundle
from ..apply import apply_change
from ..errors import CrmError, Forbidden, MetadataInvalid, NotFound, StaleVersion
from ..metastore import ABSENT, document_version
from ..web.admin import slug
from ..web.condition_rows import field_choices, rows_from_filter, rows_from_form
from ..web.core import current_access, current_service, notify, redirect_to, render_page, runtime
from ..web.i18n import current_locale, t
from .aggregates import FUNCTIONS, NUMERIC, ORDERED, _identifying, _visible_fields, aggregate
from .pages import may_build, routes
from .periods import PERIODS

CHARTS = ("bar", "stacked_bar", "line", "pie", "funnel", "number", "table")
MAX_MEASURES = 3
PATHS = {"group_by/0": "group1", "group_by/1": "group2", "sort": "sort", "filter": "filter"}


def _require_builder() -> None:
    if not may_build(current_access()):
        raise Forbidden("You may not create reports.")


def _objects(service) -> list[tuple[str, str]]:
    from .scope import can_report

    locale = current_locale()
    return sorted(((o.name, o.display_label(locale)) for o in service.registry.objects.values()
                   if not o.system_object and can_report(service, o.name)), key=lambda p: p[1].lower())


def _values_of(doc: dict) -> dict:
    groups = doc.get("group_by") or []
    values: dict[str, Any] = {"object": doc["object"], "name": doc["name"], "rows": rows_from_filter(doc.get("filter")) or []}
    label = doc.get("label")
    values["label_en"] = label.get("en", "") if isinstance(label, dict) else (label or "")
    values["label_zh"] = label.get("zh-CN", "") if isinstance(label, dict) else ""
    folder = doc.get("folder")
    values["folder"] = folder.get(current_locale()) or next(iter(folder.values()), "") if isinstance(
        folder, dict) else (folder or "")
    for i, key in ((0, "1"), (1, "2")):
        g = groups[i] if i < len(groups) else None
        values[f"group{key}"] = (g.get("field") if isinstance(g, dict) else g) or ""
        values[f"period{key}"] = g.get("period", "") if isinstance(g, dict) else ""
    values["measures"] = [{"function": m["function"], "field": m.get("field") or ""} for m in doc.get("measures") or []]
    values["sort"] = doc.get("sort") or ""
    values["chart"] = (doc.get("chart") or {}).get("type", "bar")
    values["sharing"] = "roles" if doc.get("shared_with") else "private"
    values["shared_with"] = list(doc.get("shared_with") or [])
    return values


def _form_values(form) -> dict:
    values = {k: (form.get(k) or "").strip() for k in ("object", "name", "label_en", "label_zh", "folder", "group1",
                                                      "period1", "group2", "period2", "sort", "chart", "sharing")}
    values["measures"] = [{"function": (form.get(f"m.{i}.function") or "").strip(),
                           "field": (form.get(f"m.{i}.field") or "").strip()} for i in range(MAX_MEASURES)]
    values["shared_with"] = form.getlist("shared_with")
    return values


def _context(service, values: dict, errors: dict, existing: dict | None, issues: list | None = None) -> dict:
    obj_name = values.get("object") or ""
    objects = _objects(service)
    context: dict[str, Any] = {"values": values, "errors": errors, "objects": objects, "existing": existing,
                               "issues": issues or [], "charts": [(c, t(f"reports.chart.{c}")) for c in CHARTS],
                               "periods": [(p, t(f"reports.period.{p}")) for p in PERIODS],
                               "functions": [(f, t(f"reports.function.{f}")) for f in FUNCTIONS],
                               "roles": _roles(service), "title": t("reports.builder")}
    if obj_name and obj_name in {n for n, _ in objects}:
        obj = service.registry.object(obj_name)
        visible = _visible_fields(service, obj)
        locale = current_locale()
        context["obj"] = obj
        context["choices"] = field_choices(visible)
        context["group_fields"] = sorted(((n, f.display_label(locale), f.value_type in ("date", "datetime"))
                                          for n, f in visible.items()
                                          if not _identifying(f) and f.value_type not in ("multipicklist", "textarea")),
                                         key=lambda x: x[1].lower())
        context["group_fields"] += _parent_fields(service, obj, visible, locale)
        context["measure_fields"] = sorted(((n, f.display_label(locale)) for n, f in visible.items()
                                            if f.value_type in ORDERED), key=lambda x: x[1].lower())
    return context


def _parent_fields(service, obj, visible: dict, locale: str) -> list[tuple[str, str, bool]]:
    """`lookup.field` choices: the fields of each single-target lookup's parent the user may group by."""
    from .scope import can_report

    out = []
    for name, fdef in visible.items():
        if fdef.type != "lookup" or len(fdef.target or []) != 1 or not can_report(service, fdef.target[0]):
            continue
        parent = service.registry.object(fdef.target[0])
        for pname, pdef in _visible_fields(service, parent).items():
            if pname not in parent.fields or _identifying(pdef) or pdef.value_type in ("multipicklist", "textarea"):
                continue
            out.append((f"{name}.{pname}", f"{fdef.display_label(locale)} › {pdef.display_label(locale)}",
                        pdef.value_type in ("date", "datetime")))
    return sorted(out, key=lambda x: x[1].lower())


def _roles(service) -> list[tuple[str, str]]:
    from ..web.admin_roles import _role_label

    return sorted(((n, _role_label(d, n)) for n, d in service.registry.roles.items()), key=lambda p: p[1].casefold())


def _existing(service, name: str | None) -> dict | None:
    if not name:
        return None
    doc = service.registry.get("report", name)
    access = current_access()
    if doc is None or doc.get("plugin") or not (
            access.has_permission("metadata.apply") or doc.get("owner") == access.principal.user_id):
        raise NotFound(f"No report named {name!r} you may edit.", code="unknown_report")
    return doc


def _build(service, values: dict, existing: dict | None, errors: dict) -> dict | None:
    objects = {n for n, _ in _objects(service)}
    if values["object"] not in objects:
        errors["object"] = t("reports.pick_object")
        return None
    obj = service.registry.object(values["object"])
    visible = _visible_fields(service, obj)
    name = existing["name"] if existing else (values["name"] or slug(values["label_en"] or values["label_zh"]))
    if not existing:
        if not name or not name[0].isalpha():
            errors["name"] = t("reports.bad_name")
        elif service.registry.get("report", name) is not None:
            errors["name"] = t("reports.name_taken")
    if not values["label_en"] and not values["label_zh"]:
        errors["label_en"] = t("form.required_missing")
    flt, rows, row_errors = rows_from_form(request.form, {n: f for n, f in obj.all_fields.items()
                                                          if f.type != "password"})
    values["rows"] = rows
    if row_errors:
        errors["rows"] = row_errors
    groups: list[Any] = []
    for key in ("1", "2"):
        field, period = values[f"group{key}"], values[f"period{key}"]
        if not field:
            continue
        if period and period not in PERIODS:
            errors[f"group{key}"] = t("reports.bad_period")
        groups.append({"field": field, "period": period} if period else field)
    if not values["group1"] and values["group2"]:
        errors["group1"] = t("reports.group1_first")
    measures = []
    for i, m in enumerate(values["measures"]):
        if not m["function"]:
            continue
        if m["function"] not in FUNCTIONS:
            errors[f"m{i}"] = t("reports.bad_measure")
            continue
        if m["function"] == "count":
            measures.append({"function": "count", **({"field": m["field"]} if m["field"] else {})})
            continue
        fdef = visible.get(m["field"])
        wanted = NUMERIC if m["function"] in ("sum", "avg") else ORDERED
        if fdef is None or fdef.value_type not in wanted:
            errors[f"m{i}"] = t("reports.bad_measure_field")
            continue
        measures.append({"function": m["function"], "field": m["field"]})
    if values["chart"] not in CHARTS:
        errors["chart"] = t("reports.bad_chart")
    doc: dict[str, Any] = {"kind": "report", "name": name, "object": obj.name}
    label = {k: v for k, v in (("en", values["label_en"]), ("zh-CN", values["label_zh"])) if v}
    doc["label"] = label
    if values["folder"]:
        doc["folder"] = values["folder"][:100]
    if flt is not None:
        doc["filter"] = flt
    if groups:
        doc["group_by"] = groups
    if measures:
        doc["measures"] = measures
    if values["sort"]:
        doc["sort"] = values["sort"]
    doc["chart"] = {"type": values["chart"] or "bar"}
    doc["owner"] = (existing or {}).get("owner") or service.principal.user_id
    if values["sharing"] == "roles":
        roles = [r for r in values["shared_with"] if r in service.registry.roles]
        if not roles or len(roles) != len(values["shared_with"]):
            errors["shared_with"] = t("reports.pick_roles")
        doc["shared_with"] = sorted(set(roles))
    if errors:
        return None
    try:  # a trial run as the builder's user: hidden fields, identifying groups, bad sorts
        aggregate(service, obj.name, {k: doc[k] for k in ("filter", "group_by", "measures", "sort") if k in doc})
    except CrmError as exc:
        placed = False
        reason = t(f"reports.err.{exc.code}") if exc.code in ("hidden_field", "not_groupable", "bad_sort",
                                                              "bad_report", "bad_filter") else exc.message
        for path in (exc.fields or {}):
            key = PATHS.get(path) or (f"m{path.split('/')[1]}" if path.startswith("measures/") else None)
            if key:
                errors[key] = reason
                placed = True
        if not placed:
            errors["form"] = reason
        return None
    return doc


@routes.page("/reports/new", methods=("GET", "POST"), endpoint="report_builder")
@routes.page("/reports/<name>/edit", methods=("GET", "POST"), endpoint="report_edit")
def report_builder(name: str | None = None):
    _require_builder()
    service = current_service()
    name = name or request.args.get("name")
    existing = _existing(service, name)
    if request.method == "GET":
        values = _values_of(existing) if existing else {
            "object": request.args.get("object", ""), "chart": "bar", "sharing": "private", "shared_with": [],
            "measures": [{"function": "count", "field": ""}], "rows": []}
        return render_page("reports/builder.html", **_context(service, values, {}, existing))
    values = _form_values(request.form)
    errors: dict[str, Any] = {}
    if request.form.get("_action") == "choose":  # "Use this object" (no script): the form for its fields
        values["rows"] = []
        if not any(m["function"] for m in values["measures"]):
            values["measures"] = [{"function": "count", "field": ""}]
        return render_page("reports/builder.html", **_context(service, values, errors, existing))
    doc = _build(service, values, existing, errors)
    issues = []
    if doc is not None:
        expected = {("report", doc["name"]): document_version(existing) if existing else ABSENT}
        try:
            apply_change(runtime(), documents_bundle([doc]), expected=expected)
        except MetadataInvalid as exc:
            issues = [i if isinstance(i, dict) else i.as_dict() for i in exc.extra.get("issues", [])]
        except StaleVersion:
            errors["name"] = t("reports.name_taken") if not existing else t("admin.stale_version")
        else:
            notify(t("reports.saved"))
            return redirect_to("web.report_run", name=doc["name"])
    return render_page("reports/builder.html", 400, **_context(service, values, errors, existing, issues))


def builder_url(name: str) -> str:
    return url_for("web.report_edit", name=name)
