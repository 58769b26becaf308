"""Typed views over metadata documents: objects and their fields.

The documents stay the source of truth; these classes only make the runtime's
questions (what type is this field, which table holds this object) cheap to ask.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
TABLE_PREFIX = "rec_"

TEXT_TYPES = {"text", "textarea", "email", "phone", "url", "picklist", "autonumber"}
DECIMAL_TYPES = {"decimal", "currency", "percent"}
REFERENCE_TYPES = {"lookup", "user"}
COMPUTED_TYPES = {"formula", "rollup", "autonumber"}


def is_valid_name(name: object) -> bool:
    return isinstance(name, str) and bool(NAME_RE.match(name))


def label_text(label: Any, locale: str = "en", fallback: str = "") -> str:
    """A label is a string or a locale map; pick the user's locale, then English, then any."""
    if isinstance(label, str):
        return label
    if isinstance(label, dict) and label:
        for key in (locale, locale.split("-")[0], "en"):
            if key in label:
                return str(label[key])
        return str(next(iter(label.values())))
    return fallback


@dataclass
class FieldDef:
    name: str
    type: str
    label: Any = None
    required: bool = False
    unique: bool = False
    default: Any = None
    indexed: bool = False
    read_only: bool = False
    help: str | None = None
    min: Any = None
    max: Any = None
    max_length: int | None = None
    precision: int | None = None
    scale: int | None = None
    options: list[dict] = field(default_factory=list)
    options_from: str | None = None
    target: list[str] = field(default_factory=list)
    on_delete: str = "set_null"
    format: str | None = None
    expression: str | None = None
    result_type: str | None = None
    child_object: str | None = None
    child_field: str | None = None
    function: str | None = None
    agg_field: str | None = None
    agg_filter: Any = None
    system: bool = False
    raw: dict = field(default_factory=dict)

    @classmethod
    def from_doc(cls, doc: dict) -> FieldDef:
        ftype = doc["type"]
        options = [
            opt if isinstance(opt, dict) else {"value": opt, "label": opt} for opt in doc.get("options") or []
        ]
        target = doc.get("target") or []
        if isinstance(target, str):
            target = [target]
        if ftype == "user":
            target = ["user"]
        precision, scale = doc.get("precision"), doc.get("scale")
        if ftype == "currency":
            precision, scale = precision or 18, 2 if scale is None else scale
        elif ftype == "percent":
            precision, scale = precision or 7, 2 if scale is None else scale
        elif ftype == "decimal":
            precision, scale = precision or 18, 4 if scale is None else scale
        elif ftype in ("formula", "rollup"):
            scale = 2 if scale is None else scale
            precision = precision or 18
        result_type = doc.get("result_type")
        if ftype == "rollup":
            result_type = "integer" if doc.get("function") == "count" else "decimal"
        return cls(
            name=doc["name"],
            type=ftype,
            label=doc.get("label"),
            required=bool(doc.get("required", False)),
            unique=bool(doc.get("unique", False)),
            default=doc.get("default"),
            indexed=bool(doc.get("indexed", False)),
            read_only=bool(doc.get("read_only", False)) or ftype in COMPUTED_TYPES,
            help=doc.get("help"),
            min=doc.get("min"),
            max=doc.get("max"),
            max_length=doc.get("max_length"),
            precision=precision,
            scale=scale,
            options=options,
            options_from=doc.get("options_from"),
            target=list(target),
            on_delete=doc.get("on_delete", "set_null"),
            format=doc.get("format"),
            expression=doc.get("expression"),
            result_type=result_type,
            child_object=doc.get("child_object"),
            child_field=doc.get("child_field"),
            function=doc.get("function"),
            agg_field=doc.get("field"),
            agg_filter=doc.get("filter"),
            raw=dict(doc),
        )

    @property
    def value_type(self) -> str:
        """The type a stored value has: computed fields store their result type."""
        if self.type in ("formula", "rollup"):
            return self.result_type or "text"
        if self.type == "autonumber":
            return "text"
        return self.type

    @property
    def is_reference(self) -> bool:
        return self.type in REFERENCE_TYPES

    @property
    def polymorphic(self) -> bool:
        return self.type == "lookup" and len(self.target) > 1

    @property
    def option_values(self) -> list[str]:
        return [str(opt["value"]) for opt in self.options]

    def option(self, value: str) -> dict | None:
        return next((opt for opt in self.options if str(opt["value"]) == str(value)), None)

    def display_label(self, locale: str = "en") -> str:
        return label_text(self.label, locale, self.name.replace("_", " ").capitalize())


