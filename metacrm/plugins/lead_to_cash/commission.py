"""Sales commission from collected payments (and deliveries), as commission_line records.

Which plan: the rep's quota for the period (month `2025-03` or quarter `2025-Q1`) names a
commission_plan; otherwise the active plan marked is_default. The plan's `period` (month or
quarter) is the accounting period; tiers accumulate within it.

Credit events per mode:
- on_collection: each receipt (payment with a positive amount) of the rep's contracts;
- on_collection_and_delivery: the same receipts, earned only once every live order of the
  contract is delivered (until then the line waits as `pending`, at zero);
- on_delivery: each delivered order line (its delivered value, dated by its last delivery);
- on_target: one line per rep and period: the period's net collections, paid at the rate
  of the quota attainment reached (tiers are attainment percentages then).

Tiers (commission_tier: from, up to, rate %) give f(C), the commission on a cumulative
basis C in the period: `whole` pays all of C at the rate of the tier C falls in, `marginal`
pays each band at its own rate. Events are taken in date order and each line gets
round(f(C after)) - round(f(C before)), so partial payments earn pro rata, crossing a tier
is paid on the event that crosses it, and the lines of a period always add up to f(total).

Early bonus / late penalty (receipts only): days = due date - receipt date; early:
+commission x min(days x early_bonus_pct_per_day, cap) %; late: -commission x min(-days x
late_penalty_pct_per_day, cap) %; cap = max_adjustment_pct.

Clawback: a partial refund (negative receipt naming `refund_of`) takes back the original
line's commission and adjustment pro rata to the refunded share; flagging a receipt
`refunded` takes back what is left. On delivery plans, each return line (a `delivery` batch
of kind return) takes back its share of its order line's delivery commission (returned /
delivered quantity, source `return_line:<delivery_line id>`), and an order set to returned
takes back what its return batches have not; deleting a return batch or line (or restoring
it) recomputes, so the clawback goes (or comes back) with it. A clawback line sits in the
period of the refund / return. Collection plans pay on cash: returned goods take commission
back there through the refund (a negative receipt naming `refund_of`), not the return.

Lines are derived data: recompute(rep, period) rewrites the period's lines (create, update,
delete by `source_key`), so it is idempotent and runs after every relevant save.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa

from ...platform.errors import ValidationFailed
from ...platform.reports import period_key
from .common import CENT, ZERO, as_date, fetch, money, rows, system_for, to_input

PERIOD_RE = re.compile(r"^(\d{4})-(?:(0[1-9]|1[0-2])|Q([1-4]))$")
RATE_PLACES = Decimal("0.0001")
EVENT_MODES = ("on_collection", "on_collection_and_delivery", "on_delivery")


def period_range(key: str) -> tuple[date, date]:
    match = PERIOD_RE.match(key or "")
    if not match:
        raise ValueError(key)
    year = int(match.group(1))
    if match.group(2):
        first_month, months = int(match.group(2)), 1
    else:
        first_month, months = (int(match.group(3)) - 1) * 3 + 1, 3
    start = date(year, first_month, 1)
    end_month = first_month + months
    end = date(year + (end_month > 12), (end_month - 1) % 12 + 1, 1)
    return start, date.fromordinal(end.toordinal() - 1)


def period_type(key: str) -> str:
    return "quarter" if "Q" in key else "month"


# --- tiers -------------------------------------------------------------------------------------


def tier_commission(basis: Decimal, tiers: list[dict], tier_mode: str) -> Decimal:
    """f(C): the commission on a cumulative basis (unrounded)."""
    if basis <= 0 or not tiers:
        return Decimal(0)
    if tier_mode == "whole":
        for tier in tiers:
            low, high = Decimal(tier["from_value"]), tier.get("to_value")
            if basis >= low and (high is None or basis < Decimal(high)):
                return basis * Decimal(tier["rate"]) / 100
        return Decimal(0)
    total = Decimal(0)
    for tier in tiers:
        low, high = Decimal(tier["from_value"]), tier.get("to_value")
        top = basis if high is None else min(basis, Decimal(high))
        if top > low:
            total += (top - low) * Decimal(tier["rate"]) / 100
    return total


def target_commission(basis: Decimal, quota: Decimal, tiers: list[dict], tier_mode: str) -> tuple[Decimal, Decimal]:
    """(commission, attainment %) for on_target plans: tiers are attainment bands in %."""
    if quota <= 0 or basis <= 0:
        return Decimal(0), Decimal(0)
    attainment = basis * 100 / quota
    if tier_mode == "whole":
        for tier in tiers:
            low, high = Decimal(tier["from_value"]), tier.get("to_value")
            if attainment >= low and (high is None or attainment < Decimal(high)):
                return basis * Decimal(tier["rate"]) / 100, attainment
        return Decimal(0), attainment
    total = Decimal(0)
    for tier in tiers:
        low, high = Decimal(tier["from_value"]), tier.get("to_value")
        top = attainment if high is None else min(attainment, Decimal(high))
        if top > low:
            total += quota * (top - low) / 100 * Decimal(tier["rate"]) / 100
    return total, attainment


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def adjustment(commission: Decimal, days_early: int, plan: dict) -> Decimal:
    cap = Decimal(plan.get("max_adjustment_pct") or 0)
    if days_early > 0 and plan.get("early_bonus_pct_per_day"):
        pct = min(Decimal(days_early) * Decimal(plan["early_bonus_pct_per_day"]), cap)
        return cents(commission * pct / 100)
    if days_early < 0 and plan.get("late_penalty_pct_per_day"):
        pct = min(Decimal(-days_early) * Decimal(plan["late_penalty_pct_per_day"]), cap)
        return -cents(commission * pct / 100)
    return ZERO


# --- which plan ----------------------------------------------------------------------------------


def resolve(service, conn, rep: str, day: date) -> tuple[dict, str, dict | None] | None:
    """(plan, period key, quota) for a rep's event on `day`, or None without a plan."""
    keys = {"month": period_key(day, "month"), "quarter": period_key(day, "quarter")}
    qtable = service.table("quota")
    quotas = rows(service, conn, "quota", qtable.c.user == rep, qtable.c.period.in_(list(keys.values())),
                  order_by=["created_at"])
    for quota in quotas:
        plan = fetch(service, conn, "commission_plan", quota.get("commission_plan"))
        if plan and plan.get("active") and keys.get(plan.get("period") or "quarter") == quota["period"]:
            return plan, quota["period"], quota
    ptable = service.table("commission_plan")
    defaults = rows(service, conn, "commission_plan", ptable.c.active.is_(True), ptable.c.is_default.is_(True),
                    order_by=["created_at"])
    if not defaults:
        return None
    plan = defaults[0]
    key = keys[plan.get("period") or "quarter"]
    quota = next((q for q in quotas if q["period"] == key), None)
    return plan, key, quota


