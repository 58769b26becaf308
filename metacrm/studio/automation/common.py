"""What the approval-process and workflow-rule forms share: the routes table and navigation,
conditions (the simple condition form, or JSON for what rows cannot show), choices of roles,
users and fields in the reader's language, and the save flow — a dry run whose diff the page
shows, then the apply with the versions the form loaded (someone else's change in between → 409).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from flask import request

from ...metadata.model import label_text
from ...platform.errors import BadRequest
from ...platform.metastore import ABSENT
from ...platform.web.admin import _form_versions, _require_admin, _run, versions_of
from ...platform.web.condition_rows import field_choices, rows_from_filter, rows_from_form
from ...platform.web.conditions import condition_text, parse_condition
from ...platform.web.core import current_service, notify, render_page, runtime
from ...platform.web.i18n import current_locale, t

require_admin = _require_admin

MAX_ITEMS = 20  # steps, actions, transitions


# --- labels and choices ------------------------------------------------------------------------


def label_values(label: Any) -> tuple[str, str]:
    if isinstance(label, dict):
        return str(label.get("en", "")), str(label.get("zh-CN", ""))
    return (label or "", "") if isinstance(label, str) else ("", "")


def label_of(en: str, zh: str) -> Any:
    en, zh = en.strip(), zh.strip()
    if en and zh:
        return {"en": en, "zh-CN": zh}
    return en or zh or None


def doc_label(doc: dict | None, fallback: str) -> str:
    return label_text((doc or {}).get("label"), current_locale(), fallback)


def object_choices() -> list[tuple[str, str]]:
    registry = current_service().registry
    locale = current_locale()
    return sorted(((n, o.display_label(locale)) for n, o in registry.objects.items()
                   if n not in ("user", "department")), key=lambda p: p[1].casefold())


def role_choices() -> list[tuple[str, str]]:
    registry = current_service().registry
    return sorted(((n, doc_label(d, n)) for n, d in registry.roles.items()), key=lambda p: p[1].casefold())


def user_choices() -> list[tuple[str, str]]:
    """Active users by display name (value: the username, which documents keep)."""
    users = current_service().table("user")
    with runtime().reading() as conn:
        rows = conn.execute(sa.select(users.c.username, users.c.display_name, users.c.active)).fetchall()
    return sorted(((r.username, r.display_name or r.username) for r in rows if r.active is not False),
                  key=lambda p: p[1].casefold())


def field_label(obj, name: str) -> str:
    fdef = obj.all_fields.get(name)
    return fdef.display_label(current_locale()) if fdef else name


def condition_fields(obj) -> dict:
    return {n: f for n, f in obj.all_fields.items() if f.type != "password"}


# --- conditions ----------------------------------------------------------------------------------


def condition_state(flt: Any) -> dict:
    """A stored filter as the form shows it: rows, or JSON when rows cannot show it."""
    rows = rows_from_filter(flt)
    if rows is None:
        return {"rows": [], "json": condition_text(flt), "errors": {}, "json_error": ""}
    return {"rows": rows, "json": None, "errors": {}, "json_error": ""}


def read_condition(prefix: str, obj, problems: dict, key: str, allow_changed: bool = False) -> tuple[Any, dict]:
    """The posted condition `prefix` (rows, or its JSON box), and its state for a re-render.
    A problem is recorded under `key` in `problems` (and beside its row)."""
    fields = condition_fields(obj)
    if f"{prefix}_json" in request.form:
        text = request.form.get(f"{prefix}_json", "")
        flt, messages = parse_condition(text, fields, allow_changed=allow_changed)
        state = {"rows": [], "json": text, "errors": {}, "json_error": " ".join(messages)}
        if messages:
            problems[key] = state["json_error"]
        return flt, state
    flt, rows, row_errors = rows_from_form(request.form, fields, prefix)
    flt = _numbers(flt, fields)
    if row_errors:
        problems[key] = t("automation.fix_rows")
    return flt, {"rows": rows, "json": None, "errors": row_errors, "json_error": ""}


def _numbers(flt: Any, fields: dict) -> Any:
    """Whole numbers typed for decimal / currency / percent fields as numbers (as documents
    write them: `{"amount": {"gte": 500000}}`), so an untouched condition saves unchanged."""
    if flt is None:
        return None
    parts = flt["all"] if set(flt) == {"all"} else [flt]
    out = []
    for part in parts:
        (name, cond), = part.items()
        if name in ("all", "any") and isinstance(cond, list):  # a nested group of the condition rows
            out.append({name: [_numbers(inner, fields) for inner in cond]})
            continue
        if name == "not":
            out.append({"not": _numbers(cond, fields)})
            continue
        fdef = fields.get(name)
        if fdef is not None and fdef.value_type in ("decimal", "currency", "percent"):
            if isinstance(cond, dict):
                cond = {op: _whole(v) for op, v in cond.items()}
            else:
                cond = _whole(cond)
        out.append({name: cond})
    return out[0] if len(out) == 1 else {"all": out}


def _whole(value: Any) -> Any:
    if isinstance(value, str) and value.lstrip("-").isdigit() and len(value) < 16:
        return int(value)
    return value


def choices_for(obj) -> list[dict]:
    return field_choices(condition_fields(obj))


# --- moving items in a list ----------------------------------------------------------------------


def list_command(action: str, items: list, blank: dict, prefix: str) -> bool:
    """Apply `add_<prefix>`, `remove_<prefix>:<i>`, `up_<prefix>:<i>`, `down_<prefix>:<i>` to
    `items` in place; True when the action was one of them (the form is shown again)."""
    verb, _, index = action.partition(":")
    if verb == f"add_{prefix}":
        if len(items) < MAX_ITEMS:
            items.append(blank)
        return True
    if verb not in (f"remove_{prefix}", f"up_{prefix}", f"down_{prefix}"):
        return False
    try:
        i = int(index)
    except ValueError:
        return True
    if not 0 <= i < len(items):
        return True
    if verb == f"remove_{prefix}":
        items.pop(i)
    elif verb == f"up_{prefix}" and i > 0:
        items[i - 1], items[i] = items[i], items[i - 1]
    elif verb == f"down_{prefix}" and i < len(items) - 1:
        items[i + 1], items[i] = items[i], items[i + 1]
    return True


# --- saving --------------------------------------------------------------------------------------


def place_issues(issues: list[dict], document: str, mapper) -> tuple[dict, list[dict]]:
    """Validation issues of `document` go beside their input (mapper(path parts) -> form key or
    None); the rest stay on top."""
    placed: dict[str, str] = {}
    rest = []
    for issue in issues:
        parts = [p for p in str(issue.get("path", "")).strip("/").split("/") if p]
        key = mapper(parts) if issue.get("document") == document else None
        if key:
            placed.setdefault(key, issue["message"])
        else:
            rest.append(issue)
    return placed, rest


def save(kind: str, name: str, doc: dict | None, existing: dict | None, errors: dict, mapper, render,
         redirect):
    """Preview (the dry-run diff) or apply `doc`; `render(status, **outcome)` re-renders the form.

    A new document is expected absent; an edited one at the version the form loaded."""
    action = request.form.get("_action", "preview")
    document = f"{kind}/{name}"
    issues: list[dict] = []
    loaded = request.form.get("versions") or None
    try:
        expected = _form_versions() if existing is not None else {(kind, name): ABSENT}
    except BadRequest as exc:
        issues.append({"document": document, "path": "/", "message": exc.message})
        expected = {}
    if errors or doc is None or issues:
        if not issues:
            issues = [{"document": document, "path": "/", "message": t("studio.fix_fields")}]
        return render(400, issues=issues, versions=loaded)
    outcome = _run([doc], [], "apply" if action == "apply" else "preview", expected)
    status = outcome.pop("status")
    stale = outcome.pop("stale", False)
    if "issues" in outcome:
        placed, rest = place_issues(outcome.pop("issues"), document, mapper)
        errors.update(placed)
        if placed and not rest:
            rest = [{"document": document, "path": "/", "message": t("studio.fix_fields")}]
        outcome["issues"] = rest
    if stale:
        loaded = versions_of([(kind, name)])  # a new review starts from the live document
    if action == "apply" and "result" in outcome:
        notify(t("admin.applied", version=outcome["result"].version) if not outcome["unchanged"]
               else t("admin.no_changes"))
        return redirect()
    return render(status, versions=loaded, **outcome)


def versions_value(kind: str, name: str | None) -> str:
    return versions_of([(kind, name)]) if name else json.dumps({})


def page(template: str, status: int = 200, **context):
    return render_page(template, status, **context)
