"""Admin → Roles: the permissions grid, so an admin never types role JSON.

- `/admin/roles`: every role (label in the reader's language), and a form that creates one.
- `/admin/roles/<name>`: one row per object, one column per action the role schema knows
  (`role.schema.json`, not a list kept here), each cell a scope picker.
- `/admin/roles/<name>/fields/<object>`: hidden / read-only / editable per field.
- The create-object form's "Who can use it" section (`grant_choices`, `grant_documents`), which
  writes the new object's entry into the role documents in the same apply as the object.

Every save goes through `admin._run` (the raw editor's `apply_change`, dry run first): the page
shows the diff of the role document, and applying sends the version the form loaded, so a
change someone else applied in between is refused. An administrator role (`admin: true`)
bypasses every grant (`security.Access.is_admin`); its page says "full access" and has no grid.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from flask import request, url_for

from ...metadata.bundle import documents_bundle
from ...metadata.model import NAME_RE, label_text
from ...metadata.schema import schema_for
from ..apply import apply_change
from ..errors import BadRequest, MetadataInvalid, NotFound, StaleVersion
from ..metastore import ABSENT, document_version
from .admin import _form_versions, _issues, _labels, _require_admin, _run, slug, versions_of
from .core import NavEntry, add_nav, current_service, notify, page, redirect_to, render_page, runtime
from .i18n import current_locale, t

# Actions a role may leave unset to mean "as the read scope" (Access.effective_action,
# reports.scope.report_action); for the others an unset action is "none".
AS_READ_ACTIONS = ("report", "claim", "approve")
FIELD_ACCESS = ("edit", "read_only", "hidden")  # "edit" is written as no entry (the runtime's default)
# A record is addressed by these; hiding them would break every page and the API for the role.
UNHIDEABLE = ("id", "version", "deleted_at")
# The scopes an action in the "who can use it" section grants (claim / approve / report stay "as read").
GRANT_ACTIONS = ("create", "read", "edit", "delete", "export")


@functools.cache
def _action_schema() -> dict[str, dict]:
    return schema_for("role")["properties"]["objects"]["additionalProperties"]["properties"]


def role_actions() -> tuple[str, ...]:
    """The actions the runtime knows for roles, in the schema's order."""
    return tuple(_action_schema())


def role_scopes() -> tuple[str, ...]:
    """The scopes the schema allows (none / own / department / subtree / all)."""
    return tuple(next(iter(_action_schema().values()))["enum"])


def _role_label(doc: dict | None, name: str) -> str:
    return label_text((doc or {}).get("label"), current_locale(), name)


def _live_role(name: str) -> dict:
    doc = current_service().registry.get("role", name)
    if doc is None:
        raise NotFound(f"No role named {name!r}.", code="unknown_role")
    return doc


def _objects(registry) -> list[tuple[str, str]]:
    locale = current_locale()
    pairs = [(name, obj.display_label(locale)) for name, obj in registry.objects.items()]
    return sorted(pairs, key=lambda pair: pair[1].casefold())


def _scope_options(action: str) -> list[tuple[str, str]]:
    options = [(scope, t(f"roles.scope_{scope}")) for scope in role_scopes()]
    if action in AS_READ_ACTIONS:
        options.insert(0, ("", t("roles.scope_as_read")))
    return options


def _action_label(action: str) -> str:
    key = f"roles.action_{action}"
    text = t(key)
    return _action_schema()[action].get("description", action) if text == key else text


# --- the list and a new role -------------------------------------------------------------------


def _roles_context(**extra: Any) -> dict:
    registry = current_service().registry
    directory = runtime().directory()
    roles = []
    for name, doc in sorted(registry.roles.items(), key=lambda item: _role_label(item[1], item[0]).casefold()):
        parent = doc.get("parent")
        roles.append({"name": name, "label": _role_label(doc, name), "admin": bool(doc.get("admin")),
                      "parent": _role_label(registry.roles.get(parent), parent) if parent else "",
                      "objects": sum(1 for grants in (doc.get("objects") or {}).values()
                                     if any(v != "none" for v in grants.values())),
                      "users": len(directory.users_with_roles({name})),
                      "href": url_for("web.admin_role", name=name)})
    choices = [(r["name"], r["label"]) for r in roles]
    return dict(roles=roles, choices=choices, values=extra.pop("values", {}), errors=extra.pop("errors", {}),
                issues=extra.pop("issues", []), **extra)


@page("/admin/roles")
def admin_roles():
    _require_admin()
    return render_page("admin/roles.html", **_roles_context())


