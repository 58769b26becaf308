"""`metacrm init --demo`: a believable IT systems integrator after the whitepaper's case B.

Departments: headquarters → sales (VP) → hardware, software, IT services, industry solutions
(a manager and three reps each); marketing; finance. Campaigns under a marketing plan,
~2,000 leads from every channel (some waiting in the BU pools), ~300 accounts, ~200
opportunities across the stages (some stalled), quotes (some through the discount approval),
contracts, orders (partial deliveries, one blocked by its credit limit), payment plans with
paid, late, partial and overdue instalments, commission plans, quotas and follow-ups.

Every write goes through the record service (and so through every hook: dedup, pools, key
leads, conversion, credit, commission...). Deterministic: random.Random(42), dates relative
to today. Passwords: METACRM_DEMO_PASSWORD, default "demo-pass-123".
"""

from __future__ import annotations

import logging
import os
import random
import time
from datetime import date, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from ...platform.clock import today, utcnow
from ...platform.errors import CrmError
from ...platform.reports import period_key
from ...platform.security import Principal, hash_password
from .common import PLUGIN, plugin_ctx, system_service
from .leads import convert_action

log = logging.getLogger(__name__)
DEFAULT_PASSWORD = "demo-pass-123"

BUS = [("hardware", "Hardware", "硬件"), ("software", "Software", "软件"), ("it_services", "IT services", "IT服务"),
       ("solutions", "Industry solutions", "行业解决方案")]
SURNAMES = ["Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu", "Xu", "Sun", "Hu", "Zhu",
            "Gao", "Lin", "He", "Guo", "Ma", "Luo"]
GIVEN = ["Wei", "Fang", "Min", "Jing", "Lei", "Jun", "Yan", "Tao", "Hui", "Qiang", "Li", "Ping", "Gang", "Hong",
         "Xin", "Yu", "Bo", "Ning", "Chao", "Lan"]
PREFIXES = ["Huaxin", "Zhongke", "Tianrui", "Jinqiao", "Hengtai", "Xinda", "Dongfang", "Changjiang", "Minsheng",
            "Haitong", "Ruifeng", "Boyuan", "Shenghua", "Guoan", "Kaiyuan", "Hongtu", "Yuanda", "Zhongxing",
            "Huamei", "Tongda", "Jiahe", "Longsheng", "Xinghai", "Baichuan", "Fuxing", "Anbang", "Dingsheng",
            "Wanli", "Qianhai", "Taihe"]
SECTORS = [("Bank", "finance"), ("Securities", "finance"), ("Insurance", "finance"), ("Telecom", "telecom"),
           ("Mobile Networks", "telecom"), ("Municipal Services", "government"), ("Customs Bureau", "government"),
           ("Steel", "manufacturing"), ("Auto Parts", "manufacturing"), ("Textiles", "manufacturing"),
           ("Electronics", "manufacturing"), ("Retail", "retail"), ("Supermarkets", "retail"),
           ("Logistics", "other")]
SUFFIXES = ["Co., Ltd.", "Group", "Corporation", "Holdings", "Co., Ltd."]
PROJECTS = ["ERP upgrade", "Data centre refresh", "Cloud migration", "Branch network", "Security audit",
            "Storage expansion", "Core banking integration", "CRM rollout", "Video conferencing", "Backup and DR",
            "Smart factory MES", "Desktop virtualisation", "Billing system", "Data warehouse", "IoT pilot",
            "Office network", "Call centre", "Mobile app", "AI inspection", "Server consolidation"]