def tiers_of(service, conn, plan_id: str) -> list[dict]:
    table = service.table("commission_tier")
    return rows(service, conn, "commission_tier", table.c.plan == plan_id, order_by=["from_value"])


# --- events -------------------------------------------------------------------------------------


def _contract_delivered(service, conn, contract_id: str | None, cache: dict) -> bool:
    if not contract_id:
        return False
    if contract_id not in cache:
        table = service.table("order")
        orders = rows(service, conn, "order", table.c.contract == contract_id,
                      table.c.status.not_in(["cancelled", "returned"]), columns=["status", "delivery_status"])
        cache[contract_id] = bool(orders) and all(
            o.get("status") == "delivered" or o.get("delivery_status") == "delivered" for o in orders)
    return cache[contract_id]


def _payments(service, conn, rep: str, column: str, start: date, end: date, *where) -> list[dict]:
    table = service.table("payment")
    return rows(service, conn, "payment", table.c.sales_rep == rep, table.c[column] >= start,
                table.c[column] <= end, *where, order_by=[column, "id"])


def desired_lines(service, conn, rep: str, plan: dict, key: str, quota: dict | None) -> dict[str, dict]:
    """The commission lines a rep should have for a period under a plan, by source_key."""
    start, end = period_range(key)
    mode = plan.get("mode") or "on_collection"
    tiers = tiers_of(service, conn, plan["id"])
    tier_mode = plan.get("tier_mode") or "marginal"
    base = {"user": rep, "plan": plan["id"], "period": key}
    lines: dict[str, dict] = {}
    payment_table = service.table("payment")

    if mode == "on_target":
        if quota is None or not quota.get("amount"):
            return lines
        receipts = _payments(service, conn, rep, "received_on", start, end)
        refunded = {p["id"] for p in receipts if p.get("refunded")}
        basis = sum((money(p["amount"]) for p in receipts
                     if p["id"] not in refunded and p.get("refund_of") not in refunded), ZERO)
        commission, attainment = target_commission(basis, money(quota["amount"]), tiers, tier_mode)
        commission = cents(commission)
        lines[f"target:{rep}:{key}"] = dict(
            base, kind="target", status="earned", event_date=end, basis_amount=basis,
            rate=(commission * 100 / basis).quantize(RATE_PLACES) if basis else None,
            commission_amount=commission, adjustment_amount=ZERO, total_amount=commission, days_early=None,
            note=f"quota {money(quota['amount'])}, attainment {attainment.quantize(CENT)}%")
        return lines

    events = []  # (date, key, basis, extra)
    pending = []
    if mode in ("on_collection", "on_collection_and_delivery"):
        delivered_cache: dict = {}
        for p in _payments(service, conn, rep, "received_on", start, end, payment_table.c.amount > 0):
            instalment = fetch(service, conn, "instalment", p.get("instalment")) or {}
            extra = {"payment": p["id"], "contract": p.get("contract"), "due": instalment.get("due_date"),
                     "received": p.get("received_on")}
            if mode == "on_collection_and_delivery" and not _contract_delivered(
                    service, conn, p.get("contract"), delivered_cache):
                pending.append((p["received_on"], f"payment:{p['id']}", money(p["amount"]), extra))
            else:
                events.append((p["received_on"], f"payment:{p['id']}", money(p["amount"]), extra))
    else:
        lines_t, orders_t = service.table("order_line"), service.table("order")
        query = (sa.select(lines_t.c.id, lines_t.c.delivered_amount, lines_t.c.delivered_on, lines_t.c.order,
                           orders_t.c.contract)
                 .select_from(lines_t.join(orders_t, orders_t.c.id == lines_t.c.order))
                 .where(orders_t.c.sales_rep == rep, orders_t.c.deleted_at.is_(None), lines_t.c.deleted_at.is_(None),
                        orders_t.c.status != "cancelled", lines_t.c.delivered_on >= start,
                        lines_t.c.delivered_on <= end, lines_t.c.delivered_amount > 0)
                 .order_by(lines_t.c.delivered_on, lines_t.c.id))
        for row in conn.execute(query):
            extra = {"order": row.order, "contract": row.contract}
            events.append((row.delivered_on, f"delivery:{row.id}", money(row.delivered_amount), extra))

    events.sort(key=lambda e: (e[0], e[1]))
    cumulative, paid_so_far = ZERO, ZERO
    for day, source_key, basis, extra in events:
        cumulative += basis
        total_to_date = cents(tier_commission(cumulative, tiers, tier_mode))
        commission = total_to_date - paid_so_far
        paid_so_far = total_to_date
        days_early = None
        adj = ZERO
        if extra.get("due") is not None and extra.get("received") is not None:
            days_early = (extra["due"] - extra["received"]).days
            adj = adjustment(commission, days_early, plan)
        lines[source_key] = dict(
            base, kind="collection" if "payment" in extra else "delivery", status="earned", event_date=day,
            basis_amount=basis, rate=(commission * 100 / basis).quantize(RATE_PLACES) if basis else None,
            commission_amount=commission, days_early=days_early, adjustment_amount=adj,
            total_amount=commission + adj, payment=extra.get("payment"), order=extra.get("order"),
            contract=extra.get("contract"), note=None)
    for day, source_key, basis, extra in pending:
        lines[source_key] = dict(
            base, kind="collection", status="pending", event_date=day, basis_amount=basis, rate=None,
            commission_amount=ZERO, days_early=None, adjustment_amount=ZERO, total_amount=ZERO,
            payment=extra.get("payment"), contract=extra.get("contract"), note="waiting for delivery")

    # clawbacks in this period
    def original_line(source_key: str) -> dict | None:
        if source_key in lines:
            return lines[source_key]
        table = service.table("commission_line")
        found = rows(service, conn, "commission_line", table.c.source_key == source_key, table.c.user == rep)
        return found[0] if found else None

    def claw(source_key: str, original: dict | None, fraction: Decimal, day: date, basis: Decimal, extra: dict):
        if original is None or original.get("status") != "earned" or not fraction:
            return
        commission = -cents(money(original.get("commission_amount")) * fraction)
        adj = -cents(money(original.get("adjustment_amount")) * fraction)
        lines[source_key] = dict(
            base, kind="clawback", status="earned", event_date=day, basis_amount=basis,
            rate=original.get("rate"), commission_amount=commission, days_early=None, adjustment_amount=adj,
            total_amount=commission + adj, payment=extra.get("payment"), order=extra.get("order"),
            contract=extra.get("contract"), note=extra.get("note"))

    if mode in ("on_collection", "on_collection_and_delivery"):
        for p in _payments(service, conn, rep, "received_on", start, end, payment_table.c.amount < 0):
            original = fetch(service, conn, "payment", p.get("refund_of"))
            if original is None or original.get("refunded") or not original.get("amount"):
                continue
            fraction = -money(p["amount"]) / money(original["amount"])
            claw(f"refund:{p['id']}", original_line(f"payment:{original['id']}"), fraction, p["received_on"],
                 money(p["amount"]), {"payment": p["id"], "contract": p.get("contract"),
                                       "note": f"partial refund of {original.get('number') or original['id']}"})
        for p in _payments(service, conn, rep, "refunded_on", start, end, payment_table.c.refunded.is_(True),
                           payment_table.c.amount > 0):
            refunds = conn.execute(sa.select(sa.func.sum(payment_table.c.amount)).where(
                payment_table.c.refund_of == p["id"], payment_table.c.deleted_at.is_(None))).scalar()
            already = -money(refunds) / money(p["amount"]) if refunds else Decimal(0)
            remaining = 1 - already
            claw(f"refunded:{p['id']}", original_line(f"payment:{p['id']}"), remaining, p["refunded_on"],
                 -money(p["amount"]) * remaining, {"payment": p["id"], "contract": p.get("contract"),
                                                   "note": "payment refunded"})
    else:
        orders_t, lines_t = service.table("order"), service.table("order_line")
        # a return batch (delivery of kind return) takes back its share of the line's commission:
        # returned quantity / delivered quantity, one clawback line per return line, dated by the
        # batch, so deleting the batch (or its line) gives the commission back on the next recompute
        batches_t, items_t = service.table("delivery"), service.table("delivery_line")
        query = (sa.select(items_t.c.id, items_t.c.quantity, items_t.c.delivered_on, items_t.c.order_line,
                           batches_t.c.number.label("batch"), lines_t.c.delivered_qty, lines_t.c.unit_price,
                           lines_t.c.description, orders_t.c.id.label("order_id"), orders_t.c.contract,
                           orders_t.c.number.label("order_number"))
                 .select_from(items_t.join(batches_t, batches_t.c.id == items_t.c.delivery)
                              .join(lines_t, lines_t.c.id == items_t.c.order_line)
                              .join(orders_t, orders_t.c.id == lines_t.c.order))
                 .where(orders_t.c.sales_rep == rep, items_t.c.kind == "return", items_t.c.deleted_at.is_(None),
                        batches_t.c.deleted_at.is_(None), lines_t.c.deleted_at.is_(None),
                        orders_t.c.deleted_at.is_(None), orders_t.c.status != "cancelled",
                        items_t.c.delivered_on >= start, items_t.c.delivered_on <= end)
                 .order_by(items_t.c.delivered_on, items_t.c.id))
        for row in conn.execute(query):
            delivered, quantity = money(row.delivered_qty), money(row.quantity)
            if delivered <= 0 or quantity <= 0:
                continue
            claw(f"return_line:{row.id}", original_line(f"delivery:{row.order_line}"), min(quantity / delivered, 1),
                 row.delivered_on, -money(quantity * money(row.unit_price)),
                 {"order": row.order_id, "contract": row.contract,
                  "note": f"{quantity} of {row.description or 'a line'} returned ({row.batch}, order "
                          f"{row.order_number})"})
        returned = rows(service, conn, "order", orders_t.c.sales_rep == rep, orders_t.c.status == "returned",
                        orders_t.c.returned_on >= start, orders_t.c.returned_on <= end)
        for order in returned:
            # the whole order back: what its return batches have not already taken back
            for line in rows(service, conn, "order_line", lines_t.c.order == order["id"]):
                delivered = money(line.get("delivered_qty"))
                if delivered <= 0:
                    continue
                rest = 1 - min(money(line.get("returned_qty")) / delivered, Decimal(1))
                claw(f"return:{line['id']}", original_line(f"delivery:{line['id']}"), rest,
                     order["returned_on"], -money(money(line.get("delivered_amount")) * rest),
                     {"order": order["id"], "contract": order.get("contract"),
                      "note": f"order {order.get('number')} returned"})
    return lines