@page("/admin/roles", methods=("POST",), endpoint="admin_role_create")
def admin_role_create():
    _require_admin()
    registry = current_service().registry
    values = {k: request.form.get(k, "").strip() for k in ("name", "label_en", "label_zh", "parent", "copy_from")}
    name = values["name"] or slug(values["label_en"])
    errors: dict[str, str] = {}
    if not NAME_RE.match(name or ""):
        errors["name"] = t("admin.bad_name")
    elif registry.get("role", name) is not None:
        errors["name"] = t("roles.exists")
    if not values["label_en"] and not values["label_zh"]:
        errors["label_en"] = t("form.required_missing")
    for key in ("parent", "copy_from"):
        if values[key] and values[key] not in registry.roles:
            errors[key] = t("roles.unknown_role")
    issues: list[dict] = []
    if not errors:
        doc: dict[str, Any] = {"kind": "role", "name": name,
                               "label": _labels(values["label_en"], values["label_zh"])}
        if values["parent"]:
            doc["parent"] = values["parent"]
        source = registry.roles.get(values["copy_from"]) if values["copy_from"] else None
        if source and not source.get("admin"):
            for key in ("objects", "fields"):
                if source.get(key):
                    doc[key] = copy.deepcopy(source[key])
        try:
            apply_change(runtime(), documents_bundle([doc]), expected={("role", name): ABSENT})
        except MetadataInvalid as exc:
            issues = _issues(exc)
        except StaleVersion:
            errors["name"] = t("roles.exists")
        else:
            notify(t("roles.created", name=_role_label(doc, name)))
            return redirect_to("web.admin_role", name=name)
    return render_page("admin/roles.html", 400, **_roles_context(values=values, errors=errors, issues=issues))


# --- the object × action grid ------------------------------------------------------------------


def _grid_values(doc: dict) -> dict[str, str]:
    """'object:action' -> the scope the document says ('' = unset, for the as-read actions)."""
    values = {}
    grants = doc.get("objects") or {}
    for obj_name in current_service().registry.objects:
        for action in role_actions():
            given = (grants.get(obj_name) or {}).get(action)
            values[f"{obj_name}:{action}"] = given if given else ("" if action in AS_READ_ACTIONS else "none")
    return values


def _read_grid(live: dict) -> tuple[dict[str, str], dict[str, str], list[dict]]:
    """The posted cells (a cell the form did not send keeps the live value), errors per cell,
    and form-level issues (cells for objects or actions that do not exist)."""
    values = _grid_values(live)
    errors: dict[str, str] = {}
    issues = []
    for key in request.form:
        if not key.startswith("scope:"):
            continue
        cell = key.removeprefix("scope:")
        if cell not in values:
            issues.append({"document": f"role/{live['name']}", "path": cell,
                           "message": t("roles.unknown_cell", cell=cell)})
            continue
        sent = request.form.get(key, "")
        allowed = [value for value, _ in _scope_options(cell.split(":", 1)[1])]
        if sent not in allowed:
            errors[cell] = t("roles.bad_scope")
        values[cell] = sent
    return values, errors, issues


def _role_with_grid(live: dict, values: dict[str, str]) -> dict:
    """The role document with the grid's scopes: unset and (for the other actions) an unset
    "none" stay unwritten, so saving an untouched grid changes nothing."""
    doc = copy.deepcopy(live)
    old = live.get("objects") or {}
    objects: dict[str, dict] = {}
    for obj_name in list(old) + [n for n in current_service().registry.objects if n not in old]:
        entry = dict(old.get(obj_name) or {})
        for action in role_actions():
            value = values.get(f"{obj_name}:{action}")
            if value is None:
                continue
            if value == "" or (value == "none" and action not in AS_READ_ACTIONS and action not in entry):
                entry.pop(action, None)
            else:
                entry[action] = value
        if entry or obj_name in old:
            objects[obj_name] = entry
    if objects:
        doc["objects"] = objects
    else:
        doc.pop("objects", None)
    return doc


def _cell_errors(issues: list[dict], name: str) -> tuple[dict[str, str], list[dict]]:
    """Validation issues at /objects/<object>/<action> go beside their cell; the rest on top."""
    cells, rest = {}, []
    for issue in issues:
        parts = str(issue.get("path", "")).strip("/").split("/")
        if issue.get("document") == f"role/{name}" and len(parts) >= 2 and parts[0] in ("objects", "fields"):
            key = f"{parts[1]}:{parts[2]}" if len(parts) > 2 else parts[1]
            cells[key] = issue["message"]
        else:
            rest.append(issue)
    return cells, rest


