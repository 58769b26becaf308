"""Layouts and the forms generated from them.

A layout names sections of fields, the fields it requires or makes read-only, related
lists and list columns; an object without one gets a generated layout. The form posts
field values under the field names and its own controls under `_`-prefixed names (field
names never start with `_`). The server is the authority: anything the page did not
offer as editable is refused as tampering, and the record service validates the rest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from ...metadata.model import FieldDef, ObjectDef, label_text
from ..records import RecordService, resolve_default
from . import display
from .i18n import current_locale, message, t

CONTROL_FIELDS = frozenset({"_csrf", "_version", "_id", "_record_type", "_action"})
NOT_ON_FORMS = {"id", "version", "created_at", "created_by", "updated_at", "updated_by", "deleted_at",
                "owner_since", "previous_owner", "last_activity_at", "pool", "protected_until"}
LONG_TYPES = {"textarea", "multipicklist"}


@dataclass
class Section:
    label: str
    columns: int
    fields: list[str]


@dataclass
class Layout:
    """The effective layout for one user, object and record type (hidden fields removed)."""

    obj: ObjectDef
    doc: dict | None
    sections: list[Section]
    required: set[str]
    read_only: set[str]
    related_lists: list[dict]
    list_columns: list[str]
    list_filters: list[str]
    sort: str | None
    hidden: set[str] = field(default_factory=set)


def choose_layout_doc(service: RecordService, obj: ObjectDef, record_type: str | None) -> dict | None:
    """The first layout that applies to this record type and one of the user's roles
    (a specific match beats `*`).

    A layout names the roles it is for: an admin gets one meant for another role only when no
    layout applies to the admin's own roles or to everyone (admins may see every layout, but
    the finance layout must not take over the admin's form). Without a record type (a list of
    all records), a layout for every record type beats one for a single type."""
    roles = set(service.principal.roles)
    best, best_score = None, (-1, -1)
    for doc in service.registry.layouts(obj.name):
        applies = doc.get("applies_to") or {}
        doc_roles = applies.get("roles") or ["*"]
        doc_types = applies.get("record_types") or ["*"]
        mine = "*" in doc_roles or bool(roles & set(doc_roles))
        if not (mine or service.access.is_admin):
            continue
        if not ("*" in doc_types or record_type is None or record_type in doc_types):
            continue
        role_score = 2 if roles & set(doc_roles) else 1 if "*" in doc_roles else 0
        if record_type is not None:
            type_score = 0 if "*" in doc_types else 1  # made for this record type
        else:  # a list of every type: the layout covering the most types (all of them best)
            type_score = len(obj.record_types or []) + 1 if "*" in doc_types else len(set(doc_types))
        score = (role_score, type_score)
        if score > best_score:
            best, best_score = doc, score
    return best


def default_layout_doc(obj: ObjectDef) -> dict:
    """A layout for objects that have none: every own field, two columns."""
    names = [n for n, f in obj.fields.items()]
    list_names = [n for n, f in obj.fields.items() if f.type not in ("textarea", "password", "multipicklist")]
    first = [obj.name_field] if obj.name_field in obj.fields else []
    columns = list(dict.fromkeys(first + list_names))[:5] + ["owner", "created_at"]
    return {
        "kind": "layout", "name": f"{obj.name}_default", "object": obj.name,
        "sections": [{"label": obj.label, "columns": 2, "fields": names}],
        "list_columns": columns,
    }


def layout_for(service: RecordService, obj: ObjectDef, record_type: str | None = None) -> Layout:
    doc = choose_layout_doc(service, obj, record_type)
    source = doc or default_layout_doc(obj)
    access = service.access
    hidden = access.hidden_fields(obj.name) | set(source.get("hidden") or [])
    fields = obj.all_fields
    locale = current_locale()

    def keep(name: str) -> bool:
        return name in fields and name not in hidden

    sections = []
    for index, sec in enumerate(source.get("sections") or []):
        names = [n for n in sec.get("fields") or [] if keep(n)]
        if names:
            fallback = obj.display_label(locale) if index == 0 else ""
            sections.append(Section(label_text(sec.get("label"), locale, fallback), int(sec.get("columns") or 1), names))
    columns = [n for n in source.get("list_columns") or [] if keep(n) and fields[n].type != "password"]
    if not columns:
        columns = [n for n in default_layout_doc(obj)["list_columns"] if keep(n)]
    related = []
    for rel in source.get("related_lists") or []:
        child = rel.get("object")
        if not service.registry.has_object(child) or not access.can(child, "read"):
            continue
        related.append(rel)
    filters = source.get("list_filters")
    if filters is None:
        filters = [n for n, f in obj.fields.items() if f.type in ("picklist", "multipicklist", "boolean")][:4]
    if not any(fields[n].value_type in ("date", "datetime") for n in filters if n in fields):
        filters = list(filters) + ["created_at"]  # every list can be narrowed by date
    return Layout(
        obj=obj, doc=doc, sections=sections,
        required={n for n in source.get("required") or [] if keep(n)},
        read_only=set(source.get("read_only") or []),
        related_lists=related,
        list_columns=columns,
        list_filters=[n for n in filters if keep(n) and fields[n].type != "password"],
        sort=source.get("sort"),
        hidden=hidden,
    )


# --- form fields ---------------------------------------------------------------------------


@dataclass
class FormField:
    fdef: FieldDef
    label: str
    widget: str
    editable: bool
    required: bool
    value: Any = None  # what the input shows: a string, a list (multi-select) or a bool (checkbox)
    shown: display.Shown | None = None  # for read-only fields
    errors: list[str] = field(default_factory=list)
    options: list[tuple[str, str]] = field(default_factory=list)
    step: str | None = None
    current: str | None = None  # the stored value, after a conflict
    lookup: dict | None = None  # {targets: [...], text: current display name}
    help: str | None = None

    @property
    def name(self) -> str:
        return self.fdef.name

    @property
    def long(self) -> bool:
        return self.fdef.type in LONG_TYPES

    @property
    def lookup_json(self) -> str:
        return json.dumps((self.lookup or {}).get("targets", []), ensure_ascii=False)


@dataclass
class Form:
    obj: ObjectDef
    layout: Layout
    sections: list[tuple[Section, list[FormField]]]
    creating: bool
    record: dict | None = None
    version: int | None = None
    record_type: str | None = None
    errors: list[str] = field(default_factory=list)  # problems not tied to a shown field
    conflict: bool = False
    offers: list = field(default_factory=list)  # what the user may do about the error (web_error_offers)
    links: list = field(default_factory=list)  # records the error is about, [{"href", "label"}]

    @property
    def fields(self) -> dict[str, FormField]:
        return {f.name: f for _, fs in self.sections for f in fs}

    def editable_names(self) -> set[str]:
        return {f.name for f in self.fields.values() if f.editable}


WIDGETS = {
    "text": "text", "textarea": "textarea", "email": "email", "phone": "tel", "url": "url",
    "integer": "number", "decimal": "number", "currency": "number", "percent": "number",
    "boolean": "checkbox", "date": "date", "datetime": "datetime", "picklist": "select",
    "multipicklist": "multiselect", "lookup": "lookup", "user": "lookup", "password": "password",
}


def input_value(fdef: FieldDef, value: Any) -> Any:
    """A JSON value as an input shows it."""
    if fdef.value_type == "boolean":
        return bool(value)
    if fdef.value_type == "multipicklist":
        return list(value or [])
    if value is None:
        return ""
    if fdef.value_type == "datetime":
        text = str(value).rstrip("Z")
        return text[:16] if text[16:19] in ("", ":00") else text[:19]
    return str(value)


def lookup_targets(service: RecordService, fdef: FieldDef) -> list[dict]:
    targets = []
    locale = current_locale()
    for target in fdef.target:
        if not service.registry.has_object(target) or not service.access.can(target, "read"):
            continue
        obj = service.registry.object(target)
        hidden = service.access.hidden_fields(target)
        search = [n for n in ([obj.name_field] if obj.name_field else []) + (["username"] if target == "user" else [])
                  if n in obj.all_fields and n not in hidden]
        targets.append({"object": target, "label": obj.display_label(locale), "search": search or ["id"]})
    return targets


def build_form(service: RecordService, obj: ObjectDef, layout: Layout, *, creating: bool,
               record: dict | None = None, posted: MultiDict | None = None, names: display.Names | None = None,
               prefill: dict | None = None) -> Form:
    """The form for `record` (JSON form) or a new record; `posted` re-shows the user's input."""
    allowed, _ = service.writable_fields(obj, creating)
    writable = {f.name for f in allowed}
    role_names = sorted(service.registry.roles)
    locale = current_locale()
    names = names or display.Names(service)
    record = record or {}
    if not creating:
        names.want_record(obj, record, [n for s in layout.sections for n in s.fields])
    sections: list[tuple[Section, list[FormField]]] = []
    for sec in layout.sections:
        items = []
        for name in sec.fields:
            if name in NOT_ON_FORMS and creating:
                continue
            fdef = obj.all_fields[name]
            editable = name in writable and name not in layout.read_only and fdef.type not in (
                "formula", "rollup", "autonumber")
            if fdef.type == "password" and not editable:
                continue
            ff = FormField(
                fdef=fdef, label=fdef.display_label(locale), widget=WIDGETS.get(fdef.type, "text"),
                editable=editable, required=editable and (fdef.required or name in layout.required),
                help=label_text(fdef.help, locale) if fdef.help else None,
            )
            if ff.widget in ("select", "multiselect"):
                ff.options = display.options(fdef, role_names)
            if fdef.value_type in ("decimal", "currency", "percent"):
                ff.step = "1" if not fdef.scale else "0." + "0" * (fdef.scale - 1) + "1"
            elif fdef.value_type == "integer":
                ff.step = "1"
            if ff.widget == "lookup":
                ff.lookup = {"targets": lookup_targets(service, fdef), "text": ""}
            if creating:
                start = (prefill or {}).get(name)
                if start is None and fdef.default is not None and fdef.type not in ("formula", "rollup"):
                    from ..schemas import to_json_value

                    start = to_json_value(fdef, resolve_default(fdef, fdef.default, service.principal))
                ff.value = input_value(fdef, start)
                if ff.widget == "lookup" and start:
                    for target in fdef.target:
                        names.want(target, start)
            else:
                ff.value = input_value(fdef, record.get(name))
            items.append(ff)
        if items:
            sections.append((sec, items))
    form = Form(obj, layout, sections, creating, record if not creating else None,
                record.get("version") if not creating else None)
    if posted is not None:
        keep_input(form, posted)
    for ff in form.fields.values():
        if ff.widget == "lookup" and isinstance(ff.value, str) and ff.value:
            for target in ff.fdef.target:
                names.want(target, ff.value)
    names.resolve()
    for ff in form.fields.values():
        if not ff.editable:
            ff.shown = display.show(ff.fdef, record.get(ff.name), names, record) if not creating else None
        if ff.widget == "lookup" and ff.value and ff.lookup is not None:
            target = display.reference_target(ff.fdef, record, ff.name) if not creating else (
                ff.fdef.target[0] if len(ff.fdef.target) == 1 else None)
            ff.lookup["text"] = names.name(target, ff.value) or _any_name(names, ff.fdef, ff.value) or ff.value
    return form


