"""Duplicate rules (`dedup_rule` metadata) on the one write path.

Match keys live in indexed columns `dk_<method>_<field>` that this module adds to every
object a rule's fields live on (storage.COLUMN_PROVIDERS), so a check is an index lookup.
A before_save hook keeps the keys current and applies the active rules:

- a rule is OR of AND-groups; each group compares the incoming record with the rule's
  object and its `compare_with` objects (`other_field` names the field there);
- `ignore` drops existing records (and an incoming record that matches it is not checked);
- the entry path picks the action: `on_create` (default block), `on_update` (default
  on_create; only when a matched field changed), `on_import` (default report);
- block raises DuplicateBlocked (409, `duplicates: [{object, id, rule}]`), warn adds
  `ctx.warnings`, report (import) makes the row a "duplicate" and skips it.

The check is set-based: DuplicateFinder runs ONE query per rule group for a whole batch
(UNION ALL over the compared objects, `= ANY(array)` on PostgreSQL, `IN (...)` on
SQLite) and matches the rows in memory; fuzzy groups fetch candidate blocks
(`dk_fb_<field>`: the first characters of the company-name key) and compare similarity
inside blocks only.

When rules change, `after_apply` (to be called by apply.py) re-keys the objects whose key
columns changed, and until then the first save under a new metadata version re-keys rows
whose key is NULL while their source field is not ("" marks a value with nothing to match).
"""

from __future__ import annotations

from ..storage import COLUMN_PROVIDERS
from .checks import before_save, check
from .keys import after_apply, record_keys, rekey
from .matching import DuplicateFinder
from .merging import merge
from .rules import key_columns, plan_for

# The names other packages use (the imports feature, the lead-to-cash plugin, bench scripts, tests).
__all__ = ["DuplicateFinder", "after_apply", "check", "merge", "plan_for", "record_keys", "register", "rekey"]

HOOK_ORDER = 700


if key_columns not in COLUMN_PROVIDERS:
    COLUMN_PROVIDERS.append(key_columns)


def register(runtime) -> None:
    if key_columns not in COLUMN_PROVIDERS:
        COLUMN_PROVIDERS.append(key_columns)
    runtime.hooks.register("before_save", before_save, name="dedup.rules", order=HOOK_ORDER)
    runtime.extensions.setdefault("after_apply", {})["dedup"] = after_apply
    runtime.features.add(FEATURE)


from pathlib import Path

from ..features import Feature
from . import api, pages

HERE = Path(__file__).resolve().parent
FEATURE = Feature("dedup", api=api.routes, pages=pages.routes, nav=pages.NAV, templates=HERE / "templates",
                  messages=HERE / "messages", openapi=api.openapi_paths, record_buttons=pages.record_buttons)
