"""Workflow rules on the one write path.

- before_save: the rules whose trigger fits the save and whose condition holds fire, in
  (`order`, name) order. Their `update_field` / `assign_to_pool` actions change the record
  right there, so the values are written with it. Those changes can make other rules
  fire: the rules whose condition mentions a changed field are evaluated again (with
  `changed` meaning "changed by the previous pass"), up to MAX_DEPTH levels; beyond
  that the engine stops with a logged error and a warning, never a hang.
- after_save (same transaction, the row written): the fired rules' other actions run once
  each (create_record, notify, webhook, submit_for_approval, plugin actions). Saves they
  cause count one level deeper, against the same limit.
- schedule triggers are run by the "workflow_schedule" sweep (schedule.py).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from ..platform import filters, notifications, outbox
from ..platform.security import Principal
from . import schedule, webhooks
from .actions import IN_SAVE_KINDS, ActionContext, field_changes, run_actions

log = logging.getLogger("metacrm.workflow")

MAX_DEPTH = 5
TRIGGER_OPS = {
    "create": ("create",),
    "update": ("update",),
    "create_or_update": ("create", "update"),
    "delete": ("delete",),
}
_DYNAMIC_MARKERS = ('"$', "older_than_days", "within_last_days", '"changed"')


@dataclass
class Rule:
    name: str
    object: str
    order: int
    on: str
    condition: dict | None
    actions: list
    doc: dict
    fields: frozenset = frozenset()
    immediate: list = field(default_factory=list)
    deferred: bool = False
    _static: Any = None

    @classmethod
    def from_doc(cls, doc: dict, obj: Any) -> Rule:
        condition = doc.get("condition") or None
        rule = cls(
            name=doc["name"], object=doc["object"], order=int(doc.get("order", 0)), on=doc["trigger"]["on"],
            condition=condition, actions=list(doc.get("actions") or []), doc=doc,
            fields=frozenset(filters.referenced_fields(condition)) if condition else frozenset(),
        )
        rule.immediate = [a for a in rule.actions if a.get("action") in IN_SAVE_KINDS]
        rule.deferred = any(a.get("action") not in IN_SAVE_KINDS for a in rule.actions)
        if condition and rule.on != "schedule":
            text = json.dumps(condition)
            if not any(marker in text for marker in _DYNAMIC_MARKERS):
                rule._static = filters.compile_predicate(condition, obj.all_fields, filters.FilterContext.current())
        return rule

    def matches(self, obj: Any, record: dict, old: dict | None, principal: Principal) -> bool:
        if not self.condition:
            return True
        if self._static is not None:
            return self._static(record)
        ctx = filters.FilterContext.current(principal.user_id, principal.department, old=old or {},
                                           allow_changed=True)
        return filters.compile_predicate(self.condition, obj.all_fields, ctx)(record)


@dataclass
class RuleIndex:
    by_trigger: dict = field(default_factory=dict)  # (object, op) -> [Rule]
    scheduled: list = field(default_factory=list)

    def for_op(self, object_name: str, op: str) -> list[Rule]:
        return self.by_trigger.get((object_name, op), [])


def rule_index(compiled: Any) -> RuleIndex:
    """The active rules of one metadata version, compiled once."""
    index = compiled.cache.get("workflow.rules")
    if index is not None:
        return index
    index = RuleIndex()
    registry = compiled.registry
    docs = sorted(registry.of_kind("workflow_rule"), key=lambda d: (int(d.get("order", 0)), d["name"]))
    for doc in docs:
        if doc.get("active") is False or not registry.has_object(doc.get("object", "")):
            continue
        try:
            rule = Rule.from_doc(doc, registry.object(doc["object"]))
        except Exception:
            log.exception("workflow rule %s cannot be compiled; it is skipped", doc.get("name"))
            continue
        if rule.on == "schedule":
            index.scheduled.append(rule)
            continue
        for op in TRIGGER_OPS.get(rule.on, ()):
            index.by_trigger.setdefault((rule.object, op), []).append(rule)
    compiled.cache["workflow.rules"] = index
    return index


def _depth(tx: Any) -> int:
    return getattr(tx, "_workflow_depth", 0)


def _limit_reached(ctx: Any, where: str) -> None:
    message = (f"workflow rules on {ctx.obj.name}/{ctx.record.get('id')} still trigger each other after "
               f"{MAX_DEPTH} levels ({where}); stopped")
    log.error(message)
    ctx.warnings.append({"code": "workflow_depth_limit", "message": message})


def before_save(ctx: Any) -> None:
    if ctx.op not in ("create", "update", "delete"):
        return
    rules = rule_index(ctx.service.compiled).for_op(ctx.obj.name, ctx.op)
    if not rules:
        return
    depth = _depth(ctx.tx)
    if depth >= MAX_DEPTH:
        _limit_reached(ctx, "nested saves")
        return
    fired: dict[str, Rule] = {}
    compare_old, only_fields, passes = ctx.old, None, 0
    actx = None
    while True:
        before = dict(ctx.record)
        for rule in rules:
            if only_fields is not None and not (rule.fields & only_fields):
                continue
            try:
                if not rule.matches(ctx.obj, ctx.record, compare_old, ctx.principal):
                    continue
            except filters.FilterError as exc:
                log.error("workflow rule %s: bad condition: %s", rule.name, exc)
                continue
            fired.setdefault(rule.name, rule)
            if rule.immediate and ctx.op != "delete":
                actx = actx or ActionContext(ctx.service.runtime, ctx.tx, ctx.obj, ctx.record, ctx.principal,
                                             event=ctx.op, key_base="", old=ctx.old, in_save=True,
                                             base=ctx.service)
                actx.rule = rule.name
                ctx.record.update(field_changes(actx, rule.immediate))
        changed = {name for name, value in ctx.record.items() if before.get(name) != value}
        if not changed:
            break
        passes += 1
        if depth + passes >= MAX_DEPTH:
            _limit_reached(ctx, "field updates")
            break
        compare_old, only_fields = before, changed
    if actx is not None:
        ctx.warnings.extend(actx.warnings)
    if passes:
        from ..platform.computed import formula_hook

        formula_hook(ctx)  # formulas see the values the rules wrote
    ctx._workflow_fired = [rule for rule in fired.values() if rule.deferred]


def after_save(ctx: Any) -> None:
    fired = getattr(ctx, "_workflow_fired", None)
    if not fired:
        return
    ctx._workflow_fired = None
    tx = ctx.tx
    depth = _depth(tx)
    tx._workflow_depth = depth + 1
    try:
        for rule in fired:
            actx = ActionContext(
                ctx.service.runtime, tx, ctx.obj, ctx.record, ctx.principal, event=ctx.op,
                key_base=f"wf:{rule.name}:{ctx.obj.name}:{ctx.record['id']}:v{ctx.record.get('version')}",
                rule=rule.name, old=ctx.old, in_save=True, base=ctx.service,
            )
            run_actions(actx, rule.actions)
            ctx.warnings.extend(actx.warnings)
    finally:
        tx._workflow_depth = depth


def register(runtime: Any) -> None:
    notifications.ensure_tables(runtime.engine, [webhooks.delivery, schedule.fired])
    outbox.register_handler("webhook", webhooks.handle_webhooks, batch=True)
    runtime.hooks.register("before_save", before_save, name="workflow.rules", order=850)
    runtime.hooks.register("after_save", after_save, name="workflow.actions", order=500)
    if not any(name == "workflow_schedule" for name, _ in runtime.sweeps):
        runtime.sweeps.append(("workflow_schedule", schedule.sweep))
