"""Parsing a filter: JSON -> a checked tree whose values are coerced to the types records hold.

Every problem is reported at its JSON pointer, and the operators a field accepts follow from
its kind (text, id, number, date...), so a filter that parses means the same to both compilers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from ..clock import utcnow


class FieldLike(Protocol):
    name: str
    type: str


class FilterError(ValueError):
    """A problem in a filter, located by a JSON pointer (e.g. "/all/1/score/gte")."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path or '(root)'}: {message}")
        self.path = path
        self.message = message


@dataclass
class FilterContext:
    """What the variables and the relative-date operators mean for one evaluation."""

    now: datetime
    today: date
    user_id: str | None = None
    user_department: str | None = None
    old: Mapping[str, Any] | None = None
    allow_changed: bool = False

    def __post_init__(self) -> None:
        if self.now.tzinfo is not None:  # records hold naive UTC; an aware now could not compare
            self.now = self.now.astimezone(UTC).replace(tzinfo=None)

    @classmethod
    def current(
        cls,
        user_id: str | None = None,
        user_department: str | None = None,
        old: Mapping[str, Any] | None = None,
        allow_changed: bool = False,
    ) -> FilterContext:
        now = utcnow()
        return cls(now, now.date(), user_id, user_department, old, allow_changed)


# --- field kinds and the operators that fit them ---------------------------------------

_EQUALITY = frozenset({"eq", "ne", "in", "nin", "is_null", "changed"})
_ORDERING = frozenset({"gt", "gte", "lt", "lte", "between"})
_DAYS = frozenset({"older_than_days", "within_last_days"})
OPERATORS = _EQUALITY | _ORDERING | _DAYS | {"contains", "startswith"}
_OPS_BY_KIND = {
    "text": _EQUALITY | _ORDERING | {"contains", "startswith"},
    "id": _EQUALITY,
    "integer": _EQUALITY | _ORDERING,
    "decimal": _EQUALITY | _ORDERING,
    "boolean": _EQUALITY,
    "date": _EQUALITY | _ORDERING | _DAYS,
    "datetime": _EQUALITY | _ORDERING | _DAYS,
    "multi": frozenset({"contains", "is_null", "changed"}),
}
_KIND_BY_TYPE = {
    **dict.fromkeys(["text", "textarea", "email", "phone", "url", "picklist"], "text"),
    **dict.fromkeys(["id", "lookup", "user", "autonumber"], "id"),
    **dict.fromkeys(["decimal", "currency", "percent"], "decimal"),
    "integer": "integer",
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
    "multipicklist": "multi",
}
# Which kinds each variable may stand for.
_VARIABLES = {
    "$now": ("date", "datetime"),
    "$today": ("date", "datetime"),
    "$user": ("text", "id"),
    "$user.department": ("text", "id"),
}


def _kind(field: FieldLike) -> str | None:
    """How a field's values compare; None for password and unknown types (never filterable)."""
    result_type = getattr(field, "result_type", None)
    if field.type == "formula":
        return _KIND_BY_TYPE.get(result_type or "text")
    if field.type == "rollup":
        if result_type in ("count", "integer"):
            return "integer"
        return result_type if result_type in ("date", "datetime") else "decimal"
    return _KIND_BY_TYPE.get(field.type)


# --- parsing: JSON -> a checked tree with coerced values ------------------------------


@dataclass(frozen=True)
class _Var:
    name: str


@dataclass(frozen=True)
class _Leaf:
    field: str
    kind: str
    op: str
    value: Any  # coerced; _Var placeholders are resolved per context
    path: str


@dataclass(frozen=True)
class _Group:
    op: str  # "all" | "any" | "not"
    children: tuple[Any, ...]


class _BadValue(Exception):
    pass


def _pointer(path: str, key: object) -> str:
    return f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"


_INTEGER_TEXT = re.compile(r"[+-]?\d+")


