"""The Reports page (/reports): the saved reports the user may run, by folder; running one
(/reports/<name>): the table, the chart and the totals, with filters the user can change (the
simple condition form, web/condition_rows.py), each group linked to the list of its records, and
the result as CSV or .xlsx. Everything goes through saved.run_report, so the read-path rules of
the API hold here too: report scope AND read scope, hidden fields refused (403), no grouping by
identifying fields, private reports their owner's only."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Response, request, url_for

from ...metadata.model import label_text
from ..api.exports import neutralise
from ..errors import NotFound
from ..features import Routes
from ..web import charts, display
from ..web.condition_rows import describe, field_choices, rows_from_form
from ..web.core import NavEntry, current_access, current_service, render_page
from ..web.i18n import current_locale, t
from .aggregates import _visible_fields
from .saved import list_reports, may_see, run_report

routes = Routes()
CHART_KINDS = {"bar": "bars", "stacked_bar": "bars", "line": "line", "pie": "pie", "funnel": "funnel",
               "number": "number"}


def _may_use_reports(access) -> bool:
    return any(access.scope(name, "read") != "none" for name in access.registry.objects)


def may_build(access) -> bool:
    """Admins, and roles with the `reports.create` permission (docs/web.md)."""
    return access.has_permission("reports.create")


NAV = (NavEntry("reports", "nav.reports", "web.report_list", order=40, visible=_may_use_reports),)


@routes.page("/reports")
def report_list():
    service = current_service()
    other = t("reports.other_folder")
    folders: dict[str, list[dict]] = {}
    for item in list_reports(service):
        if item["kind"] != "report":
            continue  # plugin reports have their own pages
        obj = service.registry.object(item["object"])
        item = dict(item, object_label=obj.display_label(current_locale(), plural=True),
                    href=url_for("web.report_run", name=item["name"]),
                    mine=item.get("owner") == service.principal.user_id)
        folders.setdefault(item["folder"] or other, []).append(item)
    ordered = sorted(folders.items(), key=lambda kv: (kv[0] == other, kv[0].lower()))
    for _, items in ordered:
        items.sort(key=lambda i: i["label"].lower())
    return render_page("reports/list.html", folders=ordered, can_build=may_build(current_access()),
                       title=t("reports.title"))


def _document(service, name: str) -> dict:
    doc = service.registry.get("report", name)
    if doc is None or not service.registry.has_object(doc["object"]) or not may_see(service, doc):
        raise NotFound(f"No report named {name!r}.", code="unknown_report")
    return doc


def _group_text(fdef, group: dict, row: dict) -> str:
    key = group["key"]
    value = row.get(key)
    if value is None:
        return t("common.none")
    if f"{key}__label" in row:
        return row[f"{key}__label"]
    if group["period"] is not None:  # a period bucket: 2025-03, 2025-Q1 ...
        return str(value)
    if fdef.is_reference:
        return str(value)
    return display.show(fdef, value).text


def _measure_text(fdef, function: str, value: Any) -> str:
    if value is None:
        return t("common.none")
    if fdef is None or function == "count":
        return charts.number_text(value)
    return display.show(fdef, value).text


def group_field(registry, obj, name: str):
    """The FieldDef a group names: the object's own, or `lookup.field` of the lookup's target."""
    if "." not in name:
        return obj.all_fields[name]
    lookup, _, field = name.partition(".")
    return registry.object(obj.all_fields[lookup].target[0]).all_fields[field]


def group_title(registry, obj, name: str, locale: str) -> str:
    if "." not in name:
        return obj.all_fields[name].display_label(locale)
    lookup = name.partition(".")[0]
    return f"{obj.all_fields[lookup].display_label(locale)} › {group_field(registry, obj, name).display_label(locale)}"


def _list_href(obj, groups: list[dict], row: dict) -> str | None:
    args = {}
    for g in groups:
        value = row.get(g["key"])
        if g["period"] is not None or value is None or isinstance(value, bool) or "." in g["field"]:
            return None
        args[f"f.{g['field']}"] = value
    return url_for("web.record_list", object_name=obj.name, **args) if args else None


def report_context(name: str) -> tuple[dict, int]:
    """Run the report with the filters of the request's query; (template context, status)."""
    service = current_service()
    doc = _document(service, name)
    obj = service.registry.object(doc["object"])
    visible = _visible_fields(service, obj)
    parse_fields = {n: f for n, f in obj.all_fields.items() if f.type != "password"}
    extra, rows_in, errors = rows_from_form(request.args, parse_fields)
    status = 400 if errors else 200
    result = run_report(service, name, {"filter": None if errors else extra})
    locale = current_locale()
    fields = obj.all_fields
    groups = result["group_by"]
    measures = [dict(m, fdef=fields.get(m["field"]) if m["field"] else None) for m in result["measures"]]
    for m, spec in zip(measures, doc.get("measures") or [{}] * len(measures), strict=False):
        label = spec.get("label")
        if label:
            m["title"] = label_text(label, locale, m["name"])
        elif m["fdef"] is not None:
            m["title"] = t(f"reports.fn.{m['function']}", field=m["fdef"].display_label(locale))
        else:
            m["title"] = t("reports.fn.count_rows")
    table = []
    for row in result["rows"]:
        table.append({"groups": [_group_text(group_field(service.registry, obj, g["field"]), g, row)
                                 for g in groups],
                      "measures": [_measure_text(m["fdef"], m["function"], row.get(m["name"])) for m in measures],
                      "href": _list_href(obj, groups, row), "raw": row})
    group_titles = []
    for g in groups:
        title = group_title(service.registry, obj, g["field"], locale)
        period = g["period"]
        group_titles.append(f"{title} ({t(f'reports.period.{period}')})" if period else title)
    totals = [_measure_text(m["fdef"], m["function"], result["totals"].get(m["name"])) for m in measures]
    chart = _chart(doc, groups, measures, table, result)
    return {"doc": doc, "obj": obj, "title": result["label"], "group_titles": group_titles, "measures": measures,
            "table": table, "totals": totals, "chart": chart, "rows": rows_in, "errors": errors,
            "choices": field_choices(visible), "result": result,
            "base": describe(doc.get("filter"), obj.all_fields) if doc.get("filter") else [],
            "object_label": obj.display_label(locale, plural=True),
            "query": request.query_string.decode()}, status


