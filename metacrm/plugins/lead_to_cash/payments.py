"""L6 payments: plans, instalment status from receipts, overdue detection, credit rating, aging."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import sqlalchemy as sa

from ...platform.clock import today
from ...platform.errors import Conflict, ValidationFailed
from .common import CENT, ZERO, Unprocessable, fetch, money, rows, system_for, system_service

AGING_BUCKETS = ("not_due", "0-30", "31-60", "61-90", "90+")


def aging_bucket(due: date, as_of: date) -> str:
    """Days past due: not yet due, then 0–30 (1 to 30 days late), 31–60, 61–90, 90+."""
    return bucket_for_days((as_of - due).days)


def bucket_for_days(days: int) -> str:
    if days <= 0:
        return "not_due"
    if days <= 30:
        return "0-30"
    if days <= 60:
        return "31-60"
    if days <= 90:
        return "61-90"
    return "90+"


# --- payment plans --------------------------------------------------------------------------


def payment_plan_hook(ctx) -> None:
    """before_save on payment_plan: account and owner from the contract; an active plan's
    instalments sum to the contract's amount."""
    if ctx.op not in ("create", "update"):
        return
    contract = fetch(ctx, ctx.conn, "contract", ctx.record.get("contract"))
    if contract is None:
        return
    ctx.record["account"] = contract.get("account")
    if ctx.op == "create" and contract.get("owner"):
        ctx.record["owner"] = contract["owner"]
    if ctx.record.get("status") == "active" and (ctx.op == "create" or ctx.changed("status")
                                                 or ctx.changed("contract")):
        total = plan_total(ctx, ctx.record["id"])
        check_plan_total(contract, total, "status")


def plan_total(ctx, plan_id: str, *, without: str | None = None) -> Decimal:
    table = ctx.service.table("instalment")
    where = [table.c.payment_plan == plan_id, table.c.deleted_at.is_(None)]
    if without:
        where.append(table.c.id != without)
    return money(ctx.conn.execute(sa.select(sa.func.sum(table.c.amount)).where(*where)).scalar())


def check_plan_total(contract: dict, total: Decimal, field: str) -> None:
    """422 plan_total_mismatch unless the instalments add up to the contract amount exactly."""
    expected = money(contract.get("amount"))
    if total == expected:
        return
    difference = expected - total
    word = "short of" if difference > 0 else "over"
    raise Unprocessable(
        f"The instalments total {total}, {abs(difference)} {word} the contract amount {expected}.",
        code="plan_total_mismatch", fields={field: [f"Instalments must total {expected} (difference {difference})."]},
        contract_amount=str(expected), instalment_total=str(total), difference=str(difference))


def active_plan_guard(ctx) -> None:
    """before_save on instalment (every write): while its plan is active, the instalments keep
    summing to the contract amount; restructuring means setting the plan back to draft."""
    if ctx.op == "update" and not (ctx.changed("amount") or ctx.changed("payment_plan")):
        return
    plans = {ctx.record.get("payment_plan"), (ctx.old or {}).get("payment_plan")} - {None}
    for plan_id in plans:
        plan = fetch(ctx, ctx.conn, "payment_plan", plan_id)
        if plan is None or plan.get("status") != "active":
            continue
        contract = fetch(ctx, ctx.conn, "contract", plan.get("contract"))
        if contract is None:
            continue
        total = plan_total(ctx, plan_id, without=ctx.record["id"])
        if ctx.op != "delete" and ctx.record.get("payment_plan") == plan_id:
            total += money(ctx.record.get("amount"))
        check_plan_total(contract, total, "amount")


# --- instalments ------------------------------------------------------------------------------


def receipts(service, conn, instalment_id: str) -> list[dict]:
    table = service.table("payment")
    return rows(service, conn, "payment", table.c.instalment == instalment_id,
                columns=["id", "amount", "received_on", "refunded", "refund_of"], order_by=["received_on", "id"])


