"""marshmallow schemas generated per object and metadata version: coercion and validation
of record input, and the JSON form of stored values.

Money never passes through float: JSON numbers are read via their text form.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from ..metadata.model import FieldDef, ObjectDef

PHONE_RE = re.compile(r"^\+?[0-9()\-\s./]{3,40}$")


class ExactDecimalField(fields.Field):
    default_error_messages: ClassVar[dict[str, str]] = {"invalid": "Not a valid number.", "scale": "At most {scale} decimal places."}

    def __init__(self, scale: int, precision: int, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.precision = scale, precision

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        try:
            number = Decimal(str(value).strip()) if isinstance(value, (str, int, float)) else None
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            raise self.make_error("invalid")
        exponent = number.normalize().as_tuple().exponent
        if isinstance(exponent, int) and -exponent > self.scale:
            raise self.make_error("scale", scale=self.scale)
        digits = max(number.adjusted() + 1, 0) if number else 0  # before the point; no rounding context
        if digits > self.precision - self.scale:
            raise ValidationError(f"Too large: at most {self.precision - self.scale} digits before the point.")
        return number

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else str(value)


class StrictInteger(fields.Integer):
    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class UtcDateTimeField(fields.DateTime):
    """ISO 8601 in; naive UTC stored; ISO with Z out."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and value.endswith("Z"):
            value = value[:-1] + "+00:00"
        parsed = super()._deserialize(value, attr, data, **kwargs)
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        return parsed


class MultiPick(fields.Field):
    def __init__(self, choices: list[str] | None, **kwargs):
        super().__init__(**kwargs)
        self.choices = choices

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            value = [part for part in (p.strip() for p in value.split(";")) if part]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValidationError("Must be a list of values.")
        if self.choices is not None:
            bad = [v for v in value if v not in self.choices]
            if bad:
                raise ValidationError(f"Not allowed: {', '.join(bad)}; must be among {', '.join(self.choices)}.")
        return list(dict.fromkeys(value))


