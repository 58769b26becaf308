"""Saved reports: `report` documents (an aggregate with a chart) and plugin reports
(fn(service, params) -> dict), listed and run for the caller; a document's result carries
the chart drawn from it (chart_data).

Who sees a report document (`may_see`, the same for the list, a run, the API and the web):
the caller must be able to report on its object, and
- a document with neither `owner` nor `shared_with` is for everyone who may report on the object;
- `owner` without `shared_with` is private: its owner only (not even an administrator lists or
  runs it; they see it in the metadata editor);
- `shared_with` (roles): its owner and the members of those roles.
Any other report is answered 404, as if it did not exist."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ...metadata.model import label_text
from ..errors import NotFound
from .aggregates import aggregate
from .scope import can_report


def plugin_reports(runtime) -> dict[str, dict]:
    return runtime.extensions.get("plugin_reports") or {}


def may_see(service, doc: Mapping) -> bool:
    """May the caller list and run this report document (see the module docstring)?"""
    if not can_report(service, doc["object"]):
        return False
    owner, roles = doc.get("owner"), doc.get("shared_with")
    if owner is not None and owner == service.principal.user_id:
        return True
    if roles:
        return bool(set(roles) & set(service.principal.roles))
    return owner is None


def sharing(doc: Mapping) -> str:
    """'private', 'roles' or 'everyone'."""
    if doc.get("shared_with"):
        return "roles"
    return "private" if doc.get("owner") else "everyone"


def list_reports(service) -> list[dict]:
    locale = service.principal.locale
    items = []
    for doc in service.registry.of_kind("report"):
        if not may_see(service, doc):
            continue
        folder = label_text(doc["folder"], locale, "") if doc.get("folder") else None
        items.append({"name": doc["name"], "label": label_text(doc.get("label"), locale, doc["name"]),
                      "kind": "report", "object": doc["object"], "folder": folder or None,
                      "owner": doc.get("owner"), "sharing": sharing(doc), "shared_with": doc.get("shared_with") or [],
                      "chart": (doc.get("chart") or {}).get("type"), "description": doc.get("description")})
    documents = {item["name"] for item in items}
    for name, entry in sorted(plugin_reports(service.runtime).items()):
        if name in documents:
            continue
        items.append({"name": name, "label": label_text(entry.get("label"), locale, name), "kind": "plugin",
                      "plugin": entry.get("plugin")})
    return items


def run_report(service, name: str, params: Mapping[str, Any] | None = None) -> dict:
    params = dict(params or {})
    doc = service.registry.get("report", name)
    if doc is not None:
        if not service.registry.has_object(doc["object"]) or not may_see(service, doc):
            raise NotFound(f"No report named {name!r}.", code="unknown_report")
        extra = params.get("filter")
        spec = {k: doc[k] for k in ("filter", "group_by", "measures", "sort", "limit") if k in doc}
        result = aggregate(service, doc["object"], spec, strict=True, extra_filter=extra)
        title = label_text(doc.get("label"), service.principal.locale, name)
        result = {"name": name, "label": title, "kind": "report", **result, "chart": doc.get("chart")}
        result["chart_data"] = chart_data(result, doc.get("chart"), title)
        return result
    entry = plugin_reports(service.runtime).get(name)
    if entry is None:
        raise NotFound(f"No report named {name!r}.", code="unknown_report")
    result = entry["fn"](service, params)
    if isinstance(result, dict):
        result.setdefault("name", name)
        result.setdefault("label", label_text(entry.get("label"), service.principal.locale, name))
        result.setdefault("kind", "plugin")
    return result


def chart_data(result: dict, chart: Mapping | None, title: str) -> dict | None:
    """The dashboard chart spec {type, title, labels, series: [{name, values}]} for a result."""
    chart = chart or {}
    kind = chart.get("type") or "bar"
    if kind == "table" or not result["group_by"]:
        return None
    groups = [g["key"] for g in result["group_by"]]
    measures = [m["name"] for m in result["measures"]]
    x = chart.get("x") if chart.get("x") in groups else groups[0]
    x_key = next((g["key"] for g in result["group_by"] if g["field"] == x or g["key"] == x), groups[0])
    y = chart.get("y") if chart.get("y") in measures else measures[0]
    labels: list = []
    display: dict = {}
    for row in result["rows"]:
        value = row.get(x_key)
        if value not in labels:
            labels.append(value)
            display[value] = row.get(f"{x_key}__label", value)
    others = [g for g in groups if g != x_key]
    series = []
    if others:
        other = others[0]
        names: list = []
        for row in result["rows"]:
            if row.get(other) not in names:
                names.append(row.get(other))
        for name in names:
            values = []
            for label in labels:
                hit = [r.get(y) for r in result["rows"] if r.get(x_key) == label and r.get(other) == name]
                values.append(_add(hit))
            series.append({"name": name if name is not None else "—", "values": values})
    else:
        by_label = {row.get(x_key): row.get(y) for row in result["rows"]}
        series.append({"name": y, "values": [by_label.get(label) for label in labels]})
    return {"type": kind, "title": title,
            "labels": [display[label] if display[label] is not None else "—" for label in labels],
            "series": series}


def _add(values: list) -> Any:
    values = [v for v in values if v is not None]
    if not values:
        return 0
    if all(isinstance(v, int) for v in values):
        return sum(values)
    return str(sum(Decimal(str(v)) for v in values))
