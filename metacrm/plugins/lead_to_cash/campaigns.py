"""L1 campaigns: a task's cost reaches the marketing plan's totals.

The core rollups keep campaign.task_cost (and with it the formulas actual_cost and roi) and the
plan's rollups (plan_budget, plan_cost, plan_expected_revenue over its campaigns) current, but
a rollup written into the campaign does not save the campaign, so the plan would not see a
task's cost. Re-saving the campaign through the write path runs its own rollup into the plan.
"""

from __future__ import annotations

from .common import fetch, system_for


def task_after_save(ctx) -> None:
    """after_save on campaign_task: refresh the plan totals of the campaigns it (was) under."""
    if ctx.op == "update" and not (ctx.changed("cost") or ctx.changed("campaign")):
        return
    for campaign_id in {ctx.record.get("campaign"), (ctx.old or {}).get("campaign")} - {None}:
        campaign = fetch(ctx, ctx.conn, "campaign", campaign_id)
        if campaign is not None and campaign.get("parent"):
            system_for(ctx).system_update("campaign", campaign_id, {}, note=None, track=False)