class PhoneField(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if text and not PHONE_RE.match(text):
            raise ValidationError("Not a valid phone number.")
        return text


def no_nul(value: str) -> None:
    """PostgreSQL text cannot hold U+0000 (the API refuses it in any JSON; forms reach here)."""
    if "\x00" in value:
        raise ValidationError("Text may not contain NUL characters.")


def _string(fdef: FieldDef, **kw) -> fields.Field:
    limit = fdef.max_length or (None if fdef.type == "textarea" else 255)
    validators = [validate.Length(max=limit)] if limit else []
    return fields.String(validate=[*validators, no_nul], **kw)


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def typed_bound(fdef: FieldDef, value: Any) -> Any:
    """A field's min / max as a value of the field's type (the JSON Schema checked its form)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if fdef.type in ("decimal", "currency", "percent"):
            return Decimal(str(value))
        if fdef.type == "date":
            return date.fromisoformat(str(value))
        if fdef.type == "integer":
            return int(value)
    except (InvalidOperation, ValueError, TypeError):
        return None
    return None


def marshmallow_field(fdef: FieldDef, role_names: list[str] | None = None) -> fields.Field:
    kw: dict[str, Any] = {"allow_none": not fdef.required, "required": False}
    ftype = fdef.type
    rng = []
    low, high = typed_bound(fdef, fdef.min), typed_bound(fdef, fdef.max)
    if ftype == "integer":
        # Storage is a 64-bit integer: beyond it is bad input (400), not a database error (500).
        low = INT64_MIN if low is None else max(low, INT64_MIN)
        high = INT64_MAX if high is None else min(high, INT64_MAX)
    if low is not None or high is not None:
        rng = [validate.Range(min=low, max=high)]
    if ftype in ("text", "textarea"):
        return _string(fdef, **kw)
    if ftype == "email":
        return fields.Email(validate=[validate.Length(max=255)], **kw)
    if ftype == "url":
        return fields.Url(validate=[validate.Length(max=255)], **kw)
    if ftype == "phone":
        return PhoneField(validate=[validate.Length(max=40)], **kw)
    if ftype == "picklist":
        return fields.String(validate=[validate.OneOf(fdef.option_values)], **kw)
    if ftype == "multipicklist":
        choices = role_names if fdef.options_from == "role" else fdef.option_values
        return MultiPick(choices if (choices or fdef.options_from) else None, **kw)
    if ftype == "integer":
        return StrictInteger(strict=False, validate=rng, **kw)
    if ftype in ("decimal", "currency", "percent"):
        return ExactDecimalField(scale=fdef.scale or 0, precision=fdef.precision or 18, validate=rng, **kw)
    if ftype == "boolean":
        return fields.Boolean(**kw)
    if ftype == "date":
        return fields.Date(validate=rng, **kw)
    if ftype == "datetime":
        return UtcDateTimeField(**kw)
    if ftype in ("lookup", "user"):
        return fields.Raw(**kw)  # resolved against the target table by the record service
    if ftype == "file":
        return fields.String(validate=[validate.Length(max=32)], **kw)  # a file id of this record (files feature)
    if ftype == "password":
        return fields.String(validate=[validate.Length(min=8, max=200)], load_only=True, **kw)
    return fields.Raw(**kw)


def build_schema(obj: ObjectDef, writable: list[FieldDef], role_names: list[str]) -> Schema:
    """A schema that loads exactly the writable fields; anything else is an unknown field.

    The schema carries `fast`: per field, a converter for the common valid inputs (see
    fast_converter), so a valid row skips marshmallow's per-load machinery.
    """
    attrs = {fdef.name: marshmallow_field(fdef, role_names) for fdef in writable}
    schema_cls = Schema.from_dict(attrs, name=f"{obj.name}_input")
    schema = schema_cls(unknown=RAISE)
    schema.fast = {fdef.name: fast_converter(fdef, schema.fields[fdef.name]) for fdef in writable}
    return schema


DEFER = object()  # a fast converter's "ask marshmallow": it alone decides errors and their messages


def fast_converter(fdef: FieldDef, field_: fields.Field) -> Any:
    """value -> what `field_.deserialize(value)` returns, or DEFER.

    Only inputs whose outcome is obvious are converted here (a str within its length, an
    option of the picklist, a plain int in range); everything else, and every invalid value,
    is DEFERred so marshmallow produces the value or the error. tests/test_fast_load.py checks
    with generated inputs that a converted value always equals marshmallow's.
    """
    allow_none = field_.allow_none
    ftype = fdef.type

    def generic(value):
        if value is None:
            return None if allow_none else DEFER
        try:
            return field_.deserialize(value)
        except ValidationError:
            return DEFER

    if ftype in ("text", "textarea"):
        limit = fdef.max_length or (None if ftype == "textarea" else 255)

        def text(value):
            if value.__class__ is str and (limit is None or len(value) <= limit) and "\x00" not in value:
                return value
            return None if value is None and allow_none else DEFER
        return text
    if ftype == "picklist":
        allowed = frozenset(fdef.option_values)

        def picklist(value):
            if value.__class__ is str and value in allowed:
                return value
            return None if value is None and allow_none else DEFER
        return picklist
    if ftype == "integer":
        low, high = typed_bound(fdef, fdef.min), typed_bound(fdef, fdef.max)
        low = INT64_MIN if low is None else max(low, INT64_MIN)
        high = INT64_MAX if high is None else min(high, INT64_MAX)

        def integer(value):
            if value.__class__ is int and low <= value <= high:
                return value
            return None if value is None and allow_none else DEFER
        return integer
    if ftype == "boolean":
        def boolean(value):
            if value is True or value is False:
                return value
            return None if value is None and allow_none else DEFER
        return boolean
    if ftype == "phone":
        def phone(value):
            if value.__class__ is str:
                text = value.strip()
                if len(text) <= 40 and (not text or PHONE_RE.match(text)):
                    return text
            return None if value is None and allow_none else DEFER
        return phone
    if ftype in ("lookup", "user"):
        def raw(value):  # resolved against the target table by the record service
            if value is None:
                return None if allow_none else DEFER
            return value
        return raw
    return generic


def fast_load(schema: Schema, data: dict) -> dict | None:
    """The values of a fully valid payload without marshmallow's per-load overhead, or None
    when any key is unknown or any value needs marshmallow's judgement (then call `load`)."""
    converters = getattr(schema, "fast", None)
    if converters is None:
        return None
    out = {}
    for name, value in data.items():
        convert = converters.get(name)
        if convert is None:
            return None
        result = convert(value)
        if result is DEFER:
            return None
        out[name] = result
    return out


def load(schema: Schema, data: dict, partial: bool) -> tuple[dict, dict]:
    """(values, errors): errors map field -> [messages]."""
    if partial:
        values = fast_load(schema, data)
        if values is not None:
            return values, {}
    try:
        return schema.load(data, partial=partial), {}
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        return exc.valid_data or {}, {k: v if isinstance(v, list) else [str(v)] for k, v in messages.items()}


# --- output ------------------------------------------------------------------------------


def to_json_value(fdef: FieldDef, value: Any) -> Any:
    """A stored value as API.md shapes it: decimals as strings, times ISO with Z."""
    if value is None:
        return None
    vtype = fdef.value_type
    if vtype == "multipicklist":
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                value = [value]
        return list(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(timespec="seconds" if not value.microsecond else "microseconds") + "Z"
    if isinstance(value, date):
        return value.isoformat()
    if vtype == "boolean":
        return bool(value)
    return value


def to_storage(fdef: FieldDef, value: Any) -> Any:
    if value is None:
        return None
    if fdef.value_type == "multipicklist":
        return json.dumps(list(value), ensure_ascii=False)
    return value


def from_storage(fdef: FieldDef, value: Any) -> Any:
    if value is None:
        return None
    if fdef.value_type == "multipicklist" and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return [value]
    return value
