"""The demo company's marketing and customers: campaigns under a marketing plan, the
accounts, ~2,000 leads from every channel (some waiting in the BU pools) and the leads
converted to customers and opportunities."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from ....platform.errors import CrmError
from ..common import system_service
from ..leads import convert_action
from .data import (
    BUS,
    CAMPAIGNS,
    CHANNEL_SOURCE,
    GIVEN,
    PHASES,
    PREFIXES,
    PROJECTS,
    SECTORS,
    SUFFIXES,
    SURNAMES,
)
from .seeder import Seeder


def marketing(demo: Seeder) -> None:
    s = demo.system
    owner = demo.uid("mkt.li")
    plan = s.create("campaign", {"name": "2025 marketing plan", "record_type": "marketing_plan", "owner": owner,
                                 "budget": "800000", "start_date": demo.day(-180).isoformat(),
                                 "end_date": demo.day(180).isoformat(), "status": "active"})
    demo.campaigns = []
    for name, channel, budget, cost, start, status in CAMPAIGNS:
        created = s.create("campaign", {
            "name": name, "channel": channel, "budget": budget, "other_cost": cost, "parent": plan["id"],
            "expected_revenue": str(Decimal(budget) * 8), "status": status, "owner": demo.uid(
                demo.rng.choice(["mkt.li", "mkt.chen"])),
            "start_date": demo.day(start).isoformat(), "end_date": demo.day(start + 30).isoformat()})
        demo.campaigns.append(created)
        for task in ("Book venue / media", "Prepare material", "Follow up the leads"):
            s.create("campaign_task", {"name": task, "campaign": created["id"], "assignee": owner,
                                       "status": "done" if status == "completed" else "in_progress",
                                       "due_date": demo.day(start + 10).isoformat()})
    demo.count("campaigns", len(demo.campaigns))


def companies(demo: Seeder) -> None:
    names = [(f"{p} {sector}", industry) for p in PREFIXES for sector, industry in SECTORS]
    demo.rng.shuffle(names)
    demo.company_pool = [(f"{base} {demo.rng.choice(SUFFIXES)}", industry) for base, industry in names]

def accounts(demo: Seeder) -> None:
    rows = []
    demo.direct_accounts = []
    for name, industry in demo.company_pool[: demo.n(230)]:
        line = demo.rng.choice([b for b, _, _ in BUS])
        rep = demo.rep_of(line)
        rows.append({"name": name, "industry": industry, "owner": demo.uid(rep),
                     "region": demo.rng.choice(["north", "east", "south", "west"]),
                     "type": demo.rng.choice(["customer", "prospect", "prospect", "partner"]),
                     "importance": demo.rng.choice(["a", "b", "b", "c"]),
                     "urgency": demo.rng.choice(["high", "medium", "low"]),
                     "record_type": "channel_partner" if demo.rng.random() < 0.1 else "enterprise",
                     "employees": demo.rng.randint(50, 20000),
                     "credit_limit": str(demo.rng.choice([1000000, 3000000, 5000000, 10000000, 20000000]))})
        rows[-1]["partner_level"] = demo.rng.choice(["gold", "silver", "bronze"])
    for result in demo.create_many("account", rows):
        if result["status"] == "created":
            demo.direct_accounts.append(result["id"])
        else:
            demo.errors += 1
    demo.count("accounts", len(demo.direct_accounts))

def leads(demo: Seeder) -> None:
    statuses = ["new"] * 30 + ["working"] * 25 + ["nurturing"] * 12 + ["qualified"] * 13 + ["disqualified"] * 10
    total = demo.n(2000)
    seen = set()
    rows = []
    for i in range(total):
        company, industry = demo.rng.choice(demo.company_pool)
        while True:
            project = f"{demo.rng.choice(PROJECTS)} {demo.rng.choice(PHASES)}"
            if (company, project) not in seen:
                seen.add((company, project))
                break
        campaign = demo.rng.choice(demo.campaigns) if demo.rng.random() < 0.7 else None
        source = CHANNEL_SOURCE[campaign["channel"]] if campaign else demo.rng.choice(
            ["web", "referral", "purchased_list", "web"])
        line = demo.rng.choice([b for b, _, _ in BUS]) if demo.rng.random() < 0.9 else None
        first, last = demo.rng.choice(GIVEN), demo.rng.choice(SURNAMES)
        row = {"company": company, "project_name": project, "contact_name": f"{last} {first}",
               "email": f"{first.lower()}.{last.lower()}{i}@{company.split()[0].lower()}-{i % 97}.cn",
               "phone": f"+86 139 {i // 10000:04d} {i % 10000:04d}", "source": source,
               "status": demo.rng.choice(statuses), "product_line": line, "industry": industry,
               "region": demo.rng.choice(["north", "east", "south", "west", "overseas"]),
               "budget": str(demo.rng.choice(range(50, 3000, 25)) * 1000)}
        if campaign:
            row["campaign"] = campaign["id"]
        if line is not None and demo.rng.random() < 0.85:
            row["owner"] = demo.uid(demo.rep_of(line))  # the rest wait in the pools
        rows.append(row)
    demo.lead_ids = []
    for start in range(0, len(rows), 500):
        for result in demo.create_many("lead", rows[start:start + 500], batch=100):
            if result["status"] == "created":
                demo.lead_ids.append(result["id"])
            else:
                demo.errors += 1
    demo.count("leads", len(demo.lead_ids))

def conversions(demo: Seeder) -> None:
    leads = demo.system.table("lead")
    with demo.runtime.reading() as conn:
        candidates = [r.id for r in conn.execute(
            sa.select(leads.c.id).where(leads.c.owner.isnot(None), leads.c.status.in_(["qualified", "working"]),
                                        leads.c.deleted_at.is_(None)).order_by(leads.c.company, leads.c.id))]
    demo.rng.shuffle(candidates)
    demo.opportunities = []
    for lead_id in candidates[: demo.n(140)]:
        service = system_service(demo.runtime)
        try:
            with service.transaction():
                record = service.get_record("lead", lead_id)
                result = convert_action(service, record, {"create_opportunity": demo.rng.random() < 0.92})
        except CrmError:
            demo.errors += 1
            continue
        demo.count("conversions")
        if not result.get("account_matched"):
            demo.count("accounts")
        if result.get("opportunity"):
            demo.opportunities.append(result["opportunity"])
