"""L5 deliveries and returns as records: a `delivery` batch (kind delivery or return) of an
order, with `delivery_line`s naming an order line and a quantity.

A delivery line adds its quantity to the order line's delivered_qty, a return line to its
returned_qty (through the write path, so the order's delivery status, delivered value and
commission follow). The order line refuses delivered > ordered and returned > delivered, so
no path (a batch, a typed quantity, a deleted batch, an import) gets past it; the batch
checks first to name what is left. A line's quantity or order line is not edited afterwards:
delete the batch line and record it again.
"""

from __future__ import annotations

from decimal import Decimal

from ...platform.errors import Conflict, ValidationFailed
from .common import Unprocessable, fetch, system_for

QTY = Decimal("0.01")


def _qty(value) -> Decimal:
    return Decimal(str(value or 0)).quantize(QTY)


def delivery_hook(ctx) -> None:
    """before_save on delivery: owner from the order; kind and order fixed once lines exist."""
    if ctx.op not in ("create", "update"):
        return
    order = fetch(ctx, ctx.conn, "order", ctx.record.get("order"))
    if order is None:
        return
    if ctx.op == "create":
        ctx.record["owner"] = order.get("owner") or ctx.record.get("owner")
        if order.get("status") in ("created", "cancelled"):
            raise ValidationFailed(f"An order that is {order.get('status')} is not delivered.",
                                   code="order_not_confirmed", fields={"order": ["Confirm the order first."]})
    elif (ctx.changed("order") or ctx.changed("kind") or ctx.changed("delivered_on")) and ctx.old.get("line_count"):
        raise Conflict("A batch with lines keeps its order, kind and date: delete its lines first.",
                       code="delivery_has_lines", fields={"kind": ["The batch has lines."]})


def delivery_line_hook(ctx) -> None:
    """before_save on delivery_line: links from the batch; the quantity is left to deliver/return."""
    record = ctx.record
    if ctx.op == "update" and (ctx.changed("quantity") or ctx.changed("order_line") or ctx.changed("delivery")):
        raise Conflict("A delivered quantity is not edited: delete this line and record the right one.",
                       code="delivery_line_fixed", fields={"quantity": ["Delete the line and record it again."]})
    if ctx.op not in ("create", "restore"):
        return
    delivery = fetch(ctx, ctx.conn, "delivery", record.get("delivery"))
    line = fetch(ctx, ctx.conn, "order_line", record.get("order_line"))
    if delivery is None or line is None:
        return
    if line.get("order") != delivery.get("order"):
        raise ValidationFailed("The order line is not a line of this delivery's order.",
                               fields={"order_line": ["Not a line of this order."]})
    quantity = _qty(record.get("quantity"))
    if quantity <= 0:
        raise ValidationFailed("A delivery line delivers a positive quantity.", fields={"quantity": ["Must be above 0."]})
    record.update(kind=delivery.get("kind"), order=delivery.get("order"), delivered_on=delivery.get("delivered_on"),
                  description=line.get("description"), owner=delivery.get("owner") or record.get("owner"))
    ordered, delivered, returned = _qty(line.get("quantity")), _qty(line.get("delivered_qty")), _qty(
        line.get("returned_qty"))
    if delivery.get("kind") == "return":
        left, word = delivered - returned, "returnable (delivered less returned)"
    else:
        left, word = ordered - delivered, "left to deliver"
    if quantity > left:
        raise Unprocessable(f"Only {left} of {line.get('description') or 'this line'} is {word}.",
                            code="quantity_exceeds", fields={"quantity": [f"At most {left}."]}, available=str(left))


def delivery_line_after_save(ctx) -> None:
    """after_save on delivery_line: move the order line's delivered or returned quantity."""
    if ctx.op == "update":
        return
    record = ctx.record
    line = fetch(ctx, ctx.conn, "order_line", record.get("order_line"))
    if line is None:
        return
    sign = -1 if ctx.op == "delete" else 1
    delta = _qty(record.get("quantity")) * sign
    if record.get("kind") == "return":
        values = {"returned_qty": _qty(line.get("returned_qty")) + delta}
        note = "returned" if sign > 0 else "return cancelled"
    else:
        values = {"delivered_qty": _qty(line.get("delivered_qty")) + delta}
        if sign > 0:
            values["delivered_on"] = record.get("delivered_on")
        note = "delivered" if sign > 0 else "delivery cancelled"
    system_for(ctx).system_update("order_line", line["id"], values,
                                  note=f"{note}: {abs(delta)}")
    if record.get("kind") == "return":
        from .commission import after_return_change

        after_return_change(ctx)  # the clawback sits in the return's period, not the delivery's


def check_line_quantities(record: dict) -> None:
    """The order line's invariant (its before_save calls this): returned ≤ delivered ≤ ordered."""
    delivered, returned = _qty(record.get("delivered_qty")), _qty(record.get("returned_qty"))
    if returned < 0 or delivered < 0:
        raise ValidationFailed("Quantities are not negative.", fields={"delivered_qty": ["Must be 0 or more."]})
    if returned > delivered:
        raise Unprocessable(f"Returned {returned} exceeds delivered {delivered}.", code="quantity_exceeds",
                            fields={"returned_qty": [f"At most {delivered}."]}, available=str(delivered))