# --- writing ----------------------------------------------------------------------------------------

COMPARED = ("plan", "kind", "status", "event_date", "basis_amount", "rate", "commission_amount", "days_early",
            "adjustment_amount", "total_amount", "payment", "order", "contract", "note", "user", "period")


def write_lines(system, conn, rep: str, keys: Iterable[str], desired: dict[str, dict]) -> None:
    """Make the rep's lines of the periods `keys` exactly `desired`."""
    table = system.table("commission_line")
    existing = rows(system, conn, "commission_line", table.c.user == rep, table.c.period.in_(list(keys)))
    by_key = {}
    for line in existing:
        if line.get("source_key") in desired and line["source_key"] not in by_key:
            by_key[line["source_key"]] = line
        else:
            system.delete("commission_line", line["id"])
    for source_key, values in desired.items():
        current = by_key.get(source_key)
        if current is None:
            # line_key is unique over live lines: two transactions recomputing the same rep's
            # period can not both add the commission of one payment
            system.create("commission_line", to_input(system, "commission_line", dict(
                values, source_key=source_key, line_key=f"{rep}|{source_key}", owner=rep)))
            continue
        changes = {}
        for name in COMPARED:
            new, old = values.get(name), current.get(name)
            if isinstance(new, Decimal) and old is not None:
                if Decimal(old) != new:
                    changes[name] = new
            elif new != old:
                changes[name] = new
        if changes:
            system.update("commission_line", current["id"], to_input(system, "commission_line", changes))