def _chart(doc: dict, groups: list[dict], measures: list[dict], table: list[dict], result: dict) -> dict | None:
    kind = (doc.get("chart") or {}).get("type") or "bar"
    if kind == "table":
        return None
    measure = next((i for i, m in enumerate(measures) if m["name"] == (doc.get("chart") or {}).get("y")), 0)
    fmt = "money" if measures[measure]["fdef"] is not None and measures[measure]["fdef"].value_type in (
        "currency", "decimal") and measures[measure]["function"] != "count" else "count"
    if kind == "number" or not groups:
        value = result["totals"].get(measures[measure]["name"])
        spec = {"type": "number", "title": result["label"], "value": value or 0, "format": fmt}
        return {"spec": spec, "svg": charts.render(spec), "empty": False}
    categories, links, index = [], [], {}
    for row in table:
        if row["groups"][0] not in index:
            index[row["groups"][0]] = len(categories)
            categories.append(row["groups"][0])
            links.append(row["href"] if len(groups) == 1 else None)
    series: list[dict] = []
    if len(groups) > 1 and kind in ("bar", "stacked_bar", "line"):
        names: dict[str, int] = {}
        for row in table:
            if row["groups"][1] not in names:
                names[row["groups"][1]] = len(series)
                series.append({"label": row["groups"][1], "values": [0] * len(categories)})
            raw = row["raw"].get(measures[measure]["name"]) or 0
            s = series[names[row["groups"][1]]]
            s["values"][index[row["groups"][0]]] = float(s["values"][index[row["groups"][0]]]) + float(raw)
    else:
        values = [0.0] * len(categories)
        for row in table:
            values[index[row["groups"][0]]] += float(row["raw"].get(measures[measure]["name"]) or 0)
        series = [{"label": measures[measure]["title"], "values": values}]
    spec = {"type": CHART_KINDS[kind], "title": result["label"], "categories": categories, "series": series,
            "format": fmt, "links": links}
    empty = not any(float(v or 0) for s in series for v in s["values"])
    return {"spec": spec, "svg": None if empty else charts.render(spec), "empty": empty,
            "legend": [s["label"] for s in series] if len(series) > 1 else (categories if kind == "pie" else [])}


@routes.page("/reports/<name>")
def report_run(name: str):
    context, status = report_context(name)
    context["can_edit"] = _may_edit(context["doc"])
    from .dashboards import own_version  # dashboards.py builds on this module

    context["dash_version"] = own_version(current_service())  # "Add to my dashboard" (None: no user)
    return render_page("reports/run.html", status, **context)


def _may_edit(doc: dict) -> bool:
    access = current_access()
    if not may_build(access) or doc.get("plugin"):
        return False
    return access.has_permission("metadata.apply") or doc.get("owner") == access.principal.user_id


def _export_rows(context: dict) -> tuple[list[str], list[list[Any]]]:
    header = context["group_titles"] + [m["title"] for m in context["measures"]]
    body = []
    for row in context["table"]:
        values = [row["raw"].get(m["name"]) for m in context["measures"]]
        body.append(row["groups"] + values)
    if context["group_titles"]:
        body.append([t("reports.total")] + [""] * (len(context["group_titles"]) - 1)
                    + [context["result"]["totals"].get(m["name"]) for m in context["measures"]])
    return header, body


def _filename(name: str, ext: str) -> str:
    return f"report-{name}.{ext}"


@routes.page("/reports/<name>/export.csv")
def report_export_csv(name: str):
    context, status = report_context(name)
    if status != 200:
        return render_page("reports/run.html", status, **context)
    header, body = _export_rows(context)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([neutralise(h) for h in header])
    for row in body:
        writer.writerow([neutralise(v) if isinstance(v, str) else ("" if v is None else v) for v in row])
    return Response("\ufeff" + out.getvalue(), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{_filename(name, "csv")}"'})


@routes.page("/reports/<name>/export.xlsx")
def report_export_xlsx(name: str):
    from decimal import Decimal

    from openpyxl import Workbook

    context, status = report_context(name)
    if status != 200:
        return render_page("reports/run.html", status, **context)
    header, body = _export_rows(context)
    book = Workbook()
    sheet = book.active
    sheet.title = (context["title"] or name)[:31].translate({ord(c): " " for c in "[]:*?/\\"})
    sheet.append([neutralise(h) for h in header])
    width = len(context["group_titles"])
    for row in body:
        cells = []
        for i, v in enumerate(row):
            if i >= width and isinstance(v, str):
                try:
                    v = Decimal(v)
                except ArithmeticError:
                    pass
            cells.append(neutralise(v) if isinstance(v, str) else v)
        sheet.append(cells)
    data = io.BytesIO()
    book.save(data)
    return Response(data.getvalue(),
                    mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="{_filename(name, "xlsx")}"'})
