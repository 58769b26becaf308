"""Admin → Rules → a pool: every option `pool.schema.json` knows, as form inputs.

Object (chosen first, fixed afterwards: the conditions name its fields), labels, priority, the
entry condition (the condition rows of web/condition_rows.py), members, admins and the people
automatic assignment hands records to (roles / departments / users by name), claim limits and
per-person overrides, reclaim cooldown, protection (with the activities that extend it), the
assignment strategy, recycle rules ("no follow-up for 14 days": a number, a unit and a date
field, plus more conditions) with their reasons, and the warning before a recycle.
A condition the rows cannot show (nested any / not) is kept as it is and said so.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from flask import request, url_for

from ...platform.errors import NotFound
from ...platform.web.admin import _require_admin
from ...platform.web.condition_rows import describe, field_choices, row_kind, rows_from_filter, rows_from_form
from ...platform.web.core import current_service, notify, redirect_to, render_page
from ...platform.web.i18n import current_locale, t
from . import common
from .pages import page

KIND = "pool"
STRATEGIES = ("manual", "round_robin", "load_balanced")
UNITS = {"days": 1, "weeks": 7}
CLAIM_KEYS = ("max_per_day", "max_held", "reclaim_cooldown_days")
PROTECTION_KEYS = ("default_days", "extend_days", "max_days")
OVERRIDE_KINDS = ("role", "department", "user")
MAX_OVERRIDES = 20
MAX_RECYCLE = 10
ACTIVITY = "activity"


def _object_fields(name: str) -> dict:
    return current_service().registry.object(name).all_fields


def _date_fields(obj) -> list[tuple[str, str]]:
    locale = current_locale()
    out = [(n, f.display_label(locale)) for n, f in obj.all_fields.items()
           if f.value_type in ("date", "datetime") and f.type != "password"]
    return sorted(out, key=lambda pair: (pair[0] != "last_activity_at", pair[1].casefold()))


def _flat(flt: Any) -> list:
    if flt in (None, {}):
        return []
    return list(flt["all"]) if isinstance(flt, dict) and set(flt) == {"all"} and isinstance(flt["all"], list) else [flt]


def _joined(parts: list) -> Any:
    return None if not parts else parts[0] if len(parts) == 1 else {"all": parts}


def _condition_values(prefix: str, flt: Any, fields: dict) -> dict:
    """The rows of a filter, or the filter kept as it is (in words when possible)."""
    rows = rows_from_filter(flt)
    if rows is None:
        return {f"{prefix}.rows": [], f"{prefix}.raw": common.as_json(flt),
                f"{prefix}.words": describe(flt, fields) or [t("studio.advanced_condition")]}
    return {f"{prefix}.rows": rows, f"{prefix}.raw": ""}


def _recycle_values(index: int, rule: dict, obj) -> dict:
    prefix = f"rc.{index}"
    label = rule.get("label") or {}
    label = {"en": label} if isinstance(label, str) else label
    values = {f"{prefix}.name": rule.get("name", ""), f"{prefix}.reason": rule.get("reason", ""),
              f"{prefix}.label_en": label.get("en", ""), f"{prefix}.label_zh": label.get("zh-CN", ""),
              f"{prefix}.age": "", f"{prefix}.unit": "days", f"{prefix}.age_field": "last_activity_at"}
    parts = _flat(rule.get("when"))
    dates = {n for n, _ in _date_fields(obj)}
    for part in parts:
        if isinstance(part, dict) and len(part) == 1:
            (fname, cond), = part.items()
            if fname in dates and isinstance(cond, dict) and set(cond) == {"older_than_days"} \
                    and isinstance(cond["older_than_days"], int):
                days = cond["older_than_days"]
                weeks = days and days % 7 == 0 and days >= 14
                values.update({f"{prefix}.age": str(days // 7 if weeks else days), f"{prefix}.unit":
                               "weeks" if weeks else "days", f"{prefix}.age_field": fname})
                parts = [p for p in parts if p is not part]
                break
    values.update(_condition_values(f"rc{index}", _joined(parts), obj.all_fields))
    return values


def doc_values(doc: dict) -> dict:
    """The form's values for a pool document."""
    registry = current_service().registry
    obj = registry.object(doc["object"])
    label = doc.get("label") or {}
    label = {"en": label} if isinstance(label, str) else label
    claim, protection = doc.get("claim") or {}, doc.get("protection") or {}
    values: dict[str, Any] = {
        "name": doc.get("name", ""), "object": doc["object"], "label_en": label.get("en", ""),
        "label_zh": label.get("zh-CN", ""), "description": doc.get("description", ""),
        "priority": str(doc.get("priority", "")) if doc.get("priority") is not None else "",
        "warn_before_recycle_days": str(doc.get("warn_before_recycle_days", "")),
        "strategy": (doc.get("assignment") or {}).get("strategy", "manual"),
    }
    for key in CLAIM_KEYS:
        values[f"claim.{key}"] = str(claim[key]) if key in claim else ""
    for key in PROTECTION_KEYS:
        values[f"protection.{key}"] = str(protection[key]) if key in protection else ""
    for prefix, spec in (("members", doc.get("members")), ("admins", doc.get("admins")),
                         ("assign", (doc.get("assignment") or {}).get("users"))):
        values[prefix] = common.principals_values(spec)
    values["overrides"] = []
    for item in claim.get("overrides") or []:
        who = next((f"{k}:{item[k]}" for k in OVERRIDE_KINDS if item.get(k)), "")
        values["overrides"].append({"who": who, "max_per_day": str(item.get("max_per_day", "")),
                                    "max_held": str(item.get("max_held", ""))})
    values.update(_condition_values("entry", doc.get("entry"), obj.all_fields))
    if registry.has_object(ACTIVITY):
        values.update(_condition_values("qa", protection.get("qualifying_activity"), _object_fields(ACTIVITY)))
    values["recycle_count"] = len(doc.get("recycle") or [])
    for index, rule in enumerate(doc.get("recycle") or []):
        values.update(_recycle_values(index, rule, obj))
    return values


