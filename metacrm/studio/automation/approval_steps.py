"""One approval step in the form: its values (approver kind and pickers, mode, rejection, timeout)
and the `approver` and `timeout` it makes, each problem beside its input."""

from __future__ import annotations

import json
from typing import Any

from ...platform.web.i18n import t
from .common import condition_state, label_values

APPROVER_KINDS = ("manager_of", "manager_chain", "roles", "users", "department_head")


MODES = ("any", "all")


ON_REJECT = ("end", "previous")


TIMEOUT_ACTIONS = ("", "remind", "escalate")


TIMEOUT_UNITS = ("days", "hours")


ESCALATE_KINDS = ("manager_of", "role")


def _blank_step() -> dict:
    return {"name": "", "label_en": "", "label_zh": "", "approver": "manager_of", "field": "owner", "levels": "1",
            "roles": [], "users": [], "department": "", "mode": "any", "on_reject": "end", "when": condition_state(None),
            "t_action": "", "t_amount": "", "t_unit": "days", "esc_kind": "manager_of", "esc_field": "owner",
            "esc_role": "", "custom": ""}


def _step_values(step: dict) -> dict:
    v = _blank_step()
    v["name"] = step.get("name", "")
    v["label_en"], v["label_zh"] = label_values(step.get("label"))
    v["mode"] = step.get("mode", "any")
    v["on_reject"] = step.get("on_reject", "end")
    v["when"] = condition_state(step.get("when"))
    approver = step.get("approver")
    rules = approver if isinstance(approver, list) else [approver]
    if all(isinstance(r, dict) and set(r) == {"role"} for r in rules):
        v["approver"], v["roles"] = "roles", [r["role"] for r in rules]
    elif all(isinstance(r, dict) and set(r) == {"user"} for r in rules):
        v["approver"], v["users"] = "users", [r["user"] for r in rules]
    elif isinstance(approver, dict) and "manager_of" in approver:
        v["approver"], v["field"] = "manager_of", approver["manager_of"]
    elif isinstance(approver, dict) and "manager_chain" in approver:
        v["approver"], v["field"] = "manager_chain", approver["manager_chain"]
        v["levels"] = str(approver.get("levels", 1))
    elif isinstance(approver, dict) and "department_head" in approver:
        v["approver"], v["department"] = "department_head", approver["department_head"]
    else:  # a mix of rules the pickers cannot show: kept as written
        v["approver"], v["custom"] = "custom", json.dumps(approver, ensure_ascii=False)
    timeout = step.get("timeout") or {}
    if timeout:
        v["t_action"] = timeout.get("action", "")
        v["t_unit"] = "hours" if "hours" in timeout else "days"
        v["t_amount"] = str(timeout.get(v["t_unit"], ""))
        esc = timeout.get("escalate_to") or {}
        if "role" in esc:
            v["esc_kind"], v["esc_role"] = "role", esc["role"]
        elif "manager_of" in esc:
            v["esc_kind"], v["esc_field"] = "manager_of", esc["manager_of"]
    return v


def _approver(step: dict, i: int, obj, registry, errors: dict) -> Any:
    kind = step["approver"]
    user_fields = {n for n, f in obj.all_fields.items() if f.type == "user"}
    if kind in ("manager_of", "manager_chain"):
        if step["field"] not in user_fields:
            errors[f"s{i}.approver"] = t("studio.pick_user_field")
            return None
        if kind == "manager_of":
            return {"manager_of": step["field"]}
        try:
            levels = int(step["levels"] or "1")
        except ValueError:
            levels = 0
        if levels < 1 or levels > 10:
            errors[f"s{i}.levels"] = t("studio.bad_levels")
            return None
        return {"manager_chain": step["field"], "levels": levels}
    if kind == "roles":
        roles = [r for r in step["roles"] if r]
        if not roles:
            errors[f"s{i}.approver"] = t("studio.approver_required")
            return None
        unknown = [r for r in roles if r not in registry.roles]
        if unknown:
            errors[f"s{i}.approver"] = t("studio.unknown_role", role=", ".join(unknown))
            return None
        return {"role": roles[0]} if len(roles) == 1 else [{"role": r} for r in roles]
    if kind == "users":
        users = [u for u in step["users"] if u]
        if not users:
            errors[f"s{i}.approver"] = t("studio.approver_required")
            return None
        return {"user": users[0]} if len(users) == 1 else [{"user": u} for u in users]
    if kind == "department_head":
        if not step["department"]:
            errors[f"s{i}.approver"] = t("studio.approver_required")
            return None
        return {"department_head": step["department"]}
    if kind == "custom":
        try:
            return json.loads(step["custom"])
        except ValueError:
            errors[f"s{i}.approver"] = t("studio.approver_required")
            return None
    errors[f"s{i}.approver"] = t("studio.approver_required")
    return None


def _timeout(step: dict, i: int, obj, registry, errors: dict) -> dict | None:
    action = step["t_action"]
    if not action:
        return None
    if action not in TIMEOUT_ACTIONS:
        errors[f"s{i}.timeout"] = t("studio.bad_timeout")
        return None
    try:
        amount = int(step["t_amount"])
    except ValueError:
        amount = 0
    if amount < 1 or step["t_unit"] not in TIMEOUT_UNITS:
        errors[f"s{i}.timeout"] = t("studio.bad_timeout")
        return None
    timeout: dict[str, Any] = {step["t_unit"]: amount, "action": action}
    if action == "escalate":
        if step["esc_kind"] == "role" and step["esc_role"] in registry.roles:
            timeout["escalate_to"] = {"role": step["esc_role"]}
        elif step["esc_kind"] == "manager_of" and obj.all_fields.get(step["esc_field"]) is not None:
            timeout["escalate_to"] = {"manager_of": step["esc_field"]}
        else:
            errors[f"s{i}.timeout"] = t("studio.escalate_required")
            return None
    return timeout