PHASES = ["Phase I", "Phase II", "Phase III", "2025", "2026"]
PRODUCTS = [
    ("SRV-R740", "Rack server R740", "hardware", "48000"), ("SRV-B100", "Blade chassis B100", "hardware", "220000"),
    ("STO-A800", "All-flash storage A800", "hardware", "360000"), ("NET-S58", "Core switch S58", "hardware", "85000"),
    ("SW-ERP", "ERP suite (per 10 users)", "software", "120000"), ("SW-DB", "Database licence", "software", "68000"),
    ("SW-SEC", "Endpoint security (100 seats)", "software", "32000"),
    ("SVC-IMPL", "Implementation (person-day)", "it_services", "2800"),
    ("SVC-OPS", "Managed operations (month)", "it_services", "45000"),
    ("SVC-TRN", "Training course", "it_services", "9000"),
    ("SOL-BANK", "Core banking solution", "solutions", "1500000"),
    ("SOL-MES", "Smart factory MES", "solutions", "880000"),
]
CAMPAIGNS = [  # name, channel, budget, actual cost, days from today (start), status
    ("Shanghai IT Expo", "offline_event", "180000", "172500", -150, "completed"),
    ("Search ads H1", "search", "90000", "88200", -170, "completed"),
    ("Industry web banners", "web_ad", "60000", "51300", -120, "completed"),
    ("CIO newsletter", "email", "15000", "12800", -100, "completed"),
    ("WeChat mini-program", "mobile", "40000", "36600", -80, "active"),
    ("Finance roundtable Beijing", "offline_event", "120000", "98000", -60, "completed"),
    ("Manufacturing 4.0 tour", "offline_event", "150000", "64000", -20, "active"),
    ("Trade press ads", "print", "30000", "30000", -140, "completed"),
    ("Search ads H2", "search", "90000", "21000", -10, "active"),
]
CHANNEL_SOURCE = {"offline_event": "offline_event", "search": "search", "web_ad": "web_ad", "email": "email",
                  "mobile": "mobile", "print": "web", "tv": "web"}
STAGE_MIX = [("qualification", 20), ("research", 20), ("trial", 18), ("negotiation", 14), ("won", 16), ("lost", 12)]
REASONS_WON = ["relationship", "product_fit", "price", "timing"]
REASONS_LOST = ["price", "competitor", "no_budget", "timing", "product_fit"]


def _password() -> str:
    return os.environ.get("METACRM_DEMO_PASSWORD") or DEFAULT_PASSWORD


def _ensure_plugin(runtime) -> None:
    if plugin_ctx(runtime) is not None:
        return
    try:  # the normal path: the built-in plugin installed and loaded by the plugin system
        from ..install import install_builtins
        from ..loader import sync

        install_builtins(runtime)
        sync(runtime)
    except Exception:
        log.warning("could not install the built-in plugins; setting lead_to_cash up directly", exc_info=True)
    if plugin_ctx(runtime) is None:
        from ..api import PluginContext
        from . import MANIFEST, setup

        setup(PluginContext(runtime, PLUGIN, granted=MANIFEST["permissions"]))


