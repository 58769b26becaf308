"""The built-in lead-to-cash plugin: what the default metadata (metacrm/default_schemas) cannot
say by itself. It hooks in only through the public PluginContext (metacrm.plugins.api):

- before_save / after_save hooks: key leads from priority rules; opportunity stage fields
  (probability, forecast category, stage_changed_at, closed_at); quote lines and totals;
  contract and order lifecycles; partial deliveries; the credit limit on order confirmation;
  payment links, instalment status from receipts, the account's credit rating; commission lines;
- record actions: `convert` on lead, `release_credit` on order, `recompute` on commission_plan;
- periodic jobs: stalled deals, overdue instalments, key-lead re-scoring;
- manager overrides of the forecast (forecast_adjustment: scope, one per manager, person, period);
- reports: forecast (with the roll-up the Forecast page shows), campaign_roi, opportunity_analytics,
  aging, commission_statement;
- dashboard widgets: ltc_funnel, ltc_forecast, ltc_roi, ltc_aging;
- the ERP link (erp.py): order status changes out as signed webhooks, statuses back in.

Derived values the acting user may not edit (an instalment's status when finance records a
receipt, an account's credit rating, commission lines) are written through
ctx.system_service() on the same transaction, hence "elevated" in the manifest; the jobs
need it too (they have no acting user).
"""

from __future__ import annotations

from . import (
    analytics,
    campaigns,
    commission,
    deliveries,
    erp,
    leads,
    opportunities,
    orders,
    payments,
    scoring,
)

MANIFEST = {
    "name": "lead_to_cash",
    "version": "0.1.0",
    "metacrm": ">=0.1,<1",
    "label": {"en": "Lead to cash", "zh-CN": "从线索到回款"},
    "description": "Lead-to-cash CRM behaviour: conversion, forecasts, ROI, payments, credit, commission.",
    "permissions": ["elevated"],
    "hooks": {
        "before_save": ["lead", "opportunity", "quote", "quote_line", "contract", "contract_amendment", "order",
                        "order_line", "delivery", "delivery_line", "payment_plan", "instalment", "payment", "quota",
                        "forecast_adjustment"],
        "after_save": ["campaign_task", "lead_priority_rule", "activity", "opportunity", "order", "order_line",
                       "instalment", "payment", "quota", "delivery_line"],
    },
    "record_actions": {"lead": ["convert"], "order": ["release_credit"], "commission_plan": ["recompute"]},
    "jobs": ["rescore_key_leads", "stalled_opportunities", "overdue_instalments"],
    "blueprint": True,  # the ERP link's inbound status endpoint: /api/v1/x/lead_to_cash/erp/status
}

SAVE = ["create", "update"]
WRITES = ["create", "update", "delete", "restore"]


def setup(ctx) -> None:
    # L1 campaigns
    ctx.after_save("campaign_task", campaigns.task_after_save, ops=WRITES)
    # L2 leads
    ctx.before_save("lead", scoring.score_hook, order=140, ops=SAVE)
    ctx.before_save("lead", leads.key_lead_hook, order=150, ops=SAVE)
    ctx.after_save("activity", scoring.follow_up_after_save, ops=WRITES)
    ctx.after_save("lead_priority_rule", leads.priority_rule_changed, ops=WRITES)
    ctx.record_action("lead", "convert", leads.convert_action, label={"en": "Convert", "zh-CN": "转化"},
                      dialog="web.lead_convert")  # convert_pages.py: account / contact / opportunity first
    ctx.job("rescore_key_leads", leads.rescore_job)
    # L4 opportunities and quotes
    ctx.before_save("opportunity", opportunities.opportunity_hook, order=150, ops=SAVE)
    ctx.after_save("activity", opportunities.follow_up_hook, ops=SAVE)
    ctx.after_save("opportunity", opportunities.won_hook, ops=SAVE)
    ctx.job("stalled_opportunities", opportunities.stalled_job)
    ctx.before_save("quote", opportunities.quote_hook, order=150, ops=SAVE)
    ctx.before_save("quote_line", opportunities.quote_line_hook, order=150, ops=WRITES)
    # L5 contracts and orders
    ctx.before_save("contract", orders.contract_hook, order=150, ops=SAVE)
    ctx.before_save("contract_amendment", orders.amendment_hook, order=150, ops=["create"])
    ctx.before_save("order", orders.order_hook, order=150, ops=SAVE)
    ctx.after_save("order", orders.order_after_save, ops=WRITES)
    ctx.after_save("order", erp.erp_order_after_save, order=300, ops=SAVE)  # ERP link: signed webhook out
    ctx.blueprint(erp.blueprint(ctx))  # ERP link: status updates in
    ctx.before_save("order_line", orders.order_line_hook, order=150, ops=SAVE)
    ctx.after_save("order_line", orders.order_line_after_save, ops=WRITES)
    ctx.before_save("delivery", deliveries.delivery_hook, order=150, ops=SAVE)
    ctx.before_save("delivery_line", deliveries.delivery_line_hook, order=150, ops=["create", "update", "restore"])
    ctx.after_save("delivery_line", deliveries.delivery_line_after_save, ops=WRITES)
    ctx.record_action("order", "release_credit", orders.release_credit_action, permission="credit.release",
                      label={"en": "Release credit", "zh-CN": "信用放行"})
    # L6 payments, credit, commission
    ctx.before_save("payment_plan", payments.payment_plan_hook, order=150, ops=SAVE)
    ctx.before_save("instalment", payments.instalment_hook, order=150, ops=["create", "update", "restore"])
    ctx.before_save("instalment", payments.active_plan_guard, order=160, ops=WRITES)
    ctx.after_save("instalment", payments.instalment_after_save, ops=WRITES)
    ctx.before_save("payment", payments.payment_hook, order=150, ops=SAVE)
    ctx.after_save("payment", payments.payment_after_save, ops=WRITES)
    ctx.job("overdue_instalments", payments.overdue_job)
    ctx.before_save("quota", commission.quota_hook, order=150, ops=SAVE)
    ctx.after_save("quota", commission.quota_after_save, ops=WRITES)
    ctx.record_action("commission_plan", "recompute", commission.recompute_plan_action,
                      label={"en": "Recompute commission", "zh-CN": "重算提成"})
    # the manager's forecast: adjustments kept beside the reps' own figures
    ctx.before_save("forecast_adjustment", analytics.adjustments.adjustment_hook, order=150, ops=WRITES)
    # reports and dashboards
    for name, (fn, label) in analytics.REPORTS.items():
        ctx.report(name, fn, label=label)
    for name, fn in analytics.WIDGETS.items():
        ctx.dashboard_widget(name, fn)
    ctx.runtime.extensions["lead_to_cash"] = {"version": MANIFEST["version"], "ctx": ctx}