def collection_state(instalment: dict, payments: list[dict], as_of: date) -> dict:
    """paid_amount, status, paid_on and days_overdue of an instalment from its receipts.

    A receipt flagged `refunded` no longer counts, nor do partial refunds of it; a negative
    receipt (a partial refund) reduces what was collected. `paid_on` is the day the
    cumulative receipts first covered the amount.
    """
    refunded = {p["id"] for p in payments if p.get("refunded")}
    paid, paid_on = ZERO, None
    amount = money(instalment.get("amount"))
    for payment in payments:
        if payment["id"] in refunded or payment.get("refund_of") in refunded:
            continue
        paid += money(payment.get("amount"))
        if paid_on is None and amount > 0 and paid >= amount:
            paid_on = payment.get("received_on")
        elif paid < amount:
            paid_on = None
    due = instalment.get("due_date")
    if amount > 0 and paid >= amount:
        status = "paid"
    elif due is not None and due < as_of:
        status = "overdue"
    elif paid > 0:
        status = "partial"
    else:
        status = "open"
    if status == "paid":
        paid_on = paid_on or as_of
        days = max(0, (paid_on - due).days) if due else 0
    else:
        paid_on = None
        days = max(0, (as_of - due).days) if due else 0
    return {"paid_amount": paid, "status": status, "paid_on": paid_on, "days_overdue": days}


def instalment_hook(ctx) -> None:
    """before_save on instalment: links and name from the plan; status from the receipts."""
    if ctx.op not in ("create", "update", "restore"):
        return
    record = ctx.record
    plan = fetch(ctx, ctx.conn, "payment_plan", record.get("payment_plan"))
    if plan is not None:
        record["contract"] = plan.get("contract")
        record["account"] = plan.get("account")
        if ctx.op == "create":
            record["owner"] = plan.get("owner") or record.get("owner")
            if record.get("sequence") is None:
                table = ctx.service.table("instalment")
                count = ctx.conn.execute(sa.select(sa.func.count()).where(
                    table.c.payment_plan == plan["id"], table.c.deleted_at.is_(None))).scalar()
                record["sequence"] = int(count or 0) + 1
        record["name"] = f"{plan.get('number') or 'plan'} #{record.get('sequence') or 1}"
    payments = [] if ctx.op == "create" else receipts(ctx.service, ctx.conn, record["id"])
    record.update(collection_state(record, payments, today()))
    amount = money(record.get("amount"))
    if record["paid_amount"] > amount:
        # every path that would collect more than is due ends here (a receipt, un-flagging a
        # refund, deleting a refund, restoring a receipt, lowering the amount): outstanding >= 0
        raise Unprocessable(
            f"{record['paid_amount']} is collected on this instalment of {amount}: "
            "outstanding can not be negative.", code="overpayment",
            fields={"amount": [f"At least {record['paid_amount']} (already collected)."]},
            outstanding=str(ZERO), collected=str(record["paid_amount"]))


