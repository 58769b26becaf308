"""The inputs of one automation action, shared by workflow rules' `actions` and approval processes'
`on_submit` / `on_approve` / `on_reject` / `on_recall`: an action as form values, the posted inputs
(`<prefix><i>.<input>`), the action they make (each input checked, problems beside it), and the
choices the inputs offer (fields that may be set, recipients, processes, pools).
"""

from __future__ import annotations

import json
from typing import Any

from flask import request

from ...platform import schemas
from ...platform.web.core import current_service
from ...platform.web.display import option_label
from ...platform.web.i18n import current_locale, t
from ...workflow.templates import is_template
from .common import MAX_ITEMS, doc_label, object_choices, role_choices, user_choices

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
            "to_users": [], "subject": "", "subject_zh": "", "template": "", "template_zh": "", "channels": ["in_app"], "url": "", "secret_ref": "",
            "body": "", "process": "", "pool": "", "raw": "", "to_list": ""}


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
    elif kind == "notify" and any(isinstance(action.get(k), dict) and not set(action[k]) <= {"en", "zh-CN"}
                                  for k in ("subject", "template")):
        # a message in several languages ({"en": ..., "zh-CN": ...}): kept as written, edited as JSON
        v["kind"], v["raw"] = "other", json.dumps(action, ensure_ascii=False)
    elif kind == "notify":
        to = action.get("to")
        v["to_list"] = "1" if isinstance(to, list) else ""
        to = to if isinstance(to, list) else [to] if to else []
        v["to"] = [r for r in to if not r.startswith(("role:", "user:"))]
        v["to_roles"] = [r[5:] for r in to if r.startswith("role:")]
        v["to_users"] = [r[5:] for r in to if r.startswith("user:")]
        for k in ("subject", "template"):  # a string, or {"en": ..., "zh-CN": ...}: one input per language
            value = action.get(k, "")
            v[k], v[k + "_zh"] = (value.get("en", ""), value.get("zh-CN", "")) if isinstance(value, dict) else (value, "")
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


def read_actions(prefix: str) -> list[dict]:
    """The posted actions `<prefix><i>.<input>`, in their order on the page."""
    form = request.form
    actions = []
    for i in range(MAX_ITEMS):
        p = f"{prefix}{i}."
        if f"{p}kind" not in form:
            continue
        action = {k: (form.get(p + k) or "").strip() for k in (
            "kind", "field", "value", "object", "subject", "subject_zh", "url", "secret_ref", "process", "pool", "raw", "to_list")}
        for k in ("values", "template", "template_zh", "body"):
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
        subject_zh, template_zh = av.get("subject_zh", ""), (av.get("template_zh") or "").strip()
        if av["subject"] or subject_zh:
            action["subject"] = ({k: v for k, v in (("en", av["subject"]), ("zh-CN", subject_zh)) if v}
                                 if subject_zh else av["subject"])
        action["template"] = {"en": av["template"].strip(), "zh-CN": template_zh} if template_zh \
            else av["template"].strip()
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


ACTION_KEYS = {"field": "field", "value": "value", "object": "object", "values": "values", "to": "to",
               "template": "template", "subject": "template", "url": "url", "process": "process", "pool": "pool",
               "channels": "channels"}


def _recipient_choices(obj) -> list[tuple[str, str]]:
    locale = current_locale()
    out = [(r, t(f"studio.recipient.{r}")) for r in SPECIAL_RECIPIENTS]
    for name, fdef in sorted(obj.all_fields.items(), key=lambda kv: kv[1].display_label(locale).casefold()):
        if fdef.type == "user" and name != "owner":
            label = fdef.display_label(locale)
            out += [(name, label), (f"{name}.manager", t("studio.recipient.manager_of", field=label))]
    return out


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
