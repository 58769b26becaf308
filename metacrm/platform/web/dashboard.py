"""The home dashboard: a registry of widgets, each a function service -> chart spec (or
None to stay off the page), and `aggregate`, a GROUP BY over one object's table that
keeps to the caller's read scope and never groups or sums a field hidden from them.

More charts (funnel, forecast, ROI, aging) drop in with `register_widget`; see docs/web.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import url_for

from ..filters import FilterContext, compile_sql
from ..records import RecordService
from ..sums import run_exact, sum_columns, sum_value
from . import charts, display
from .core import current_principal, current_service, page, render_page
from .i18n import current_locale, t

log = logging.getLogger(__name__)


@dataclass
class Widget:
    name: str
    fn: Callable[[RecordService], dict | None]
    order: int = 100
    wide: bool = False  # spans the whole row on wide screens


WIDGETS: dict[str, Widget] = {}


def register_widget(name: str, fn: Callable[[RecordService], dict | None], *, order: int = 100,
                    wide: bool = False) -> None:
    """Add (or replace) a dashboard widget. `fn(service)` returns a chart spec (see charts.py)
    with a "title", or None when it has nothing to show for this user."""
    WIDGETS[name] = Widget(name, fn, order, wide)


def aggregate(service: RecordService, object_name: str, group_by: list[str], *, measure: str | None = None,
              filter: Any = None, action: str = "read") -> list[dict] | None:
    """[{<group field>: value, ..., "value": count or sum}] over the rows the caller may see.

    `measure` None counts rows; a field name sums it. None when the object or a field is not
    visible to the caller (so a widget shows nothing rather than leaking)."""
    registry = service.registry
    access = service.access
    if not registry.has_object(object_name) or not access.can(object_name, action) or not access.can(
            object_name, "read"):
        return None  # a widget is a read path: never beyond the read scope
    obj = registry.object(object_name)
    hidden = access.hidden_fields(object_name) | access.hidden_fields(object_name, action)
    wanted = group_by + ([measure] if measure else [])
    if any(name not in obj.all_fields or name in hidden for name in wanted):
        return None
    table = service.table(object_name)
    columns = [table.c[name] for name in group_by]
    where = [table.c.deleted_at.is_(None), access.row_filter(object_name, "read", table),
             access.row_filter(object_name, action, table)]
    if filter:
        visible = {n: f for n, f in obj.all_fields.items() if n not in hidden}
        ctx = FilterContext.current(service.principal.user_id, service.principal.department)
        where.append(compile_sql(filter, table, visible, ctx))

    def query(split: bool):
        # a sum stays exact past 2^63 on SQLite too (platform/sums.py)
        values = [sa.func.count().label("value")] if measure is None else sum_columns(table.c[measure], "value", split)
        built = sa.select(*[c.label(f"g{i}") for i, c in enumerate(columns)], *values).where(*where)
        return built.group_by(*columns) if columns else built

    with service.runtime.reading() as conn:
        rows = run_exact(conn, query, lambda built: conn.execute(built).mappings().fetchall())
    out = []
    for row in rows:
        item = {name: row[f"g{i}"] for i, name in enumerate(group_by)}
        value = row["value"] if measure is None else sum_value(row, "value", table.c[measure])
        item["value"] = value if value is not None else 0
        out.append(item)
    return out


def _ordered_values(service: RecordService, object_name: str, field: str, present: set) -> list[tuple[Any, str]]:
    """The field's options in their metadata order (then any stored value not among them)."""
    fdef = service.registry.object(object_name).all_fields[field]
    known = [(opt["value"], display.option_label(fdef, opt["value"])) for opt in fdef.options]
    values = {v for v, _ in known}
    extra = sorted((v for v in present if v not in values), key=lambda v: (v is None, str(v)))
    return [(v, label) for v, label in known if v in present] + [
        (v, str(v) if v is not None else t("common.none")) for v in extra]


def _list_url(object_name: str, **filters: Any) -> str:
    return url_for("web.record_list", object_name=object_name,
                   **{f"f.{k}": v for k, v in filters.items() if v is not None})


# --- the built-in widgets -------------------------------------------------------------------

COUNTED_OBJECTS = ("lead", "account", "contact", "opportunity", "activity")


def record_counts(service: RecordService) -> dict | None:
    locale = current_locale()
    items = []
    for name in COUNTED_OBJECTS:
        rows = aggregate(service, name, [])
        if rows is None:
            continue
        obj = service.registry.object(name)
        items.append({"label": obj.display_label(locale, plural=True), "value": charts.number_text(rows[0]["value"]),
                      "href": url_for("web.record_list", object_name=name)})
    return {"type": "stats", "title": t("dash.record_counts"), "items": items} if items else None


