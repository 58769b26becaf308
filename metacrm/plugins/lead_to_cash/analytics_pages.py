"""The lead-to-cash analytics as pages, each one the report the API serves (GET /api/v1/reports/
{name}) run through the same function with the viewer's own service, so the same checks hold:
only what the viewer may report on and read is counted, a hidden field refuses the page (403)
as it refuses the report.

- /analytics/campaign-roi (Marketing): the funnel and ROI overall, per channel and per campaign;
- /analytics/win-loss (Sales): win rate, deal size, cycle and reasons by rep and by team;
- /analytics/aging (Finance): outstanding receivables by days past due, per account;
- /analytics/commissions (Finance): the commission statement per rep and period, with its lines.

Every page has the report's filters, a chart, a table with money and percentages in the
reader's locale, rows that open the records they count, and `?format=csv` for the table.
Registered as its own feature by metacrm.plugins.register; the navigation entries sit in the
app they belong to (NavEntry.app)."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal
from pathlib import Path

from flask import Response, request, url_for

from ...metadata.model import label_text
from ...platform.errors import BadRequest
from ...platform.features import Feature, Routes
from ...platform.i18n import format_date, format_number, format_percent
from ...platform.web import charts
from ...platform.web.core import NavEntry, current_service, render_page
from ...platform.web.i18n import current_locale, t
from .analytics import aging as aging_report
from .analytics import campaign_roi as roi_report
from .analytics import commission_statement as commission_report
from .analytics import opportunity_analytics as opp_report
from .common import is_won_stage, stage_options
from .payments import AGING_BUCKETS

HERE = Path(__file__).resolve().parent
routes = Routes()


# --- formatting ------------------------------------------------------------------------------

def _money(value) -> str:
    return "—" if value in (None, "") else format_number(value, current_locale(), 2)


def _pct(value) -> str:
    return "—" if value in (None, "") else format_percent(value, current_locale(), 1)


def _count(value) -> str:
    return format_number(value or 0, current_locale(), 0)


def _days(value) -> str:
    return "—" if value in (None, "") else t("ltc.days", days=format_number(value, current_locale(), 1))


def _option_label(service, object_name: str, field: str, value) -> str:
    """A picklist value as its label in the reader's locale (the value itself when unknown)."""
    if value in (None, ""):
        return t("ltc.unspecified")
    fdef = service.registry.object(object_name).fields.get(field)
    opt = fdef.option(value) if fdef is not None else None
    return label_text((opt or {}).get("label"), current_locale(), str(value))


def _list_url(object_name: str, **args) -> str:
    return url_for("web.record_list", object_name=object_name, **{k: v for k, v in args.items() if v})


def _record_url(object_name: str, record_id: str | None) -> str | None:
    return url_for("web.record_detail", object_name=object_name, record_id=record_id) if record_id else None


def _chart(kind: str, title: str, categories: list, values: list, fmt: str, links: list | None = None) -> dict:
    values = [Decimal(str(v or 0)) for v in values]
    spec = {"type": kind, "title": title, "categories": categories, "format": fmt,
            "series": [{"label": title, "values": values}], "links": links}
    empty = not categories or not any(float(v or 0) for v in values)
    return {"spec": spec, "svg": None if empty else charts.render(spec), "empty": empty}