def payment_hook(ctx) -> None:
    """before_save on payment: links from the instalment, the sales rep as owner, refund rules."""
    if ctx.op not in ("create", "update"):
        return
    record = ctx.record
    amount = record.get("amount")
    if amount is not None and Decimal(amount) == 0:
        raise ValidationFailed("A payment of zero is not a payment.", fields={"amount": ["Must not be zero."]})
    instalment = fetch(ctx, ctx.conn, "instalment", record.get("instalment"))
    if instalment is not None:
        plan = fetch(ctx, ctx.conn, "payment_plan", instalment.get("payment_plan"))
        contract = fetch(ctx, ctx.conn, "contract", (plan or {}).get("contract") or instalment.get("contract"))
        record["payment_plan"] = instalment.get("payment_plan")
        record["contract"] = (contract or {}).get("id")
        record["account"] = (contract or {}).get("account") or instalment.get("account")
        rep = (contract or {}).get("owner") or (plan or {}).get("owner") or instalment.get("owner")
        if ctx.op == "create" or not record.get("sales_rep"):
            record["sales_rep"] = rep
        if ctx.op == "create" and rep:
            record["owner"] = rep
        if record.get("method") is None:
            record["method"] = instalment.get("method")
    if amount is not None and Decimal(amount) < 0:
        original = fetch(ctx, ctx.conn, "payment", record.get("refund_of"))
        if original is None:
            raise ValidationFailed("A negative payment is a refund: say which payment it refunds.",
                                   fields={"refund_of": ["Required for a refund."]})
        if Decimal(original.get("amount") or 0) <= 0 or original.get("instalment") != record.get("instalment"):
            raise ValidationFailed("A refund refunds a receipt of the same instalment.",
                                   fields={"refund_of": ["Not a receipt of this instalment."]})
        table = ctx.service.table("payment")
        earlier = ctx.conn.execute(sa.select(sa.func.sum(table.c.amount)).where(
            table.c.refund_of == original["id"], table.c.deleted_at.is_(None), table.c.id != record["id"])).scalar()
        if money(original["amount"]) + money(earlier) + money(amount) < 0:
            raise ValidationFailed("The refunds exceed the payment.", fields={"amount": ["Refunds exceed the payment."]})
    elif record.get("refund_of"):
        raise ValidationFailed("Only a negative payment refunds another.", fields={"refund_of": ["Leave empty."]})
    if record.get("refunded") and record.get("refunded_on") is None:
        record["refunded_on"] = today()
    if not record.get("refunded"):
        record["refunded_on"] = None
    if instalment is not None:
        refuse_overpayment(ctx, instalment)
    record["reference_key"] = reference_key(record)
    if record["reference_key"]:
        refuse_duplicate_reference(ctx)


def reference_key(record: dict) -> str | None:
    """The natural key of a receipt: its contract (else account, else instalment) and the bank
    reference without spaces, case-folded ("bk 001" and "BK001" are the same transfer)."""
    reference = "".join((record.get("reference") or "").split()).casefold()
    scope = record.get("contract") or record.get("account") or record.get("instalment")
    return f"{scope}:{reference}" if reference and scope else None


def refuse_duplicate_reference(ctx) -> None:
    table = ctx.service.table("payment")
    clash = ctx.conn.execute(sa.select(table.c.id, table.c.number).where(
        table.c.reference_key == ctx.record["reference_key"], table.c.id != ctx.record["id"],
        table.c.deleted_at.is_(None)).limit(1)).first()
    if clash:
        raise Conflict(f"Bank reference {ctx.record.get('reference')} is already recorded on payment "
                       f"{clash.number} of this contract: a receipt is recorded once.",
                       code="duplicate_payment", fields={"reference": ["Already recorded for this contract."]},
                       existing_id=clash.id, existing_number=clash.number)


def refuse_overpayment(ctx, instalment: dict) -> None:
    """422 overpayment naming the amount outstanding before this payment, when the payment
    would collect more than the instalment's amount."""
    record = ctx.record
    others = [p for p in receipts(ctx.service, ctx.conn, instalment["id"]) if p["id"] != record["id"]]
    before = collection_state(instalment, others, today())["paid_amount"]
    after = collection_state(instalment, others + [record], today())["paid_amount"]
    amount = money(instalment.get("amount"))
    if after <= amount or after <= before:
        return
    outstanding = max(amount - before, ZERO)
    raise Unprocessable(f"Only {outstanding} is outstanding on {instalment.get('name') or 'this instalment'}; "
                        f"this payment would collect {after - amount} more than is due.",
                        code="overpayment", fields={"amount": [f"At most {outstanding} is outstanding."]},
                        outstanding=str(outstanding))


def payment_after_save(ctx) -> None:
    """after_save on payment: the instalment's status (which re-rates the account), commission."""
    from . import commission

    ids = {ctx.record.get("instalment"), (ctx.old or {}).get("instalment")} - {None}
    for instalment_id in ids:
        system_for(ctx).system_update("instalment", instalment_id, {}, note=None)
    commission.after_payment_change(ctx)


