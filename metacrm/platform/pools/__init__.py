"""Public pools (公海池, `pool` metadata): entry, claims with limits, assignment, release,
protection periods and the recycle sweep.

Decisions where the contract is open:
- Entry: a new record that nobody in particular owns and that matches a pool's `entry`
  filter (no filter = every record of the object) enters it: no owner at all (the platform
  created it, or the input said "owner": null), or an owner only by default when an admin
  created it or it came from an import. A user's own new record (owner by default) stays
  theirs, and an explicit owner always wins. An unowned record outside any pool enters on
  update too. When several pools match, the lowest `priority` wins, then the pool name
  (alphabetical). Auto-assignment (`round_robin`: a counter in
  mc_sequence; `load_balanced`: the user with the fewest open records) hands the record
  straight to a user of `assignment.users` (falling back to the pool if there is none).
- Held records (`max_held`): non-deleted records of the pool's object the user owns,
  except closed ones: a `status` or `stage` picklist value that is converted, won, lost,
  closed, disqualified… (or an option with `"closed": true` or forecast_category
  closed / omitted). `max_per_day` counts claims per UTC day (a counter in mc_sequence).
  Overrides: a user's override beats a department's, which beats a role's; pool admins
  and system admins are exempt from every limit.
- Protection: a claim (or assignment from the pool) protects the record for
  `default_days`; a qualifying follow-up extends it to max(current, now + extend_days),
  capped at owner_since + max_days; an admin reassignment keeps owner_since and
  protected_until. Recycle rules skip protected records. GET /records/{object}/{id}/recycle
  gives the computed recycle date.
- Recycle rules read `last_activity_at` as "the last follow-up, or since the owner got
  the record" (coalesced with owner_since), so a record never followed up is recycled too.
- The sweep is set-based (one UPDATE ... RETURNING per batch + one history executemany),
  not per-record system_update calls: it writes the same columns and history rows, but
  after_save hooks (workflow triggers) do not run for recycles.
"""

from __future__ import annotations

from pathlib import Path

from ..features import Feature
from . import api, pages
from .browsing import list_pools, list_records
from .claims import assign, claim, release
from .definitions import Pool, get_pool, pools_by_object
from .hooks import HOOK_ORDER, before_save, extend_protection
from .recycle import recycle_info
from .sweep import recycle_rule, recycle_sweep

# What other packages, bench scripts and tests call; the rest lives in the modules above.
__all__ = [
    "FEATURE", "Pool", "assign", "claim", "get_pool", "list_pools", "list_records", "pools_by_object",
    "recycle_info", "recycle_rule", "recycle_sweep", "register", "release",
]


def register(runtime) -> None:
    runtime.hooks.register("before_save", before_save, name="pools.entry", order=HOOK_ORDER)
    runtime.hooks.register("after_save", extend_protection, name="pools.protection", order=30)
    if not any(name == "pool_recycle" for name, _ in runtime.sweeps):
        runtime.sweeps.append(("pool_recycle", recycle_sweep))
    from .assignment_rules import directory_issues

    runtime.extensions.setdefault("apply_checks", {})["pools.assignment_directory"] = directory_issues
    runtime.features.add(FEATURE)


HERE = Path(__file__).resolve().parent
FEATURE = Feature("pools", api=api.routes, pages=pages.routes, nav=pages.NAV, templates=HERE / "templates",
                  messages=HERE / "messages", openapi=api.openapi_paths,
                  record_buttons=pages.record_buttons)
