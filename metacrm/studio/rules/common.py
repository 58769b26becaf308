"""What the pool form and the duplicate-rule form share: people pickers (roles, departments and
users by their display names), whole-number inputs, validation issues beside their input, and the
review → diff → apply step (the raw editor's `admin._run`, the version the form loaded checked)."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from flask import request

from ...metadata.model import NAME_RE, label_text
from ...platform.errors import BadRequest
from ...platform.metastore import ABSENT
from ...platform.web.admin import _form_versions, _labels, _run, slug, versions_of
from ...platform.web.core import current_service, runtime
from ...platform.web.i18n import current_locale, t

PRINCIPAL_KINDS = ("roles", "departments", "users")


# --- people -------------------------------------------------------------------------------------


def role_choices() -> list[tuple[str, str]]:
    locale = current_locale()
    roles = current_service().registry.roles
    return sorted(((name, label_text(doc.get("label"), locale, name)) for name, doc in roles.items()),
                  key=lambda pair: pair[1].casefold())


def department_choices() -> list[tuple[str, str]]:
    """(name, shown) of every department: a principals spec names departments by name."""
    table = current_service().table("department")
    with runtime().reading() as conn:
        rows = conn.execute(sa.select(table.c.name).where(table.c.deleted_at.is_(None))
                            .order_by(table.c.name)).fetchall()
    return [(r.name, r.name) for r in rows if r.name]


def user_choices() -> list[tuple[str, str]]:
    """(username, "Display name (username)") of every active user."""
    users = current_service().table("user")
    with runtime().reading() as conn:
        rows = conn.execute(sa.select(users.c.username, users.c.display_name)
                            .where(users.c.deleted_at.is_(None), users.c.active.isnot(False))
                            .order_by(users.c.username)).fetchall()
    return [(r.username, f"{r.display_name} ({r.username})" if r.display_name else r.username) for r in rows]


def people_choices() -> dict[str, list[tuple[str, str]]]:
    return {"roles": role_choices(), "departments": department_choices(), "users": user_choices()}


def principals_values(spec: dict | None) -> dict[str, list[str]]:
    spec = spec or {}
    return {kind: [str(v) for v in spec.get(kind) or []] for kind in PRINCIPAL_KINDS}


def in_order(chosen: list, before: list | None) -> list:
    """The chosen values in the order the live document had them, new ones after."""
    before = [v for v in before or [] if v in chosen]
    return before + [v for v in chosen if v not in before]


def read_principals(prefix: str, choices: dict, errors: dict, live: dict | None = None
                    ) -> tuple[dict | None, dict[str, list[str]]]:
    """A principals spec from `<prefix>.roles` / `.departments` / `.users` (multi-valued)."""
    values = {kind: in_order([v for v in dict.fromkeys(request.form.getlist(f"{prefix}.{kind}")) if v],
                             (live or {}).get(kind)) for kind in PRINCIPAL_KINDS}
    spec = {}
    for kind in PRINCIPAL_KINDS:
        known = {value for value, _ in choices[kind]}
        unknown = [v for v in values[kind] if v not in known]
        if unknown:
            errors[f"{prefix}.{kind}"] = t("studio.unknown_choice", value=", ".join(unknown))
        if values[kind]:
            spec[kind] = values[kind]
    return spec or None, values


# --- inputs -------------------------------------------------------------------------------------


def whole_number(values: dict, errors: dict, key: str, minimum: int | None = 0) -> int | None:
    """values[key] as an int (None when blank); a problem beside the input otherwise."""
    text = (values.get(key) or "").strip()
    if text == "":
        return None
    try:
        number = int(text)
    except ValueError:
        errors[key] = t("studio.whole_number")
        return None
    if minimum is not None and number < minimum:
        errors[key] = t("studio.at_least", minimum=minimum)
        return None
    return number


def document_name(kind: str, values: dict, errors: dict, is_new: bool, current: str | None) -> str:
    if not is_new:
        return current or ""
    name = values.get("name") or slug(values.get("label_en", ""))
    values["name"] = name
    if not NAME_RE.match(name or ""):
        errors["name"] = t("admin.bad_name")
    elif current_service().registry.get(kind, name) is not None:
        errors["name"] = t("studio.exists")
    return name


def labels_of(values: dict, errors: dict) -> Any:
    label = _labels(values.get("label_en", ""), values.get("label_zh", ""))
    if label is None:
        errors["label_en"] = t("form.required_missing")
    return label


# --- review and apply ---------------------------------------------------------------------------


def issue_key(path: str) -> str:
    """/claim/max_held -> claim.max_held; /recycle/0/reason -> recycle.0.reason."""
    return ".".join(p for p in str(path or "").strip("/").split("/") if p)


def place_issues(issues: list[dict], kind: str, name: str, inputs: set[str], errors: dict) -> list[dict]:
    """Validation issues of the document whose path names an input go beside it; the rest on top."""
    rest = []
    for issue in issues:
        key = issue_key(issue.get("path", ""))
        if issue.get("document") == f"{kind}/{name}":
            target = next((k for k in (key, key.rsplit(".", 1)[0]) if k in inputs), None)
            if target:
                errors.setdefault(target, issue["message"])
                continue
        rest.append(issue)
    return rest


def review(kind: str, name: str, doc: dict, is_new: bool, action: str) -> dict:
    """Dry run (or apply) of one document; the outcome for admin/_outcome.html, its status, and the
    versions the next submit sends (the ones this form loaded, or the live ones after a 409)."""
    loaded = request.form.get("versions") or None
    try:
        expected = {(kind, name): ABSENT} if is_new else _form_versions()
    except BadRequest as exc:
        return {"issues": [{"document": f"{kind}/{name}", "path": "/", "message": exc.message}], "status": 400,
                "versions": loaded}
    outcome = _run([doc], [], action, expected)
    if outcome.pop("stale", False):
        loaded = None if is_new else versions_of([(kind, name)])
    outcome["versions"] = loaded or (None if is_new else versions_of([(kind, name)]))
    return outcome


def loaded_versions(kind: str, name: str, is_new: bool) -> str:
    return "" if is_new else versions_of([(kind, name)])


def same_parts(new: Any, old: Any) -> bool:
    """Two filters that AND the same conditions, in any order."""
    def parts(flt):
        items = flt["all"] if isinstance(flt, dict) and set(flt) == {"all"} and isinstance(flt["all"], list) else [flt]
        return sorted(as_json(p) for p in items)
    return new is not None and old is not None and parts(new) == parts(old)


def as_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