# --- reading the form ---------------------------------------------------------------------------


def _read_condition(prefix: str, fields: dict, values: dict, errors: dict) -> Any:
    raw = request.form.get(f"{prefix}.raw") or ""
    if raw:
        values[f"{prefix}.raw"] = raw
        try:
            kept = json.loads(raw)
        except ValueError:
            kept = None
        values[f"{prefix}.rows"] = []
        values[f"{prefix}.words"] = describe(kept, fields) or [t("studio.advanced_condition")]
        return kept
    flt, rows, row_errors = rows_from_form(request.form, fields, prefix)
    values[f"{prefix}.rows"], values[f"{prefix}.raw"] = rows, ""
    if row_errors:
        errors[f"rows:{prefix}"] = row_errors
    return flt


def _read_overrides(choices: dict, values: dict, errors: dict) -> list[dict]:
    known = {f"{kind}:{value}" for kind, key in (("role", "roles"), ("department", "departments"), ("user", "users"))
             for value, _ in choices[key]}
    out, rows = [], []
    for index in range(MAX_OVERRIDES):
        row = {k: (request.form.get(f"ov.{index}.{k}") or "").strip() for k in ("who", "max_per_day", "max_held")}
        if not any(row.values()):
            continue
        position = len(rows)
        rows.append(row)
        item: dict[str, Any] = {}
        if row["who"] not in known:
            errors[f"ov.{position}.who"] = t("studio.pick_someone")
        else:
            kind, who = row["who"].split(":", 1)
            item[kind] = who
        limits = {f"ov.{position}.{k}": row[k] for k in ("max_per_day", "max_held")}
        for key in ("max_per_day", "max_held"):
            number = common.whole_number(limits, errors, f"ov.{position}.{key}")
            if number is not None:
                item[key] = number
        if not any(k in item for k in ("max_per_day", "max_held")) and f"ov.{position}.max_per_day" not in errors:
            errors[f"ov.{position}.max_per_day"] = t("studio.override_limit")
        out.append(item)
    values["overrides"] = rows
    return out


