"""Receivables aging: what is outstanding, by days past due, per account."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from ....platform.clock import today
from ..common import ZERO, money, money_str, names_of, parse_date
from ..payments import AGING_BUCKETS, aging_bucket
from .scoped import _require, _select, _t


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
        found = _select(service, conn, "instalment", ["account", "due_date", "amount", "paid_amount"], *where,
                        uses=("status",))
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
