"""Whole-bundle validation: each document against its kind's JSON Schema, then the
references across documents (a layout's fields exist, a lookup's target exists, a
filter's fields exist and its operators fit the field types...)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .bundle import MetaIssue
from .model import SYSTEM_FIELD_NAMES, ObjectDef
from .registry import Registry
from .report_checks import check_report
from .schema import validate_document

PROTECTED = {("object", "user"), ("object", "department"), ("role", "admin")}
_SANDBOX = ImmutableSandboxedEnvironment()

# Other packages (workflow actions from plugins) may add action names here.
EXTRA_ACTIONS: set[str] = set()
BUILTIN_ACTIONS = {"update_field", "create_record", "notify", "webhook", "submit_for_approval", "assign_to_pool",
                   "transfer_to_submitter"}


def validate_change(
    live: Registry,
    documents: list[dict],
    deletes: Iterable[tuple[str, str]],
    sources: dict[tuple[str, str], str],
) -> tuple[Registry | None, list[MetaIssue]]:
    """Validate `documents` (and `deletes`) against the live registry; return the new one."""
    issues: list[MetaIssue] = []
    deletes = list(deletes)
    for doc in documents:
        src = sources.get((str(doc.get("kind")), str(doc.get("name"))), f"{doc.get('kind')}/{doc.get('name')}")
        for problem in validate_document(doc):
            issues.append(MetaIssue(src, problem.path, problem.message))
    for kind, name in deletes:
        if (kind, name) in PROTECTED:
            issues.append(MetaIssue(f"{kind}/{name}", "", "system documents cannot be deleted"))
        elif live.get(kind, name) is None:
            issues.append(MetaIssue(f"{kind}/{name}", "", "no such document to delete"))
    if issues:
        return None, issues
    new = live.with_changes(documents, deletes)
    changed = {(d["kind"], d["name"]) for d in documents}
    issues.extend(check_references(new, changed | set(deletes), sources))
    return (None if issues else new), issues


def check_references(registry: Registry, changed: set, sources: dict) -> list[MetaIssue]:
    """Check every document (a delete can break a document that did not change)."""
    issues: list[MetaIssue] = []
    for (kind, name), doc in sorted(registry.documents.items()):
        src = sources.get((kind, name), f"{kind}/{name}")
        checker = CHECKERS.get(kind)
        if checker is None:
            continue

        def report(path: str, message: str, _src: str = src) -> None:
            issues.append(MetaIssue(_src, path, message))

        checker(registry, doc, report)
    # Keep issues about documents that changed, and any about untouched documents only if a
    # change broke them (they were valid before, so any issue there is caused by this change).
    return issues


Report = Callable[[str, str], None]


def _object(registry: Registry, name: Any, path: str, report: Report) -> ObjectDef | None:
    if not isinstance(name, str) or name not in registry.objects:
        report(path, f"unknown object {name!r}")
        return None
    return registry.objects[name]


def _field(obj: ObjectDef | None, name: Any, path: str, report: Report, system_ok: bool = True):
    if obj is None:
        return None
    fdef = obj.all_fields.get(name) if system_ok else obj.fields.get(name)
    if fdef is None:
        report(path, f"{obj.name} has no field {name!r}")
    return fdef


def _filter(obj: ObjectDef | None, flt: Any, path: str, report: Report, allow_changed: bool = False) -> None:
    if obj is None or flt is None:
        return
    from ..platform.filters import validate_filter

    for problem in validate_filter(flt, obj.all_fields, allow_changed=allow_changed):
        report(path + (problem.path or ""), problem.message)


def _template(text: Any, path: str, report: Report) -> None:
    if isinstance(text, dict):  # a map of locale to template: each checked
        for locale, one in text.items():
            _template(one, f"{path}/{locale}", report)
        return
    if isinstance(text, str) and ("{{" in text or "{%" in text):
        try:
            _SANDBOX.parse(text)
        except TemplateSyntaxError as exc:
            report(path, f"template error: {exc.message}")


def formula_problems(obj: ObjectDef, field_name: str, expression: str) -> list[str]:
    """What a formula names that it cannot use: unknown names, itself, and lookup traversal
    (`project.title`: a formula sees this record's own values only; a lookup holds an id, and
    nothing would recompute the formula when the parent changes)."""
    try:
        tree = _SANDBOX.parse("{{ (" + expression + ") }}")
    except TemplateSyntaxError:
        return []
    known = set(obj.all_fields) | {"record"}
    problems: list[str] = []
    bound = {target.name for target in tree.find_all(nodes.Name) if target.ctx in ("store", "param")}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        owner = node.node
        if isinstance(owner, nodes.Name) and owner.name == "record":
            key = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
            if isinstance(key, str) and key not in obj.all_fields:
                problems.append(f"formula uses record.{key}, but {obj.name} has no field {key!r}")
            continue
        if isinstance(owner, nodes.Name) and owner.name in obj.all_fields \
                and obj.all_fields[owner.name].type in ("lookup", "user"):
            what = f"{owner.name}.{node.attr}" if isinstance(node, nodes.Getattr) else f"{owner.name}[...]"
            problems.append(f"formula reads {what} through a lookup: formulas see only this record's own "
                            "fields (lookup traversal is not supported)")
    for name_node in tree.find_all(nodes.Name):
        name = name_node.name
        if name_node.ctx != "load" or name in bound:
            continue
        if name == field_name:
            problems.append(f"formula {field_name!r} refers to itself")
        elif name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"formula uses {name!r}, which is not a field of {obj.name}{hint}")
    return list(dict.fromkeys(problems))


def check_object(registry: Registry, doc: dict, report: Report) -> None:
    obj = registry.objects[doc["name"]]
    types_seen: set = set()
    for index, rt in enumerate(doc.get("record_types") or []):
        name = rt.get("name") if isinstance(rt, dict) else rt
        if name in types_seen:
            report(f"/record_types/{index}", f"record type {name!r} is listed twice")
        types_seen.add(name)
    seen = set()
    for index, fdoc in enumerate(doc.get("fields") or []):
        name = fdoc.get("name")
        base = f"/fields/{index}"
        if name in SYSTEM_FIELD_NAMES:
            report(f"{base}/name", f"{name!r} is a system field every object has")
        if name in seen:
            report(f"{base}/name", f"field {name!r} is defined twice")
        seen.add(name)
        if "__" in str(name) and not str(name).startswith(doc["name"].split("__")[0]):
            pass  # plugin-namespaced fields on core objects are allowed
        fdef = obj.fields.get(name)
        if fdef is None:
            continue
        if fdef.type in ("lookup", "user"):
            for t_index, target in enumerate(fdef.target):
                tpath = f"{base}/target" + (f"/{t_index}" if isinstance(fdoc.get("target"), list) else "")
                if target not in registry.objects:
                    report(tpath, f"lookup target {target!r} is not an object")
        if fdef.type in ("picklist",) and fdef.default is not None and str(fdef.default) not in fdef.option_values:
            report(f"{base}/default", f"default {fdef.default!r} is not one of the options")
        if fdef.type == "multipicklist" and fdef.options_from not in (None, "role"):
            report(f"{base}/options_from", "options_from may only be 'role'")
        if fdef.type == "formula":
            try:
                _SANDBOX.compile_expression(fdef.expression or "")
            except TemplateSyntaxError as exc:
                report(f"{base}/expression", f"formula does not parse: {exc.message}")
            else:
                for problem in formula_problems(obj, fdef.name, fdef.expression or ""):
                    report(f"{base}/expression", problem)
        transfer = fdef.raw.get("transfer_with_parent")
        if fdef.type == "lookup" and isinstance(transfer, dict):
            _filter(obj, transfer.get("when"), f"{base}/transfer_with_parent/when", report)
        if fdef.type == "rollup":
            child = registry.objects.get(fdef.child_object or "")
            if child is None:
                report(f"{base}/child_object", f"unknown object {fdef.child_object!r}")
                continue
            link = child.fields.get(fdef.child_field or "")
            if link is None or link.type not in ("lookup",) or doc["name"] not in link.target:
                report(f"{base}/child_field", f"{child.name}.{fdef.child_field} is not a lookup to {doc['name']}")
            if fdef.function != "count":
                agg = child.fields.get(fdef.agg_field or "")
                if agg is None or agg.value_type not in ("integer", "decimal", "currency", "percent", "date", "datetime"):
                    report(f"{base}/field", f"{child.name}.{fdef.agg_field} is not a number or date field")
            _filter(child, fdef.agg_filter, f"{base}/filter", report)
    if obj.name_field and obj.name_field not in obj.all_fields:
        report("/name_field", f"no field named {obj.name_field!r}")
    stage = doc.get("stage_path")
    if isinstance(stage, str) and (obj.fields.get(stage) is None or obj.fields[stage].type != "picklist"):
        report("/stage_path", f"{stage!r} is not a picklist field of {obj.name}")
    for index, name in enumerate(obj.track_history):
        _field(obj, name, f"/track_history/{index}", report)
    for index, name in enumerate(doc.get("updates_last_activity") or []):
        fdef = _field(obj, name, f"/updates_last_activity/{index}", report)
        if fdef is not None and fdef.type != "lookup":
            report(f"/updates_last_activity/{index}", f"{name!r} is not a lookup")


def check_layout(registry: Registry, doc: dict, report: Report) -> None:
    obj = _object(registry, doc.get("object"), "/object", report)
    if obj is None:
        return
    for s_index, section in enumerate(doc.get("sections") or []):
        for f_index, name in enumerate(section.get("fields") or []):
            _field(obj, name, f"/sections/{s_index}/fields/{f_index}", report)
    for key in ("required", "read_only", "hidden", "list_columns", "list_filters"):
        for index, name in enumerate(doc.get(key) or []):
            _field(obj, name, f"/{key}/{index}", report)
    for index, related in enumerate(doc.get("related_lists") or []):
        child = _object(registry, related.get("object"), f"/related_lists/{index}/object", report)
        via = _field(child, related.get("via"), f"/related_lists/{index}/via", report)
        if via is not None and obj.name not in via.target:
            report(f"/related_lists/{index}/via", f"{child.name}.{via.name} does not point to {obj.name}")
        for c_index, name in enumerate(related.get("columns") or []):
            _field(child, name, f"/related_lists/{index}/columns/{c_index}", report)
    roles = (doc.get("applies_to") or {}).get("roles") or []
    for index, role in enumerate(roles):
        if role != "*" and role not in registry.roles:
            report(f"/applies_to/roles/{index}", f"unknown role {role!r}")


def check_role(registry: Registry, doc: dict, report: Report) -> None:
    parent = doc.get("parent")
    if parent is not None:
        if parent not in registry.roles:
            report("/parent", f"unknown role {parent!r}")
        else:
            seen, current = {doc["name"]}, parent
            while current:
                if current in seen:
                    report("/parent", f"role hierarchy has a cycle through {current!r}")
                    break
                seen.add(current)
                current = (registry.roles.get(current) or {}).get("parent")
    for name in (doc.get("objects") or {}):
        _object(registry, name, f"/objects/{name}", report)
    for obj_name, settings in (doc.get("fields") or {}).items():
        obj = _object(registry, obj_name, f"/fields/{obj_name}", report)
        for field_name in settings or {}:
            _field(obj, field_name, f"/fields/{obj_name}/{field_name}", report)


def check_dedup(registry: Registry, doc: dict, report: Report) -> None:
    obj = _object(registry, doc.get("object"), "/object", report)
    others = []
    for index, name in enumerate(doc.get("compare_with") or []):
        other = _object(registry, name, f"/compare_with/{index}", report)
        if other is not None:
            others.append(other)
    for g_index, group in enumerate(doc.get("match_any") or []):
        for c_index, cond in enumerate(group.get("all") or []):
            path = f"/match_any/{g_index}/all/{c_index}"
            _field(obj, cond.get("field"), f"{path}/field", report)
            for other in others:
                if other.name == (obj.name if obj else None):
                    continue
                other_field = cond.get("other_field") or cond.get("field")
                if other_field not in other.all_fields:
                    report(f"{path}/other_field", f"{other.name} has no field {other_field!r} to compare with")
    _filter(obj, doc.get("ignore"), "/ignore", report)


def _member_refs(registry: Registry, spec: Any, path: str, report: Report) -> None:
    for index, role in enumerate((spec or {}).get("roles") or []):
        if role not in registry.roles:
            report(f"{path}/roles/{index}", f"unknown role {role!r}")


def check_pool(registry: Registry, doc: dict, report: Report) -> None:
    obj = _object(registry, doc.get("object"), "/object", report)
    _filter(obj, doc.get("entry"), "/entry", report)
    for index, rule in enumerate(doc.get("recycle") or []):
        _filter(obj, rule.get("when"), f"/recycle/{index}/when", report)
    _member_refs(registry, doc.get("members"), "/members", report)
    _member_refs(registry, doc.get("admins"), "/admins", report)
    _member_refs(registry, (doc.get("assignment") or {}).get("users"), "/assignment/users", report)


def check_actions(registry: Registry, obj: ObjectDef | None, actions: Any, path: str, report: Report) -> None:
    for index, action in enumerate(actions or []):
        apath = f"{path}/{index}"
        kind = action.get("action")
        if kind == "update_field":
            _field(obj, action.get("field"), f"{apath}/field", report)
        elif kind == "create_record":
            target = _object(registry, action.get("object"), f"{apath}/object", report)
            for name in (action.get("values") or {}):
                _field(target, name, f"{apath}/values/{name}", report)
        elif kind == "assign_to_pool":
            if registry.get("pool", str(action.get("pool"))) is None:
                report(f"{apath}/pool", f"unknown pool {action.get('pool')!r}")
        elif kind == "submit_for_approval" and action.get("process"):
            if registry.get("approval_process", action["process"]) is None:
                report(f"{apath}/process", f"unknown approval process {action['process']!r}")
        elif kind == "transfer_to_submitter" and not path.endswith("/on_approve"):
            report(f"{apath}/action", "transfer_to_submitter only runs when an approval request is approved "
                                      "(an approval process's on_approve): elsewhere there is no submitter")
        elif kind not in BUILTIN_ACTIONS and kind not in EXTRA_ACTIONS:
            report(f"{apath}/action", f"unknown action {kind!r} (no installed plugin provides it)")
        for key in ("template", "subject"):
            _template(action.get(key), f"{apath}/{key}", report)


def check_workflow(registry: Registry, doc: dict, report: Report) -> None:
    obj = _object(registry, doc.get("object"), "/object", report)
    trigger = doc.get("trigger") or {}
    _filter(obj, doc.get("condition"), "/condition", report, allow_changed=trigger.get("on") in ("update", "create_or_update"))
    if trigger.get("on") == "schedule":
        fdef = _field(obj, trigger.get("field"), "/trigger/field", report)
        if fdef is not None and fdef.value_type not in ("date", "datetime"):
            report("/trigger/field", f"{fdef.name} is not a date or datetime field")
    check_actions(registry, obj, doc.get("actions"), "/actions", report)


def check_approval(registry: Registry, doc: dict, report: Report) -> None:
    obj = _object(registry, doc.get("object"), "/object", report)
    _filter(obj, doc.get("entry"), "/entry", report)
    for index, step in enumerate(doc.get("steps") or []):
        _filter(obj, step.get("when"), f"/steps/{index}/when", report)
        approvers = step.get("approver")
        approvers = approvers if isinstance(approvers, list) else [approvers]
        for a_index, approver in enumerate(approvers):
            apath = f"/steps/{index}/approver" + (f"/{a_index}" if isinstance(step.get("approver"), list) else "")
            if not isinstance(approver, dict):
                continue
            if "role" in approver and approver["role"] not in registry.roles:
                report(f"{apath}/role", f"unknown role {approver['role']!r}")
            for key in ("manager_of", "manager_chain"):
                if key in approver:
                    fdef = _field(obj, approver[key], f"{apath}/{key}", report)
                    if fdef is not None and fdef.type != "user":
                        report(f"{apath}/{key}", f"{fdef.name} is not a user field")
    for key in ("on_submit", "on_approve", "on_reject", "on_recall"):
        check_actions(registry, obj, doc.get(key), f"/{key}", report)
    _check_guards(registry, obj, doc.get("guards"), report)


def _check_guards(registry: Registry, obj: ObjectDef | None, guards: Any, report: Report) -> None:
    """An approval process's `guards`: every field, object and value must exist."""
    if not isinstance(guards, dict) or obj is None:
        return
    _filter(obj, guards.get("when"), "/guards/when", report)
    for index, rule in enumerate(guards.get("transitions") or []):
        path = f"/guards/transitions/{index}"
        fdef = _field(obj, rule.get("field"), f"{path}/field", report, system_ok=False)
        if fdef is None:
            continue
        if fdef.type != "picklist":
            report(f"{path}/field", f"{fdef.name} is not a picklist field")
            continue
        for key in ("to", "from"):
            for v_index, value in enumerate(rule.get(key) or []):
                if str(value) not in fdef.option_values:
                    report(f"{path}/{key}/{v_index}", f"{value!r} is not a value of {obj.name}.{fdef.name}")
    for index, name in enumerate(guards.get("material_fields") or []):
        _field(obj, name, f"/guards/material_fields/{index}", report, system_ok=False)
    for index, spec in enumerate(guards.get("children") or []):
        path = f"/guards/children/{index}"
        child = _object(registry, spec.get("object"), f"{path}/object", report)
        _lookup_to(child, spec.get("field"), obj, f"{path}/field", report)
        for f_index, name in enumerate(spec.get("material_fields") or []):
            _field(child, name, f"{path}/material_fields/{f_index}", report, system_ok=False)
    for index, spec in enumerate(guards.get("referenced_by") or []):
        path = f"/guards/referenced_by/{index}"
        source = _object(registry, spec.get("object"), f"{path}/object", report)
        _lookup_to(source, spec.get("field"), obj, f"{path}/field", report)
    for name, value in (guards.get("reset") or {}).items():
        fdef = _field(obj, name, f"/guards/reset/{name}", report, system_ok=False)
        if fdef is not None and fdef.type == "picklist" and value is not None and str(value) not in fdef.option_values:
            report(f"/guards/reset/{name}", f"{value!r} is not a value of {obj.name}.{name}")
        elif fdef is not None and fdef.type in ("formula", "rollup", "autonumber"):
            report(f"/guards/reset/{name}", f"{name} is computed and cannot be reset")
        if name in (guards.get("material_fields") or []):
            report(f"/guards/reset/{name}", f"{name} is a material field; resetting it would loop")