class _Seeder:
    def __init__(self, runtime, scale: float, seed: int):
        self.runtime = runtime
        self.rng = random.Random(seed)
        self.scale = scale
        self.today = today()
        self.system = system_service(runtime)
        self.counts: dict[str, int] = {}
        self.errors = 0

    def n(self, count: int, minimum: int = 1) -> int:
        return max(minimum, round(count * self.scale))

    def day(self, offset: int) -> date:
        return self.today + timedelta(days=offset)

    def count(self, name: str, k: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + k

    # --- people -------------------------------------------------------------------------

    def people(self) -> None:
        s = self.system
        password_hash = hash_password(_password())
        hq = s.create("department", {"name": "headquarters", "code": "hq"})["id"]
        sales = s.create("department", {"name": "sales", "code": "sales", "parent": hq})["id"]
        self.dept = {"hq": hq, "sales": sales}
        for code, _, _ in BUS:
            self.dept[code] = s.create("department", {"name": code, "code": code, "parent": sales})["id"]
        for code in ("marketing", "finance"):
            self.dept[code] = s.create("department", {"name": code, "code": code, "parent": hq})["id"]
        self.users: dict[str, dict] = {}

        def user(username, display, roles, dept, manager=None):
            values = {"username": username, "display_name": display, "roles": roles, "department": self.dept[dept],
                      "email": f"{username}@demo.metacrm.dev",
                      "locale": "zh-CN" if self.rng.random() < 0.5 else "en"}
            if manager:
                values["manager"] = self.users[manager]["id"]
            created = s.create("user", values)
            # every demo user has the same password: hash it once (scrypt is slow on purpose)
            s.system_update("user", created["id"], {"password": password_hash}, note="demo password")
            self.users[username] = {"id": created["id"], "roles": roles, "dept": dept, "manager": manager}
            self.count("users")
            return created["id"]

        user("vp.wang", "Wang Jian (VP Sales)", ["vp_sales"], "sales")
        self.reps: dict[str, list[str]] = {}
        for code, en, _ in BUS:
            user(f"{code}.mgr", f"{self.rng.choice(SURNAMES)} {self.rng.choice(GIVEN)} ({en} manager)",
                 ["sales_manager"], code, "vp.wang")
            self.reps[code] = []
            for i in range(1, 4):
                name = f"{code}.rep{i}"
                user(name, f"{self.rng.choice(SURNAMES)} {self.rng.choice(GIVEN)}", ["sales_rep"], code, f"{code}.mgr")
                self.reps[code].append(name)
        user("mkt.li", "Li Na (Marketing)", ["marketing"], "marketing")
        user("mkt.chen", "Chen Yu (Marketing)", ["marketing"], "marketing", "mkt.li")
        user("fin.zhao", "Zhao Min (Finance)", ["finance"], "finance")
        user("fin.sun", "Sun Hao (Finance)", ["finance"], "finance", "fin.zhao")
        for code, head in [("sales", "vp.wang"), ("marketing", "mkt.li"), ("finance", "fin.zhao")] + \
                [(code, f"{code}.mgr") for code, _, _ in BUS]:
            s.update("department", self.dept[code], {"head": self.users[head]["id"]})
        self.runtime.directory_changed()

    def create_many(self, object_name: str, rows: list[dict], batch: int = 100) -> list[dict]:
        """create_many in short transactions, the duplicate check set-based per batch (as imports do)."""
        if len(rows) > batch:
            results = []
            for start in range(0, len(rows), batch):
                results.extend(self.create_many(object_name, rows[start:start + batch], batch))
            return results
        s = self.system
        with s.transaction() as tx:
            options = {}
            try:
                from ...platform import dedup

                finder = dedup.DuplicateFinder(self.runtime, s.compiled, object_name)
                finder.prefetch(tx.conn, rows)
                options["dedup_batch"] = finder
            except (ImportError, AttributeError):
                pass
            return s.create_many(object_name, rows, **options)

    def uid(self, username: str) -> str:
        return self.users[username]["id"]

    def principal(self, username: str) -> Principal:
        info = self.users[username]
        return Principal(user_id=info["id"], username=username, roles=frozenset(info["roles"]),
                         department=self.dept[info["dept"]],
                         manager=self.users[info["manager"]]["id"] if info["manager"] else None)

    def rep_of(self, line: str | None) -> str:
        return self.rng.choice(self.reps[line or self.rng.choice([b for b, _, _ in BUS])])

    # --- catalogue, marketing ---------------------------------------------------------------

    def catalogue(self) -> None:
        s = self.system
        self.products = {}
        for code, name, line, price in PRODUCTS:
            self.products[code] = s.create("product", {"code": code, "name": name, "product_line": line,
                                                       "list_price": price, "unit": "set"})
        self.count("products", len(PRODUCTS))
        s.create("lead_priority_rule", {"name": "Finance and telecom, hot", "industries": ["finance", "telecom"],
                                        "min_score": 70})
        s.create("lead_priority_rule", {"name": "Solutions in the east", "product_lines": ["solutions"],
                                        "regions": ["east"]})
        s.create("lead_priority_rule", {"name": "Any lead scoring 90+", "min_score": 90})

    def marketing(self) -> None:
        s = self.system
        owner = self.uid("mkt.li")
        plan = s.create("campaign", {"name": "2025 marketing plan", "record_type": "marketing_plan", "owner": owner,
                                     "budget": "800000", "start_date": self.day(-180).isoformat(),
                                     "end_date": self.day(180).isoformat(), "status": "active"})
        self.campaigns = []
        for name, channel, budget, cost, start, status in CAMPAIGNS:
            created = s.create("campaign", {
                "name": name, "channel": channel, "budget": budget, "actual_cost": cost, "parent": plan["id"],
                "expected_revenue": str(Decimal(budget) * 8), "status": status, "owner": self.uid(
                    self.rng.choice(["mkt.li", "mkt.chen"])),
                "start_date": self.day(start).isoformat(), "end_date": self.day(start + 30).isoformat()})
            self.campaigns.append(created)
            for task in ("Book venue / media", "Prepare material", "Follow up the leads"):
                s.create("campaign_task", {"name": task, "campaign": created["id"], "assignee": owner,
                                           "status": "done" if status == "completed" else "in_progress",
                                           "due_date": self.day(start + 10).isoformat()})
        self.count("campaigns", len(self.campaigns))

    # --- customers and leads ----------------------------------------------------------------

    def companies(self) -> None:
        names = [(f"{p} {sector}", industry) for p in PREFIXES for sector, industry in SECTORS]
        self.rng.shuffle(names)
        self.company_pool = [(f"{base} {self.rng.choice(SUFFIXES)}", industry) for base, industry in names]

    def accounts(self) -> None:
        rows = []
        self.direct_accounts = []
        for name, industry in self.company_pool[: self.n(230)]:
            line = self.rng.choice([b for b, _, _ in BUS])
            rep = self.rep_of(line)
            rows.append({"name": name, "industry": industry, "owner": self.uid(rep),
                         "region": self.rng.choice(["north", "east", "south", "west"]),
                         "type": self.rng.choice(["customer", "prospect", "prospect", "partner"]),
                         "importance": self.rng.choice(["a", "b", "b", "c"]),
                         "urgency": self.rng.choice(["high", "medium", "low"]),
                         "record_type": "channel_partner" if self.rng.random() < 0.1 else "enterprise",
                         "employees": self.rng.randint(50, 20000),
                         "credit_limit": str(self.rng.choice([1000000, 3000000, 5000000, 10000000, 20000000]))})
            rows[-1]["partner_level"] = self.rng.choice(["gold", "silver", "bronze"])
        for result in self.create_many("account", rows):
            if result["status"] == "created":
                self.direct_accounts.append(result["id"])
            else:
                self.errors += 1
        self.count("accounts", len(self.direct_accounts))

    def leads(self) -> None:
        statuses = ["new"] * 30 + ["working"] * 25 + ["nurturing"] * 12 + ["qualified"] * 13 + ["disqualified"] * 10
        total = self.n(2000)
        seen = set()
        rows = []
        for i in range(total):
            company, industry = self.rng.choice(self.company_pool)
            while True:
                project = f"{self.rng.choice(PROJECTS)} {self.rng.choice(PHASES)}"
                if (company, project) not in seen:
                    seen.add((company, project))
                    break
            campaign = self.rng.choice(self.campaigns) if self.rng.random() < 0.7 else None
            source = CHANNEL_SOURCE[campaign["channel"]] if campaign else self.rng.choice(
                ["web", "referral", "purchased_list", "web"])
            line = self.rng.choice([b for b, _, _ in BUS]) if self.rng.random() < 0.9 else None
            first, last = self.rng.choice(GIVEN), self.rng.choice(SURNAMES)
            row = {"company": company, "project_name": project, "contact_name": f"{last} {first}",
                   "email": f"{first.lower()}.{last.lower()}{i}@{company.split()[0].lower()}-{i % 97}.cn",
                   "phone": f"+86 139 {i // 10000:04d} {i % 10000:04d}", "source": source,
                   "status": self.rng.choice(statuses), "product_line": line, "industry": industry,
                   "region": self.rng.choice(["north", "east", "south", "west", "overseas"]),
                   "score": self.rng.randint(5, 99), "budget": str(self.rng.choice(range(50, 3000, 25)) * 1000)}
            if campaign:
                row["campaign"] = campaign["id"]
            if line is not None and self.rng.random() < 0.85:
                row["owner"] = self.uid(self.rep_of(line))  # the rest wait in the pools
            rows.append(row)
        self.lead_ids = []
        for start in range(0, len(rows), 500):
            for result in self.create_many("lead", rows[start:start + 500], batch=100):
                if result["status"] == "created":
                    self.lead_ids.append(result["id"])
                else:
                    self.errors += 1
        self.count("leads", len(self.lead_ids))

    def conversions(self) -> None:
        leads = self.system.table("lead")
        with self.runtime.reading() as conn:
            candidates = [r.id for r in conn.execute(
                sa.select(leads.c.id).where(leads.c.owner.isnot(None), leads.c.status.in_(["qualified", "working"]),
                                            leads.c.deleted_at.is_(None)).order_by(leads.c.company, leads.c.id))]
        self.rng.shuffle(candidates)
        self.opportunities = []
        for lead_id in candidates[: self.n(140)]:
            service = system_service(self.runtime)
            try:
                with service.transaction():
                    record = service.get_record("lead", lead_id)
                    result = convert_action(service, record, {"create_opportunity": self.rng.random() < 0.92})
            except CrmError:
                self.errors += 1
                continue
            self.count("conversions")
            if not result.get("account_matched"):
                self.count("accounts")
            if result.get("opportunity"):
                self.opportunities.append(result["opportunity"])

    # --- pipeline --------------------------------------------------------------------------

    def _stage_values(self) -> dict:
        stage = self.rng.choices([name for name, _ in STAGE_MIX], [w for _, w in STAGE_MIX])[0]
        closed = stage in ("won", "lost")
        close_offset = -self.rng.randint(5, 170) if closed else self.rng.randint(-10, 170)
        close = self.day(close_offset)
        moved = self.day(min(close_offset, 0) - self.rng.randint(0, 40)) if not closed else close
        values = {
            "stage": stage, "amount": str(self.rng.choice(range(60, 2400, 20)) * 1000),
            "close_date": close.isoformat(),
            "opened_on": (close - timedelta(days=self.rng.randint(25, 140))).isoformat() if closed
            else self.day(-self.rng.randint(10, 120)).isoformat(),
            "stage_changed_at": datetime.combine(moved, datetime.min.time()).isoformat() + "Z",
            "next_step": self.rng.choice(["Send proposal", "Technical workshop", "Reference visit",
                                          "Price negotiation", "Sign contract"]),
        }
        if closed:
            values["closed_at"] = values["stage_changed_at"]
            values["win_loss_reason"] = self.rng.choice(REASONS_WON if stage == "won" else REASONS_LOST)
        elif stage in ("trial", "research") and self.rng.random() < 0.25:
            values["forecast_category"] = "commit" if stage == "trial" else "best_case"
        return values

    def pipeline(self) -> None:
        s = self.system
        self.won = []
        for opp_id in self.opportunities:  # the converted leads' opportunities move on
            values = self._stage_values()
            s.update("opportunity", opp_id, values)
            self.count(f"stage:{values['stage']}")
            if values["stage"] == "won":
                self.won.append(opp_id)
        rows = []
        accounts = s.table("account")
        with self.runtime.reading() as conn:
            owners = dict(conn.execute(sa.select(accounts.c.id, accounts.c.owner).where(
                accounts.c.id.in_(self.direct_accounts))).fetchall())
        for account_id in self.direct_accounts[: self.n(70)]:  # and the existing customers' new deals
            rows.append(dict(self._stage_values(), account=account_id, owner=owners.get(account_id),
                             name=f"{self.rng.choice(PROJECTS)} {self.rng.choice(PHASES)}",
                             product_line=self.rng.choice([b for b, _, _ in BUS])))
        for row, result in zip(rows, self.create_many("opportunity", rows)):
            if result["status"] != "created":
                self.errors += 1
                continue
            self.opportunities.append(result["id"])
            self.count(f"stage:{row['stage']}")
            if row["stage"] == "won":
                self.won.append(result["id"])

    def quotes(self) -> None:
        s = self.system
        table = s.table("opportunity")
        with self.runtime.reading() as conn:
            rows = conn.execute(sa.select(table.c.id, table.c.owner, table.c.name, table.c.stage, table.c.product_line)
                                .where(table.c.stage.in_(["trial", "negotiation", "won"]), table.c.deleted_at.is_(None))
                                .order_by(table.c.id)).fetchall()
        try:
            from ... import approval as approvals
        except ImportError:  # the approval runtime is optional
            approvals = None
        self.quote_of = {}
        by_line = {}
        for code, _, line, _ in PRODUCTS:
            by_line.setdefault(line, []).append(code)
        owner_name = {info["id"]: name for name, info in self.users.items()}
        for row in rows[: self.n(30)]:
            discount = self.rng.choice(["0", "5", "8", "12", "15", "20", "25", "30"])
            quote = s.create("quote", {"name": f"Quote — {row.name}", "opportunity": row.id, "owner": row.owner,
                                       "valid_until": self.day(30).isoformat(),
                                       "status": "accepted" if row.stage == "won" else "presented"})
            codes = by_line.get(row.product_line) or by_line["hardware"]
            for code in self.rng.sample(codes, k=min(len(codes), self.rng.randint(1, 3))):
                s.create("quote_line", {"quote": quote["id"], "product": self.products[code]["id"],
                                        "quantity": str(self.rng.randint(1, 12))})
            s.update("quote", quote["id"], {"discount_pct": discount})
            self.quote_of[row.id] = quote["id"]
            self.count("quotes")
            if approvals is None or Decimal(discount) <= 10 or row.owner not in owner_name \
                    or self.counts.get("approvals", 0) >= self.n(12):
                continue
            try:  # the rep submits; the manager (and the VP from 30 %) decide some of them
                request = approvals.submit(self.runtime, self.principal(owner_name[row.owner]), "quote", quote["id"])
                self.count("approvals")
                if self.rng.random() < 0.6:
                    rep = owner_name[row.owner]
                    request = approvals.decide(self.runtime, self.principal(self.users[rep]["manager"]),
                                               request["id"], "approve", "ok")
                    if request.get("status") == "pending":
                        approvals.decide(self.runtime, self.principal("vp.wang"), request["id"], "approve", "ok")
            except Exception:
                log.warning("demo approval failed", exc_info=True)

    # --- contracts, orders, payments ----------------------------------------------------------

    def commission_setup(self) -> None:
        s = self.system
        standard = s.create("commission_plan", {
            "name": "Standard (on collection)", "mode": "on_collection", "tier_mode": "marginal", "period": "quarter",
            "is_default": True, "early_bonus_pct_per_day": "0.1", "late_penalty_pct_per_day": "0.2",
            "max_adjustment_pct": "20"})
        for low, high, rate in (("0", "300000", "3"), ("300000", "800000", "4"), ("800000", None, "5")):
            s.create("commission_tier", {"plan": standard["id"], "from_value": low, "to_value": high, "rate": rate})
        services = s.create("commission_plan", {"name": "IT services (on delivery)", "mode": "on_delivery",
                                                "tier_mode": "whole", "period": "quarter"})
        for low, high, rate in (("0", "500000", "4"), ("500000", None, "6")):
            s.create("commission_tier", {"plan": services["id"], "from_value": low, "to_value": high, "rate": rate})
        solutions = s.create("commission_plan", {"name": "Solutions (collection + delivery)",
                                                 "mode": "on_collection_and_delivery", "tier_mode": "marginal",
                                                 "period": "quarter", "late_penalty_pct_per_day": "0.1",
                                                 "max_adjustment_pct": "10"})
        s.create("commission_tier", {"plan": solutions["id"], "from_value": "0", "rate": "4.5"})
        target = s.create("commission_plan", {"name": "Target bonus (on target completion)", "mode": "on_target",
                                              "tier_mode": "marginal", "period": "quarter", "active": True})
        for low, high, rate in (("0", "80", "0"), ("80", "100", "3"), ("100", None, "6")):
            s.create("commission_tier", {"plan": target["id"], "from_value": low, "to_value": high, "rate": rate})
        plan_for = {"it_services": services["id"], "solutions": solutions["id"]}
        quarters = sorted({period_key(self.day(offset), "quarter") for offset in (-270, -180, -90, 0, 90)})
        for code, _, _ in BUS:
            for rep in self.reps[code]:
                for quarter in quarters:
                    values = {"user": self.uid(rep), "period": quarter,
                              "amount": str(self.rng.choice([1500000, 2000000, 2500000, 3000000]))}
                    if code in plan_for:
                        values["commission_plan"] = plan_for[code]
                    s.create("quota", values)
                    self.count("quotas")
        self.count("commission_plans", 4)

    def contracts(self) -> None:
        s = self.system
        self.active_contracts = []
        for opp_id in self.won:
            opp = s.get_record("opportunity", opp_id)
            if not opp.get("account"):
                continue
            signed = opp["close_date"]
            status = self.rng.choices(["active", "completed", "draft", "terminated"], [70, 18, 8, 4])[0]
            values = {"name": f"{opp['name']} contract", "opportunity": opp_id, "owner": opp["owner"],
                      "type": self.rng.choice(["sales", "sales", "service", "framework", "maintenance"]),
                      "amount": str(opp["amount"]), "status": status}
            if opp_id in self.quote_of:
                values["quote"] = self.quote_of[opp_id]
            if status != "draft":
                values.update(signed_on=signed.isoformat(), start_date=signed.isoformat(),
                              end_date=(signed + timedelta(days=365)).isoformat())
            if status == "terminated":
                values["termination_reason"] = "customer budget cut"
            contract = s.create("contract", values)
            self.count("contracts")
            if status in ("active", "completed"):
                self.active_contracts.append((contract, opp))
            if status == "active" and self.rng.random() < 0.15:
                s.create("contract_amendment", {"contract": contract["id"], "title": "Scope extension",
                                                "effective_date": self.day(-5).isoformat(),
                                                "amount_change": str(self.rng.choice([20000, 50000, -10000]))})
                self.count("amendments")

    def orders(self) -> None:
        s = self.system
        by_line = {}
        for code, _, line, price in PRODUCTS:
            by_line.setdefault(line, []).append((code, Decimal(price)))
        for contract, opp in self.active_contracts[: self.n(18)]:
            amount = Decimal(contract["amount"] or 0)
            completed = contract["status"] == "completed"
            status = "delivered" if completed else self.rng.choice(["confirmed", "processing", "shipped", "delivered",
                                                                  "shipped"])
            order = s.create("order", {"contract": contract["id"], "owner": contract["owner"], "status": "created",
                                       "order_date": contract["signed_on"]})
            products = by_line.get(opp.get("product_line")) or by_line["hardware"]
            code, price = self.rng.choice(products)
            quantity = max(1, int(amount / price)) if price else 1
            line = s.create("order_line", {"order": order["id"], "product": self.products[code]["id"],
                                           "quantity": str(quantity), "unit_price": str(price)})
            try:
                s.update("order", order["id"], {"status": status if status != "delivered" else "shipped"})
                if status == "delivered":
                    s.update("order", order["id"], {"status": "delivered"})
                elif status == "shipped" and quantity > 1 and self.rng.random() < 0.5:
                    s.update("order_line", line["id"], {"delivered_qty": str(quantity // 2)})  # a partial delivery
                    self.count("partial_deliveries")
            except CrmError:  # e.g. over the credit limit: left created, finance can release it
                self.count("orders_blocked_by_credit")
            self.count("orders")

    def credit_block_example(self) -> None:
        """One order that the account's credit limit stops, waiting for finance to release it."""
        s = self.system
        if not self.active_contracts:
            return
        contract, _ = self.active_contracts[0]
        s.update("account", contract["account"], {"credit_limit": "100000"})
        order = s.create("order", {"contract": contract["id"], "owner": contract["owner"],
                                   "notes": "Over the credit limit: confirm needs finance's release."})
        s.create("order_line", {"order": order["id"], "product": self.products["STO-A800"]["id"], "quantity": "2"})
        try:
            s.update("order", order["id"], {"status": "confirmed"})
        except CrmError:
            self.count("orders_blocked_by_credit")
        self.count("orders")

    def payments(self) -> None:
        s = self.system
        overdue = 0
        for contract, _ in self.active_contracts[: self.n(18)]:
            amount = Decimal(contract["amount"] or 0)
            if amount <= 0:
                continue
            plan = s.create("payment_plan", {"contract": contract["id"]})
            self.count("payment_plans")
            signed = date.fromisoformat(contract["signed_on"])
            shares = [Decimal("0.3"), Decimal("0.4"), Decimal("0.3")]
            for seq, share in enumerate(shares, start=1):
                due = signed + timedelta(days=15 + 60 * (seq - 1))
                value = (amount * share).quantize(Decimal("0.01"))
                inst = s.create("instalment", {"payment_plan": plan["id"], "due_date": due.isoformat(),
                                               "amount": str(value), "sequence": seq,
                                               "method": self.rng.choice(["bank_transfer", "bank_transfer",
                                                                          "acceptance_bill"])})
                self.count("instalments")
                if due > self.today + timedelta(days=5) and contract["status"] != "completed":
                    continue
                behaviour = self.rng.choices(["early", "on_time", "late", "partial", "unpaid"],
                                             [18, 35, 20, 12, 15])[0]
                if contract["status"] == "completed":
                    behaviour = self.rng.choice(["early", "on_time", "late"])
                if behaviour == "unpaid":
                    overdue += due < self.today
                    continue
                offset = {"early": -self.rng.randint(1, 10), "on_time": 0,
                          "late": self.rng.randint(3, 75), "partial": self.rng.randint(0, 20)}[behaviour]
                received = min(due + timedelta(days=offset), self.today)
                paid = value if behaviour != "partial" else (value * Decimal("0.5")).quantize(Decimal("0.01"))
                s.create("payment", {"instalment": inst["id"], "amount": str(paid), "received_on": received.isoformat(),
                                     "method": "bank_transfer", "reference": f"BK{self.rng.randint(10**7, 10**8)}"})
                self.count("payments")
                overdue += behaviour == "partial" and due < self.today
        self.count("overdue_instalments", overdue)

    def activities(self) -> None:
        s = self.system
        rows = []
        targets = [("opportunity", o) for o in self.opportunities] + [("account", a) for a in self.direct_accounts]
        targets += [("lead", lead) for lead in self.rng.sample(self.lead_ids, k=min(len(self.lead_ids), self.n(250)))]
        self.rng.shuffle(targets)
        for object_name, record_id in targets[: self.n(260)]:
            record = s.get_record(object_name, record_id)
            if not record.get("owner"):
                continue
            kind = self.rng.choice(["call", "visit", "email", "note", "task"])
            rows.append({"subject": f"{kind.title()}: {self.rng.choice(['requirements', 'demo', 'pricing', 'contract', 'follow-up'])}",
                         "type": kind, "related_to": {"object": object_name, "id": record_id},
                         "owner": record["owner"], "due_date": self.day(self.rng.randint(-30, 10)).isoformat(),
                         "done": self.rng.random() < 0.6})
        for result in self.create_many("activity", rows):
            if result["status"] == "created":
                self.count("activities")
            else:
                self.errors += 1


def seed_demo(runtime, *, scale: float = 1.0, seed: int = 42) -> str:
    """Seed the demo company (once); returns the summary, with the demo logins."""
    started = time.monotonic()
    _ensure_plugin(runtime)
    users = runtime.compiled().tables["user"]
    with runtime.engine.connect() as conn:
        if conn.execute(sa.select(users.c.id).where(users.c.username == "vp.wang")).first():
            return "demo company already present: nothing added"
    seeder = _Seeder(runtime, scale, seed)
    for step in (seeder.people, seeder.catalogue, seeder.marketing, seeder.companies, seeder.accounts,
                 seeder.leads, seeder.conversions, seeder.pipeline, seeder.quotes, seeder.commission_setup,
                 seeder.contracts, seeder.orders, seeder.credit_block_example, seeder.payments, seeder.activities):
        step()
    jobs = {name: fn for name, fn in runtime.sweeps}
    for name in ("lead_to_cash.stalled_opportunities", "lead_to_cash.overdue_instalments"):
        if name in jobs:
            jobs[name](runtime)
    c = seeder.counts
    opportunities = sum(v for k, v in c.items() if k.startswith("stage:"))
    elapsed = time.monotonic() - started
    source = "METACRM_DEMO_PASSWORD" if os.environ.get("METACRM_DEMO_PASSWORD") else f"default '{DEFAULT_PASSWORD}'"
    logins = "vp.wang, hardware.mgr, hardware.rep1, software.rep1, it_services.rep1, solutions.rep1, mkt.li, fin.zhao"
    return (f"demo company seeded in {elapsed:.1f}s ({utcnow():%Y-%m-%d}): {c.get('users', 0)} users, "
            f"{c.get('campaigns', 0)} campaigns, {c.get('leads', 0)} leads ({c.get('conversions', 0)} converted), "
            f"{c.get('accounts', 0)} accounts, {opportunities} opportunities ({c.get('stage:won', 0)} won), "
            f"{c.get('quotes', 0)} quotes ({c.get('approvals', 0)} sent for approval), {c.get('contracts', 0)} "
            f"contracts, {c.get('orders', 0)} orders ({c.get('orders_blocked_by_credit', 0)} held by credit limits), "
            f"{c.get('payment_plans', 0)} payment plans, {c.get('payments', 0)} payments, "
            f"{c.get('overdue_instalments', 0)} overdue instalments, {c.get('activities', 0)} follow-ups"
            + (f", {seeder.errors} rows skipped" if seeder.errors else "") + "\n"
            f"demo logins (password from {source}): {logins}; every BU has <bu>.mgr and <bu>.rep1..3 "
            f"(bu: hardware, software, it_services, solutions)")
