"""Admin → Approval processes (/admin/studio/approvals): a form per `approval_process` document.

The object first (its fields feed every picker), then the entry condition, the ordered steps
(add / remove / move up and down; each with its approver — the manager of a user field, a chain
of managers, roles, users or a department head —, any / all, a condition, what a rejection does
and a timeout), the record lock, recall and approver edits, and what the process guards: status
transitions (a picklist field, from / to values, approval or submission required), material
fields, child records whose change counts, and records made from it. Everything the form does
not show (on_submit / on_approve … actions, `reset`, a child's material fields, `purpose`) is kept
as the document had it. Saving shows the dry-run diff first (common.save).
"""

from __future__ import annotations

import copy
from typing import Any

from flask import request, url_for

from ...metadata.model import NAME_RE
from ...platform.errors import NotFound
from ...platform.web.admin import slug
from ...platform.web.core import current_service, redirect_to
from ...platform.web.i18n import current_locale, t
from .actions import (
    _blank_action,
    action_context,
    action_issue_key,
    action_values,
    build_actions,
    read_actions,
)
from .approval_steps import (
    APPROVER_KINDS,
    ESCALATE_KINDS,
    MODES,
    ON_REJECT,
    TIMEOUT_ACTIONS,
    TIMEOUT_UNITS,
    _approver,
    _blank_step,
    _step_values,
    _timeout,
)
from .common import (
    MAX_ITEMS,
    choices_for,
    condition_state,
    doc_label,
    label_of,
    label_values,
    list_command,
    object_choices,
    page,
    read_condition,
    require_admin,
    role_choices,
    save,
    user_choices,
    versions_value,
)
from .pages import routes

KIND = "approval_process"
REQUIRES = ("approved", "submitted")
EVENTS = ("on_submit", "on_approve", "on_reject", "on_recall")




def _blank_transition() -> dict:
    return {"field": "", "from": [], "to": [], "requires": "approved"}


# --- the document as form values ------------------------------------------------------------------




def _values_of(doc: dict) -> dict:
    guards = doc.get("guards") or {}
    en, zh = label_values(doc.get("label"))
    return {
        "name": doc["name"], "object": doc.get("object", ""), "label_en": en, "label_zh": zh,
        "description": doc.get("description", ""), "order": str(doc.get("order", 0)),
        "lock_record": doc.get("lock_record", True), "allow_recall": doc.get("allow_recall", True),
        "approver_can_edit": doc.get("approver_can_edit", False),
        "entry": condition_state(doc.get("entry")),
        "steps": [_step_values(s) for s in doc.get("steps") or []],
        "guard_when": condition_state(guards.get("when")),
        "transitions": [{"field": tr.get("field", ""), "from": list(tr.get("from") or []), "to": list(tr.get("to") or []),
                         "requires": tr.get("requires", "approved")} for tr in guards.get("transitions") or []],
        "material": list(guards.get("material_fields") or []),
        "children": [f"{c.get('object')}.{c.get('field')}" for c in guards.get("children") or []],
        "referenced_by": [f"{c.get('object')}.{c.get('field')}" for c in guards.get("referenced_by") or []],
        **{event: action_values(doc.get(event)) for event in EVENTS},
    }


def _new_values(object_name: str) -> dict:
    step = _blank_step()
    return {"name": "", "object": object_name, "label_en": "", "label_zh": "", "description": "", "order": "0",
            "lock_record": True, "allow_recall": True, "approver_can_edit": False, "entry": condition_state(None),
            "steps": [step], "guard_when": condition_state(None), "transitions": [], "material": [], "children": [],
            "referenced_by": [], **{event: [] for event in EVENTS}}


# --- the posted form -----------------------------------------------------------------------------------


