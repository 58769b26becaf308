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
import json
from typing import Any

from flask import request, url_for

from ...metadata.model import NAME_RE
from ...platform import schemas
from ...platform.errors import NotFound
from ...platform.web.admin import slug
from ...platform.web.core import current_service, redirect_to
from ...platform.web.display import option_label
from ...platform.web.i18n import current_locale, t
from ...workflow.templates import is_template
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
    routes,
    save,
    user_choices,
    versions_value,
)

KIND = "workflow_rule"
TRIGGERS = ("create", "update", "create_or_update", "delete", "field_changed", "schedule")
ACTION_KINDS = ("update_field", "create_record", "notify", "email", "webhook", "submit_for_approval", "assign_to_pool")
SPECIAL_RECIPIENTS = ("owner", "owner.manager", "submitter", "approvers")
CHANNELS = ("in_app", "email")
VARIABLES = ("$today", "$now", "$user")
COMPUTED = ("formula", "rollup", "autonumber", "password")
# Kept by the platform itself; read-only fields of the object's own (an approval status) may be set:
# actions run as the system.
SYSTEM_STAMPS = ("id", "version", "created_at", "created_by", "updated_at", "updated_by", "deleted_at")


def _blank_action(kind: str = "notify") -> dict:
    return {"kind": kind, "field": "", "value": "", "object": "", "values": "", "to": ["owner"], "to_roles": [],
            "to_users": [], "subject": "", "template": "", "channels": ["in_app"], "url": "", "secret_ref": "",
            "body": "", "process": "", "pool": "", "raw": "", "to_list": ""}


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


def _action_values(action: dict) -> dict:
    v = _blank_action(action.get("action", ""))
    kind = action.get("action")
    if kind == "update_field":
        v["field"] = action.get("field", "")
        value = action.get("value")
        v["value"] = "true" if value is True else "false" if value is False else "" if value is None else str(value)
    elif kind == "create_record":
        v["object"] = action.get("object", "")
        v["values"] = "\n".join(f"{k} = {'' if val is None else val}" for k, val in (action.get("values") or {}).items())
    elif kind == "notify":
        to = action.get("to")
        v["to_list"] = "1" if isinstance(to, list) else ""
        to = to if isinstance(to, list) else [to] if to else []
        v["to"] = [r for r in to if not r.startswith(("role:", "user:"))]
        v["to_roles"] = [r[5:] for r in to if r.startswith("role:")]
        v["to_users"] = [r[5:] for r in to if r.startswith("user:")]
        v["subject"] = action.get("subject", "")
        v["template"] = action.get("template", "")
        v["channels"] = list(action.get("channels") or ["in_app"])
        if v["channels"] == ["email"]:
            v["kind"] = "email"
    elif kind == "webhook":
        v["url"], v["secret_ref"], v["body"] = action.get("url", ""), action.get("secret_ref", ""), action.get("template", "")
    elif kind == "submit_for_approval":
        v["process"] = action.get("process", "")
    elif kind == "assign_to_pool":
        v["pool"] = action.get("pool", "")
    else:
        v["kind"], v["raw"] = "other", json.dumps(action, ensure_ascii=False)
    if kind == "webhook" and action.get("headers"):
        v["raw"] = json.dumps(action.get("headers"), ensure_ascii=False)  # kept as written
    return v


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


def read_actions(prefix: str) -> list[dict]:
    """The posted actions `<prefix><i>.<input>`, in their order on the page."""
    form = request.form
    actions = []
    for i in range(MAX_ITEMS):
        p = f"{prefix}{i}."
        if f"{p}kind" not in form:
            continue
        action = {k: (form.get(p + k) or "").strip() for k in (
            "kind", "field", "value", "object", "subject", "url", "secret_ref", "process", "pool", "raw", "to_list")}
        for k in ("values", "template", "body"):
            action[k] = form.get(p + k) or ""
        for k in ("to", "to_roles", "to_users", "channels"):
            action[k] = form.getlist(p + k)
        actions.append(action)
    return actions


def action_values(actions: list | None) -> list[dict]:
    return [_action_values(a) for a in actions or []]