def _any_name(names: display.Names, fdef: FieldDef, value: str) -> str | None:
    for target in fdef.target:
        found = names.name(target, value)
        if found:
            return found
    return None


def keep_input(form: Form, posted: MultiDict) -> None:
    """Show what the user typed, not what was stored (after an error)."""
    for ff in form.fields.values():
        if not ff.editable:
            continue
        if ff.widget == "checkbox":
            ff.value = posted.get(ff.name) in ("on", "true", "1", "yes")
        elif ff.widget == "multiselect":
            ff.value = [v for v in posted.getlist(ff.name) if v]
        elif ff.widget == "password":
            ff.value = ""
        elif ff.name in posted:
            ff.value = posted.get(ff.name, "")


class Tampered(Exception):
    """The post is not what the page offered; nothing may be saved."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


def parse(form: Form, posted: MultiDict) -> dict:
    """The record data the post carries, for RecordService; raises Tampered."""
    editable = form.editable_names()
    all_fields = form.obj.all_fields
    for key in posted:
        if key in CONTROL_FIELDS or key in editable:
            continue
        shown = form.fields.get(key)
        visible = key in all_fields and key not in form.layout.hidden
        if shown is not None or (visible and _is_read_only(form, key)):
            raise Tampered(t("form.tamper_read_only", field=key))
        raise Tampered(t("form.tamper_unknown", field=key[:64]))
    data: dict[str, Any] = {}
    for ff in form.fields.values():
        if not ff.editable:
            continue
        name = ff.name
        if ff.widget == "checkbox":
            data[name] = posted.get(name) in ("on", "true", "1", "yes")
        elif ff.widget == "multiselect":
            data[name] = [v for v in posted.getlist(name) if v]
        elif name not in posted:
            continue  # not sent: left as it is
        elif ff.widget == "password":
            if posted.get(name):
                data[name] = posted.get(name)
        else:
            text = posted.get(name, "")
            text = text.strip() if ff.widget != "textarea" else text.rstrip()
            data[name] = text if text != "" else None
    return data


def _is_read_only(form: Form, name: str) -> bool:
    fdef = form.obj.all_fields[name]
    return fdef.system or fdef.read_only or name in form.layout.read_only


def required_errors(form: Form, data: dict) -> dict[str, list[str]]:
    """The layout's (and object's) required fields left empty."""
    errors = {}
    for ff in form.fields.values():
        if not ff.required or ff.widget in ("checkbox", "password"):
            continue
        value = data[ff.name] if ff.name in data else (form.record or {}).get(ff.name)
        if value in (None, "", []):
            errors[ff.name] = [t("form.required_missing")]
    return errors


def attach_errors(form: Form, errors: dict[str, list]) -> None:
    locale_fields = form.obj.all_fields
    for name, messages in errors.items():
        texts = [message(str(m)) for m in (messages if isinstance(messages, list) else [messages])]
        if name in form.fields:
            form.fields[name].errors.extend(texts)
        else:
            fdef = locale_fields.get(name)
            label = fdef.display_label(current_locale()) if fdef else name
            form.errors.extend(f"{label}: {text}" for text in texts)


def show_current(form: Form, current: dict, names: display.Names) -> None:
    """After a conflict: the stored value beside each field where the user's input differs."""
    names.want_record(form.obj, current, list(form.fields))
    names.resolve()
    for ff in form.fields.values():
        if ff.fdef.type == "password":
            continue
        now = current.get(ff.name)
        if not ff.editable:
            ff.shown = display.show(ff.fdef, now, names, current)
        elif not _same(ff.fdef, input_value(ff.fdef, now), ff.value):
            ff.current = display.show(ff.fdef, now, names, current).text


def _same(fdef: FieldDef, stored: Any, typed: Any) -> bool:
    if isinstance(stored, (bool, list)) or isinstance(typed, (bool, list)):
        return stored == typed
    stored, typed = str(stored or "").strip(), str(typed or "").strip()
    if fdef.value_type in ("decimal", "currency", "percent", "integer") and stored and typed:
        from decimal import Decimal, InvalidOperation

        try:
            return Decimal(stored) == Decimal(typed)
        except InvalidOperation:
            return False
    return stored == typed