def _read_form(obj, problems: dict) -> dict:
    form = request.form
    values = {k: (form.get(k) or "").strip() for k in ("name", "object", "label_en", "label_zh", "description", "order")}
    for flag in ("lock_record", "allow_recall", "approver_can_edit"):
        values[flag] = bool(form.get(flag))
    flt: dict[str, Any] = {}
    flt["entry"], values["entry"] = read_condition("entry", obj, problems, "entry")
    flt["guard_when"], values["guard_when"] = read_condition("gw", obj, problems, "guard_when")
    steps = []
    for i in range(MAX_ITEMS):
        p = f"s{i}."
        if f"{p}approver" not in form:
            continue
        step = {k: (form.get(p + k) or "").strip() for k in (
            "name", "label_en", "label_zh", "approver", "field", "levels", "department", "mode", "on_reject",
            "t_action", "t_amount", "t_unit", "esc_kind", "esc_field", "esc_role", "custom")}
        step["roles"] = form.getlist(p + "roles")
        step["users"] = form.getlist(p + "users")
        flt[f"s{len(steps)}"], step["when"] = read_condition(f"s{i}w", obj, problems, f"s{len(steps)}.when")
        steps.append(step)
    values["steps"] = steps
    values["_flt"] = flt
    transitions = []
    for i in range(MAX_ITEMS):
        p = f"g{i}."
        if f"{p}field" not in form:
            continue
        field = (form.get(p + "field") or "").strip()
        transitions.append({"field": field, "requires": (form.get(p + "requires") or "approved").strip(),
                            "from": form.getlist(f"{p}from.{field}"), "to": form.getlist(f"{p}to.{field}")})
    values["transitions"] = transitions
    for key in ("material", "children", "referenced_by"):
        values[key] = form.getlist(key)
    for event in EVENTS:
        values[event] = read_actions(event)
    return values


def _set(target: dict, key: str, value: Any, default: Any, old: dict) -> None:
    """Write `value`, leaving a default unwritten unless the document had the key."""
    if value == default and key not in old:
        target.pop(key, None)
    else:
        target[key] = value






def _build(values: dict, existing: dict | None, obj, errors: dict) -> dict | None:
    registry = current_service().registry
    name = existing["name"] if existing else (values["name"] or slug(values["label_en"]))
    if not existing:
        if not NAME_RE.match(name or ""):
            errors["name"] = t("admin.bad_name")
        elif registry.get(KIND, name) is not None:
            errors["name"] = t("studio.name_taken")
    label = label_of(values["label_en"], values["label_zh"])
    if label is None:
        errors["label_en"] = t("form.required_missing")
    try:
        order = int(values["order"] or "0")
    except ValueError:
        errors["order"] = t("studio.bad_number")
        order = 0
    conditions = values.get("_flt") or {}
    old = existing or {}
    doc = copy.deepcopy(old) if existing else {"kind": KIND, "name": name, "object": obj.name}
    doc["label"] = label
    if values["description"]:
        doc["description"] = values["description"]
    else:
        doc.pop("description", None)
    _set(doc, "order", order, 0, old)
    if conditions.get("entry") is not None:
        doc["entry"] = conditions["entry"]
    else:
        doc.pop("entry", None)
    _set(doc, "lock_record", values["lock_record"], True, old)
    _set(doc, "allow_recall", values["allow_recall"], True, old)
    _set(doc, "approver_can_edit", values["approver_can_edit"], False, old)
    old_steps = {s.get("name"): s for s in old.get("steps") or []}
    steps, used = [], set()
    if not values["steps"]:
        errors["steps"] = t("studio.steps_required")
    for i, sv in enumerate(values["steps"]):
        step_name = sv["name"] or slug(sv["label_en"]) or f"step_{i + 1}"
        if not NAME_RE.match(step_name):
            errors[f"s{i}.name"] = t("admin.bad_name")
        elif step_name in used:
            errors[f"s{i}.name"] = t("studio.step_name_taken")
        used.add(step_name)
        prior = old_steps.get(step_name) or {}
        step: dict[str, Any] = {"name": step_name}
        step_label = label_of(sv["label_en"], sv["label_zh"])
        if step_label is not None:
            step["label"] = step_label
        if conditions.get(f"s{i}") is not None:
            step["when"] = conditions[f"s{i}"]
        step["approver"] = _approver(sv, i, obj, registry, errors)
        if sv["mode"] not in MODES:
            errors[f"s{i}.mode"] = t("studio.bad_choice")
        _set(step, "mode", sv["mode"], "any", prior)
        if sv["on_reject"] not in ON_REJECT:
            errors[f"s{i}.on_reject"] = t("studio.bad_choice")
        _set(step, "on_reject", sv["on_reject"], "end", prior)
        timeout = _timeout(sv, i, obj, registry, errors)
        if timeout:
            step["timeout"] = timeout
        steps.append(step)
    doc["steps"] = steps
    guards = dict(old.get("guards") or {})
    for key in ("when", "transitions", "material_fields", "children", "referenced_by"):
        guards.pop(key, None)
    if conditions.get("guard_when") is not None:
        guards["when"] = conditions["guard_when"]
    transitions = []
    picklists = {n for n, f in obj.fields.items() if f.type == "picklist"}
    for i, tv in enumerate(values["transitions"]):
        if not tv["field"]:
            continue
        if tv["field"] not in picklists:
            errors[f"g{i}.field"] = t("studio.pick_picklist")
            continue
        if not tv["to"]:
            errors[f"g{i}.to"] = t("studio.pick_to")
            continue
        rule: dict[str, Any] = {"field": tv["field"], "to": tv["to"]}
        if tv["from"]:
            rule["from"] = tv["from"]
        if tv["requires"] not in REQUIRES:
            errors[f"g{i}.field"] = t("studio.bad_choice")
        elif tv["requires"] != "approved":
            rule["requires"] = tv["requires"]
        transitions.append(rule)
    if transitions:
        guards["transitions"] = transitions
    if values["material"]:
        guards["material_fields"] = values["material"]
    old_children = {f"{c.get('object')}.{c.get('field')}": c for c in (old.get("guards") or {}).get("children") or []}
    for key in ("children", "referenced_by"):
        picked = []
        for ref in values[key]:
            child, _, field = ref.partition(".")
            picked.append(old_children.get(ref, {"object": child, "field": field}) if key == "children"
                          else {"object": child, "field": field})
        if picked:
            guards[key] = picked
    if guards:
        doc["guards"] = guards
    else:
        doc.pop("guards", None)
    for event in EVENTS:
        actions = build_actions(event, values[event], obj, errors)
        if actions:
            doc[event] = actions
        else:
            doc.pop(event, None)
    return None if errors else doc


