"""Admin → Workflow rules (/admin/studio/workflows): a form per `workflow_rule` document.

The object first, then the trigger — on create, on update, on create or update, on delete, when
a field changes (optionally: changes to a value), or scheduled a number of days before / after a
date field —, the condition (the simple condition form), and the ordered actions (add / remove /
move), each with its own inputs: set a field (a field picker, the value checked against the
field's type), create a record (its object and field = value lines), notify (recipients as
people related to the record, roles and users; subject, message, channels), email (a notify sent
by email), webhook (URL, secret, body template), submit for approval (a process of the object),
move to a pool. An action the form cannot show (a plugin's) is kept as written.

"A field changes" is stored as the grammar has it: an update trigger with `{"<field>": {"changed":
true}}` (and `"eq"` for "changes to") AND-ed to the condition; the form reads it back the same way.
"""

from __future__ import annotations

import copy
from typing import Any

from flask import request, url_for

from ...metadata.model import NAME_RE
from ...platform.errors import NotFound
from ...platform.web.admin import slug
from ...platform.web.core import current_service, redirect_to
from ...platform.web.display import option_label
from ...platform.web.i18n import current_locale, t
from .actions import (
    VARIABLES,
    _blank_action,
    _typed,
    action_context,
    action_issue_key,
    action_values,
    build_actions,
    read_actions,
)
from .common import (
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
    save,
    versions_value,
)
from .pages import routes

KIND = "workflow_rule"
TRIGGERS = ("create", "update", "create_or_update", "delete", "field_changed", "schedule")




# --- the document as form values ------------------------------------------------------------------


def _changed_part(part: Any) -> tuple[str, Any] | None:
    """{"stage": {"changed": true}} -> ("stage", None); {"stage": {"eq": "won", "changed": true}} -> ("stage", "won")."""
    if not isinstance(part, dict) or len(part) != 1:
        return None
    (name, cond), = part.items()
    if name in ("all", "any", "not") or not isinstance(cond, dict) or cond.get("changed") is not True:
        return None
    if not set(cond) <= {"changed", "eq"}:
        return None
    value = cond.get("eq")
    return name, ("true" if value is True else "false" if value is False else value)




def _values_of(doc: dict) -> dict:
    trigger = doc.get("trigger") or {}
    en, zh = label_values(doc.get("label"))
    values = {"name": doc["name"], "object": doc.get("object", ""), "label_en": en, "label_zh": zh,
              "description": doc.get("description", ""), "active": doc.get("active", True),
              "order": str(doc.get("order", 0)), "on": trigger.get("on", "create"), "changed_on": "", "changed_at": "",
              "changed_field": "", "changed_to": "", "sched_field": trigger.get("field", ""),
              "sched_days": str(trigger.get("after_days", trigger.get("before_days", ""))),
              "sched_dir": "before" if "before_days" in trigger else "after"}
    condition = doc.get("condition")
    if values["on"] in ("update", "create_or_update") and condition:
        parts = condition["all"] if isinstance(condition, dict) and set(condition) == {"all"} else [condition]
        for index, part in enumerate(parts):
            found = _changed_part(part)
            if found:
                values["changed_on"], values["on"] = values["on"], "field_changed"
                values["changed_at"] = str(index)
                values["changed_field"], changed_to = found
                values["changed_to"] = "" if changed_to is None else str(changed_to)
                rest = parts[:index] + parts[index + 1:]
                condition = None if not rest else rest[0] if len(rest) == 1 else {"all": rest}
                break
    values["condition"] = condition_state(condition)
    values["actions"] = action_values(doc.get("actions"))
    return values


def _new_values(object_name: str) -> dict:
    return {"name": "", "object": object_name, "label_en": "", "label_zh": "", "description": "", "active": True,
            "order": "0", "on": "create", "changed_on": "", "changed_at": "", "changed_field": "", "changed_to": "", "sched_field": "",
            "sched_days": "", "sched_dir": "after", "condition": condition_state(None), "actions": [_blank_action()]}


# --- the posted form ---------------------------------------------------------------------------------


