"""The Forecast page (/forecast): the viewer's people rolled up the reporting line for one month
or quarter (the forecast report's `rollup`), money and percentages in the reader's locale, and,
for a manager, a small form per person to keep an adjusted commit / best case beside the rep's
own figures. Writes go through the record service (`forecast_adjustment`: the plugin's hook
checks scope and uniqueness; the form carries the CSRF token and the record's version).
Registered as its own feature by metacrm.plugins.register."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from babel.dates import format_date as babel_format_date
from flask import redirect, request, url_for

from ...platform.clock import today
from ...platform.errors import CrmError, NotFound, StaleVersion
from ...platform.features import Feature, Routes
from ...platform.i18n import babel_locale, format_number, format_percent
from ...platform.reports import period_key
from ...platform.web.core import NavEntry, current_service, notify, render_page, runtime
from ...platform.web.i18n import current_locale, t
from .analytics import forecast as forecast_report
from .analytics.adjustments import OBJECT, period_kind
from .analytics.scoped import _require
from .common import plugin_ctx

HERE = Path(__file__).resolve().parent
routes = Routes()
AROUND = 4  # periods offered before and after the chosen one
ERRORS = {"rep_out_of_scope": "forecast.err_scope", "adjustment_exists": "forecast.err_exists",
          "not_your_adjustment": "forecast.err_not_yours", "stale_version": "forecast.err_stale"}


def _loaded() -> None:
    """Adjustments are saved only where the plugin's rules run (the page itself reads only)."""
    if plugin_ctx(runtime()) is None:
        raise NotFound("The lead-to-cash plugin is not installed.")


def _shift(key: str, kind: str, steps: int) -> str:
    year, rest = key.split("-")
    size = 12 if kind == "month" else 4
    index = int(year) * size + (int(rest[1:]) if kind == "quarter" else int(rest)) - 1 + steps
    year, part = divmod(index, size)
    return f"{year:04d}-{part + 1:02d}" if kind == "month" else f"{year:04d}-Q{part + 1}"


def period_label(key: str, locale: str) -> str:
    """2025-Q1 → "Q1 2025" / "2025年第1季度"; 2025-03 → "Mar 2025" / "2025年3月"."""
    year, rest = key.split("-")
    if rest.startswith("Q"):
        return t("forecast.quarter_label", year=year, quarter=rest[1:])
    return babel_format_date(date(int(year), int(rest), 1), format="MMM y" if locale == "en" else "y年M月",
                             locale=babel_locale(locale))


def _choice() -> tuple[str, str]:
    kind = request.values.get("period") or "quarter"
    if kind not in ("month", "quarter"):
        kind = "quarter"
    key = request.values.get("key") or ""
    if period_kind(key) != kind:
        key = period_key(today(), kind)
    return kind, key


def _money(value) -> str:
    return "" if value is None else format_number(value, current_locale(), 2)


def _pct(value) -> str:
    return "—" if value is None else format_percent(value, current_locale(), 1)


def _render(kind: str, key: str, status: int = 200, error: str | None = None, failed: dict | None = None):
    service = current_service()
    _require(service, "opportunity")
    result = forecast_report.forecast(service, {"period": kind, "from": key, "to": key})
    locale = current_locale()
    rows = [r for r in result["rollup"] if r["period"] == key]
    total = result["rollup_totals"].get(key)
    options = [{"key": k, "label": period_label(k, locale)} for k in
               (_shift(key, kind, step) for step in range(-AROUND, AROUND + 1))]
    return render_page("forecast/forecast.html", status=status, rows=rows, total=total, kind=kind, key=key,
                       key_label=period_label(key, locale), options=options, money=_money, pct=_pct,
                       prev_key=_shift(key, kind, -1), next_key=_shift(key, kind, 1), error=error,
                       failed=failed or {},
                       can_adjust=plugin_ctx(runtime()) is not None and any(r["can_adjust"] for r in rows))


@routes.page("/forecast")
def ltc_forecast():
    kind, key = _choice()
    return _render(kind, key)


def _error_text(err: CrmError) -> str:
    if err.code in ERRORS:
        return t(ERRORS[err.code])
    fields = getattr(err, "fields", None) or {}
    if "best_case" in fields and "commit" not in fields:
        return t("forecast.err_best_case")
    if "commit" in fields or "best_case" in fields:
        return t("forecast.err_amount")
    return t("forecast.err_other")


@routes.page("/forecast/adjust", methods=("POST",), endpoint="ltc_forecast_adjust")
def ltc_forecast_adjust():
    _loaded()
    kind, key = _choice()
    form = request.form
    values = {"commit": (form.get("commit") or "").strip() or None,
              "best_case": (form.get("best_case") or "").strip() or None,
              "note": (form.get("note") or "").strip() or None}
    record_id, rep = form.get("id") or None, form.get("rep") or ""
    service = current_service()
    try:
        if record_id:
            version = form.get("_version") or ""
            if not version.isdigit():
                raise StaleVersion("The form has no version.")
            service.update(OBJECT, record_id, values, version=int(version))
        else:
            service.create(OBJECT, {"rep": rep, "period": key, **values})
    except CrmError as err:
        if err.status >= 500:
            raise
        return _render(kind, key, status=err.status, error=_error_text(err),
                       failed={"rep": rep, **{k: v or "" for k, v in values.items()}})
    notify(t("forecast.saved"))
    return redirect(url_for("web.ltc_forecast", period=kind, key=key) + f"#row-{rep}", code=303)


def _visible(access) -> bool:
    return access.can("opportunity", "read")


NAV = (NavEntry("ltc_forecast", "nav.forecast", "web.ltc_forecast", order=45, visible=_visible),)

FEATURE = Feature("ltc_forecast", pages=routes, nav=NAV, templates=HERE / "templates", messages=HERE / "messages")
