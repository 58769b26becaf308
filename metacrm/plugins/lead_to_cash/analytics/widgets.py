"""The lead-to-cash dashboard widgets: the funnel, this quarter's forecast, ROI by channel and
receivables aging, drawn from the reports."""

from __future__ import annotations

from decimal import Decimal

from ....platform.clock import today
from ....platform.errors import Forbidden, NotFound
from ....platform.reports import period_key
from ..payments import AGING_BUCKETS
from .aging import aging
from .campaign_roi import campaign_roi
from .forecast import _blank, _metrics, forecast
from .scoped import _t

# The chart spec of docs/web.md (web/charts.py): {"type": "bars" | "columns", "title", "categories",
# "series": [{"label", "values"}], "format": "count" | "money"}; `labels` and series `name` repeat
# categories and label for clients of the brief's generic shape.


def _chart(kind: str, title: str, categories: list, series: list[tuple[str, list]], fmt: str) -> dict:
    return {"type": kind, "title": title, "categories": categories, "labels": categories, "format": fmt,
            "series": [{"label": name, "name": name, "values": values} for name, values in series]}


def _safe(fn):
    def widget(service):
        try:
            return fn(service)
        except (Forbidden, NotFound):
            return None  # nothing this user may report on (or a hidden field): no widget

    widget.__qualname__ = f"widget_{fn.__name__}"
    return widget


def _funnel_widget(service):
    overall = campaign_roi(service, {})["overall"]
    locale = service.principal.locale
    return _chart("bars", _t(locale, "Campaign funnel", "营销漏斗"),
                  [_t(locale, "Leads", "线索"), _t(locale, "Customers", "客户"),
                   _t(locale, "Opportunities", "商机"), _t(locale, "Won", "赢单")],
                  [(_t(locale, "Count", "数量"), [overall["leads"], overall["converted"], overall["opportunities"],
                                                 overall["won"]])], "count")


def _forecast_widget(service):
    this_quarter = period_key(today(), "quarter")
    result = forecast(service, {"period": "quarter", "from": this_quarter, "to": this_quarter})
    locale = service.principal.locale
    mine = [r for r in result["rows"] if r["user"] == service.principal.user_id]
    figures = mine[0]["team"] if mine and (mine[0]["team_size"] > 1 or not result["totals"]) else \
        result["totals"].get(this_quarter) or _metrics(_blank(), None)
    names = (("closed", "Closed", "已成交"), ("commit", "Commit", "承诺"), ("best_case", "Best case", "最佳情况"),
             ("pipeline", "Pipeline", "渠道"), ("weighted", "Weighted", "加权"), ("quota", "Quota", "目标"))
    return _chart("columns", _t(locale, f"Forecast {this_quarter}", f"{this_quarter} 销售预测"),
                  [_t(locale, en, zh) for _, en, zh in names],
                  [(this_quarter, [Decimal(figures.get(k) or 0) for k, _, _ in names])], "money")


def _roi_widget(service):
    result = campaign_roi(service, {})
    locale = service.principal.locale
    return _chart("bars", _t(locale, "Campaign ROI % by channel", "各渠道营销ROI %"),
                  [c["label"] for c in result["channels"]],
                  [("ROI %", [Decimal(c["roi"] or 0) for c in result["channels"]])], "count")


def _aging_widget(service):
    result = aging(service, {})
    locale = service.principal.locale
    labels = {"not_due": _t(locale, "Not due", "未到期")}
    return _chart("columns", _t(locale, "Receivables aging", "应收账龄"), [labels.get(b, b) for b in AGING_BUCKETS],
                  [(_t(locale, "Outstanding", "未回款"), [Decimal(result["buckets"][b]) for b in AGING_BUCKETS])],
                  "money")


WIDGETS = {
    "ltc_funnel": _safe(_funnel_widget),
    "ltc_forecast": _safe(_forecast_widget),
    "ltc_roi": _safe(_roi_widget),
    "ltc_aging": _safe(_aging_widget),
}