def _read_form(obj, problems: dict) -> dict:
    form = request.form
    values = {k: (form.get(k) or "").strip() for k in (
        "name", "object", "label_en", "label_zh", "description", "order", "on", "changed_on", "changed_at", "changed_field",
        "changed_to", "sched_field", "sched_days", "sched_dir")}
    values["active"] = bool(form.get("active"))
    values["_flt"], values["condition"] = read_condition("c", obj, problems, "condition")
    values["actions"] = read_actions("a")
    return values














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
    old = existing or {}
    doc = copy.deepcopy(old) if existing else {"kind": KIND, "name": name, "object": obj.name}
    doc["label"] = label
    if values["description"]:
        doc["description"] = values["description"]
    else:
        doc.pop("description", None)
    if values["active"] and "active" not in old:
        doc.pop("active", None)
    else:
        doc["active"] = values["active"]
    if order == 0 and "order" not in old:
        doc.pop("order", None)
    else:
        doc["order"] = order
    on = values["on"]
    condition = values.get("_flt")
    trigger: dict[str, Any]
    if on not in TRIGGERS:
        errors["on"] = t("studio.bad_choice")
        trigger = {"on": "create"}
    elif on == "field_changed":
        trigger = {"on": values["changed_on"] if values["changed_on"] in ("update", "create_or_update") else "update"}
        fdef = obj.all_fields.get(values["changed_field"])
        if fdef is None or fdef.type == "password":
            errors["changed_field"] = t("studio.pick_field")
        else:
            part: dict[str, Any] = {"changed": True}
            if values["changed_to"]:
                value, ok = _typed(fdef, values["changed_to"])
                if not ok or value in VARIABLES:
                    errors["changed_to"] = t("studio.bad_value", field=fdef.display_label(current_locale()))
                part = {"eq": value, "changed": True}
            parts = condition["all"] if isinstance(condition, dict) and set(condition) == {"all"} else (
                [condition] if condition else [])
            at = int(values["changed_at"]) if values["changed_at"].isdigit() else len(parts)
            parts = [*parts[:at], {fdef.name: part}, *parts[at:]]  # where the document had it
            condition = parts[0] if len(parts) == 1 else {"all": parts}
    elif on == "schedule":
        trigger = {"on": "schedule"}
        fdef = obj.all_fields.get(values["sched_field"])
        if fdef is None or fdef.value_type not in ("date", "datetime"):
            errors["sched_field"] = t("automation.pick_date_field")
        else:
            trigger["field"] = fdef.name
        try:
            days = int(values["sched_days"])
        except ValueError:
            days = -1
        if days < 0 or days > 3650:
            errors["sched_days"] = t("studio.bad_days")
        trigger["before_days" if values["sched_dir"] == "before" else "after_days"] = max(days, 0)
    else:
        trigger = {"on": on}
    doc["trigger"] = trigger
    if condition is not None:
        doc["condition"] = condition
    else:
        doc.pop("condition", None)
    if not values["actions"]:
        errors["actions"] = t("studio.actions_required")
    doc["actions"] = build_actions("a", values["actions"], obj, errors)
    return None if errors else doc




def _issue_key(parts: list[str]) -> str | None:
    if not parts:
        return None
    head = parts[0]
    if head in ("name", "order"):
        return head
    if head == "label":
        return "label_en"
    if head == "object":
        return "object"
    if head == "condition":
        return "condition"
    if head == "trigger":
        return "sched_field" if len(parts) > 1 and parts[1] == "field" else "on"
    if head == "actions":
        if len(parts) < 2:
            return "actions"
        return action_issue_key("a", parts)
    return None


# --- the context --------------------------------------------------------------------------------------




def _context(values: dict, existing: dict | None, errors: dict, **extra: Any) -> dict:
    registry = current_service().registry
    locale = current_locale()
    ctx: dict[str, Any] = dict(values=values, existing=existing, errors=errors, objects=object_choices(),
                               issues=extra.pop("issues", []), title=t("studio.workflow_title"),
                               heading=doc_label(existing, existing["name"]) if existing else t("studio.new_workflow"),
                               versions=extra.pop("versions", None) or versions_value(KIND, (existing or {}).get("name")),
                               **extra)
    obj_name = values.get("object")
    if obj_name and registry.has_object(obj_name):
        obj = registry.object(obj_name)
        ctx["obj"] = obj
        ctx["obj_label"] = obj.display_label(locale)
        ctx["choices"] = choices_for(obj)
        fields = sorted(obj.all_fields.items(), key=lambda kv: kv[1].display_label(locale).casefold())
        ctx["watch_fields"] = [(n, f.display_label(locale)) for n, f in fields if f.type != "password"]
        ctx["date_fields"] = [(n, f.display_label(locale)) for n, f in fields if f.value_type in ("date", "datetime")]
        ctx["triggers"] = [(k, t(f"studio.trigger.{k}")) for k in TRIGGERS]
        ctx["changed_options"] = {n: [(str(o["value"]), option_label(f, o["value"])) for o in f.options]
                                  for n, f in obj.all_fields.items() if f.type == "picklist"}
        ctx.update(action_context(obj, values["actions"]))
    return ctx