def _read_recycle(obj, values: dict, errors: dict, live: dict | None) -> list[dict]:
    rules = []
    dates = dict(_date_fields(obj))
    count = 0
    for index in range(MAX_RECYCLE):
        prefix = f"rc.{index}"
        keys = ("name", "reason", "label_en", "label_zh", "age", "unit", "age_field")
        row = {f"{prefix}.{k}": (request.form.get(f"{prefix}.{k}") or "").strip() for k in keys}
        present = any(f"{prefix}.{k}" in request.form for k in keys)
        if not present:
            continue
        cond_prefix = f"rc{index}"
        when_rows = _read_condition(cond_prefix, obj.all_fields, row, errors)
        filled = any(row[f"{prefix}.{k}"] for k in ("name", "reason", "label_en", "label_zh", "age")) or when_rows
        if request.form.get(f"{prefix}.remove") or not filled:
            continue
        # Renumber: the rule's inputs are drawn at position `count` on the next page.
        target = f"rc.{count}"
        moved = {}
        for key, value in row.items():
            if key.startswith(prefix + "."):
                moved[target + key[len(prefix):]] = value
            elif key.startswith(cond_prefix + "."):
                moved[f"rc{count}" + key[len(cond_prefix):]] = value
        if f"rows:{cond_prefix}" in errors:
            errors[f"rows:rc{count}"] = errors.pop(f"rows:{cond_prefix}")
        values.update(moved)
        parts = _flat(when_rows)
        age = common.whole_number(moved, errors, f"{target}.age", minimum=1)
        if age is not None:
            unit = moved[f"{target}.unit"]
            field_name = moved[f"{target}.age_field"]
            if unit not in UNITS:
                errors[f"{target}.age"] = t("studio.bad_unit")
            elif field_name not in dates:
                errors[f"{target}.age"] = t("studio.pick_date_field")
            else:
                parts.insert(0, {field_name: {"older_than_days": age * UNITS[unit]}})
        if not parts and f"{target}.age" not in errors:
            errors[f"{target}.age"] = t("studio.recycle_needs_condition")
        if not moved[f"{target}.reason"]:
            errors[f"{target}.reason"] = t("form.required_missing")
        when = _joined(parts)
        # the same conditions as a live rule's, in another order: the live rule's order
        when = next((r["when"] for r in (live or {}).get("recycle") or [] if common.same_parts(when, r.get("when"))),
                    when)
        rule: dict[str, Any] = {"when": when, "reason": moved[f"{target}.reason"]}
        label = common._labels(moved[f"{target}.label_en"], moved[f"{target}.label_zh"])
        if label:
            rule["label"] = label
        if moved[f"{target}.name"]:
            rule["name"] = moved[f"{target}.name"]
        rules.append(rule)
        count += 1
    values["recycle_count"] = count
    return rules


