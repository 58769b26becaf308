"""The demo company's pipeline: opportunities across the stages (some stalled), quotes (some
through the discount approval), contracts, and the follow-ups."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from .data import BUS, PHASES, PRODUCTS, PROJECTS, REASONS_LOST, REASONS_WON, STAGE_MIX
from .seeder import Seeder

log = logging.getLogger(__name__)


def _stage_values(demo: Seeder) -> dict:
    stage = demo.rng.choices([name for name, _ in STAGE_MIX], [w for _, w in STAGE_MIX])[0]
    closed = stage in ("won", "lost")
    close_offset = -demo.rng.randint(5, 170) if closed else demo.rng.randint(-10, 170)
    close = demo.day(close_offset)
    moved = demo.day(min(close_offset, 0) - demo.rng.randint(0, 40)) if not closed else close
    values = {
        "stage": stage, "amount": str(demo.rng.choice(range(60, 2400, 20)) * 1000),
        "close_date": close.isoformat(),
        "opened_on": (close - timedelta(days=demo.rng.randint(25, 140))).isoformat() if closed
        else demo.day(-demo.rng.randint(10, 120)).isoformat(),
        "stage_changed_at": datetime.combine(moved, datetime.min.time()).isoformat() + "Z",
        "next_step": demo.rng.choice(["Send proposal", "Technical workshop", "Reference visit",
                                      "Price negotiation", "Sign contract"]),
    }
    if closed:
        values["closed_at"] = values["stage_changed_at"]
        values["win_loss_reason"] = demo.rng.choice(REASONS_WON if stage == "won" else REASONS_LOST)
    elif stage in ("trial", "research") and demo.rng.random() < 0.25:
        values["forecast_category"] = "commit" if stage == "trial" else "best_case"
    return values

def pipeline(demo: Seeder) -> None:
    s = demo.system
    demo.won = []
    for opp_id in demo.opportunities:  # the converted leads' opportunities move on
        values = _stage_values(demo)
        s.update("opportunity", opp_id, values)
        demo.count(f"stage:{values['stage']}")
        if values["stage"] == "won":
            demo.won.append(opp_id)
    rows = []
    accounts = s.table("account")
    with demo.runtime.reading() as conn:
        owners = dict(conn.execute(sa.select(accounts.c.id, accounts.c.owner).where(
            accounts.c.id.in_(demo.direct_accounts))).fetchall())
    for account_id in demo.direct_accounts[: demo.n(70)]:  # and the existing customers' new deals
        rows.append(dict(_stage_values(demo), account=account_id, owner=owners.get(account_id),
                         name=f"{demo.rng.choice(PROJECTS)} {demo.rng.choice(PHASES)}",
                         product_line=demo.rng.choice([b for b, _, _ in BUS])))
    for row, result in zip(rows, demo.create_many("opportunity", rows)):
        if result["status"] != "created":
            demo.errors += 1
            continue
        demo.opportunities.append(result["id"])
        demo.count(f"stage:{row['stage']}")
        if row["stage"] == "won":
            demo.won.append(result["id"])

def quotes(demo: Seeder) -> None:
    s = demo.system
    table = s.table("opportunity")
    with demo.runtime.reading() as conn:
        rows = conn.execute(sa.select(table.c.id, table.c.owner, table.c.name, table.c.stage, table.c.product_line)
                            .where(table.c.stage.in_(["trial", "negotiation", "won"]), table.c.deleted_at.is_(None))
                            .order_by(table.c.id)).fetchall()
    from .... import approval as approvals
    demo.quote_of = {}
    by_line = {}
    for code, _, line, _ in PRODUCTS:
        by_line.setdefault(line, []).append(code)
    owner_name = {info["id"]: name for name, info in demo.users.items()}
    for row in rows[: demo.n(30)]:
        discount = demo.rng.choice(["0", "5", "8", "12", "15", "20", "25", "30"])
        quote = s.create("quote", {"name": f"Quote — {row.name}", "opportunity": row.id, "owner": row.owner,
                                   "valid_until": demo.day(30).isoformat()})
        codes = by_line.get(row.product_line) or by_line["hardware"]
        for code in demo.rng.sample(codes, k=min(len(codes), demo.rng.randint(1, 3))):
            s.create("quote_line", {"quote": quote["id"], "product": demo.products[code]["id"],
                                    "quantity": str(demo.rng.randint(1, 12))})
        quote = s.update("quote", quote["id"], {"discount_pct": discount})
        demo.quote_of[row.id] = quote["id"]
        demo.count("quotes")
        status = "accepted" if row.stage == "won" else "presented"
        if Decimal(str(quote.get("approval_depth_pct") or 0)) < 10:
            s.update("quote", quote["id"], {"status": status})
            continue
        if row.stage == "won" or row.owner not in owner_name or demo.counts.get("approvals", 0) >= demo.n(12):
            # an earlier deal: its approval is history, recorded through the engine
            approvals.seed_approved(demo.runtime, s.principal, "quote", quote["id"], comment="approved before the demo")
            s.update("quote", quote["id"], {"status": status})
            continue
        try:  # the rep submits; the manager (and the VP from 30 %) decide some of them
            request = approvals.submit(demo.runtime, demo.principal(owner_name[row.owner]), "quote", quote["id"])
            demo.count("approvals")
            if demo.rng.random() < 0.6:
                rep = owner_name[row.owner]
                request = approvals.decide(demo.runtime, demo.principal(demo.users[rep]["manager"]),
                                           request["id"], "approve", "ok")
                if request.get("status") == "pending":
                    request = approvals.decide(demo.runtime, demo.principal("vp.wang"), request["id"], "approve",
                                               "ok")
            if request.get("status") == "approved":
                s.update("quote", quote["id"], {"status": status})
        except Exception:
            log.warning("demo approval failed", exc_info=True)


def contracts(demo: Seeder) -> None:
    from .... import approval as approvals

    s = demo.system
    demo.active_contracts = []
    demo.to_complete = []
    for opp_id in demo.won:
        opp = s.get_record("opportunity", opp_id)
        if not opp.get("account"):
            continue
        signed = opp["close_date"]
        status = demo.rng.choices(["active", "completed", "draft", "terminated"], [70, 18, 8, 4])[0]
        values = {"name": f"{opp['name']} contract", "opportunity": opp_id, "owner": opp["owner"],
                  "type": demo.rng.choice(["sales", "sales", "service", "framework", "maintenance"]),
                  "amount": str(opp["amount"]), "status": "terminated" if status == "terminated" else "draft"}
        if opp_id in demo.quote_of:
            values["quote"] = demo.quote_of[opp_id]
        if status != "draft":
            values.update(signed_on=signed.isoformat(), start_date=signed.isoformat(),
                          end_date=(signed + timedelta(days=365)).isoformat())
        if status == "terminated":
            values["termination_reason"] = "customer budget cut"
        contract = s.create("contract", values)
        if status in ("active", "completed"):  # signed earlier: its review is history, recorded through the engine
            approvals.seed_approved(demo.runtime, s.principal, "contract", contract["id"],
                                    comment="approved before the demo")
            if status == "completed":  # completed once its orders are delivered (orders confirm on active ones)
                demo.to_complete.append(contract["id"])
            contract = s.get("contract", contract["id"])
        demo.count("contracts")
        if status in ("active", "completed"):
            demo.active_contracts.append((contract, opp))
        if status == "active" and demo.rng.random() < 0.15:
            s.create("contract_amendment", {"contract": contract["id"], "title": "Scope extension",
                                            "effective_date": demo.day(-5).isoformat(),
                                            "amount_change": str(demo.rng.choice([20000, 50000, -10000]))})
            demo.count("amendments")


def activities(demo: Seeder) -> None:
    s = demo.system
    rows = []
    targets = [("opportunity", o) for o in demo.opportunities] + [("account", a) for a in demo.direct_accounts]
    targets += [("lead", lead) for lead in demo.rng.sample(demo.lead_ids, k=min(len(demo.lead_ids), demo.n(250)))]
    demo.rng.shuffle(targets)
    for object_name, record_id in targets[: demo.n(260)]:
        record = s.get_record(object_name, record_id)
        if not record.get("owner"):
            continue
        kind = demo.rng.choice(["call", "visit", "email", "note", "task"])
        rows.append({"subject": f"{kind.title()}: {demo.rng.choice(['requirements', 'demo', 'pricing', 'contract', 'follow-up'])}",
                     "type": kind, "related_to": {"object": object_name, "id": record_id},
                     "owner": record["owner"], "due_date": demo.day(demo.rng.randint(-30, 10)).isoformat(),
                     "done": demo.rng.random() < 0.6})
    for result in demo.create_many("activity", rows):
        if result["status"] == "created":
            demo.count("activities")
        else:
            demo.errors += 1
