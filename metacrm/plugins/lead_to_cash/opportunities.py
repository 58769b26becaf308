"""L4 opportunities and quotes: stage-driven fields, stalled deals, quote lines and totals."""

from __future__ import annotations

from decimal import Decimal

from ...platform.clock import today, utcnow
from ...platform.errors import ValidationFailed
from .common import fetch, fill_line, is_closed_stage, rows, stage_options, system_for, system_service

OPEN_CATEGORIES = ("pipeline", "best_case", "commit", "omitted")


def _privileged(ctx) -> bool:
    return ctx.principal.is_system or ctx.access.is_admin


def opportunity_hook(ctx) -> None:
    """before_save on opportunity.

    - probability and (unless the rep chose one in this save) forecast_category follow the stage;
    - a closed stage forces its own category (won: closed, lost: omitted); an open deal may
      be committed, best-cased, left in pipeline or omitted by the rep, never 'closed';
    - stage_changed_at is set whenever the stage changes (a stage history is kept by
      track_history), which also un-stalls the deal; closing sets closed_at and, if empty,
      close_date; the account comes from the contact when missing.
    """
    if ctx.op not in ("create", "update"):
        return
    record, registry = ctx.record, ctx.registry
    stages = stage_options(registry)
    stage = stages.get(str(record.get("stage")), {})
    now = utcnow()
    stage_changed = ctx.op == "create" or ctx.changed("stage")
    closed = is_closed_stage(registry, record.get("stage"))
    # A derived field is overwritten unless the user changed it: compared with the stored value,
    # not "present in the form" (the web edit form resends the old category with a new stage).
    if ctx.op == "create":
        chose_category = "forecast_category" in (ctx.input or {}) and record.get("forecast_category") is not None
    else:
        chose_category = ctx.changed("forecast_category") and record.get("forecast_category") is not None
    def given(name: str) -> bool:  # an admin / the platform (imports, the demo) may backdate it
        return _privileged(ctx) and record.get(name) is not None and (ctx.op == "create" or ctx.changed(name))

    if closed and str(record.get("stage")) == "lost" and not record.get("win_loss_reason") and stage_changed:
        error = ValidationFailed("A lost deal needs a loss reason.",
                                 fields={"win_loss_reason": ["Required when the deal is lost."]},
                                 code="loss_reason_required")
        error.status = 422
        raise error
    if stage_changed and ctx.op == "update" and ctx.old.get("stage_changed_at"):
        spent = now - ctx.old["stage_changed_at"]
        days = spent.days
        label = stages.get(str(ctx.old.get("stage")), {}).get("label")
        shown = (label.get("en") if isinstance(label, dict) else label) or ctx.old.get("stage")
        ctx.notes.append(("stage", {}, f"{days} day{'s' if days != 1 else ''} in stage {shown}."))
        record["previous_stage_days"] = days
    if stage_changed:
        record["days_to_stall"] = stage.get("days_to_stall")
        if stage.get("probability") is not None:
            record["probability"] = Decimal(str(stage["probability"])).quantize(Decimal("0.01"))
        if not given("stage_changed_at"):
            record["stage_changed_at"] = now
        record["is_stalled"] = False
        if closed:
            if not given("closed_at"):
                record["closed_at"] = now
            if record.get("close_date") is None:
                record["close_date"] = today()
        else:
            record["closed_at"] = None
    if closed or (stage_changed and not chose_category):
        record["forecast_category"] = stage.get("forecast_category")
    elif record.get("forecast_category") == "closed":
        raise ValidationFailed("Only a won deal is in the closed forecast category.",
                               fields={"forecast_category": ["An open deal cannot be 'closed'."]})
    if record.get("forecast_category") is None:
        record["forecast_category"] = stage.get("forecast_category")
    if not record.get("account") and record.get("contact"):
        contact = fetch(ctx, ctx.conn, "contact", record["contact"])
        if contact and contact.get("account"):
            record["account"] = contact["account"]


def stalled(registry, opportunity: dict, now) -> bool:
    """In its stage (and without a person's follow-up) for longer than the stage's days_to_stall."""
    stage = stage_options(registry).get(str(opportunity.get("stage")), {})
    days = stage.get("days_to_stall")
    if days is None or is_closed_stage(registry, opportunity.get("stage")):
        return False
    moments = [m for m in (opportunity.get("stage_changed_at"), opportunity.get("last_follow_up_at")) if m]
    if not moments:
        return False
    return (now - max(moments)).total_seconds() > int(days) * 86400


