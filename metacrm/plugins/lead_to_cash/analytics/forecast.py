"""The sales forecast: stage-weighted and by forecast category, per close period and owner,
rolled up the reporting line, against the quotas."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from ....platform.errors import BadRequest
from ....platform.reports import can_report, period_key, report_owners
from ..common import CENT, ZERO, is_won_stage, money, money_str, pct_str, stage_options, user_names
from .rollup import period_range, rollup
from .scoped import _require, _select, _t

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
    `rows` / `totals` are per user (own and team figures); `rollup` / `rollup_totals` are the
    viewer's forecast view with the managers' adjustments (analytics/rollup.py), for every period
    from `from` to `to` (or those with figures).
    """
    params = params or {}
    period = _period_param(params)
    first, last, only = params.get("from") or None, params.get("to") or None, params.get("user")
    asked = period_range(first, last, period)
    _require(service, "opportunity")
    registry = service.registry
    stages = stage_options(registry)
    directory = service.runtime.directory()
    raw: dict[tuple[str, str], dict] = defaultdict(_blank)
    with service._reading() as conn:
        table = service.table("opportunity")
        opps = _select(service, conn, "opportunity", ["owner", "amount", "stage", "forecast_category", "close_date",
                                                      "probability"], table.c.close_date.isnot(None),
                       uses=("close_date",))
        quota_rows = []
        if can_report(service, "quota"):
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
    visible = report_owners(service, "opportunity")
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
    view = rollup(service, raw, quotas, sorted(set(periods) | set(asked)), _metrics, _blank, _add,
                  lambda ids: user_names(service, ids))
    return {"name": "forecast", "period": period, "periods": periods, "rows": result_rows, "totals": totals,
            "rollup": view["rows"], "rollup_totals": view["totals"], "adjustments": view["adjustments"],
            "chart_data": chart}