def leads_by_source_and_status(service: RecordService) -> dict | None:
    rows = aggregate(service, "lead", ["source", "status"])
    if rows is None:
        return None
    sources = _ordered_values(service, "lead", "source", {r["source"] for r in rows})
    statuses = _ordered_values(service, "lead", "status", {r["status"] for r in rows})
    counts = {(r["source"], r["status"]): r["value"] for r in rows}
    return {
        "type": "bars", "title": t("dash.leads_by_source"), "format": "count",
        "categories": [label for _, label in sources],
        "links": [_list_url("lead", source=value) for value, _ in sources],
        "series": [{"label": label, "values": [counts.get((s, st), 0) for s, _ in sources]}
                   for st, label in statuses],
        "total": charts.number_text(sum(r["value"] for r in rows)),
    }


def leads_by_status(service: RecordService) -> dict | None:
    rows = aggregate(service, "lead", ["status"])
    if rows is None:
        return None
    statuses = _ordered_values(service, "lead", "status", {r["status"] for r in rows})
    counts = {r["status"]: r["value"] for r in rows}
    return {"type": "columns", "title": t("dash.leads_by_status"), "format": "count",
            "categories": [label for _, label in statuses],
            "series": [{"label": t("dash.count"), "values": [counts[v] for v, _ in statuses]}],
            "total": charts.number_text(sum(counts.values()))}


def pipeline_by_stage(service: RecordService) -> dict | None:
    """Open amount per stage (stages marked `is_closed` left out: the pipeline is what is still
    open), in the stages' metadata order, if the metadata has an opportunity with a stage picklist."""
    registry = service.registry
    if not registry.has_object("opportunity"):
        return None
    obj = registry.object("opportunity")
    stage = obj.fields.get("stage")
    amount = next((f for f in ("amount", "expected_amount", "value") if f in obj.fields
                   and obj.fields[f].value_type in ("currency", "decimal")), None)
    if stage is None or stage.type != "picklist":
        return None
    closed = [opt["value"] for opt in stage.options if opt.get("is_closed")]
    rows = aggregate(service, "opportunity", ["stage"], measure=amount,
                     filter={"stage": {"nin": closed}} if closed else None)
    if rows is None:
        return None
    stages = _ordered_values(service, "opportunity", "stage", {r["stage"] for r in rows} - set(closed))
    values = {r["stage"]: r["value"] for r in rows}
    return {"type": "bars", "title": t("dash.pipeline_by_stage"), "format": "money" if amount else "count",
            "categories": [label for _, label in stages],
            "links": [_list_url("opportunity", stage=v) for v, _ in stages],
            "series": [{"label": t("dash.amount") if amount else t("dash.count"),
                        "values": [values[v] for v, _ in stages]}],
            "total": charts.number_text(sum((Decimal(str(v)) for v in values.values()), Decimal(0)),
                                        "money" if amount else "count")}


register_widget("record_counts", record_counts, order=0, wide=True)
register_widget("leads_by_source_and_status", leads_by_source_and_status, order=10)
register_widget("leads_by_status", leads_by_status, order=20)
register_widget("pipeline_by_stage", pipeline_by_stage, order=30)


def all_widgets(service: RecordService) -> list[Widget]:
    """The built-in widgets plus those plugins registered (PluginContext.dashboard_widget)."""
    widgets = dict(WIDGETS)
    for offset, (name, fn) in enumerate(sorted(service.runtime.extensions.get("dashboard_widgets", {}).items())):
        widgets.setdefault(name, Widget(name, fn, order=200 + offset))
    return sorted(widgets.values(), key=lambda w: (w.order, w.name))


def build_widgets(service: RecordService) -> list[dict]:
    out = []
    for widget in all_widgets(service):
        try:
            spec = widget.fn(service)
        except Exception:  # one broken widget must not take the home page down
            log.exception("dashboard widget %s failed", widget.name)
            continue
        if not spec:
            continue
        empty = spec.get("type") != "stats" and not any(
            any(float(v or 0) for v in s["values"]) for s in spec.get("series", []))
        out.append({"name": widget.name, "wide": widget.wide, "spec": spec, "empty": empty,
                    "svg": charts.render(spec) if not empty else None})
    return out


@page("/")
def home():
    """The user's dashboard (composed from saved reports by the reports feature, which registers
    `home_dashboard`: metacrm/platform/reports/dashboards.py), else the built-in widgets; above it
    the records the user opened lately (web/quick/recent.py). The greeting uses the display name."""
    from .core import current_display_name
    from .quick.recent import recent_items

    me = current_principal()
    service = current_service()
    composer = service.runtime.extensions.get("home_dashboard")
    composed = composer(service) if composer else None
    return render_page("dashboard.html", widgets=build_widgets(service) if composed is None else composed,
                       composed=composed is not None, name=current_display_name(), can_edit=bool(me.user_id),
                       recent=recent_items())