def recompute(system, conn, rep: str | None, day: date | None, *, done: set | None = None) -> None:
    """Rewrite the lines of the rep's period containing `day`."""
    if not rep or day is None:
        return
    resolved = resolve(system, conn, rep, day)
    keys = {period_key(day, "month"), period_key(day, "quarter")}
    marker = (rep, tuple(sorted(keys)))
    if done is not None:
        if marker in done:
            return
        done.add(marker)
    if resolved is None:
        write_lines(system, conn, rep, keys, {})
        return
    plan, key, quota = resolved
    write_lines(system, conn, rep, keys, desired_lines(system, conn, rep, plan, key, quota))


def _recompute_all(ctx, pairs: Iterable[tuple[str | None, date | None]]) -> None:
    system = system_for(ctx)
    done: set = set()
    for rep, day in sorted({(r, as_date(d)) for r, d in pairs if r and d}, key=lambda p: (p[0], p[1])):
        recompute(system, ctx.conn, rep, day, done=done)


# --- triggers -----------------------------------------------------------------------------------------


def after_payment_change(ctx) -> None:
    pairs = []
    for record in (ctx.record, ctx.old or {}):
        rep = record.get("sales_rep")
        pairs += [(rep, record.get("received_on")), (rep, record.get("refunded_on"))]
    _recompute_all(ctx, pairs)


