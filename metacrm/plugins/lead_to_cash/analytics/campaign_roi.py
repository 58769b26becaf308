"""Campaign ROI and the marketing funnel: leads, customers, opportunities and won deals per
campaign, channel and marketing plan, against what the campaigns cost."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import sqlalchemy as sa

from ....metadata.model import label_text
from ....platform.reports import can_report, require_visible, scope_condition
from ..common import is_won_stage, money, money_str, pct_str, stage_options
from .scoped import _require, _select, _t


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
        if can_report(service, "lead"):
            require_visible(service, "lead", ("campaign", "status"))
            query = sa.select(leads_t.c.campaign, sa.func.count(), sa.func.sum(
                sa.case((leads_t.c.status == "converted", 1), else_=0))).where(
                leads_t.c.deleted_at.is_(None), leads_t.c.campaign.isnot(None),
                scope_condition(service, "lead", leads_t)).group_by(leads_t.c.campaign)
            for campaign, count, converted in conn.execute(query):
                per[campaign]["leads"] += count
                per[campaign]["converted"] += int(converted or 0)
        opps_t = service.table("opportunity")
        if can_report(service, "opportunity"):
            require_visible(service, "opportunity", ("campaign", "stage", "amount"))
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
