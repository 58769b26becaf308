"""The plan: the active duplicate rules and the match-key columns, derived from one registry.

Every field a rule compares gets a key column `dk_<method>_<field>` (indexed, but for the
fuzzy one) on each object the rule reads: the rule's own object and its `compare_with`
objects, where `other_field` names the field. A fuzzy condition adds the indexed candidate
block column `dk_fb_<field>`.
`key_columns` is the storage.COLUMN_PROVIDERS entry that puts these columns in the tables.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from ...metadata.registry import Registry
from .. import normalize
from ..storage import ExtraColumn

KEY_TYPE_LENGTH = 255
ABBR = {"exact": "ex", "normalized": "nm", "company_name": "cn", "email": "em", "phone": "ph", "fuzzy": "fz"}
BLOCK_ABBR = "fb"


@lru_cache(maxsize=4096)
def column_for(method: str, field_name: str, block: bool = False) -> str:
    abbr = BLOCK_ABBR if block else ABBR[method]
    name = f"dk_{abbr}_{field_name}"
    if len(name) > 63:
        digest = hashlib.sha1(field_name.encode()).hexdigest()[:8]
        name = f"dk_{abbr}_{field_name[:48]}_{digest}"
    return name


@dataclass(frozen=True)
class KeySpec:
    column: str
    method: str  # a match method, or "block" (the fuzzy candidate block)
    field: str
    region: str | None = None

    @property
    def indexed(self) -> bool:
        return self.method != "fuzzy"


@dataclass(frozen=True)
class Cond:
    field: str
    method: str
    threshold: float
    region: str | None
    other_field: str | None

    def field_on(self, target: str, rule_object: str) -> str:
        return self.field if target == rule_object else (self.other_field or self.field)

    @property
    def fuzzy(self) -> bool:
        return self.method == "fuzzy"


@dataclass(frozen=True)
class Rule:
    name: str
    object: str
    targets: tuple[str, ...]
    groups: tuple[tuple[Cond, ...], ...]
    ignore: Any
    on_create: str
    on_update: str
    on_import: str
    active: bool

    def fields(self) -> set[str]:
        return {cond.field for group in self.groups for cond in group}

    def mode(self, op: str, source: str) -> str:
        if source == "import":
            return self.on_import
        return self.on_update if op == "update" else self.on_create


@dataclass
class Plan:
    rules: dict[str, list[Rule]] = field(default_factory=dict)  # object -> active rules on it
    specs: dict[str, dict[str, KeySpec]] = field(default_factory=dict)  # object -> column -> spec


def _rule_from_doc(doc: dict) -> Rule:
    groups = []
    for group in doc.get("match_any") or []:
        conds = tuple(
            Cond(
                field=c["field"],
                method=c["method"],
                threshold=float(c.get("threshold", normalize.DEFAULT_FUZZY_THRESHOLD)),
                region=c.get("region"),
                other_field=c.get("other_field"),
            )
            for c in group.get("all") or []
        )
        if conds:
            groups.append(conds)
    on_create = doc.get("on_create") or "block"
    return Rule(
        name=doc["name"],
        object=doc["object"],
        targets=tuple(doc.get("compare_with") or [doc["object"]]),
        groups=tuple(groups),
        ignore=doc.get("ignore"),
        on_create=on_create,
        on_update=doc.get("on_update") or on_create,
        on_import=doc.get("on_import") or "report",
        active=doc.get("active", True) is not False,
    )


def build_plan(registry: Registry) -> Plan:
    plan = Plan()
    for doc in registry.of_kind("dedup_rule"):
        rule = _rule_from_doc(doc)
        if rule.object not in registry.objects:
            continue
        if rule.active:
            plan.rules.setdefault(rule.object, []).append(rule)
        for target in {rule.object, *rule.targets}:
            if target not in registry.objects:
                continue
            fields = registry.objects[target].all_fields
            specs = plan.specs.setdefault(target, {})
            for group in rule.groups:
                for cond in group:
                    name = cond.field_on(target, rule.object)
                    if name not in fields:
                        continue
                    wanted = [KeySpec(column_for(cond.method, name), cond.method, name, cond.region)]
                    if cond.fuzzy:
                        wanted.append(KeySpec(column_for("fuzzy", name, block=True), "block", name))
                    for spec in wanted:
                        specs.setdefault(spec.column, spec)
    for name in [n for n, s in plan.specs.items() if not s]:
        del plan.specs[name]
    return plan


_PLANS: dict[int, tuple[Registry, Plan]] = {}


def plan_for(registry: Registry) -> Plan:
    """The plan for a registry (cached; registries are immutable)."""
    cached = _PLANS.get(id(registry))
    if cached is not None and cached[0] is registry:
        return cached[1]
    plan = build_plan(registry)
    if len(_PLANS) > 16:
        _PLANS.clear()
    _PLANS[id(registry)] = (registry, plan)
    return plan


def key_columns(registry: Registry, obj) -> list[ExtraColumn]:
    """storage.COLUMN_PROVIDERS entry: the match-key columns an object's table needs."""
    specs = plan_for(registry).specs.get(obj.name, {})
    return [ExtraColumn(s.column, sa.String(KEY_TYPE_LENGTH), s.indexed) for s in specs.values()]