def _role_context(live: dict, values: dict[str, str], **extra: Any) -> dict:
    registry = current_service().registry
    name = live["name"]
    rows = []
    for obj_name, obj_label in _objects(registry):
        hidden = ((live.get("fields") or {}).get(obj_name) or {})
        rows.append({"name": obj_name, "label": obj_label,
                     "fields_href": url_for("web.admin_role_fields", name=name, object_name=obj_name),
                     "restricted": len(hidden)})
    actions = [{"name": a, "label": _action_label(a), "options": _scope_options(a)} for a in role_actions()]
    return dict(role=live, role_label=_role_label(live, name), is_admin=bool(live.get("admin")), rows=rows,
                actions=actions, values=values, errors=extra.pop("errors", {}), issues=extra.pop("issues", []),
                versions=extra.pop("versions", None) or versions_of([("role", name)]), **extra)


def _save(live: dict, doc: dict, values: dict, errors: dict, issues: list[dict], template: str,
          context, redirect: tuple[str, dict]):
    """Preview (the diff) or apply a changed role document; re-render on any problem."""
    name = live["name"]
    loaded = request.form.get("versions") or None
    action = request.form.get("_action", "preview")
    outcome: dict[str, Any] = {}
    try:
        expected = _form_versions()
    except BadRequest as exc:
        issues = issues + [{"document": f"role/{name}", "path": "/", "message": exc.message}]
        expected = {}
    if live.get("admin"):
        issues = issues + [{"document": f"role/{name}", "path": "/", "message": t("roles.admin_fixed")}]
    status = 400
    if not errors and not issues:
        outcome = _run([doc], [], action, expected)
        status = outcome.pop("status")
        stale = outcome.pop("stale", False)
        if "issues" in outcome:
            cells, issues = _cell_errors(outcome.pop("issues"), name)
            errors.update(cells)
            if cells and not issues:
                issues = [{"document": f"role/{name}", "path": "/", "message": t("roles.fix_cells")}]
        if stale:
            loaded = None  # the page now shows the live document; a new save starts from it
        if action == "apply" and "result" in outcome:
            notify(t("admin.applied", version=outcome["result"].version) if not outcome["unchanged"]
                   else t("admin.no_changes"))
            return redirect_to(redirect[0], **redirect[1])
    if errors and not issues:
        issues = [{"document": f"role/{name}", "path": "/", "message": t("roles.fix_cells")}]
    shown = live if loaded is None and status == 409 else None
    ctx = context(shown or live, values if shown is None else None, errors=errors, issues=issues,
                  versions=loaded, **outcome)
    return render_page(template, status, **ctx)


@page("/admin/roles/<name>", methods=("GET", "POST"))
def admin_role(name: str):
    _require_admin()
    live = _live_role(name)
    if request.method == "GET":
        return render_page("admin/role.html", **_role_context(live, _grid_values(live)))
    values, errors, issues = _read_grid(live)
    doc = _role_with_grid(live, values)

    def context(role, shown, **extra):
        return _role_context(role, shown if shown is not None else _grid_values(role), **extra)

    return _save(live, doc, values, errors, issues, "admin/role.html", context, ("web.admin_role", {"name": name}))


# --- the field-access grid of one object -----------------------------------------------------


def _field_rows(obj) -> list[dict]:
    locale = current_locale()
    return [{"name": f.name, "label": f.display_label(locale), "system": f.system,
             "fixed": f.read_only or f.type in ("formula", "rollup", "autonumber")}
            for f in sorted(obj.all_fields.values(), key=lambda f: f.system)  # the object's own fields first
            if f.type != "password" and f.name not in UNHIDEABLE]


def _fields_context(live: dict, object_name: str, values: dict[str, str] | None, **extra: Any) -> dict:
    registry = current_service().registry
    obj = registry.object(object_name)
    settings = (live.get("fields") or {}).get(object_name) or {}
    if values is None:
        values = {row["name"]: settings.get(row["name"], "edit") for row in _field_rows(obj)}
    grants = (live.get("objects") or {}).get(object_name) or {}
    return dict(role=live, role_label=_role_label(live, live["name"]), obj=obj,
                obj_label=obj.display_label(current_locale()), rows=_field_rows(obj), values=values,
                choices=[(v, t(f"roles.field_{v}")) for v in FIELD_ACCESS], is_admin=bool(live.get("admin")),
                can_read=grants.get("read", "none") != "none", can_edit=grants.get("edit", "none") != "none",
                errors=extra.pop("errors", {}), issues=extra.pop("issues", []),
                versions=extra.pop("versions", None) or versions_of([("role", live["name"])]), **extra)


