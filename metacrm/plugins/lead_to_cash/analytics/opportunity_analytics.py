"""Opportunity analytics: win rate, deal size, sales cycle and win / loss reasons of the
closed deals, overall, by rep and by team."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from ..common import (
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
from .scoped import _require, _select


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
                                                       "win_loss_reason", "created_at"], *where,
                        uses=("stage", "close_date"))
        open_rows = _select(service, conn, "opportunity", ["amount"], table.c.stage.not_in(closed_stages),
                            uses=("stage",))
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