def after_delivery_change(ctx) -> None:
    order = fetch(ctx, ctx.conn, "order", ctx.record.get("order"))
    if order is None:
        return
    dates = {ctx.record.get("delivered_on"), (ctx.old or {}).get("delivered_on")}
    _recompute_all(ctx, [(order.get("sales_rep"), d) for d in dates])


def after_return_change(ctx) -> None:
    """A return line saved, deleted or restored: its period's clawback (dated by its batch)."""
    order = fetch(ctx, ctx.conn, "order", ctx.record.get("order"))
    if order is None:
        return
    dates = {ctx.record.get("delivered_on"), (ctx.old or {}).get("delivered_on")}
    _recompute_all(ctx, [(order.get("sales_rep"), d) for d in dates])


def after_order_change(ctx) -> None:
    service = ctx.service
    pairs = []
    for record in (ctx.record, ctx.old or {}):
        rep = record.get("sales_rep")
        pairs.append((rep, record.get("returned_on")))
        lines_t = service.table("order_line")
        for line in rows(service, ctx.conn, "order_line", lines_t.c.order == ctx.record["id"], columns=["delivered_on"]):
            pairs.append((rep, line.get("delivered_on")))
        if record.get("contract"):
            payments_t = service.table("payment")
            for p in rows(service, ctx.conn, "payment", payments_t.c.contract == record["contract"],
                          columns=["sales_rep", "received_on"]):
                pairs.append((p.get("sales_rep"), p.get("received_on")))
    _recompute_all(ctx, pairs)


