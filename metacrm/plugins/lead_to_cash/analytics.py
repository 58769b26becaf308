"""Reports that a single aggregate cannot express (GET /api/v1/reports/{name}), and the
dashboard widgets. Every one counts only what the caller may report on (the `report`
scope of their roles, or `read` where a role gives none)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

import sqlalchemy as sa

from ...metadata.model import label_text
from ...platform.clock import today
from ...platform.errors import BadRequest, Forbidden
from ...platform.reports import period_key, report_action, scope_condition
from .common import (
    CENT,
    ZERO,
    is_won_stage,
    money,
    money_str,
    names_of,
    parse_date,
    pct_str,
    stage_options,
    user_names,
)
from .payments import AGING_BUCKETS, aging_bucket


def _require(service, object_name: str) -> None:
    if service.access.scope(object_name, report_action(service, object_name)) == "none":
        raise Forbidden(f"You may not report on {object_name} records.")


def _select(service, conn, object_name: str, columns: list[str], *where) -> list[sa.Row]:
    table = service.table(object_name)
    query = sa.select(*[table.c[c] for c in columns]).where(
        table.c.deleted_at.is_(None), scope_condition(service, object_name, table), *where)
    return conn.execute(query).fetchall()


def _t(locale: str, en: str, zh: str) -> str:
    return label_text({"en": en, "zh-CN": zh}, locale)


# --- forecast ----------------------------------------------------------------------------------

CATEGORY_ORDER = ("closed", "commit", "best_case", "pipeline")


def _blank() -> dict:
    return {"closed": ZERO, "commit_only": ZERO, "best_case_only": ZERO, "pipeline_only": ZERO, "omitted": ZERO,
            "weighted": ZERO, "open_count": 0, "won_count": 0}


def _add(into: dict, other: dict) -> None:
    for key, value in other.items():
        into[key] = into.get(key, 0) + value


def _metrics(raw: dict, quota: Decimal | None) -> dict:
    """Salesforce-style cumulative categories: commit = commit + closed; best case = best case +
    commit + closed; pipeline = every open deal (pipeline + best case + commit)."""
    closed = raw["closed"]
    commit = raw["commit_only"] + closed
    best = raw["best_case_only"] + raw["commit_only"] + closed
    pipeline = raw["pipeline_only"] + raw["best_case_only"] + raw["commit_only"]
    return {
        "closed": money_str(closed), "commit": money_str(commit), "best_case": money_str(best),
        "pipeline": money_str(pipeline), "weighted": money_str(raw["weighted"]), "omitted": money_str(raw["omitted"]),
        "open_count": raw["open_count"], "won_count": raw["won_count"],
        "quota": money_str(quota) if quota is not None else None,
        "attainment": pct_str(closed, quota) if quota else None,
    }


def _period_param(params: dict) -> str:
    period = params.get("period") or "quarter"
    if period not in ("month", "quarter"):
        raise BadRequest("period is month or quarter.", fields={"period": ["month or quarter"]})
    return period


def forecast(service, params: dict) -> dict:
    """Stage-weighted and category forecast by close period and owner, rolled up the reporting line.

    params: period (quarter | month), from / to (period keys, inclusive), user (one user's rows).
    """
    params = params or {}
    period = _period_param(params)
    first, last, only = params.get("from"), params.get("to"), params.get("user")
    _require(service, "opportunity")
    registry = service.registry
    stages = stage_options(registry)
    directory = service.runtime.directory()
    raw: dict[tuple[str, str], dict] = defaultdict(_blank)
    with service._reading() as conn:
        table = service.table("opportunity")
        opps = _select(service, conn, "opportunity", ["owner", "amount", "stage", "forecast_category", "close_date",
                                                      "probability"], table.c.close_date.isnot(None))
        quota_rows = []
        if service.access.can("quota", report_action(service, "quota")):
            quota_rows = _select(service, conn, "quota", ["user", "period", "amount"])
    for opp in opps:
        key = period_key(opp.close_date, period)
        if (first and key < first) or (last and key > last) or not opp.owner:
            continue
        bucket = raw[(opp.owner, key)]
        amount = money(opp.amount)
        stage = stages.get(str(opp.stage), {})
        probability = Decimal(str(stage.get("probability", opp.probability or 0)))
        if is_won_stage(registry, opp.stage):
            bucket["closed"] += amount
            bucket["won_count"] += 1
            bucket["weighted"] += amount
            continue
        category = opp.forecast_category or stage.get("forecast_category") or "pipeline"
        if stage.get("is_closed") or category in ("omitted", "closed"):
            if not stage.get("is_closed"):
                bucket["omitted"] += amount
            continue
        bucket[f"{category}_only"] += amount
        bucket["open_count"] += 1
        bucket["weighted"] += (amount * probability / 100).quantize(CENT)
    quotas: dict[tuple[str, str], Decimal] = {}
    monthly: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for q in quota_rows:
        if not q.user or not q.period:
            continue
        if period == "quarter" and "Q" not in q.period:
            year, month = q.period.split("-")
            monthly[(q.user, f"{year}-Q{(int(month) + 2) // 3}")] += money(q.amount)
        elif (period == "quarter") == ("Q" in q.period):
            quotas[(q.user, q.period)] = money(q.amount)
    for key, amount in monthly.items():
        quotas.setdefault(key, amount)
    for (user, key) in quotas:
        if (first and key < first) or (last and key > last):
            continue
        raw.setdefault((user, key), _blank())
    periods = sorted({key for _, key in raw})
    owners = {user for user, _ in raw}
    visible = service.access.owners_in_scope(service.access.scope("opportunity", report_action(service, "opportunity")))
    candidates = set(owners)
    for user in list(owners):
        manager = (directory.users.get(user) or {}).get("manager")
        seen = set()
        while manager and manager not in seen:
            seen.add(manager)
            candidates.add(manager)
            manager = (directory.users.get(manager) or {}).get("manager")
    if visible is not None:
        candidates &= visible | {service.principal.user_id}
    if only:
        candidates &= {only}
    names = user_names(service, candidates)
    result_rows = []
    for user in sorted(candidates, key=lambda u: (names.get(u) or "", u)):
        team = {user} | directory.reports_of(user)
        for key in periods:
            own = raw.get((user, key))
            team_raw = _blank()
            team_quota = None
            for member in team:
                if (member, key) in raw:
                    _add(team_raw, raw[(member, key)])
            member_quotas = [quotas[(m, key)] for m in team if (m, key) in quotas]
            if member_quotas:
                team_quota = sum(member_quotas, ZERO)
            if own is None and not any(team_raw[k] for k in ("closed", "commit_only", "best_case_only",
                                                                 "pipeline_only")) and team_quota is None:
                continue
            result_rows.append({
                "user": user, "name": names.get(user), "manager": (directory.users.get(user) or {}).get("manager"),
                "period": key, "team_size": len(team),
                "own": _metrics(own or _blank(), quotas.get((user, key))),
                "team": _metrics(team_raw, team_quota),
            })
    totals = {}
    for key in periods:
        total_raw = _blank()
        for (user, k), values in raw.items():
            if k == key and (visible is None or user in visible):
                _add(total_raw, values)
        quota_total = [amount for (user, k), amount in quotas.items() if k == key]
        totals[key] = _metrics(total_raw, sum(quota_total, ZERO) if quota_total else None)
    locale = service.principal.locale
    chart = {
        "type": "bar", "title": _t(locale, "Forecast", "销售预测"), "labels": periods,
        "series": [{"name": _t(locale, en, zh), "values": [totals[p][name] for p in periods]}
                   for name, en, zh in (("closed", "Closed", "已成交"), ("commit", "Commit", "承诺"),
                                        ("best_case", "Best case", "最佳情况"), ("pipeline", "Pipeline", "渠道"),
                                        ("weighted", "Weighted", "加权"))],
    }
    return {"name": "forecast", "period": period, "periods": periods, "rows": result_rows, "totals": totals,
            "chart_data": chart}


# --- campaign ROI and funnel ------------------------------------------------------------------------


def _funnel(counts: dict) -> dict:
    leads, converted = int(counts.get("leads", 0)), int(counts.get("converted", 0))
    opps, won = int(counts.get("opportunities", 0)), int(counts.get("won", 0))
    cost, revenue = money(counts.get("cost")), money(counts.get("won_revenue"))
    return {
        "leads": leads, "converted": converted, "opportunities": opps, "won": won,
        "lead_to_customer_rate": pct_str(converted, leads), "customer_to_opportunity_rate": pct_str(opps, converted),
        "win_rate": pct_str(won, opps), "lead_to_won_rate": pct_str(won, leads),
        "won_revenue": money_str(revenue), "actual_cost": money_str(cost),
        "cost_per_lead": money_str(cost / leads) if leads else None,
        "cost_per_won": money_str(cost / won) if won else None,
        "roi": pct_str(revenue - cost, cost),
    }


def campaign_roi(service, params: dict) -> dict:
    """Per campaign, per channel and overall: leads → converted (customers) → opportunities → won,
    the rate at each step, won revenue vs actual cost, cost per lead, ROI = (revenue - cost) / cost."""
    _require(service, "campaign")
    won = [v for v in stage_options(service.registry) if is_won_stage(service.registry, v)]
    per: dict[str, dict] = defaultdict(lambda: defaultdict(Decimal))
    with service._reading() as conn:
        campaigns = _select(service, conn, "campaign", ["id", "name", "channel", "actual_cost", "parent",
                                                        "record_type", "budget"])
        leads_t = service.table("lead")
        if service.access.scope("lead", report_action(service, "lead")) != "none":
            query = sa.select(leads_t.c.campaign, sa.func.count(), sa.func.sum(
                sa.case((leads_t.c.status == "converted", 1), else_=0))).where(
                leads_t.c.deleted_at.is_(None), leads_t.c.campaign.isnot(None),
                scope_condition(service, "lead", leads_t)).group_by(leads_t.c.campaign)
            for campaign, count, converted in conn.execute(query):
                per[campaign]["leads"] += count
                per[campaign]["converted"] += int(converted or 0)
        opps_t = service.table("opportunity")
        if service.access.scope("opportunity", report_action(service, "opportunity")) != "none":
            base = [opps_t.c.deleted_at.is_(None), opps_t.c.campaign.isnot(None),
                    scope_condition(service, "opportunity", opps_t)]
            for campaign, count in conn.execute(sa.select(opps_t.c.campaign, sa.func.count()).where(*base)
                                                .group_by(opps_t.c.campaign)):
                per[campaign]["opportunities"] += count
            for campaign, count, revenue in conn.execute(
                    sa.select(opps_t.c.campaign, sa.func.count(), sa.func.sum(opps_t.c.amount))
                    .where(*base, opps_t.c.stage.in_(won)).group_by(opps_t.c.campaign)):
                per[campaign]["won"] += count
                per[campaign]["won_revenue"] += money(revenue)
    locale = service.principal.locale
    channel_field = service.registry.object("campaign").fields["channel"]
    rows_out, channels, plans = [], defaultdict(lambda: defaultdict(Decimal)), defaultdict(lambda: defaultdict(Decimal))
    overall: dict = defaultdict(Decimal)
    by_id = {c.id: c for c in campaigns}
    for c in sorted(campaigns, key=lambda c: (c.name or "")):
        counts = dict(per.get(c.id, {}))
        counts["cost"] = money(c.actual_cost)
        if c.record_type == "marketing_plan":
            plans[c.id]["cost"] += counts["cost"]
            continue
        rows_out.append({"campaign": c.id, "name": c.name, "channel": c.channel, "plan": c.parent,
                         "budget": money_str(c.budget) if c.budget is not None else None, **_funnel(counts)})
        for target in (channels[c.channel or "none"], overall) + ((plans[c.parent],) if c.parent in by_id else ()):
            for key, value in counts.items():
                target[key] += value
    channel_rows = []
    for channel, counts in sorted(channels.items()):
        opt = channel_field.option(channel) or {}
        channel_rows.append({"channel": channel, "label": label_text(opt.get("label"), locale, channel),
                             **_funnel(counts)})
    plan_rows = [{"plan": pid, "name": by_id[pid].name, **_funnel(counts)}
                 for pid, counts in sorted(plans.items(), key=lambda kv: by_id[kv[0]].name or "") if pid in by_id]
    total = _funnel(overall)
    chart = {"type": "funnel", "title": _t(locale, "Campaign funnel", "营销漏斗"),
             "labels": [_t(locale, "Leads", "线索"), _t(locale, "Customers", "客户"),
                        _t(locale, "Opportunities", "商机"), _t(locale, "Won", "赢单")],
             "series": [{"name": _t(locale, "Count", "数量"),
                         "values": [total["leads"], total["converted"], total["opportunities"], total["won"]]}]}
    return {"name": "campaign_roi", "campaigns": rows_out, "channels": channel_rows, "plans": plan_rows,
            "overall": total, "chart_data": chart}


# --- opportunity analytics ------------------------------------------------------------------------


def _analytics(opps: list) -> dict:
    won = [o for o in opps if o["won"]]
    lost = [o for o in opps if not o["won"]]
    won_amount = sum((money(o["amount"]) for o in won), ZERO)
    cycles = [(o["close_date"] - o["opened_on"]).days for o in won if o["close_date"] and o["opened_on"]]
    reasons: dict[str, dict[str, int]] = {"won": defaultdict(int), "lost": defaultdict(int)}
    for o in opps:
        reasons["won" if o["won"] else "lost"][o["reason"] or "unspecified"] += 1
    return {
        "closed": len(opps), "won": len(won), "lost": len(lost), "win_rate": pct_str(len(won), len(opps)),
        "won_amount": money_str(won_amount),
        "average_deal_size": money_str(won_amount / len(won)) if won else None,
        "average_cycle_days": str((Decimal(sum(cycles)) / len(cycles)).quantize(Decimal("0.1"))) if cycles else None,
        "win_reasons": dict(sorted(reasons["won"].items())), "loss_reasons": dict(sorted(reasons["lost"].items())),
    }


def opportunity_analytics(service, params: dict) -> dict:
    """Win rate, average deal size, sales cycle (close date - opened on, won deals) and win / loss
    reasons of closed deals, overall, by rep and by team (the owner's department).

    params: from / to (close dates, inclusive)."""
    params = params or {}
    first, last = parse_date(params.get("from"), "from"), parse_date(params.get("to"), "to")
    _require(service, "opportunity")
    registry = service.registry
    closed_stages = [v for v, o in stage_options(registry).items() if o.get("is_closed")
                     or o.get("forecast_category") in ("closed", "omitted")]
    table = service.table("opportunity")
    where = [table.c.stage.in_(closed_stages)]
    if first:
        where.append(table.c.close_date >= first)
    if last:
        where.append(table.c.close_date <= last)
    with service._reading() as conn:
        found = _select(service, conn, "opportunity", ["owner", "amount", "stage", "close_date", "opened_on",
                                                       "win_loss_reason", "created_at"], *where)
        open_rows = _select(service, conn, "opportunity", ["amount"], table.c.stage.not_in(closed_stages))
    opps = [{"owner": o.owner, "amount": o.amount, "won": is_won_stage(registry, o.stage), "close_date": o.close_date,
             "opened_on": o.opened_on or (o.created_at.date() if o.created_at else None),
             "reason": o.win_loss_reason} for o in found]
    directory = service.runtime.directory()
    by_rep, by_team = defaultdict(list), defaultdict(list)
    for o in opps:
        by_rep[o["owner"]].append(o)
        by_team[(directory.users.get(o["owner"]) or {}).get("department")].append(o)
    reps = user_names(service, by_rep)
    teams = names_of(service, "department", [t for t in by_team if t])
    return {
        "name": "opportunity_analytics",
        "overall": {**_analytics(opps), "open": len(open_rows),
                    "open_amount": money_str(sum((money(o.amount) for o in open_rows), ZERO))},
        "by_rep": [{"user": u, "name": reps.get(u), **_analytics(v)}
                   for u, v in sorted(by_rep.items(), key=lambda kv: reps.get(kv[0]) or str(kv[0]))],
        "by_team": [{"department": d, "name": teams.get(d), **_analytics(v)}
                    for d, v in sorted(by_team.items(), key=lambda kv: teams.get(kv[0]) or str(kv[0]))],
    }


# --- receivables aging --------------------------------------------------------------------------------


def aging(service, params: dict) -> dict:
    """Outstanding receivables by days past due (not due, 0–30, 31–60, 61–90, 90+), per account."""
    params = params or {}
    as_of = parse_date(params.get("as_of"), "as_of") or today()
    _require(service, "instalment")
    table = service.table("instalment")
    where = [table.c.status != "paid"]
    if params.get("account"):
        where.append(table.c.account == params["account"])
    with service._reading() as conn:
        found = _select(service, conn, "instalment", ["account", "due_date", "amount", "paid_amount"], *where)
    totals = {b: ZERO for b in AGING_BUCKETS}
    per_account: dict[str, dict] = defaultdict(lambda: {b: ZERO for b in AGING_BUCKETS})
    counts = {b: 0 for b in AGING_BUCKETS}
    for inst in found:
        outstanding = money(inst.amount) - money(inst.paid_amount)
        if outstanding <= 0 or inst.due_date is None:
            continue
        bucket = aging_bucket(inst.due_date, as_of)
        totals[bucket] += outstanding
        counts[bucket] += 1
        per_account[inst.account][bucket] += outstanding
    names = names_of(service, "account", [a for a in per_account if a])
    accounts = []
    for account, buckets in per_account.items():
        overdue = sum((v for k, v in buckets.items() if k != "not_due"), ZERO)
        accounts.append({"account": account, "name": names.get(account),
                         "buckets": {k: money_str(v) for k, v in buckets.items()},
                         "overdue": money_str(overdue), "total": money_str(sum(buckets.values(), ZERO))})
    accounts.sort(key=lambda a: (-Decimal(a["overdue"]), a["name"] or ""))
    locale = service.principal.locale
    overdue_total = sum((v for k, v in totals.items() if k != "not_due"), ZERO)
    labels = {"not_due": _t(locale, "Not due", "未到期")}
    return {
        "name": "aging", "as_of": as_of.isoformat(), "buckets": {k: money_str(v) for k, v in totals.items()},
        "counts": counts, "overdue": money_str(overdue_total), "total": money_str(sum(totals.values(), ZERO)),
        "accounts": accounts,
        "chart_data": {"type": "bar", "title": _t(locale, "Receivables aging", "应收账龄"),
                       "labels": [labels.get(b, b) for b in AGING_BUCKETS],
                       "series": [{"name": _t(locale, "Outstanding", "未回款"),
                                   "values": [money_str(totals[b]) for b in AGING_BUCKETS]}]},
    }


# --- commission statement --------------------------------------------------------------------------


def commission_statement(service, params: dict) -> dict:
    """Per rep and period: collected / delivered basis, commission, bonus and penalty, clawbacks,
    what waits for delivery, and the total; with the lines when one rep or one period is asked."""
    params = params or {}
    _require(service, "commission_line")
    table = service.table("commission_line")
    where = []
    if params.get("user"):
        where.append(table.c.user == params["user"])
    if params.get("period"):
        where.append(table.c.period == params["period"])
    columns = ["id", "user", "period", "kind", "status", "source_key", "event_date", "basis_amount", "rate",
               "commission_amount", "days_early", "adjustment_amount", "total_amount", "payment", "order", "contract",
               "note"]
    with service._reading() as conn:
        found = _select(service, conn, "commission_line", columns, *where)
    groups: dict[tuple, dict] = {}
    detail = bool(params.get("user") or params.get("period"))
    for line in sorted(found, key=lambda r: (r.user or "", r.period or "", r.event_date or date.min, r.source_key or "")):
        key = (line.user, line.period)
        group = groups.setdefault(key, {"collected": ZERO, "delivered": ZERO, "target_basis": ZERO, "commission": ZERO,
                                        "adjustment": ZERO, "clawback": ZERO, "pending_basis": ZERO, "total": ZERO,
                                        "lines": []})
        basis, total = money(line.basis_amount), money(line.total_amount)
        if line.status == "pending":
            group["pending_basis"] += basis
        elif line.kind == "clawback":
            group["clawback"] += total
        else:
            group[{"collection": "collected", "delivery": "delivered"}.get(line.kind, "target_basis")] += basis
            group["commission"] += money(line.commission_amount)
            group["adjustment"] += money(line.adjustment_amount)
        group["total"] += total if line.status != "pending" else ZERO
        if detail:
            group["lines"].append({
                "id": line.id, "kind": line.kind, "status": line.status, "source": line.source_key,
                "date": line.event_date.isoformat() if line.event_date else None,
                "basis": money_str(line.basis_amount), "rate": str(line.rate) if line.rate is not None else None,
                "commission": money_str(line.commission_amount), "days_early": line.days_early,
                "adjustment": money_str(line.adjustment_amount), "total": money_str(line.total_amount),
                "payment": line.payment, "order": line.order, "contract": line.contract, "note": line.note})
    names = user_names(service, [u for u, _ in groups])
    out = []
    for (user, period), g in groups.items():
        row = {"user": user, "name": names.get(user), "period": period,
               **{k: money_str(v) for k, v in g.items() if k != "lines"}}
        if detail:
            row["lines"] = g["lines"]
        out.append(row)
    return {"name": "commission_statement", "rows": out}


# --- dashboard widgets -----------------------------------------------------------------------------------
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
        except Forbidden:
            return None  # nothing this user may report on: no widget

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

REPORTS = {
    "forecast": (forecast, {"en": "Sales forecast", "zh-CN": "销售预测"}),
    "campaign_roi": (campaign_roi, {"en": "Campaign ROI and funnel", "zh-CN": "营销ROI与漏斗"}),
    "opportunity_analytics": (opportunity_analytics, {"en": "Opportunity analytics", "zh-CN": "商机分析"}),
    "aging": (aging, {"en": "Receivables aging", "zh-CN": "应收账龄"}),
    "commission_statement": (commission_statement, {"en": "Commission statement", "zh-CN": "提成对账单"}),
}
