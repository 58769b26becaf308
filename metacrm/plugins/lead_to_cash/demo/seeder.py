"""The demo company being built: one random.Random for every draw (so the same seed gives the
same company), dates relative to today, the counts for the summary, and what each step
leaves for the later ones."""

from __future__ import annotations

import os
import random
from datetime import date, timedelta

from ....platform.clock import today
from ....platform.security import Principal
from ..common import system_service
from .data import BUS

DEFAULT_PASSWORD = "demo-pass-123"


def _password() -> str:
    return os.environ.get("METACRM_DEMO_PASSWORD") or DEFAULT_PASSWORD


class Seeder:
    # What the steps leave for the later ones (set by the step named in the comment).
    dept: dict[str, str]  # people: department code -> id
    users: dict[str, dict]  # people: username -> id, roles, department code, manager
    reps: dict[str, list[str]]  # people: business unit -> its reps' usernames
    products: dict[str, dict]  # catalogue: code -> product record
    campaigns: list[dict]  # marketing
    company_pool: list[tuple[str, str]]  # companies: (name, industry)
    direct_accounts: list[str]  # accounts
    lead_ids: list[str]  # leads
    opportunities: list[str]  # conversions, pipeline
    won: list[str]  # pipeline
    quote_of: dict[str, str]  # quotes: opportunity id -> quote id
    active_contracts: list[tuple[dict, dict]]  # contracts: (contract, its opportunity)
    to_complete: list[str]  # contracts completed once their orders are delivered

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
                from ....platform import dedup

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