def stalled_job(runtime) -> str:
    """Flag stalled opportunities; the workflow rule opportunity_flagged_stalled warns. The flag
    stays until a person follows up (follow_up_hook) or the stage moves (opportunity_hook): the
    job never clears it, so the reminder task a rule creates does not count as progress."""
    service = system_service(runtime)
    registry = service.registry
    closed = [value for value in stage_options(registry) if is_closed_stage(registry, value)]
    table = service.table("opportunity")
    with runtime.reading() as conn:
        candidates = rows(service, conn, "opportunity", table.c.stage.not_in(closed), table.c.is_stalled.isnot(True),
                          columns=["id", "stage", "stage_changed_at", "last_follow_up_at", "is_stalled"])
    now = utcnow()
    flagged = 0
    for opp in candidates:
        if not stalled(registry, opp, now):
            continue
        days = stage_options(registry).get(str(opp.get("stage")), {}).get("days_to_stall")
        service.system_update("opportunity", opp["id"], {"is_stalled": True, "days_to_stall": days},
                              note=f"stalled: no progress or follow-up in {days} days")
        flagged += 1
    return f"{flagged} opportunities flagged stalled ({len(candidates)} checked)"


def follow_up_hook(ctx) -> None:
    """after_save on activity: a person's follow-up on a stalled opportunity un-stalls it at
    once. An activity the platform writes (the stall reminder task a workflow rule creates, a
    sweep) is not a follow-up."""
    if ctx.op not in ("create", "update"):
        return
    if ctx.principal.is_system or ctx.principal.user_id is None or ctx.source in ("workflow", "system"):
        return
    if ctx.record.get("related_to__object") != "opportunity" or not ctx.record.get("related_to"):
        return
    opp = fetch(ctx, ctx.conn, "opportunity", ctx.record["related_to"])
    if opp is None:
        return
    values = {"last_follow_up_at": utcnow()}
    if opp.get("is_stalled"):
        values["is_stalled"] = False
    system_for(ctx).system_update("opportunity", opp["id"], values, track="is_stalled" in values,
                                  note="followed up" if "is_stalled" in values else None)


# --- quotes -------------------------------------------------------------------------------


def quote_hook(ctx) -> None:
    """before_save on quote: account from the opportunity. (What needs approval, and what a
    change after approval resets, is the quote_discount process's `guards`.)"""
    if ctx.op not in ("create", "update"):
        return
    record = ctx.record
    if not record.get("account") and record.get("opportunity"):
        opp = fetch(ctx, ctx.conn, "opportunity", record["opportunity"])
        if opp:
            record["account"] = opp.get("account")


def quote_line_hook(ctx) -> None:
    """before_save on quote_line: price from the product, the product's list price (the line's
    discount is measured against it), owner from the quote. (A line of a quote pending approval
    is locked by the approval gate, which also counts a line change against the quote's approval.)"""
    if ctx.op not in ("create", "update"):
        return
    record = ctx.record
    quote = fetch(ctx, ctx.conn, "quote", record.get("quote"))
    fill_line(ctx, record, quote)
    if record.get("product"):  # a catalogue line is measured against the catalogue, not a typed price
        product = fetch(ctx, ctx.conn, "product", record["product"])
        if product and product.get("list_price") is not None:
            record["list_price"] = product["list_price"]


def won_hook(ctx) -> None:
    """after_save on opportunity: a won deal makes its account a customer (lifecycle): type
    customer, deal status closed (repeat after the first win). The customer pool's entry and
    recycle rules take only prospects that are not closed, so it never recycles a customer."""
    if ctx.op not in ("create", "update") or str(ctx.record.get("stage")) != "won":
        return
    if ctx.op == "update" and not ctx.changed("stage"):
        return
    account_id = ctx.record.get("account")
    account = fetch(ctx, ctx.conn, "account", account_id) if account_id else None
    if account is None:
        return
    values = {"type": "customer",
              "deal_status": "repeat" if account.get("deal_status") in ("closed", "repeat") else "closed"}
    if all(account.get(k) == v for k, v in values.items()):
        return
    system_for(ctx).system_update("account", account_id, values, action="lifecycle",
                                  note=f"won {ctx.record.get('name') or ctx.record['id']}: a customer")