def _lookup_to(source: ObjectDef | None, name: Any, target: ObjectDef, path: str, report: Report) -> None:
    fdef = _field(source, name, path, report, system_ok=False)
    if fdef is not None and (fdef.type != "lookup" or target.name not in fdef.target):
        report(path, f"{source.name}.{fdef.name} is not a lookup to {target.name}")


def check_conversion(registry: Registry, doc: dict, report: Report) -> None:
    source = _object(registry, doc.get("object"), "/object", report)
    for index, target in enumerate(doc.get("targets") or []):
        obj = _object(registry, target.get("object"), f"/targets/{index}/object", report)
        for target_field, source_field in (target.get("mapping") or {}).items():
            _field(obj, target_field, f"/targets/{index}/mapping/{target_field}", report)
            if isinstance(source_field, str):
                _field(source, source_field, f"/targets/{index}/mapping/{target_field}", report)
        if target.get("link_field"):
            _field(source, target["link_field"], f"/targets/{index}/link_field", report)
    status = doc.get("converted_status") or {}
    if status.get("field"):
        _field(source, status["field"], "/converted_status/field", report)


def check_lead_scoring(registry: Registry, doc: dict, report: Report) -> None:
    obj = _object(registry, doc.get("object"), "/object", report)
    if obj is None:
        return
    for key, wanted in (("score_field", ("integer",)), ("key_field", ("boolean",))):
        if doc.get(key):
            fdef = _field(obj, doc[key], f"/{key}", report)
            if fdef is not None and fdef.value_type not in wanted:
                report(f"/{key}", f"{fdef.name} is not a{'n integer' if key == 'score_field' else ' boolean'} field")
    for index, criterion in enumerate(doc.get("criteria") or []):
        fdef = _field(obj, criterion.get("field"), f"/criteria/{index}/field", report)
        if fdef is None or not fdef.options:
            continue
        known = {str(o.get("value")) for o in fdef.options}
        for value in criterion.get("points") or {}:
            if value not in known:
                report(f"/criteria/{index}/points/{value}", f"{value!r} is not an option of {fdef.name}")
    activity = doc.get("activity") or {}
    if activity.get("object"):
        child = _object(registry, activity["object"], "/activity/object", report)
        if child is not None:
            via = _field(child, activity.get("via"), "/activity/via", report)
            if via is not None and (not via.is_reference or obj.name not in (via.target or [])):
                report("/activity/via", f"{via.name} is not a lookup to {obj.name}")


