"""L5 contracts and orders: lifecycles, amendments, deliveries, and the credit check."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from ...platform.clock import today
from ...platform.errors import Conflict, Forbidden, ValidationFailed
from .common import ZERO, fetch, fill_line, money, money_str, rows, system_for, system_on

CONTRACT_TRANSITIONS = {
    "draft": {"in_review", "terminated"},
    "in_review": {"draft", "active", "terminated"},
    "active": {"completed", "terminated"},
    "completed": set(),
    "terminated": set(),
}
ORDER_FLOW = ("created", "confirmed", "processing", "shipped", "delivered")
ORDER_EXTRA = {"returned": {"shipped", "delivered"}, "cancelled": {"created", "confirmed", "processing"}}
COMMITTED = ("confirmed", "processing", "shipped", "delivered")


def _privileged(ctx) -> bool:
    return ctx.principal.is_system or ctx.access.is_admin


# --- contracts ----------------------------------------------------------------------------


def contract_hook(ctx) -> None:
    """before_save on contract: the lifecycle draft → in_review → active → completed / terminated."""
    if ctx.op not in ("create", "update"):
        return
    record = ctx.record
    status = record.get("status") or "draft"
    if ctx.op == "create":
        if status != "draft" and not _privileged(ctx):
            raise ValidationFailed("A new contract starts as a draft.",
                                   fields={"status": ["A new contract starts as a draft."]}, code="bad_transition")
    elif ctx.changed("status"):
        before = ctx.old.get("status") or "draft"
        if status not in CONTRACT_TRANSITIONS.get(before, set()):
            allowed = ", ".join(sorted(CONTRACT_TRANSITIONS.get(before, set()))) or "none"
            raise ValidationFailed(f"A contract cannot go from {before} to {status} (allowed: {allowed}).",
                                   code="bad_transition", fields={"status": [f"Not allowed from {before}."]})
    if status == "active" and record.get("signed_on") is None:
        record["signed_on"] = today()
    if status == "terminated" and not record.get("termination_reason") and ctx.changed("status"):
        ctx.warnings.append({"code": "no_reason", "message": "Terminated without a reason."})
    if not record.get("account") and record.get("opportunity"):
        opp = fetch(ctx, ctx.conn, "opportunity", record["opportunity"])
        if opp and opp.get("account"):
            record["account"] = opp["account"]
    if record.get("amount") is None and record.get("quote"):
        quote = fetch(ctx, ctx.conn, "quote", record["quote"])
        if quote and quote.get("total") is not None:
            record["amount"] = quote["total"]
    if not record.get("account"):
        raise ValidationFailed("A contract needs an account (or an opportunity that has one).",
                               fields={"account": ["This field is required."]})


def amendment_hook(ctx) -> None:
    """before_save on contract_amendment: only an active contract is amended; owner follows it."""
    if ctx.op != "create":
        return
    contract = fetch(ctx, ctx.conn, "contract", ctx.record.get("contract"))
    if contract is None:
        return
    if contract.get("status") != "active":
        raise ValidationFailed("Only an active contract can be amended.", code="contract_not_active",
                               fields={"contract": [f"The contract is {contract.get('status')}."]})
    ctx.record["owner"] = contract.get("owner") or ctx.record.get("owner")


# --- orders and credit -----------------------------------------------------------------------


def _order_transition_ok(before: str, after: str) -> bool:
    if after in ORDER_EXTRA:
        return before in ORDER_EXTRA[after]
    if before in ORDER_EXTRA:
        return False
    return ORDER_FLOW.index(after) >= ORDER_FLOW.index(before)


def exposure(service, conn, account_id: str, order: dict | None = None) -> dict:
    """Open receivables + unbilled committed orders of an account (+ `order` if unbilled).

    An order is billed once its contract has a payment plan (its instalments are then the
    receivables); otherwise its total counts as unbilled while it is confirmed or later.
    """
    inst = service.table("instalment")
    open_rows = conn.execute(
        sa.select(sa.func.sum(inst.c.amount), sa.func.sum(inst.c.paid_amount)).where(
            inst.c.account == account_id, inst.c.deleted_at.is_(None), inst.c.status != "paid")
    ).first()
    receivables = money(open_rows[0]) - money(open_rows[1])
    orders = service.table("order")
    plans = service.table("payment_plan")
    billed = sa.exists(sa.select(plans.c.id).where(plans.c.contract == orders.c.contract, plans.c.deleted_at.is_(None)))
    conditions = [orders.c.account == account_id, orders.c.deleted_at.is_(None), orders.c.status.in_(COMMITTED),
                  sa.or_(orders.c.contract.is_(None), sa.not_(billed))]
    if order is not None:
        conditions.append(orders.c.id != order["id"])
    unbilled = money(conn.execute(sa.select(sa.func.sum(orders.c.total)).where(*conditions)).scalar())
    this_order = ZERO
    if order is not None:
        has_plan = order.get("contract") and conn.execute(
            sa.select(plans.c.id).where(plans.c.contract == order["contract"], plans.c.deleted_at.is_(None)).limit(1)
        ).first()
        if not has_plan:
            this_order = money(order.get("total"))
    return {"receivables": receivables, "unbilled_orders": unbilled, "this_order": this_order,
            "exposure": receivables + unbilled + this_order}


def order_hook(ctx) -> None:
    """before_save on order: lifecycle, dates, sales rep, and the credit limit on confirmation."""
    if ctx.op not in ("create", "update"):
        return
    record = ctx.record
    status = record.get("status") or "created"
    before = (ctx.old or {}).get("status") or "created"
    if ctx.op == "update" and ctx.changed("status") and not _order_transition_ok(before, status):
        raise ValidationFailed(f"An order cannot go from {before} to {status}.", code="bad_transition",
                               fields={"status": [f"Not allowed from {before}."]})
    contract = fetch(ctx, ctx.conn, "contract", record.get("contract"))
    if contract is not None:
        record["account"] = record.get("account") or contract.get("account")
        if ctx.op == "create" or ctx.changed("contract") or not record.get("sales_rep"):
            record["sales_rep"] = contract.get("owner") or record.get("owner")
    elif not record.get("sales_rep"):
        record["sales_rep"] = record.get("owner")
    if not record.get("account"):
        raise ValidationFailed("An order needs an account (or a contract that has one).",
                               fields={"account": ["This field is required."]})
    if status in ("shipped", "delivered") and record.get("shipped_on") is None:
        record["shipped_on"] = today()
    if status == "delivered" and record.get("delivered_on") is None:
        record["delivered_on"] = today()
    if status == "returned" and ctx.changed("status") and record.get("returned_on") is None:
        record["returned_on"] = today()
    entering = status in COMMITTED and (ctx.op == "create" or before not in COMMITTED)
    if entering and (contract is None or contract.get("status") != "active"):
        shown = "no contract" if contract is None else f"its contract is {contract.get('status')}"
        raise Conflict(f"An order is confirmed only against an active contract ({shown}).",
                       code="contract_not_active", fields={"contract": ["Needs an active contract."]})
    if entering and not record.get("credit_released") and record.get("account"):
        account = fetch(ctx, ctx.conn, "account", record["account"])
        limit = account.get("credit_limit") if account else None
        if limit is not None:
            figures = exposure(ctx.service, ctx.conn, record["account"], record)
            if figures["exposure"] > Decimal(limit):
                raise Conflict(
                    f"Confirming this order takes {account.get('name')} to {money_str(figures['exposure'])}, past its "
                    f"credit limit of {money_str(limit)}; finance can release it.",
                    code="credit_limit_exceeded", credit_limit=money_str(limit),
                    exposure=money_str(figures["exposure"]), receivables=money_str(figures["receivables"]),
                    unbilled_orders=money_str(figures["unbilled_orders"]), this_order=money_str(figures["this_order"]))


def release_credit_action(service, record: dict, params: dict) -> dict:
    """POST /records/order/{id}/actions/release_credit: finance lets the order past the limit."""
    if not service.access.has_permission("credit.release"):
        raise Forbidden("Releasing credit needs the credit.release permission.", code="permission_required")
    with service.transaction() as tx:
        note = f"credit released by {service.principal.username}"
        if (params or {}).get("reason"):
            note += f": {params['reason']}"
        updated = system_on(service.runtime, tx).system_update("order", record["id"], {"credit_released": True},
                                                               action="credit_release", note=note)
    return service.to_json(service.registry.object("order"), updated or record)


def order_after_save(ctx) -> None:
    """after_save on order: a delivered order delivers its lines; commission follows deliveries,
    returns and (for collection + delivery plans) the contract's payments."""
    from . import commission

    if ctx.op == "create":
        return
    status_changed = ctx.changed("status") or ctx.op in ("delete", "restore")
    if not status_changed:
        return
    record = ctx.record
    system = system_for(ctx)
    if record.get("status") == "delivered" and ctx.op == "update":
        lines = rows(ctx.service, ctx.conn, "order_line", ctx.service.table("order_line").c.order == record["id"])
        for line in lines:
            if (line.get("delivered_qty") or 0) < (line.get("quantity") or 0):
                system.system_update("order_line", line["id"], {"delivered_qty": line["quantity"],
                                                                 "delivered_on": record.get("delivered_on") or today()},
                                     note="order delivered")
    commission.after_order_change(ctx)