def _coerce(value: Any, kind: str) -> Any:
    """A JSON value as the Python type that records of this kind hold."""
    if isinstance(value, str) and value in _VARIABLES:
        if kind not in _VARIABLES[value]:
            raise _BadValue(f"{value} cannot stand for a value of kind {kind!r}")
        return _Var(value)
    if value is None:
        raise _BadValue("null is not allowed here (use is_null)")
    if kind in ("text", "id", "multi"):
        if isinstance(value, str):
            return value
        raise _BadValue("expected a string")
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        raise _BadValue("expected true or false")
    if kind in ("integer", "decimal"):
        return _coerce_number(value, kind)
    if kind == "date":
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        try:
            return date.fromisoformat(value)
        except (TypeError, ValueError):
            raise _BadValue("expected a date (YYYY-MM-DD)") from None
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise _BadValue("expected an ISO 8601 datetime") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _whole(value: Any) -> bool:
    """A string of digits, or a finite float or Decimal without a fraction."""
    if isinstance(value, str):
        return bool(_INTEGER_TEXT.fullmatch(value.strip()))
    return isinstance(value, float | Decimal) and Decimal(str(value)).is_finite() and value == int(value)


def _coerce_number(value: Any, kind: str) -> int | Decimal:
    if isinstance(value, bool):
        raise _BadValue(f"expected {'an integer' if kind == 'integer' else 'a number'}")
    if kind == "integer":
        if _whole(value):
            value = int(value)
        if not isinstance(value, int):
            raise _BadValue("expected an integer")
        if not -(2**63) <= value < 2**63:
            raise _BadValue("integer out of range")  # SQLite cannot even bind it
        return value
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise _BadValue("expected a number") from None
    if not number.is_finite():
        raise _BadValue("expected a finite number")
    return number


MAX_DEPTH = 32  # all / any / not levels in one filter


def _within_precision(field: FieldLike, value: Any) -> None:
    """A decimal beyond the field's digits can match nothing and cannot be bound on SQLite (its
    scaled integer passes 64 bits): refused, the same on both databases."""
    precision = getattr(field, "precision", None) or 18
    scale = getattr(field, "scale", None)
    scale = 2 if scale is None else scale
    for number in value if isinstance(value, tuple) else (value,):
        if isinstance(number, Decimal) and number and number.adjusted() + 1 > precision - scale:
            raise _BadValue(f"{number} is beyond the field's range (at most {precision - scale} digits before the point)")