def read_form(live: dict | None, object_name: str, choices: dict) -> tuple[dict, dict, dict]:
    """(document, values as entered, errors by input) from the posted form."""
    registry = current_service().registry
    obj = registry.object(object_name)
    form = request.form
    keys = ("name", "label_en", "label_zh", "description", "priority", "warn_before_recycle_days", "strategy",
            *(f"claim.{k}" for k in CLAIM_KEYS), *(f"protection.{k}" for k in PROTECTION_KEYS))
    values: dict[str, Any] = {k: (form.get(k) or "").strip() for k in keys}
    values["object"] = object_name
    errors: dict[str, Any] = {}
    name = common.document_name(KIND, values, errors, live is None, live and live["name"])
    doc: dict[str, Any] = copy.deepcopy(live) if live else {}
    doc.update({"kind": KIND, "name": name, "object": object_name})
    label = common.labels_of(values, errors)
    if label is not None:
        doc["label"] = label
    for key, text in (("description", values["description"]),):
        if text:
            doc[key] = text
        else:
            doc.pop(key, None)
    for key, minimum in (("priority", None), ("warn_before_recycle_days", 0)):
        number = common.whole_number(values, errors, key, minimum)
        if number is None:
            doc.pop(key, None)
        else:
            doc[key] = number
    entry = _read_condition("entry", obj.all_fields, values, errors)
    if entry is None:
        doc.pop("entry", None)
    else:
        doc["entry"] = entry
    for prefix in ("members", "admins"):
        spec, values[prefix] = common.read_principals(prefix, choices, errors, (live or {}).get(prefix))
        if spec:
            doc[prefix] = spec
        else:
            doc.pop(prefix, None)
    claim = {k: v for k in CLAIM_KEYS if (v := common.whole_number(values, errors, f"claim.{k}")) is not None}
    overrides = _read_overrides(choices, values, errors)
    if overrides:
        claim["overrides"] = overrides
    if claim:
        doc["claim"] = claim
    else:
        doc.pop("claim", None)
    protection = {k: v for k in PROTECTION_KEYS
                  if (v := common.whole_number(values, errors, f"protection.{k}")) is not None}
    if registry.has_object(ACTIVITY):
        qualifying = _read_condition("qa", _object_fields(ACTIVITY), values, errors)
        if qualifying is not None:
            protection["qualifying_activity"] = qualifying
    if protection:
        doc["protection"] = protection
    else:
        doc.pop("protection", None)
    if values["strategy"] not in STRATEGIES:
        errors["strategy"] = t("studio.unknown_choice", value=values["strategy"])
    assignment: dict[str, Any] = {}
    if values["strategy"] and values["strategy"] != "manual":
        assignment["strategy"] = values["strategy"]
    spec, values["assign"] = common.read_principals("assign", choices, errors,
                                                    ((live or {}).get("assignment") or {}).get("users"))
    if spec:
        assignment["users"] = spec
    if assignment or (live and live.get("assignment")):
        assignment.setdefault("strategy", values["strategy"] or "manual")
        doc["assignment"] = assignment
    else:
        doc.pop("assignment", None)
    recycle = _read_recycle(obj, values, errors, live)
    if recycle:
        doc["recycle"] = recycle
    else:
        doc.pop("recycle", None)
    return doc, values, errors


# --- pages --------------------------------------------------------------------------------------


def _inputs(values: dict) -> set[str]:
    keys = {"name", "label_en", "priority", "warn_before_recycle_days", "strategy", "entry",
            *(f"claim.{k}" for k in CLAIM_KEYS), *(f"protection.{k}" for k in PROTECTION_KEYS),
            "members", "admins", "assignment", "claim", "protection"}
    for index in range(values.get("recycle_count", 0)):
        keys |= {f"recycle.{index}", f"recycle.{index}.reason", f"recycle.{index}.when"}
    return keys


def _issue_errors(issues: list[dict], name: str, values: dict, errors: dict) -> list[dict]:
    """Validation issues at /recycle/0/when etc. beside the inputs the form draws for them."""
    placed: dict[str, str] = {}
    rest = common.place_issues(issues, KIND, name, _inputs(values), placed)
    for key, message in placed.items():
        if key.startswith("recycle."):
            parts = key.split(".")
            errors.setdefault(f"rc.{parts[1]}.{'reason' if key.endswith('reason') else 'age'}", message)
        elif key in ("entry", "members", "admins"):
            errors.setdefault(f"block:{key}", message)
        else:
            errors.setdefault(key, message)
    return rest