def quota_hook(ctx) -> None:
    """before_save on quota: a well-formed period; the rep owns (and so sees) their quota."""
    if ctx.op not in ("create", "update"):
        return
    period = ctx.record.get("period") or ""
    if not PERIOD_RE.match(period):
        raise ValidationFailed("A period is a month like 2025-03 or a quarter like 2025-Q1.",
                               fields={"period": ["Use YYYY-MM or YYYY-Qn."]})
    if ctx.record.get("user"):
        ctx.record["owner"] = ctx.record["user"]
    table = ctx.service.table("quota")
    clash = ctx.conn.execute(sa.select(table.c.id).where(
        table.c.user == ctx.record.get("user"), table.c.period == period, table.c.id != ctx.record["id"],
        table.c.deleted_at.is_(None)).limit(1)).first()
    if clash:
        raise ValidationFailed("This rep already has a quota for that period.",
                               fields={"period": ["Already set for this rep."]})


def quota_after_save(ctx) -> None:
    pairs = []
    for record in (ctx.record, ctx.old or {}):
        if record.get("period") and PERIOD_RE.match(record["period"]):
            pairs.append((record.get("user"), period_range(record["period"])[0]))
    _recompute_all(ctx, pairs)


def recompute_plan_action(service, record: dict, params: dict) -> dict:
    """POST /records/commission_plan/{id}/actions/recompute: rewrite every line of the plan's
    reps and periods (after its tiers or settings change)."""
    from .common import system_on

    with service.transaction() as tx:
        system = system_on(service.runtime, tx)
        conn = tx.conn
        lines_t = system.table("commission_line")
        pairs = set()
        for line in rows(system, conn, "commission_line", lines_t.c.plan == record["id"], columns=["user", "period"]):
            if line.get("period") and PERIOD_RE.match(line["period"]):
                pairs.add((line["user"], period_range(line["period"])[0]))
        quota_t = system.table("quota")
        for quota in rows(system, conn, "quota", quota_t.c.commission_plan == record["id"], columns=["user", "period"]):
            if PERIOD_RE.match(quota.get("period") or ""):
                pairs.add((quota["user"], period_range(quota["period"])[0]))
        if record.get("is_default"):
            payments_t = system.table("payment")
            for p in rows(system, conn, "payment", payments_t.c.sales_rep.isnot(None),
                          columns=["sales_rep", "received_on"]):
                pairs.add((p["sales_rep"], p["received_on"]))
        done: set = set()
        for rep, day in sorted(pairs):
            recompute(system, conn, rep, day, done=done)
    return {"recomputed": len(done)}