def build_actions(prefix: str, items: list[dict], obj, errors: dict) -> list[dict]:
    registry = current_service().registry
    out = []
    for i, av in enumerate(items):
        action = _build_action(f"{prefix}{i}.", av, obj, registry, errors)
        if action is not None:
            out.append(action)
    return out


def action_issue_key(prefix: str, parts: list[str]) -> str:
    """/<list>/<i>/<input> -> `<prefix><i>.<input>` (the action's kind when the input is not one)."""
    return f"{prefix}{parts[1]}." + ACTION_KEYS.get(parts[2] if len(parts) > 2 else "", "kind")


def _typed(fdef, text: str) -> tuple[Any, bool]:
    """The value a set-field action stores, and whether it fits the field."""
    if text in VARIABLES or is_template(text):
        return text, True
    if text == "":
        return None, not fdef.required
    if fdef.value_type == "boolean":
        return ({"true": True, "false": False}.get(text.lower(), text), text.lower() in ("true", "false"))
    if fdef.value_type == "picklist":
        return text, text in fdef.option_values
    value: Any = text
    if fdef.value_type == "integer":
        try:
            value = int(text)
        except ValueError:
            return text, False
    try:
        schemas.marshmallow_field(fdef).deserialize(value)
    except Exception:  # noqa: BLE001 - any refusal of the field's own input check
        return text, False
    return value, True


def _build_action(key: str, av: dict, obj, registry, errors: dict) -> dict | None:
    kind = av["kind"]
    if kind == "other":
        try:
            return json.loads(av["raw"])
        except ValueError:
            errors[key + "kind"] = t("studio.bad_choice")
            return None
    if kind not in ACTION_KINDS:
        errors[key + "kind"] = t("studio.bad_choice")
        return None
    if kind == "update_field":
        fdef = obj.all_fields.get(av["field"])
        if fdef is None or fdef.type in COMPUTED or fdef.name in SYSTEM_STAMPS:
            errors[key + "field"] = t("studio.unknown_field", field=av["field"] or "—")
            return None
        value, ok = _typed(fdef, av["value"])
        if not ok:
            errors[key + "value"] = t("studio.bad_value", field=fdef.display_label(current_locale()))
            return None
        return {"action": "update_field", "field": fdef.name, "value": value}
    if kind == "create_record":
        if not registry.has_object(av["object"]):
            errors[key + "object"] = t("studio.pick_object")
            return None
        target = registry.object(av["object"])
        values: dict[str, Any] = {}
        for line in av["values"].splitlines():
            if not line.strip():
                continue
            name, sep, text = line.partition("=")
            name = name.strip()
            if not sep or name not in target.all_fields:
                errors[key + "values"] = t("studio.unknown_field", field=name)
                return None
            values[name] = text.strip()
        if not values:
            errors[key + "values"] = t("studio.values_required")
            return None
        return {"action": "create_record", "object": target.name, "values": values}
    if kind in ("notify", "email"):
        allowed = {r for r, _ in _recipient_choices(obj)}
        to = [r for r in av["to"] if r in allowed]
        to += [f"role:{r}" for r in av["to_roles"] if r in registry.roles]
        to += [f"user:{u}" for u in av["to_users"] if u]
        if not to:
            errors[key + "to"] = t("studio.recipients_required")
        if not av["template"].strip():
            errors[key + "template"] = t("studio.message_required")
        if key + "to" in errors or key + "template" in errors:
            return None
        action: dict[str, Any] = {"action": "notify", "to": to[0] if len(to) == 1 and not av["to_list"] else to}
        if av["subject"]:
            action["subject"] = av["subject"]
        action["template"] = av["template"].strip()
        channels = ["email"] if kind == "email" else [c for c in CHANNELS if c in av["channels"]]
        if kind == "notify" and not channels:
            errors[key + "channels"] = t("studio.channels_required")
            return None
        if channels != ["in_app"]:
            action["channels"] = channels
        return action
    if kind == "webhook":
        if not av["url"].startswith(("http://", "https://")) or any(ch.isspace() for ch in av["url"]):
            errors[key + "url"] = t("studio.bad_url")
            return None
        action = {"action": "webhook", "url": av["url"]}
        if av["secret_ref"]:
            action["secret_ref"] = av["secret_ref"]
        if av["raw"]:
            try:
                action["headers"] = json.loads(av["raw"])
            except ValueError:
                pass
        if av["body"].strip():
            action["template"] = av["body"]
        return action
    if kind == "submit_for_approval":
        if av["process"] and registry.get("approval_process", av["process"]) is None:
            errors[key + "process"] = t("studio.bad_choice")
            return None
        return {"action": "submit_for_approval", **({"process": av["process"]} if av["process"] else {})}
    if registry.get("pool", av["pool"]) is None:
        errors[key + "pool"] = t("studio.pick_pool")
        return None
    return {"action": "assign_to_pool", "pool": av["pool"]}


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
            errors["sched_field"] = t("studio.pick_date_field")
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


