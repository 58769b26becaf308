"""`metacrm init --demo`: a believable IT systems integrator after the whitepaper's case B.

Departments: headquarters → sales (VP) → hardware, software, IT services, industry solutions
(a manager and three reps each); marketing; finance. Campaigns under a marketing plan,
~2,000 leads from every channel (some waiting in the BU pools), ~300 accounts, ~200
opportunities across the stages (some stalled), quotes (some through the discount approval),
contracts, orders (partial deliveries, one blocked by its credit limit), payment plans with
paid, late, partial and overdue instalments, commission plans, quotas, follow-ups and the managers' forecast adjustments.

Every write goes through the record service (and so through every hook: dedup, pools, key
leads, conversion, credit, commission...). Deterministic: random.Random(42), dates relative
to today. Passwords: METACRM_DEMO_PASSWORD, default "demo-pass-123".
"""

from __future__ import annotations

import logging
import os
import time

import sqlalchemy as sa

from ....platform.clock import utcnow
from ..common import PLUGIN, plugin_ctx
from . import marketing, money, people, pipeline
from .seeder import DEFAULT_PASSWORD, Seeder

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_PASSWORD", "seed_demo"]

# In this order: every step draws from the one random.Random, so the order is part of the data.
STEPS = (people.people, people.catalogue, marketing.marketing, marketing.companies, marketing.accounts,
         marketing.leads, marketing.conversions, pipeline.pipeline, pipeline.quotes, money.commission_setup,
         pipeline.contracts, money.orders, money.credit_block_example, money.payments, pipeline.activities,
         money.forecast_adjustments)


def _ensure_plugin(runtime) -> None:
    if plugin_ctx(runtime) is not None:
        return
    try:  # the normal path: the built-in plugin installed and loaded by the plugin system
        from ...install import install_builtins
        from ...loader import sync

        install_builtins(runtime)
        sync(runtime)
    except Exception:
        log.warning("could not install the built-in plugins; setting lead_to_cash up directly", exc_info=True)
    if plugin_ctx(runtime) is None:
        from ...api import PluginContext
        from .. import MANIFEST, setup

        setup(PluginContext(runtime, PLUGIN, granted=MANIFEST["permissions"]))


def seed_demo(runtime, *, scale: float = 1.0, seed: int = 42) -> str:
    """Seed the demo company (once); returns the summary, with the demo logins."""
    started = time.monotonic()
    _ensure_plugin(runtime)
    users = runtime.compiled().tables["user"]
    with runtime.engine.connect() as conn:
        if conn.execute(sa.select(users.c.id).where(users.c.username == "vp.wang")).first():
            return "demo company already present: nothing added"
    seeder = Seeder(runtime, scale, seed)
    for step in STEPS:
        step(seeder)
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