def order_line_hook(ctx) -> None:
    """before_save on order_line: price from the product, owner from the order, delivery checks."""
    record = ctx.record
    if ctx.op not in ("create", "update"):
        return
    order = fetch(ctx, ctx.conn, "order", record.get("order"))
    fill_line(ctx, record, order)
    delivered, quantity = record.get("delivered_qty") or 0, record.get("quantity") or 0
    if delivered > quantity:
        raise ValidationFailed("Delivered quantity exceeds the ordered quantity.",
                               fields={"delivered_qty": [f"At most {quantity}."]})
    from .deliveries import check_line_quantities

    check_line_quantities(record)
    if ctx.changed("delivered_qty") and delivered and not ctx.changed("delivered_on"):
        record["delivered_on"] = today()


def order_line_after_save(ctx) -> None:
    """after_save on order_line: the order's delivery status (partial deliveries) and commission."""
    from . import commission

    order_id = ctx.record.get("order")
    if not order_id:
        return
    update_delivery_status(ctx, order_id)
    commission.after_delivery_change(ctx)


def update_delivery_status(ctx, order_id: str) -> None:
    service = ctx.service
    table = service.table("order_line")
    lines = rows(service, ctx.conn, "order_line", table.c.order == order_id, columns=["quantity", "delivered_qty"])
    order = fetch(ctx, ctx.conn, "order", order_id)
    if order is None:
        return
    ordered = sum((line.get("quantity") or 0) for line in lines)
    delivered = sum((line.get("delivered_qty") or 0) for line in lines)
    wanted = "pending" if not delivered else ("delivered" if delivered >= ordered else "partial")
    values = {}
    if order.get("delivery_status") != wanted:
        values["delivery_status"] = wanted
    if wanted == "delivered" and order.get("status") in ("confirmed", "processing", "shipped"):
        values["status"] = "delivered"
    if values:
        system_for(ctx).system_update("order", order_id, values, note="delivery recorded")
