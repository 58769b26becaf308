"""The commission statement: per rep and period, what the commission lines add up to."""

from __future__ import annotations

from datetime import date

from ..common import ZERO, money, money_str, user_names
from .scoped import _require, _select


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
        found = _select(service, conn, "commission_line", columns, *where, uses=("user", "period"))
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