def _csv(filename: str, header: list[str], rows: list[list]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return Response("\ufeff" + out.getvalue(), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _wants_csv() -> bool:
    return request.args.get("format") == "csv"


def _date_arg(name: str, errors: dict) -> str | None:
    """A yyyy-mm-dd date from the query string; a bad one is an error beside its field."""
    text = (request.args.get(name) or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        errors[name] = t("ltc.err_date")
        return None


def _period(key: str | None) -> str:
    """2025-Q1 → "Q1 2025" / "2025年第1季度" (the forecast page's labels); anything else as it is."""
    from .forecast_pages import period_label

    try:
        return period_label(key, current_locale()) if key else "—"
    except ValueError:
        return key


def _helpers() -> dict:
    return {"money": _money, "pct": _pct, "count": _count, "days": _days, "plabel": _period,
            "fdate": lambda v: format_date(v, current_locale())}


# --- campaign ROI and the funnel (Marketing) ------------------------------------------------

@routes.page("/analytics/campaign-roi")
def ltc_campaign_roi():
    service = current_service()
    result = roi_report.campaign_roi(service, {})
    channel, campaign = request.args.get("channel") or "", request.args.get("campaign") or ""
    channels = {c["channel"]: c for c in result["channels"]}
    if channel not in channels:
        channel = ""
    campaigns = [c for c in result["campaigns"] if not channel or (c["channel"] or "none") == channel]
    chosen = next((c for c in result["campaigns"] if c["campaign"] == campaign), None)
    if chosen is None:
        campaign = ""
    focus = chosen or (channels[channel] if channel else result["overall"])
    if _wants_csv():
        return _csv("campaign-roi.csv",
                    [t("ltc.campaign"), t("ltc.channel"), t("ltc.leads"), t("ltc.customers"), t("ltc.opportunities"),
                     t("ltc.won"), t("ltc.lead_to_customer"), t("ltc.win_rate"), t("ltc.won_revenue"),
                     t("ltc.cost"), t("ltc.cost_per_lead"), t("ltc.roi")],
                    [[c["name"], _option_label(service, "campaign", "channel", c["channel"]), c["leads"], c["converted"],
                      c["opportunities"], c["won"], c["lead_to_customer_rate"], c["win_rate"], c["won_revenue"],
                      c["actual_cost"], c["cost_per_lead"], c["roi"]] for c in campaigns])
    if chosen:
        focus_label = chosen["name"]
    elif channel:
        focus_label = channels[channel]["label"]
    else:
        focus_label = t("ltc.overall")
    lead_link = _list_url("lead", **{"f.campaign": campaign}) if campaign or not channel else None
    opp_link = _list_url("opportunity", **{"f.campaign": campaign}) if campaign else None
    won_stages = [v for v in stage_options(service.registry) if is_won_stage(service.registry, v)]
    won_link = _list_url("opportunity", **{"f.campaign": campaign, "f.stage": won_stages[0]}) \
        if campaign and len(won_stages) == 1 else None
    converted_link = _list_url("lead", **{"f.campaign": campaign, "f.status": "converted"}) if campaign else None
    funnel = _chart("funnel", t("ltc.funnel_of", name=focus_label),
                    [t("ltc.leads"), t("ltc.customers"), t("ltc.opportunities"), t("ltc.won")],
                    [focus["leads"], focus["converted"], focus["opportunities"], focus["won"]], "count",
                    [lead_link, converted_link, opp_link, won_link])
    for row in campaigns:
        row["href"] = _record_url("campaign", row["campaign"])
        row["channel_label"] = _option_label(service, "campaign", "channel", row["channel"])
        row["leads_href"] = _list_url("lead", **{"f.campaign": row["campaign"]})
        row["opps_href"] = _list_url("opportunity", **{"f.campaign": row["campaign"]})
    return render_page("analytics/campaign_roi.html", result=result, campaigns=campaigns, channel=channel,
                       campaign=campaign, focus=focus, focus_label=focus_label, funnel=funnel,
                       csv_url=url_for("web.ltc_campaign_roi", channel=channel or None, format="csv"), **_helpers())


# --- win / loss and cycle by rep and team (Sales) --------------------------------------------

@routes.page("/analytics/win-loss")
def ltc_win_loss():
    service = current_service()
    errors: dict[str, str] = {}
    first, last = _date_arg("from", errors), _date_arg("to", errors)
    if first and last and first > last:
        errors["to"] = t("ltc.err_range")
        last = None
    by = "team" if request.args.get("by") == "team" else "rep"
    try:
        result = opp_report.opportunity_analytics(service, {"from": first, "to": last})
    except BadRequest as err:  # the function's own checks, should a date slip through ours
        for name in (getattr(err, "fields", None) or {}):
            errors[name] = t("ltc.err_date")
        result = opp_report.opportunity_analytics(service, {})
    rows = result["by_team"] if by == "team" else result["by_rep"]
    registry = service.registry
    won_stages = [v for v in stage_options(registry) if is_won_stage(registry, v)]
    lost_stages = [v for v, o in stage_options(registry).items()
                   if (o.get("is_closed") or o.get("forecast_category") in ("closed", "omitted"))
                   and not is_won_stage(registry, v)]
    dates = {"f.close_date.from": first, "f.close_date.to": last}
    for row in rows:
        row["label"] = row.get("name") or t("ltc.unassigned")
        if by == "rep":
            row["href"] = _list_url("opportunity", owner=row["user"] or "none", **dates)
            row["won_href"] = _list_url("opportunity", owner=row["user"] or "none", **dates,
                                        **{"f.stage": won_stages[0]}) if len(won_stages) == 1 else None
            row["lost_href"] = _list_url("opportunity", owner=row["user"] or "none", **dates,
                                         **{"f.stage": lost_stages[0]}) if len(lost_stages) == 1 else None
        else:
            row["href"] = _record_url("department", row["department"]) if row.get("department") else None
            row["won_href"] = row["lost_href"] = None
    if _wants_csv():
        return _csv(f"win-loss-by-{by}.csv",
                    [t("ltc.team") if by == "team" else t("ltc.rep"), t("ltc.closed"), t("ltc.won"), t("ltc.lost"),
                     t("ltc.win_rate"), t("ltc.won_amount"), t("ltc.avg_deal"), t("ltc.avg_cycle")],
                    [[r["label"], r["closed"], r["won"], r["lost"], r["win_rate"], r["won_amount"],
                      r["average_deal_size"], r["average_cycle_days"]] for r in rows])
    chart = _chart("bars", t("ltc.win_rate_by_team") if by == "team" else t("ltc.win_rate_by_rep"),
                   [r["label"] for r in rows], [r["win_rate"] or 0 for r in rows], "count",
                   [r["href"] for r in rows])
    overall = result["overall"]
    reasons = [{"kind": kind, "label": _option_label(service, "opportunity", "win_loss_reason",
                                                     None if reason == "unspecified" else reason),
                "count": n} for kind, key in (("won", "win_reasons"), ("lost", "loss_reasons"))
               for reason, n in sorted(overall[key].items(), key=lambda kv: -kv[1])]
    return render_page("analytics/win_loss.html", status=400 if errors else 200, result=result, overall=overall,
                       rows=rows, by=by, chart=chart, reasons=reasons, errors=errors,
                       values={"from": request.args.get("from") or "", "to": request.args.get("to") or ""},
                       open_href=_list_url("opportunity"),
                       csv_url=url_for("web.ltc_win_loss", by=by, format="csv", **{"from": first, "to": last}),
                       **_helpers())


# --- receivables aging per account (Finance) -------------------------------------------------

def _bucket_labels() -> dict[str, str]:
    return {b: t(f"ltc.bucket_{b.replace('-', '_').replace('+', '_plus')}") for b in AGING_BUCKETS}


@routes.page("/analytics/aging")
def ltc_aging():
    service = current_service()
    errors: dict[str, str] = {}
    as_of = _date_arg("as_of", errors)
    account = (request.args.get("account") or "").strip()[:64]
    result = aging_report.aging(service, {"as_of": as_of, "account": account or None})
    labels = _bucket_labels()
    accounts = result["accounts"]
    for row in accounts:
        row["label"] = row.get("name") or t("ltc.unnamed_account")
        row["href"] = _record_url("account", row["account"])
        row["instalments_href"] = _list_url("instalment", **{"f.account": row["account"]}) \
            if service.access.can("instalment", "read") else None
    if _wants_csv():
        return _csv("receivables-aging.csv",
                    [t("ltc.account"), *[labels[b] for b in AGING_BUCKETS], t("ltc.overdue"), t("ltc.total")],
                    [[r["label"], *[r["buckets"][b] for b in AGING_BUCKETS], r["overdue"], r["total"]]
                     for r in accounts])
    chart = _chart("columns", t("ltc.aging_chart"), [labels[b] for b in AGING_BUCKETS],
                   [result["buckets"][b] for b in AGING_BUCKETS], "money")
    account_name = next((r["label"] for r in accounts if r["account"] == account), None) if account else None
    return render_page("analytics/aging.html", status=400 if errors else 200, result=result, accounts=accounts,
                       buckets=AGING_BUCKETS, labels=labels, chart=chart, errors=errors, account=account,
                       account_name=account_name, values={"as_of": request.args.get("as_of") or ""},
                       csv_url=url_for("web.ltc_aging", format="csv", as_of=as_of, account=account or None),
                       **_helpers())


# --- the commission statement per rep and period (Finance) -----------------------------------

def _valid_period(text: str) -> bool:
    from .analytics.adjustments import period_kind

    return period_kind(text) is not None


@routes.page("/analytics/commissions")
def ltc_commissions():
    service = current_service()
    errors: dict[str, str] = {}
    user = (request.args.get("user") or "").strip()[:64]
    period = (request.args.get("period") or "").strip()[:16]
    if period and not _valid_period(period):
        errors["period"] = t("ltc.err_period")
        period = ""
    everything = commission_report.commission_statement(service, {})["rows"]  # what the filters offer
    users = sorted({(r["user"], r["name"] or t("ltc.unassigned")) for r in everything if r["user"]},
                   key=lambda u: u[1].casefold())
    periods = sorted({r["period"] for r in everything if r["period"]}, reverse=True)
    if user and user not in {u for u, _ in users} and user != service.principal.user_id:
        user = ""  # nobody the viewer may see: the statement of everyone they may see
    result = commission_report.commission_statement(service, {"user": user or None, "period": period or None})
    rows = result["rows"]
    for row in rows:
        row["label"] = row.get("name") or t("ltc.unassigned")
        row["href"] = url_for("web.ltc_commissions", user=row["user"], period=row["period"])
        row["lines_href"] = _list_url("commission_line", **{"f.user": row["user"], "f.period": row["period"]})
        for line in row.get("lines", []):
            line["href"] = _record_url("commission_line", line["id"])
            line["kind_label"] = _option_label(service, "commission_line", "kind", line["kind"])
            line["status_label"] = _option_label(service, "commission_line", "status", line["status"])
    if _wants_csv():
        header = [t("ltc.rep"), t("ltc.period"), t("ltc.collected"), t("ltc.delivered"), t("ltc.commission"),
                  t("ltc.adjustment"), t("ltc.clawback"), t("ltc.pending"), t("ltc.total")]
        return _csv("commission-statement.csv", header,
                    [[r["label"], r["period"], r["collected"], r["delivered"], r["commission"], r["adjustment"],
                      r["clawback"], r["pending_basis"], r["total"]] for r in rows])
    if user:  # one rep: a bar per period
        categories = [_period(r["period"]) for r in rows]
    elif period or len({r["period"] for r in rows}) == 1:  # one period: a bar per rep
        categories = [r["label"] for r in rows]
    else:
        categories = [f"{r['label']} · {_period(r['period'])}" for r in rows]
    chart = _chart("bars", t("ltc.commission_chart"), categories,
                   [r["total"] for r in rows], "money", [r["href"] for r in rows])
    return render_page("analytics/commissions.html", status=400 if errors else 200, rows=rows, users=users,
                       periods=periods, user=user, period=period, chart=chart, errors=errors,
                       detail=bool(user or period),
                       values={"period": request.args.get("period") or ""},
                       csv_url=url_for("web.ltc_commissions", format="csv", user=user or None, period=period or None),
                       **_helpers())


def _reads(object_name: str):
    return lambda access: access.can(object_name, "read")


NAV = (
    NavEntry("ltc_campaign_roi", "nav.campaign_roi", "web.ltc_campaign_roi", order=900, app="marketing",
             visible=_reads("campaign")),
    NavEntry("ltc_win_loss", "nav.win_loss", "web.ltc_win_loss", order=900, app="sales",
             visible=_reads("opportunity")),
    NavEntry("ltc_aging", "nav.aging", "web.ltc_aging", order=900, app="finance", visible=_reads("instalment")),
    NavEntry("ltc_commissions", "nav.commissions", "web.ltc_commissions", order=910, app="finance",
             visible=_reads("commission_line")),
)

FEATURE = Feature("ltc_analytics", pages=routes, nav=NAV, templates=HERE / "templates", messages=HERE / "messages")
