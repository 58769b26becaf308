"""Saved views (`view` metadata): which views a user may use on an object, the one a list opens
with (remembered per user and object), saving a personal view, and the kanban board's column
totals within the user's read scope.

A personal view is a `view` document whose `owner` is the user who saved it; it is listed only
for that user (the metadata read endpoints are admin-only for this kind, so nobody else lists
it). Shared views name the roles that may use them. A view only narrows a list: every read goes
through RecordService.list as the user, so the read scope and hidden fields always apply.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from typing import Any

import sqlalchemy as sa

from ..metadata.bundle import documents_bundle
from ..metadata.model import ObjectDef, label_text
from . import db
from . import filters as flt
from .errors import BadRequest, Forbidden, NotFound, ValidationFailed

NUMBER_TYPES = ("integer", "decimal", "currency", "percent")
ALL = "_all"  # the "no saved view" choice (the layout's own list)
MAX_PERSONAL = 50


def usable_views(service, object_name: str) -> list[dict]:
    """The views of `object_name` the user may use: their own personal views, and the shared
    views naming one of their roles (or `*`). Shared first, by order then label."""
    principal = service.principal
    out = []
    for doc in service.registry.for_object("view", object_name):
        owner = doc.get("owner")
        if owner is not None:
            if owner == principal.user_id:
                out.append(doc)
            continue
        roles = set(doc.get("roles") or ["*"])
        if "*" in roles or roles & set(principal.roles) or service.access.is_admin:
            out.append(doc)
    locale = principal.locale
    return sorted(out, key=lambda d: (d.get("owner") is not None, int(d.get("order", 1000)),
                                      label_text(d.get("label"), locale, d["name"]).casefold()))


def view_summary(doc: dict, locale: str) -> dict:
    return {"name": doc["name"], "label": label_text(doc.get("label"), locale, doc["name"]),
            "labels": doc.get("label") if isinstance(doc.get("label"), dict) else None,
            "object": doc["object"], "mode": doc.get("mode", "list"), "columns": doc.get("columns"),
            "filter": doc.get("filter"), "sort": doc.get("sort"), "kanban_field": doc.get("kanban_field"),
            "sum_field": doc.get("sum_field"), "personal": doc.get("owner") is not None,
            "roles": doc.get("roles"), "default_for_roles": doc.get("default_for_roles") or []}


def _setting_key(user_id: str, object_name: str) -> str:
    digest = hashlib.sha256(f"{user_id}\x00{object_name}".encode()).hexdigest()[:40]
    return f"lastview:{digest}"


def remembered(service, object_name: str) -> str | None:
    if not service.principal.user_id:
        return None
    key = _setting_key(service.principal.user_id, object_name)
    with service._reading() as conn:
        value = conn.execute(sa.select(db.setting.c.value).where(db.setting.c.key == key)).scalar()
    try:
        return json.loads(value).get("view") if value else None
    except (ValueError, AttributeError):
        return None


def remember(service, object_name: str, name: str) -> None:
    """Keep `name` (a view, or ALL) as the user's last choice on this object's list."""
    if not service.principal.user_id:
        return
    key = _setting_key(service.principal.user_id, object_name)
    with service.runtime.transaction() as tx:
        tx.conn.execute(db.setting.delete().where(db.setting.c.key == key))
        tx.conn.execute(db.setting.insert().values(key=key, value=json.dumps({"view": name})))


def default_view(service, object_name: str, views: list[dict]) -> dict | None:
    """The view a list opens with: the remembered one, else the first shared view that is a
    default for one of the user's roles, else none (the layout's list)."""
    last = remembered(service, object_name)
    if last == ALL:
        return None
    found = next((v for v in views if v["name"] == last), None)
    if found is not None:
        return found
    roles = set(service.principal.roles)
    return next((v for v in views if v.get("owner") is None and roles & set(v.get("default_for_roles") or [])), None)


def find_view(service, object_name: str, name: str) -> dict:
    doc = next((v for v in usable_views(service, object_name) if v["name"] == name), None)
    if doc is None:
        raise NotFound(f"No view named {name!r} on {object_name}.", code="unknown_view")
    return doc


def visible_fields(service, obj: ObjectDef) -> dict:
    hidden = service.access.hidden_fields(obj.name)
    return {n: f for n, f in obj.all_fields.items() if n not in hidden and f.type != "password"}


def sum_field(service, obj: ObjectDef, view: dict) -> str | None:
    """The field a board sums per column: the view's, else the first currency field (None when
    the user may not see it)."""
    visible = visible_fields(service, obj)
    name = view.get("sum_field") or next((n for n, f in obj.fields.items() if f.value_type == "currency"), None)
    return name if name in visible and visible[name].value_type in NUMBER_TYPES else None


def column_totals(service, obj: ObjectDef, field: str, condition: Any, total_field: str | None) -> dict:
    """{value: (count, sum)} of the records the user may read that match `condition`."""
    table = service.table(obj.name)
    visible = visible_fields(service, obj)
    where = [table.c.deleted_at.is_(None), service.access.row_filter(obj.name, "read", table)]
    if condition not in (None, {}, ""):
        ctx = flt.FilterContext.current(service.principal.user_id, service.principal.department)
        try:
            where.append(flt.compile_sql(condition, table, visible, ctx))
        except flt.FilterError as exc:
            raise BadRequest(f"Bad filter at {exc.path or '/'}: {exc.message}", code="bad_filter",
                             path=exc.path) from None
    column = table.c[field]
    measures = [sa.func.count()]
    if total_field:
        measures.append(sa.func.sum(table.c[total_field]))
    query = sa.select(column, *measures).where(*where).group_by(column)
    with service._reading() as conn:
        rows = conn.execute(query).all()
    return {row[0]: (row[1], row[2] if total_field else None) for row in rows}


_SLUG = re.compile(r"[^a-z0-9_]+")


def save_view(service, object_name: str, spec: dict, shared: bool = False) -> dict:
    """Save a view from the list page or the API. A personal view gets the caller as `owner`;
    a shared one (admins only) names `roles`. The document is checked like any metadata
    (field names, filter, sort) and may not name a field the caller cannot see."""
    from .apply import apply_change  # apply imports the registry machinery

    if not isinstance(spec, dict):
        raise BadRequest("The body must be a JSON object.", code="bad_view")
    obj = service.obj(object_name)
    if not service.access.can(obj.name, "read"):
        raise NotFound(f"Unknown object {object_name!r}.", code="unknown_object")
    if not service.principal.user_id:
        raise Forbidden("Only a user can save a view.", code="forbidden")
    if shared and not service.access.has_permission("metadata.apply"):
        raise Forbidden("Only administrators may share a view with roles.", code="forbidden")
    allowed = {"name", "label", "columns", "filter", "sort", "mode", "kanban_field", "sum_field", "order"}
    if shared:
        allowed |= {"roles", "default_for_roles", "description"}
    unknown = sorted(set(spec) - allowed - {"object", "kind"})
    if unknown:
        raise BadRequest(f"Unknown keys: {', '.join(unknown)}.", code="bad_view",
                         fields={k: ["Unknown key."] for k in unknown})
    label = spec.get("label")
    if not label or (isinstance(label, str) and not label.strip()):
        raise ValidationFailed("A view needs a label.", code="bad_view", fields={"label": ["Required."]})
    doc: dict[str, Any] = {k: v for k, v in spec.items() if k in allowed}
    if isinstance(label, str):
        doc["label"] = label.strip()[:100]
    doc["kind"], doc["object"] = "view", obj.name
    visible = visible_fields(service, obj)
    if not isinstance(doc.get("columns") or [], list):
        raise BadRequest("columns must be a list of field names.", code="bad_view",
                         fields={"columns": ["Not a list."]})
    names = list(doc.get("columns") or []) + [p.lstrip("-") for p in str(doc.get("sort") or "").split(",") if p]
    names += [doc[k] for k in ("kanban_field", "sum_field") if isinstance(doc.get(k), str)]
    if doc.get("filter") not in (None, {}):
        names += sorted(flt.referenced_fields(doc["filter"]))
    hidden = sorted({n for n in names if isinstance(n, str) and n in obj.all_fields and n not in visible})
    if hidden:
        raise ValidationFailed("A view may only name fields you can see.", code="bad_view",
                               fields={n: ["Not a field you can see."] for n in hidden})
    existing = service.registry.get("view", str(doc.get("name") or ""))
    if existing is not None and (existing.get("object") != obj.name or (
            existing.get("owner") != service.principal.user_id and not shared)):
        raise Forbidden("That view is not yours to change.", code="forbidden")
    if not shared and doc.get("name") and existing is None and not str(doc["name"]).startswith("my_"):
        raise BadRequest("A personal view's name starts with 'my_' (or leave the name out).", code="bad_view",
                         fields={"name": ["Must start with my_."]})
    if not shared:
        doc["owner"] = service.principal.user_id
        mine = [v for v in service.registry.for_object("view", obj.name) if v.get("owner") == doc["owner"]]
        if existing is None and len(mine) >= MAX_PERSONAL:
            raise BadRequest(f"You have {MAX_PERSONAL} views of this object already; delete one first.",
                             code="too_many_views")
    if not doc.get("name"):
        prefix = "my" if not shared else "shared"
        doc["name"] = f"{prefix}_{secrets.token_hex(5)}_{_SLUG.sub('', obj.name)}"[:63]
    apply_change(service.runtime, documents_bundle([doc]))
    return doc


def delete_view(service, name: str, object_name: str | None = None) -> None:
    """Delete a personal view of one's own (an admin may delete any view)."""
    from .apply import apply_change

    doc = service.registry.get("view", name)
    admin = service.access.has_permission("metadata.apply")
    if doc is None or (object_name is not None and doc.get("object") != object_name) or (doc.get("owner") != service.principal.user_id and not admin) or (
            doc.get("owner") is None and not admin):
        raise NotFound(f"No view named {name!r}.", code="unknown_view")
    apply_change(service.runtime, documents_bundle([]), deletes=[("view", name)])