@page("/admin/roles/<name>/fields/<object_name>", methods=("GET", "POST"))
def admin_role_fields(name: str, object_name: str):
    _require_admin()
    live = _live_role(name)
    registry = current_service().registry
    if not registry.has_object(object_name):
        raise NotFound(f"Unknown object {object_name!r}.", code="unknown_object")
    if request.method == "GET":
        return render_page("admin/role_fields.html", **_fields_context(live, object_name, None))
    obj = registry.object(object_name)
    settings = dict((live.get("fields") or {}).get(object_name) or {})
    values = {row["name"]: settings.get(row["name"], "edit") for row in _field_rows(obj)}
    errors: dict[str, str] = {}
    issues: list[dict] = []
    for key in request.form:
        if not key.startswith("field:"):
            continue
        field_name = key.removeprefix("field:")
        if field_name not in values:
            issues.append({"document": f"role/{name}", "path": f"/fields/{object_name}/{field_name}",
                           "message": t("roles.unknown_field", field=field_name)})
            continue
        sent = request.form.get(key, "")
        if sent not in FIELD_ACCESS:
            errors[field_name] = t("roles.bad_field_access")
        values[field_name] = sent
    for field_name, value in values.items():
        if value == "edit" or value not in FIELD_ACCESS:
            settings.pop(field_name, None)
        else:
            settings[field_name] = value
    doc = copy.deepcopy(live)
    fields = dict(doc.get("fields") or {})
    if settings:
        fields[object_name] = settings
    else:
        fields.pop(object_name, None)
    if fields:
        doc["fields"] = fields
    else:
        doc.pop("fields", None)

    def context(role, shown, **extra):
        cells = {k.split(":", 1)[-1] if ":" in k else k: v for k, v in extra.pop("errors", {}).items()}
        return _fields_context(role, object_name, shown, errors=cells, **extra)

    return _save(live, doc, values, errors, issues, "admin/role_fields.html", context,
                 ("web.admin_role_fields", {"name": name, "object_name": object_name}))


# --- "who can use it" on the create-object form --------------------------------------------------


def _default_grant(registry, name: str) -> str:
    """Reps (a role under another) their own records, managers (a role others sit under) their
    subtree, roles outside the hierarchy nothing until the admin says so."""
    has_children = any(doc.get("parent") == name for doc in registry.roles.values())
    if has_children:
        return "subtree"
    return "own" if registry.roles[name].get("parent") else "none"


def grant_choices(values: dict) -> dict:
    """The create-object form's "Who can use it" section: per role, the scope choices."""
    registry = current_service().registry
    rows, admins = [], []
    for name, doc in sorted(registry.roles.items(), key=lambda item: _role_label(item[1], item[0]).casefold()):
        if doc.get("admin"):
            admins.append(_role_label(doc, name))
            continue
        rows.append({"name": name, "label": _role_label(doc, name),
                     "value": values.get(f"grant:{name}") or _default_grant(registry, name)})
    return {"grant_roles": rows, "grant_admins": admins,
            "grant_options": [(scope, t(f"roles.grant_{scope}")) for scope in role_scopes()]}


def grant_documents(object_name: str, values: dict, errors: dict) -> tuple[list[dict], dict]:
    """The role documents that give the new object the chosen scopes, and their versions (as
    this request read them: a role changed before the apply refuses the whole change)."""
    registry = current_service().registry
    documents, expected = [], {}
    scopes = role_scopes()
    for name, doc in registry.roles.items():
        if doc.get("admin"):
            continue
        chosen = values.get(f"grant:{name}") or _default_grant(registry, name)
        if chosen not in scopes:
            errors[f"grant:{name}"] = t("roles.bad_scope")
            continue
        if chosen == "none":
            continue
        changed = copy.deepcopy(doc)
        changed.setdefault("objects", {})[object_name] = {action: chosen for action in GRANT_ACTIONS
                                                          if action in role_actions()}
        documents.append(changed)
        expected[("role", name)] = document_version(doc)
    return documents, expected


def grant_values(form) -> dict:
    return {key: form.get(key, "").strip() for key in form if key.startswith("grant:")}


add_nav(NavEntry("admin_roles", "nav.admin_roles", "web.admin_roles", section="admin", order=15,
                 visible=lambda access: access.has_permission("metadata.apply")))