def _issue_key(parts: list[str]) -> str | None:
    """A validation path (/steps/0/approver/role) -> the form key its message goes beside."""
    if not parts:
        return None
    head = parts[0]
    if head in ("name", "object", "order"):
        return head
    if head == "label":
        return "label_en"
    if head == "entry":
        return "entry"
    if head == "steps":
        if len(parts) == 1:
            return "steps"
        sub = parts[2] if len(parts) > 2 else "approver"
        return f"s{parts[1]}." + {"when": "when", "timeout": "timeout", "name": "name", "mode": "mode",
                                  "on_reject": "on_reject"}.get(sub, "approver")
    if head in EVENTS and len(parts) > 1:
        return action_issue_key(head, parts)
    if head == "guards" and len(parts) > 1:
        if parts[1] == "when":
            return "guard_when"
        if parts[1] == "transitions" and len(parts) > 2:
            return f"g{parts[2]}." + ("to" if len(parts) > 3 and parts[3] in ("to", "from") else "field")
        return {"material_fields": "material", "children": "children", "referenced_by": "referenced_by"}.get(parts[1])
    return None


# --- the context --------------------------------------------------------------------------------------


def _lookups_to(registry, obj) -> list[tuple[str, str]]:
    """Every (object.field) lookup to `obj` in other objects, labelled "Quote line › Quote"."""
    locale = current_locale()
    out = []
    for other in registry.objects.values():
        for fdef in other.fields.values():
            if fdef.type == "lookup" and obj.name in (fdef.target or []):
                out.append((f"{other.name}.{fdef.name}",
                            f"{other.display_label(locale)} › {fdef.display_label(locale)}"))
    return sorted(out, key=lambda p: p[1].casefold())


def _context(values: dict, existing: dict | None, errors: dict, **extra: Any) -> dict:
    service = current_service()
    registry = service.registry
    locale = current_locale()
    ctx: dict[str, Any] = dict(values=values, existing=existing, errors=errors, objects=object_choices(),
                               issues=extra.pop("issues", []), title=t("studio.approval_title"),
                               heading=doc_label(existing, existing["name"]) if existing else t("studio.new_approval"),
                               versions=extra.pop("versions", None) or versions_value(KIND, (existing or {}).get("name")),
                               **extra)
    obj_name = values.get("object")
    if obj_name and registry.has_object(obj_name):
        obj = registry.object(obj_name)
        ctx["obj"] = obj
        ctx["obj_label"] = obj.display_label(locale)
        ctx["choices"] = choices_for(obj)
        ctx["user_fields"] = sorted(((n, f.display_label(locale)) for n, f in obj.all_fields.items() if f.type == "user"),
                                    key=lambda p: p[1].casefold())
        ctx["all_fields"] = sorted(((n, f.display_label(locale)) for n, f in obj.fields.items()
                                    if f.type not in ("formula", "rollup", "autonumber", "password")),
                                   key=lambda p: p[1].casefold())
        ctx["picklists"] = [{"name": n, "label": f.display_label(locale),
                             "options": [(str(o["value"]), _option_label(f, o["value"])) for o in f.options]}
                            for n, f in sorted(obj.fields.items(), key=lambda kv: kv[1].display_label(locale).casefold())
                            if f.type == "picklist"]
        ctx["lookups_to"] = _lookups_to(registry, obj)
        ctx["roles"] = role_choices()
        ctx["users"] = user_choices()
        ctx["approver_kinds"] = [(k, t(f"studio.approver.{k}")) for k in APPROVER_KINDS] + (
            [("custom", t("studio.approver.custom"))] if any(s["approver"] == "custom" for s in values["steps"]) else [])
        ctx["modes"] = [(m, t(f"studio.mode.{m}")) for m in MODES]
        ctx["on_rejects"] = [(m, t(f"studio.on_reject.{m}")) for m in ON_REJECT]
        ctx["timeout_actions"] = [(a, t(f"studio.timeout.{a or 'none'}")) for a in TIMEOUT_ACTIONS]
        ctx["timeout_units"] = [(u, t(f"studio.unit.{u}")) for u in TIMEOUT_UNITS]
        ctx["escalate_kinds"] = [(k, t(f"studio.escalate.{k}")) for k in ESCALATE_KINDS]
        ctx["requires"] = [(r, t(f"studio.requires.{r}")) for r in REQUIRES]
        ctx["blank_transition"] = _blank_transition()
        ctx.update(action_context(obj, [a for event in EVENTS for a in values[event]]))
        ctx["events"] = [(event, t(f"studio.event.{event}"), t(f"studio.event_help.{event}")) for event in EVENTS]
    return ctx