def _system(name: str, ftype: str, **extra: Any) -> FieldDef:
    labels = {
        "id": {"en": "ID", "zh-CN": "编号"},
        "owner": {"en": "Owner", "zh-CN": "负责人"},
        "owner_since": {"en": "Owner since", "zh-CN": "负责起始"},
        "created_at": {"en": "Created at", "zh-CN": "创建时间"},
        "created_by": {"en": "Created by", "zh-CN": "创建人"},
        "updated_at": {"en": "Updated at", "zh-CN": "更新时间"},
        "updated_by": {"en": "Updated by", "zh-CN": "更新人"},
        "version": {"en": "Version", "zh-CN": "版本"},
        "record_type": {"en": "Record type", "zh-CN": "业务类型"},
        "pool": {"en": "Pool", "zh-CN": "公海池"},
        "last_activity_at": {"en": "Last activity", "zh-CN": "最近跟进"},
        "deleted_at": {"en": "Deleted at", "zh-CN": "删除时间"},
        "previous_owner": {"en": "Previous owner", "zh-CN": "前负责人"},
        "protected_until": {"en": "Protected until", "zh-CN": "保护期至"},
    }
    return FieldDef(name=name, type=ftype, label=labels.get(name, name), read_only=True, system=True, **extra)


# The system fields every object gets (METADATA.md), plus two that pools need
# (previous_owner for the reclaim cooldown, protected_until for protection periods).
SYSTEM_FIELDS: tuple[FieldDef, ...] = (
    _system("id", "id"),
    _system("owner", "user", target=["user"], indexed=True),
    _system("owner_since", "datetime"),
    _system("created_at", "datetime"),
    _system("created_by", "user", target=["user"]),
    _system("updated_at", "datetime"),
    _system("updated_by", "user", target=["user"]),
    _system("version", "integer"),
    _system("record_type", "text", max_length=64),
    _system("pool", "text", max_length=64, indexed=True),
    _system("last_activity_at", "datetime"),
    _system("deleted_at", "datetime", indexed=True),
    _system("previous_owner", "user", target=["user"]),
    _system("protected_until", "datetime"),
)
SYSTEM_FIELD_NAMES = frozenset(f.name for f in SYSTEM_FIELDS)
# System fields a caller may set on create (subject to permission checks).
SETTABLE_SYSTEM_FIELDS = frozenset({"owner", "record_type"})


@dataclass
class ObjectDef:
    name: str
    label: Any
    plural_label: Any
    name_field: str | None
    record_types: list[str]
    track_history: list[str]
    fields: dict[str, FieldDef]
    system_object: bool
    doc: dict

    @classmethod
    def from_doc(cls, doc: dict) -> ObjectDef:
        fields = {}
        for fdoc in doc.get("fields") or []:
            fdef = FieldDef.from_doc(fdoc)
            fields[fdef.name] = fdef
        return cls(
            name=doc["name"],
            label=doc.get("label") or doc["name"],
            plural_label=doc.get("plural_label") or doc.get("label") or doc["name"],
            name_field=doc.get("name_field"),
            record_types=[rt["name"] if isinstance(rt, dict) else rt for rt in doc.get("record_types") or []],
            track_history=list(doc.get("track_history") or []),
            fields=fields,
            system_object=bool(doc.get("system", False)),
            doc=doc,
        )

    @property
    def table_name(self) -> str:
        return TABLE_PREFIX + self.name

    @cached_property
    def all_fields(self) -> dict[str, FieldDef]:
        merged = {f.name: f for f in SYSTEM_FIELDS}
        merged.update(self.fields)
        return merged

    def field(self, name: str) -> FieldDef | None:
        return self.fields.get(name) or next((f for f in SYSTEM_FIELDS if f.name == name), None)

    def display_label(self, locale: str = "en", plural: bool = False) -> str:
        return label_text(self.plural_label if plural else self.label, locale, self.name)

    @cached_property
    def record_type_labels(self) -> dict[str, Any]:
        """{record type: its label map} for the types declared with a label."""
        return {rt["name"]: rt["label"] for rt in self.doc.get("record_types") or []
                if isinstance(rt, dict) and rt.get("label")}

    def record_type_label(self, name: str, locale: str = "en") -> str:
        """A record type in the reader's words ('channel_partner' → 'Channel partner' without a label)."""
        label = self.record_type_labels.get(name)
        return label_text(label, locale, name) if label else name.replace("_", " ").capitalize()