class _Parser:
    """Walks a filter once, collecting every problem rather than stopping at the first."""

    def __init__(self, fields: Mapping[str, FieldLike], allow_changed: bool):
        self.fields = fields
        self.allow_changed = allow_changed
        self.errors: list[FilterError] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(FilterError(path, message))

    def node(self, flt: object, path: str, depth: int = 0) -> Any:
        if not isinstance(flt, Mapping):
            self.error(path, "a filter must be a JSON object")
            return None
        if depth >= MAX_DEPTH:
            # The same limit on both databases, well before Python's or the SQL compiler's own.
            self.error(path, f"the filter is nested more than {MAX_DEPTH} levels deep")
            return None
        parts: list[Any] = []
        for key, arg in flt.items():
            at = _pointer(path, key)
            if key in ("all", "any"):
                if not isinstance(arg, list):
                    self.error(at, f'"{key}" takes a list of filters')
                    continue
                parts.append(_Group(key, tuple(self.node(f, _pointer(at, i), depth + 1) for i, f in enumerate(arg))))
            elif key == "not":
                parts.append(_Group("not", (self.node(arg, at, depth + 1),)))
            else:
                parts.extend(self.field_condition(key, arg, at))
        return parts[0] if len(parts) == 1 else _Group("all", tuple(parts))

    def field_condition(self, key: object, arg: object, path: str) -> list[_Leaf]:
        field = self.fields.get(key) if isinstance(key, str) else None
        if field is None:
            self.error(path, f"unknown field {key!r}")
            return []
        kind = _kind(field)
        if kind is None:
            self.error(path, f"field {key!r} of type {field.type!r} cannot be filtered")
            return []
        if not isinstance(arg, Mapping):
            leaf = self.leaf(key, kind, "eq", arg, path)
            return [leaf] if leaf else []
        if not arg:
            self.error(path, "a field condition needs at least one operator")
        leaves = (self.leaf(key, kind, op, value, _pointer(path, op)) for op, value in arg.items())
        return [leaf for leaf in leaves if leaf]

    def leaf(self, key: str, kind: str, op: object, arg: object, path: str) -> _Leaf | None:
        if op not in OPERATORS:
            self.error(path, f"unknown operator {op!r}")
            return None
        if op in ("eq", "ne") and arg is None:
            op, arg = "is_null", op == "eq"
        if op not in _OPS_BY_KIND[kind]:
            self.error(path, f"operator {op!r} does not apply to field {key!r} ({self.fields[key].type})")
            return None
        if op == "changed" and not self.allow_changed:
            self.error(path, "changed only applies in update triggers")
            return None
        try:
            value = self.value(kind, op, arg, path)
            if kind == "decimal" and op not in ("is_null", "changed") and op not in _DAYS:
                _within_precision(self.fields[key], value)
        except _BadValue as exc:
            self.error(path, str(exc))
            return None
        return None if value is _INVALID else _Leaf(key, kind, op, value, path)

    def value(self, kind: str, op: str, arg: Any, path: str) -> Any:
        if op in ("is_null", "changed"):
            if not isinstance(arg, bool):
                raise _BadValue("expected true or false")
            return arg
        if op in _DAYS:
            if isinstance(arg, bool) or not isinstance(arg, int) or arg < 0:
                raise _BadValue("expected a whole number of days, 0 or more")
            return arg
        if op in ("in", "nin", "between"):
            if not isinstance(arg, list | tuple):
                raise _BadValue("expected a list of values")
            if op == "between" and len(arg) != 2:
                raise _BadValue("expected a list of two values [low, high]")
            values = []
            for i, item in enumerate(arg):
                try:
                    values.append(_coerce(item, kind))
                except _BadValue as exc:
                    self.error(_pointer(path, i), str(exc))
                    values.append(_INVALID)
            return _INVALID if _INVALID in values else tuple(values)
        return _coerce(arg, kind)


_INVALID = object()  # a value whose problems were already reported at their own paths


def _parse(
    flt: object, fields: Mapping[str, FieldLike], allow_changed: bool
) -> tuple[Any, list[FilterError]]:
    parser = _Parser(fields, allow_changed)
    tree = parser.node(flt, "")
    return tree, parser.errors


def validate_filter(
    flt: object, fields: Mapping[str, FieldLike], allow_changed: bool = False
) -> list[FilterError]:
    """Every problem in a filter, each at its JSON pointer; an empty list means it is valid."""
    return _parse(flt, fields, allow_changed)[1]


def _checked(flt: object, fields: Mapping[str, FieldLike], allow_changed: bool) -> Any:
    tree, errors = _parse(flt, fields, allow_changed)
    if errors:
        raise errors[0]
    return tree


# --- inspection ---------------------------------------------------------------------


def referenced_fields(flt: object, depth: int = 0) -> set[str]:
    """Field names a filter mentions (unvalidated), e.g. to know which changes can affect it."""
    found: set[str] = set()
    if depth > MAX_DEPTH:
        return found
    if isinstance(flt, Mapping):
        for key, arg in flt.items():
            if key in ("all", "any") and isinstance(arg, list):
                for child in arg:
                    found |= referenced_fields(child, depth + 1)
            elif key == "not":
                found |= referenced_fields(arg, depth + 1)
            elif isinstance(key, str):
                found.add(key)
    return found