def instalment_after_save(ctx) -> None:
    """after_save on instalment: the account's credit rating follows every change of status."""
    fields = ("status", "paid_amount", "paid_on", "days_overdue", "amount", "due_date", "account")
    if ctx.op == "update" and not any(ctx.changed(f) for f in fields):
        return
    accounts = {ctx.record.get("account"), (ctx.old or {}).get("account")} - {None}
    for account_id in accounts:
        rate_account(ctx, account_id)


# --- credit rating ----------------------------------------------------------------------------


def credit_rating(instalments: list[dict], as_of: date) -> dict | None:
    """A–D from payment behaviour, or None without history.

    on-time ratio = instalments paid in full by their due date / instalments that are paid
    or past due; worst = the most days overdue among unpaid past-due instalments and the
    latest settlement of the last 365 days. The rating is the worse of the two grades:
    ratio ≥ 90 % A, ≥ 75 % B, ≥ 50 % C, else D; worst 0 days A, ≤ 30 B, ≤ 90 C, else D.
    """
    counted = [i for i in instalments if i.get("status") == "paid" or (i.get("due_date") and i["due_date"] < as_of)]
    if not counted:
        return None
    on_time = sum(1 for i in counted if i.get("status") == "paid" and i.get("paid_on") and i.get("due_date")
                  and i["paid_on"] <= i["due_date"])
    ratio = (Decimal(on_time) * 100 / len(counted)).quantize(CENT)
    worst = 0
    for i in counted:
        due = i.get("due_date")
        if due is None:
            continue
        if i.get("status") != "paid":
            worst = max(worst, (as_of - due).days)
        elif i.get("paid_on") and (as_of - i["paid_on"]).days <= 365:
            worst = max(worst, (i["paid_on"] - due).days)
    ratio_grade = "A" if ratio >= 90 else "B" if ratio >= 75 else "C" if ratio >= 50 else "D"
    days_grade = "A" if worst <= 0 else "B" if worst <= 30 else "C" if worst <= 90 else "D"
    return {"credit_rating": max(ratio_grade, days_grade), "on_time_ratio": ratio, "max_days_overdue": max(worst, 0)}


def rate_account(ctx, account_id: str) -> None:
    service = ctx.service
    table = service.table("instalment")
    instalments = rows(service, ctx.conn, "instalment", table.c.account == account_id,
                       columns=["id", "status", "due_date", "paid_on"])
    rating = credit_rating(instalments, today())
    if rating is None:
        return
    account = fetch(ctx, ctx.conn, "account", account_id)
    if account is None:
        return
    changes = {k: v for k, v in rating.items() if account.get(k) != v}
    if changes:
        system_for(ctx).system_update("account", account_id, changes, note="credit rating from payments")


# --- the overdue sweep --------------------------------------------------------------------------


def overdue_job(runtime) -> str:
    """Mark instalments overdue once past due (and refresh their days overdue when the aging
    bucket moves); the workflow rules send the warnings, the hooks re-rate the accounts."""
    service = system_service(runtime)
    table = service.table("instalment")
    as_of = today()
    with runtime.reading() as conn:
        due = rows(service, conn, "instalment", table.c.status != "paid", table.c.due_date < as_of,
                   columns=["id", "status", "due_date", "days_overdue"])
    newly, moved = 0, 0
    for inst in due:
        days = (as_of - inst["due_date"]).days
        if inst.get("status") != "overdue":
            newly += 1
        elif bucket_for_days(days) == bucket_for_days(inst.get("days_overdue") or 0):
            continue
        else:
            moved += 1
        service.system_update("instalment", inst["id"], {}, note=f"{days} days overdue")
    return f"{newly} instalments became overdue, {moved} moved to an older aging bucket ({len(due)} past due)"