def check_assignment_rule(registry: Registry, doc: dict, report: Report) -> None:
    """Objects, filters, roles and pools an assignment rule names (users and departments are
    data: platform.pools.assignment_rules checks them against the directory at apply)."""
    obj = _object(registry, doc.get("object"), "/object", report)
    if obj is None:
        return
    if doc.get("active", True):
        others = [d["name"] for d in registry.of_kind("assignment_rule")
                  if d["name"] != doc["name"] and d.get("object") == obj.name and d.get("active", True)]
        if others:
            report("/active", f"{obj.name} already has an active assignment rule ({', '.join(others)}); "
                              "an object has one: deactivate the other or add entries to it")
    for index, entry in enumerate(doc.get("entries") or []):
        path = f"/entries/{index}"
        _filter(obj, entry.get("when"), f"{path}/when", report)
        target = entry.get("assign_to") or {}
        if "role" in target and target["role"] not in registry.roles:
            report(f"{path}/assign_to/role", f"unknown role {target['role']!r}")
        if "pool" in target:
            pool = registry.get("pool", str(target["pool"]))
            if pool is None:
                report(f"{path}/assign_to/pool", f"unknown pool {target['pool']!r}")
            elif pool.get("object") != obj.name:
                report(f"{path}/assign_to/pool", f"pool {target['pool']!r} holds {pool.get('object')} records, "
                                                 f"not {obj.name}")


def check_app(registry: Registry, doc: dict, report: Report) -> None:
    for index, name in enumerate(doc.get("objects") or []):
        obj = _object(registry, name, f"/objects/{index}", report)
        if obj is not None and obj.system_object:
            report(f"/objects/{index}", f"{name} is a system object; it has its own admin pages")
    for index, role in enumerate(doc.get("default_for_roles") or []):
        if role not in registry.roles:
            report(f"/default_for_roles/{index}", f"unknown role {role!r}")


CHECKERS: dict[str, Callable[[Registry, dict, Report], None]] = {
    "object": check_object,
    "layout": check_layout,
    "role": check_role,
    "dedup_rule": check_dedup,
    "pool": check_pool,
    "workflow_rule": check_workflow,
    "approval_process": check_approval,
    "conversion": check_conversion,
    "report": check_report,
    "lead_scoring": check_lead_scoring,
    "assignment_rule": check_assignment_rule,
    "app": check_app,
}
# Each adds its CHECKERS entry ("view", "web_form", "dashboard"); their own modules, this one is long.
from . import validate_dashboards, validate_views, validate_web_forms  # noqa: F401