def _context(object_name: str, values: dict, live: dict | None, choices: dict, **extra: Any) -> dict:
    registry = current_service().registry
    obj = registry.object(object_name)
    locale = current_locale()
    recycle = []
    for index in range(values.get("recycle_count", 0) + 1):
        recycle.append({"index": index, "prefix": f"rc.{index}", "rows_prefix": f"rc{index}",
                        "new": index >= values.get("recycle_count", 0)})
    override_choices = [(t(f"studio.override_{kind}"), [(f"{kind}:{v}", text) for v, text in choices[key]])
                        for kind, key in (("role", "roles"), ("department", "departments"), ("user", "users"))]
    activity = registry.object(ACTIVITY) if registry.has_object(ACTIVITY) else None
    return dict(
        kind=KIND, live=live, is_new=live is None, obj=obj, obj_label=obj.display_label(locale, plural=True), values=values,
        choices=choices, entry_choices=field_choices({n: f for n, f in obj.all_fields.items() if row_kind(f)}),
        qa_choices=field_choices(activity.all_fields) if activity else None,
        activity_label=activity.display_label(locale, plural=True) if activity else "",
        date_fields=_date_fields(obj), units=[(u, t(f"studio.unit_{u}")) for u in UNITS],
        strategies=[(s, t(f"studio.strategy_{s}")) for s in STRATEGIES], recycle=recycle,
        override_choices=override_choices, overrides=list(values.get("overrides") or []) + [{}],
        errors=extra.pop("errors", {}), issues=extra.pop("issues", []),
        versions=extra.pop("versions", None) or common.loaded_versions(KIND, values.get("name", ""), live is None),
        action=url_for("web.studio_pool_edit", name=live["name"]) if live else url_for("web.studio_pool_new"),
        title=(t("studio.pool_edit", name=common.label_text(live.get("label"), locale, live["name"])) if live
               else t("studio.pool_new")),
        pool_href=url_for("web.pool_records", pool_name=live["name"]) if live else None,
        **extra)


def _new_object() -> str | None:
    name = (request.form.get("object") if request.method == "POST" else request.args.get("object")) or ""
    if not name:
        return None
    registry = current_service().registry
    if not registry.has_object(name):
        raise NotFound(f"Unknown object {name!r}.", code="unknown_object")
    return name


def _handle(live: dict | None, object_name: str):
    choices = common.people_choices()
    if request.method == "GET":
        values = doc_values(live) if live else {"object": object_name, "strategy": "manual", "recycle_count": 0,
                                                "members": common.principals_values(None),
                                                "admins": common.principals_values(None),
                                                "assign": common.principals_values(None), "overrides": []}
        return render_page("studio_rules/pool_form.html", **_context(object_name, values, live, choices))
    doc, values, errors = read_form(live, object_name, choices)
    action = request.form.get("_action", "preview")
    status, outcome, issues = 400, {}, []
    if action in ("preview", "apply") and not errors:
        outcome = common.review(KIND, doc["name"], doc, live is None, action)
        status = outcome.pop("status")
        issues = _issue_errors(outcome.pop("issues", []), doc["name"], values, errors)
        if action == "apply" and "result" in outcome:
            notify(t("admin.applied", version=outcome["result"].version) if not outcome["unchanged"]
                   else t("admin.no_changes"))
            return redirect_to("web.studio_pool_edit", name=doc["name"])
        if errors and not issues:
            issues = [{"document": f"{KIND}/{doc['name']}", "path": "/", "message": t("rules.fix_inputs")}]
    elif action not in ("preview", "apply"):
        status = 200
    if errors and not issues:
        issues = [{"document": f"{KIND}/{doc['name'] or '?'}", "path": "/", "message": t("rules.fix_inputs")}]
    return render_page("studio_rules/pool_form.html", status,
                       **_context(object_name, values, live, choices, errors=errors, issues=issues, **outcome))


@page("/admin/rules/pools/new", methods=("GET", "POST"))
def studio_pool_new():
    _require_admin()
    object_name = _new_object()
    if object_name is None:  # the object is chosen on the list page first
        return redirect_to("web.studio_rules")
    return _handle(None, object_name)


@page("/admin/rules/pools/<name>", methods=("GET", "POST"))
def studio_pool_edit(name: str):
    _require_admin()
    live = current_service().registry.get(KIND, name)
    if live is None:
        raise NotFound(f"No pool named {name!r}.", code="unknown_pool")
    if not current_service().registry.has_object(live.get("object", "")):
        raise NotFound(f"Unknown object {live.get('object')!r}.", code="unknown_object")
    return _handle(live, live["object"])