ACTION_KEYS = {"field": "field", "value": "value", "object": "object", "values": "values", "to": "to",
               "template": "template", "subject": "template", "url": "url", "process": "process", "pool": "pool",
               "channels": "channels"}


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


def _recipient_choices(obj) -> list[tuple[str, str]]:
    locale = current_locale()
    out = [(r, t(f"studio.recipient.{r}")) for r in SPECIAL_RECIPIENTS]
    for name, fdef in sorted(obj.all_fields.items(), key=lambda kv: kv[1].display_label(locale).casefold()):
        if fdef.type == "user" and name != "owner":
            label = fdef.display_label(locale)
            out += [(name, label), (f"{name}.manager", t("studio.recipient.manager_of", field=label))]
    return out


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


def action_context(obj, actions: list[dict]) -> dict:
    """What the action inputs offer for `obj` (set-field fields, recipients, processes, pools…)."""
    registry = current_service().registry
    locale = current_locale()
    fields = sorted(obj.all_fields.items(), key=lambda kv: kv[1].display_label(locale).casefold())
    return {
        "set_fields": [{"name": n, "label": f.display_label(locale), "kind": f.value_type,
                        "options": [(str(o["value"]), option_label(f, o["value"])) for o in f.options]
                        if f.type == "picklist" else []}
                       for n, f in fields if f.type not in COMPUTED and n not in SYSTEM_STAMPS],
        "action_kinds": [(k, t(f"studio.action.{k}")) for k in ACTION_KINDS] + (
            [("other", t("studio.action.other"))] if any(a["kind"] == "other" for a in actions) else []),
        "recipients": _recipient_choices(obj),
        "roles": role_choices(),
        "users": user_choices(),
        "channels": [(c, t(f"studio.channel.{c}")) for c in CHANNELS],
        "targets": object_choices(),
        "processes": [(d["name"], doc_label(d, d["name"])) for d in registry.for_object("approval_process", obj.name)
                      if not d.get("purpose")],
        "pools": [(d["name"], doc_label(d, d["name"])) for d in registry.for_object("pool", obj.name)],
    }


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
    return page("studio/workflows.html", rows=rows, objects=object_choices(), title=t("studio.workflows_title"))


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
        return page("studio/workflow_form.html", **_context(values, existing, {}))
    obj_name = existing["object"] if existing else (request.form.get("object") or "").strip()
    errors: dict[str, Any] = {}
    if not registry.has_object(obj_name) or obj_name in ("user", "department"):
        errors["object"] = t("studio.pick_object")
        return page("studio/workflow_form.html", 400, **_context(_new_values(""), existing, errors))
    obj = registry.object(obj_name)
    action = request.form.get("_action", "preview")
    if action == "choose":
        return page("studio/workflow_form.html", **_context(_new_values(obj_name), existing, {}))
    problems: dict[str, str] = {}
    values = _read_form(obj, problems)
    values["object"] = obj_name
    if list_command(action, values["actions"], _blank_action(), "action"):
        return page("studio/workflow_form.html", **_context(values, existing, {}))
    errors.update(problems)
    doc = _build(values, existing, obj, errors)
    doc_name = doc["name"] if doc else (existing["name"] if existing else values["name"] or slug(values["label_en"]))

    def render(status: int, **outcome):
        return page("studio/workflow_form.html", status, **_context(values, existing, errors, **outcome))

    return save(KIND, doc_name or "new", doc, existing, errors, _issue_key, render,
                lambda: redirect_to("web.studio_workflow_edit", name=doc_name))
