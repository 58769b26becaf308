"""Values as people read them: picklist labels, exact decimals with digit grouping, dates,
and the names of looked-up records (resolved in one query per target object, through the
record service so read scope and hidden fields hold)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import url_for

from ...metadata.model import FieldDef, ObjectDef, label_text
from ..errors import CrmError
from ..records import RecordService
from .i18n import current_locale, format_date, format_datetime, format_number, format_percent, t

_IDENTIFIER = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")


@dataclass
class Shown:
    """One value ready for a template: text, and a link when it points somewhere."""

    text: str
    href: str | None = None
    kind: str = "text"  # text | link | mail | tel | url | bool | number | date | empty | tags
    items: tuple[str, ...] = ()


def option_label(fdef: FieldDef, value: Any) -> str:
    """An option's label in the user's locale; a bare value like `web_ad` reads `Web ad`."""
    if value is None:
        return ""
    opt = fdef.option(str(value))
    if opt is None:
        return str(value)
    text = label_text(opt.get("label"), current_locale(), str(value))
    if text == str(opt["value"]) and _IDENTIFIER.match(text):
        text = text.replace("_", " ").capitalize()
    return text


def humanise(name: str) -> str:
    """`channel_partner` -> `Channel partner` (record types and other bare names)."""
    return name.replace("_", " ").capitalize() if _IDENTIFIER.match(name or "") else name


def options(fdef: FieldDef, role_names: list[str] | None = None) -> list[tuple[str, str]]:
    if fdef.options_from == "role":
        return [(name, name) for name in role_names or []]
    return [(str(opt["value"]), option_label(fdef, opt["value"])) for opt in fdef.options]


def group_digits(text: str) -> str:
    """'-1234567.50' -> '-1,234,567.50', on the string itself (never through float)."""
    sign = "-" if text.startswith("-") else ""
    body = text.lstrip("+-")
    whole, _, frac = body.partition(".")
    groups = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    return sign + ",".join(groups) + (f".{frac}" if frac else "")


def datetime_text(value: str) -> str:
    """'2024-05-01T09:30:00Z' -> 'May 1, 2024 09:30' / '2024年5月1日 09:30' (UTC), per locale."""
    return format_datetime(value, current_locale())


class Names:
    """Display names of referenced records, fetched in batches."""

    def __init__(self, service: RecordService):
        self.service = service
        self.wanted: dict[str, set[str]] = {}
        self.found: dict[tuple[str, str], str] = {}
        self.readable: dict[str, bool] = {}

    def want(self, target: str | None, record_id: Any) -> None:
        if target and isinstance(record_id, str) and record_id:
            self.wanted.setdefault(target, set()).add(record_id)

    def want_record(self, obj: ObjectDef, record: dict, names: list[str] | None = None) -> None:
        for name in names or list(record):
            fdef = obj.all_fields.get(name)
            if fdef is not None and fdef.is_reference:
                self.want(reference_target(fdef, record, name), record.get(name))

    def resolve(self) -> None:
        registry = self.service.registry
        for target, ids in self.wanted.items():
            ids -= {i for (o, i) in self.found if o == target}
            if not ids or not registry.has_object(target):
                continue
            obj = registry.object(target)
            access = self.service.access
            self.readable[target] = access.can(target, "read")
            if not self.readable[target]:
                continue
            hidden = access.hidden_fields(target)
            name_fields = [n for n in (obj.name_field, "display_name", "username", "name") if n
                           and n in obj.all_fields and n not in hidden]
            try:
                items, _ = self.service.list(target, filter={"id": {"in": sorted(ids)}},
                                             fields=list(dict.fromkeys(name_fields)) or None,
                                             limit=min(len(ids), 500))
            except CrmError:
                continue
            for item in items:
                text = next((str(item[n]) for n in name_fields if item.get(n) not in (None, "")), item["id"])
                self.found[(target, item["id"])] = text
        self.wanted = {}

    def name(self, target: str | None, record_id: Any) -> str | None:
        return self.found.get((target or "", str(record_id)))

    def link(self, target: str | None, record_id: Any) -> Shown:
        text = self.name(target, record_id)
        if text is None:
            return Shown(t("common.no_access"), kind="text")
        href = None
        if target and target in self.service.registry.objects:
            href = url_for("web.record_detail", object_name=target, record_id=record_id)
        return Shown(text, href, "link")


def reference_target(fdef: FieldDef, record: dict, name: str) -> str | None:
    if fdef.polymorphic:
        return record.get(f"{name}__object")
    return fdef.target[0] if fdef.target else None


def record_title(obj: ObjectDef, record: dict) -> str:
    if obj.name_field and record.get(obj.name_field) not in (None, ""):
        return str(record[obj.name_field])
    for name in ("name", "display_name", "subject", "title"):
        if record.get(name):
            return str(record[name])
    return str(record.get("id", ""))


def record_type_text(names: Names | None, value: str) -> str:
    """A record type's label in the reader's language (the first object that labels that type)."""
    if names is not None:
        for obj in names.service.registry.objects.values():
            if value in obj.record_type_labels:
                return obj.record_type_label(value, current_locale())
    return humanise(value)


def file_shown(file_id: str) -> Shown:
    """A file field's value: the file's name, linking to its download (names read once per request)."""
    import sqlalchemy as sa
    from flask import current_app, g

    from .. import db

    cache = g.setdefault("file_names", {})
    if file_id not in cache:
        with current_app.extensions["metacrm"].reading() as conn:
            cache[file_id] = conn.execute(sa.select(db.file_blob.c.name).where(
                db.file_blob.c.id == file_id)).scalar()
    name = cache[file_id]
    if name is None:
        return Shown(t("common.none"), kind="empty")
    return Shown(name, url_for("web.file_download", file_id=file_id), "file")


def show(fdef: FieldDef, value: Any, names: Names | None = None, record: dict | None = None) -> Shown:
    """A JSON value (RecordService.to_json form) as a Shown."""
    if value is None or value == "" or value == []:
        return Shown(t("common.none"), kind="empty")
    vtype = fdef.value_type
    if fdef.is_reference:
        target = reference_target(fdef, record or {}, fdef.name) if record is not None else (
            fdef.target[0] if fdef.target else None)
        return names.link(target, value) if names else Shown(str(value))
    if vtype == "file":
        return file_shown(str(value))
    if vtype == "boolean":
        return Shown(t("common.yes") if value else t("common.no"), kind="bool")
    if vtype == "picklist":
        return Shown(option_label(fdef, value))
    if fdef.name == "record_type" and fdef.system:
        return Shown(record_type_text(names, str(value)))
    if vtype == "multipicklist":
        items = tuple(option_label(fdef, v) for v in value) if isinstance(value, list) else (str(value),)
        return Shown(", ".join(items), kind="tags", items=items)
    locale = current_locale()
    if vtype in ("decimal", "currency"):
        return Shown(format_number(value, locale, getattr(fdef, "scale", None)), kind="number")
    if vtype == "percent":
        return Shown(format_percent(value, locale), kind="number")
    if vtype == "integer":
        return Shown(format_number(value, locale, 0), kind="number")
    if vtype == "datetime":
        return Shown(format_datetime(value, locale), kind="date")
    if vtype == "date":
        return Shown(format_date(value, locale), kind="date")
    if vtype == "email":
        return Shown(str(value), f"mailto:{value}", "mail")
    if vtype == "phone":
        return Shown(str(value), "tel:" + re.sub(r"[^0-9+]", "", str(value)), "tel")
    if vtype == "url":
        text = str(value)
        safe = text.lower().startswith(("http://", "https://"))
        return Shown(text, text if safe else None, "url" if safe else "text")
    return Shown(str(value))