def _option_label(fdef, value) -> str:
    from ...platform.web.display import option_label

    return option_label(fdef, value)


# --- pages --------------------------------------------------------------------------------------------


@routes.page("/admin/studio/approvals")
def studio_approvals():
    require_admin()
    registry = current_service().registry
    locale = current_locale()
    rows = []
    for doc in registry.of_kind(KIND):
        obj_name = doc.get("object")
        obj = registry.object(obj_name) if registry.has_object(obj_name) else None
        rows.append({"name": doc["name"], "label": doc_label(doc, doc["name"]),
                     "object": obj.display_label(locale) if obj else obj_name, "steps": len(doc.get("steps") or []),
                     "guards": bool(doc.get("guards")), "purpose": bool(doc.get("purpose")),
                     "href": url_for("web.studio_approval_edit", name=doc["name"])})
    rows.sort(key=lambda r: (r["object"].casefold(), r["label"].casefold()))
    return page("studio_automation/approvals.html", rows=rows, objects=object_choices(), title=t("studio.approvals_title"))


def _existing(name: str | None) -> dict | None:
    if name is None:
        return None
    doc = current_service().registry.get(KIND, name)
    if doc is None:
        raise NotFound(f"No approval process named {name!r}.", code="unknown_document")
    return doc


@routes.page("/admin/studio/approvals/new", methods=("GET", "POST"), endpoint="studio_approval_new")
@routes.page("/admin/studio/approvals/<name>", methods=("GET", "POST"), endpoint="studio_approval_edit")
def studio_approval(name: str | None = None):
    require_admin()
    registry = current_service().registry
    existing = _existing(name)
    if request.method == "GET":
        if existing:
            values = _values_of(existing)
        else:
            obj_name = request.args.get("object", "")
            values = _new_values(obj_name if registry.has_object(obj_name) else "")
        return page("studio_automation/approval_form.html", **_context(values, existing, {}))
    obj_name = existing["object"] if existing else (request.form.get("object") or "").strip()
    errors: dict[str, Any] = {}
    if not registry.has_object(obj_name) or obj_name in ("user", "department"):
        values = _new_values("")
        errors["object"] = t("studio.pick_object")
        return page("studio_automation/approval_form.html", 400, **_context(values, existing, errors))
    obj = registry.object(obj_name)
    action = request.form.get("_action", "preview")
    if action == "choose":
        return page("studio_automation/approval_form.html", **_context(_new_values(obj_name), existing, {}))
    problems: dict[str, str] = {}
    values = _read_form(obj, problems)
    values["object"] = obj_name
    if list_command(action, values["steps"], _blank_step(), "step") or \
            list_command(action, values["transitions"], _blank_transition(), "transition") or \
            any(list_command(action, values[event], _blank_action("update_field"), event) for event in EVENTS):
        return page("studio_automation/approval_form.html", **_context(values, existing, {}))
    errors.update(problems)
    doc = _build(values, existing, obj, errors)
    doc_name = doc["name"] if doc else (existing["name"] if existing else values["name"] or slug(values["label_en"]))

    def render(status: int, **outcome):
        return page("studio_automation/approval_form.html", status, **_context(values, existing, errors, **outcome))

    return save(KIND, doc_name or "new", doc, existing, errors, _issue_key, render,
                lambda: redirect_to("web.studio_approval_edit", name=doc_name))