# --- pages --------------------------------------------------------------------------------------------


def _trigger_text(doc: dict, obj) -> str:
    values = _values_of(doc)
    on = values["on"]
    if on == "field_changed":
        return t("studio.trigger_changed", field=obj.all_fields[values["changed_field"]].display_label(current_locale())
                 if obj and values["changed_field"] in obj.all_fields else values["changed_field"])
    if on == "schedule":
        field = values["sched_field"]
        label = obj.all_fields[field].display_label(current_locale()) if obj and field in obj.all_fields else field
        return t(f"studio.trigger_{values['sched_dir']}", days=values["sched_days"], field=label)
    return t(f"studio.trigger.{on}")


@routes.page("/admin/studio/workflows")
def studio_workflows():
    require_admin()
    registry = current_service().registry
    locale = current_locale()
    rows = []
    for doc in registry.of_kind(KIND):
        obj_name = doc.get("object")
        obj = registry.object(obj_name) if registry.has_object(obj_name) else None
        rows.append({"name": doc["name"], "label": doc_label(doc, doc["name"]),
                     "object": obj.display_label(locale) if obj else obj_name, "trigger": _trigger_text(doc, obj),
                     "actions": len(doc.get("actions") or []), "active": doc.get("active", True),
                     "href": url_for("web.studio_workflow_edit", name=doc["name"])})
    rows.sort(key=lambda r: (r["object"].casefold(), r["label"].casefold()))
    return page("studio_automation/workflows.html", rows=rows, objects=object_choices(), title=t("studio.workflows_title"))


def _existing(name: str | None) -> dict | None:
    if name is None:
        return None
    doc = current_service().registry.get(KIND, name)
    if doc is None:
        raise NotFound(f"No workflow rule named {name!r}.", code="unknown_document")
    return doc


@routes.page("/admin/studio/workflows/new", methods=("GET", "POST"), endpoint="studio_workflow_new")
@routes.page("/admin/studio/workflows/<name>", methods=("GET", "POST"), endpoint="studio_workflow_edit")
def studio_workflow(name: str | None = None):
    require_admin()
    registry = current_service().registry
    existing = _existing(name)
    if request.method == "GET":
        if existing:
            values = _values_of(existing)
        else:
            obj_name = request.args.get("object", "")
            values = _new_values(obj_name if registry.has_object(obj_name) else "")
        return page("studio_automation/workflow_form.html", **_context(values, existing, {}))
    obj_name = existing["object"] if existing else (request.form.get("object") or "").strip()
    errors: dict[str, Any] = {}
    if not registry.has_object(obj_name) or obj_name in ("user", "department"):
        errors["object"] = t("studio.pick_object")
        return page("studio_automation/workflow_form.html", 400, **_context(_new_values(""), existing, errors))
    obj = registry.object(obj_name)
    action = request.form.get("_action", "preview")
    if action == "choose":
        return page("studio_automation/workflow_form.html", **_context(_new_values(obj_name), existing, {}))
    problems: dict[str, str] = {}
    values = _read_form(obj, problems)
    values["object"] = obj_name
    if list_command(action, values["actions"], _blank_action(), "action"):
        return page("studio_automation/workflow_form.html", **_context(values, existing, {}))
    errors.update(problems)
    doc = _build(values, existing, obj, errors)
    doc_name = doc["name"] if doc else (existing["name"] if existing else values["name"] or slug(values["label_en"]))

    def render(status: int, **outcome):
        return page("studio_automation/workflow_form.html", status, **_context(values, existing, errors, **outcome))

    return save(KIND, doc_name or "new", doc, existing, errors, _issue_key, render,
                lambda: redirect_to("web.studio_workflow_edit", name=doc_name))
