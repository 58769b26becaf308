"""The one JSON filter grammar, compiled both to SQL and to an in-memory predicate.

Every condition in the platform (pools, dedup scopes, workflow and approval
conditions, reports, REST list filters) is a filter. A sweep pushes it down to
SQL; a save tests one record in memory. Both compilers work from the same
parsed, coerced tree and the same per-leaf plan, and every leaf is two-valued
(NULL never leaks out as "unknown"), so the two answers always agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from .clock import utcnow

__all__ = [
    "FieldLike",
    "FilterContext",
    "FilterError",
    "compile_predicate",
    "compile_sql",
    "matches",
    "referenced_fields",
    "validate_filter",
]


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


class _Parser:
    """Walks a filter once, collecting every problem rather than stopping at the first."""

    def __init__(self, fields: Mapping[str, FieldLike], allow_changed: bool):
        self.fields = fields
        self.allow_changed = allow_changed
        self.errors: list[FilterError] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(FilterError(path, message))

    def node(self, flt: object, path: str) -> Any:
        if not isinstance(flt, Mapping):
            self.error(path, "a filter must be a JSON object")
            return None
        parts: list[Any] = []
        for key, arg in flt.items():
            at = _pointer(path, key)
            if key in ("all", "any"):
                if not isinstance(arg, list):
                    self.error(at, f'"{key}" takes a list of filters')
                    continue
                parts.append(_Group(key, tuple(self.node(f, _pointer(at, i)) for i, f in enumerate(arg))))
            elif key == "not":
                parts.append(_Group("not", (self.node(arg, at),)))
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


# --- the per-leaf plan both compilers follow ------------------------------------------

_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ASCII_LOWER = "abcdefghijklmnopqrstuvwxyz"
_LOWER_TABLE = str.maketrans(_ASCII_UPPER, _ASCII_LOWER)


def _ascii_lower(text: str) -> str:
    """Lower-case A-Z only: what SQLite's lower() does, so both sides fold alike."""
    return text.translate(_LOWER_TABLE)


def _resolve(value: Any, kind: str, ctx: FilterContext) -> Any:
    if not isinstance(value, _Var):
        return value
    if value.name == "$now":
        return ctx.now if kind == "datetime" else ctx.now.date()
    if value.name == "$today":
        return ctx.today if kind == "date" else datetime.combine(ctx.today, time())
    return ctx.user_id if value.name == "$user" else ctx.user_department


def _days_before(base: date, days: int) -> date:
    """base - days, clamped to the earliest representable moment (which nothing precedes)."""
    try:
        return base - timedelta(days=days)
    except OverflowError:
        return type(base).min


def _plan(leaf: _Leaf, ctx: FilterContext) -> tuple[str, Any]:
    """Reduce a leaf to a primitive (op, value) with variables and relative dates resolved.

    A variable that resolves to nothing (no user, no department) matches no value:
    eq/in/ordering are false, ne/nin are true, so an unset `$user` never means "is null".
    """
    op, kind = leaf.op, leaf.kind
    if op in _DAYS:
        base = ctx.now if kind == "datetime" else ctx.today
        start = _days_before(base, leaf.value)
        return ("lt", start) if op == "older_than_days" else ("between", (start, base))
    if op in ("is_null", "changed"):
        return op, leaf.value
    if op in ("in", "nin", "between"):
        values = tuple(_resolve(v, kind, ctx) for v in leaf.value)
        if op == "between":
            return ("false", None) if None in values else (op, values)
        values = tuple(v for v in values if v is not None)
        if not values:
            return ("false" if op == "in" else "true"), None
        return op, values
    value = _resolve(leaf.value, kind, ctx)
    if value is None:
        return ("true" if op == "ne" else "false"), None
    if op in ("contains", "startswith") and kind == "text":
        value = _ascii_lower(value)
    return op, value


# --- in memory ------------------------------------------------------------------------

Predicate = Callable[[Mapping[str, Any]], bool]


def compile_predicate(flt: object, fields: Mapping[str, FieldLike], ctx: FilterContext) -> Predicate:
    """A function record -> bool that agrees with compile_sql on every row."""
    return _py_node(_checked(flt, fields, ctx.allow_changed), ctx)


def matches(
    flt: object, record: Mapping[str, Any], fields: Mapping[str, FieldLike], ctx: FilterContext
) -> bool:
    return compile_predicate(flt, fields, ctx)(record)


def _py_node(node: Any, ctx: FilterContext) -> Predicate:
    if isinstance(node, _Leaf):
        return _py_leaf(node, ctx)
    kids = [_py_node(child, ctx) for child in node.children]
    if node.op == "not":
        return lambda record: not kids[0](record)
    if node.op == "any":
        return lambda record: any(kid(record) for kid in kids)
    return lambda record: all(kid(record) for kid in kids)


def _py_leaf(leaf: _Leaf, ctx: FilterContext) -> Predicate:
    op, x = _plan(leaf, ctx)
    name = leaf.field
    if op in ("true", "false"):
        constant = op == "true"
        return lambda record: constant
    if op == "is_null":
        return lambda record: (record.get(name) is None) == x
    if op == "changed":
        old = ctx.old or {}
        return lambda record: (old.get(name) != record.get(name)) == x
    test: Callable[[Any], bool]
    match op:
        case "eq":
            test = lambda v: v == x
        case "ne":
            test = lambda v: v != x
        case "gt":
            test = lambda v: v > x
        case "gte":
            test = lambda v: v >= x
        case "lt":
            test = lambda v: v < x
        case "lte":
            test = lambda v: v <= x
        case "between":
            test = lambda v: x[0] <= v <= x[1]
        case "in":
            test = frozenset(x).__contains__
        case "nin":
            test = lambda v, members=frozenset(x): v not in members
        case "contains" if leaf.kind == "multi":
            test = lambda v: x in v
        case "contains":
            test = lambda v: x in _ascii_lower(v)
        case "startswith":
            test = lambda v: _ascii_lower(v).startswith(x)
    when_null = op in ("ne", "nin")
    return lambda record: when_null if (v := record.get(name)) is None else bool(test(v))


# --- SQL --------------------------------------------------------------------------------


def compile_sql(
    flt: object, table: sa.Table, fields: Mapping[str, FieldLike], ctx: FilterContext
) -> ColumnElement[bool]:
    """A WHERE clause; values are always bound parameters, field names only pick columns."""
    return _sql_node(_checked(flt, fields, allow_changed=False), table, ctx)


def _sql_node(node: Any, table: sa.Table, ctx: FilterContext) -> ColumnElement[bool]:
    if isinstance(node, _Leaf):
        return _sql_leaf(node, table, ctx)
    kids = [_sql_node(child, table, ctx) for child in node.children]
    if node.op == "not":
        return sa.not_(kids[0])
    if node.op == "any":
        return sa.or_(sa.false(), *kids)
    return sa.and_(sa.true(), *kids)


def _sql_leaf(leaf: _Leaf, table: sa.Table, ctx: FilterContext) -> ColumnElement[bool]:
    if leaf.field not in table.c:
        raise FilterError(leaf.path, f"field {leaf.field!r} has no column in table {table.name!r}")
    col = table.c[leaf.field]
    op, x = _plan(leaf, ctx)
    ordered = _codepoint_order(col) if leaf.kind == "text" else col
    match op:
        case "true":
            return sa.true()
        case "false":
            return sa.false()
        case "is_null":
            return col.is_(None) if x else col.is_not(None)
        case "ne":
            return sa.or_(col.is_(None), col != x)
        case "nin":
            return sa.or_(col.is_(None), col.not_in(x))
        case "eq":
            test = col == x
        case "in":
            test = col.in_(x)
        case "gt":
            test = ordered > x
        case "gte":
            test = ordered >= x
        case "lt":
            test = ordered < x
        case "lte":
            test = ordered <= x
        case "between":
            test = ordered.between(x[0], x[1])
        case "contains" if leaf.kind == "multi":
            test = _json_array_has(col, sa.literal(x, sa.String()))
        case "contains":
            test = _fold_ascii(col).contains(x, autoescape=True)
        case "startswith":
            test = _fold_ascii(col).startswith(x, autoescape=True)
        case _:  # "changed" was refused by validation; keep the guard explicit
            raise FilterError(leaf.path, "changed only applies in update triggers")
    return sa.and_(col.is_not(None), test)


class _fold_ascii(FunctionElement):
    """lower() restricted to A-Z on every dialect (SQLite's lower() is ASCII-only already)."""

    type = sa.String()
    name = "fold_ascii"
    inherit_cache = True


@compiles(_fold_ascii)
def _fold_ascii_default(element: _fold_ascii, compiler: Any, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(_fold_ascii, "postgresql")
def _fold_ascii_pg(element: _fold_ascii, compiler: Any, **kw: Any) -> str:
    return f"translate({compiler.process(element.clauses, **kw)}, '{_ASCII_UPPER}', '{_ASCII_LOWER}')"


class _codepoint_order(FunctionElement):
    """The column, compared by code point as Python compares str (PostgreSQL: COLLATE "C")."""

    name = "codepoint_order"
    inherit_cache = True

    def __init__(self, expr: ColumnElement[Any]):
        super().__init__(expr)
        self.type = expr.type


@compiles(_codepoint_order)
def _codepoint_order_default(element: _codepoint_order, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(_codepoint_order, "postgresql")
def _codepoint_order_pg(element: _codepoint_order, compiler: Any, **kw: Any) -> str:
    return f'({compiler.process(element.clauses, **kw)} COLLATE "C")'


class _json_array_has(FunctionElement):
    """A JSON-array text column holds this exact string (multipicklist contains).

    Uses the database's JSON functions, not LIKE: a substring match on the JSON text
    can be fooled by quotes, backslashes and ", " inside other elements, and SQLite's
    LIKE ignores ASCII case.
    """

    type = sa.Boolean()
    name = "json_array_has"
    inherit_cache = True


@compiles(_json_array_has, "sqlite")
def _json_array_has_sqlite(element: _json_array_has, compiler: Any, **kw: Any) -> str:
    array, item = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXISTS (SELECT 1 FROM json_each({array}) AS je WHERE je.value = {item})"


@compiles(_json_array_has, "postgresql")
def _json_array_has_pg(element: _json_array_has, compiler: Any, **kw: Any) -> str:
    array, item = (compiler.process(c, **kw) for c in element.clauses)
    return f"(CAST({array} AS JSONB) @> jsonb_build_array(CAST({item} AS TEXT)))"


@compiles(_json_array_has)
def _json_array_has_default(element: _json_array_has, compiler: Any, **kw: Any) -> str:
    raise sa.exc.CompileError(f"multipicklist contains is not supported on {compiler.dialect.name}")


# --- inspection ---------------------------------------------------------------------


def referenced_fields(flt: object) -> set[str]:
    """Field names a filter mentions (unvalidated), e.g. to know which changes can affect it."""
    found: set[str] = set()
    if isinstance(flt, Mapping):
        for key, arg in flt.items():
            if key in ("all", "any") and isinstance(arg, list):
                for child in arg:
                    found |= referenced_fields(child)
            elif key == "not":
                found |= referenced_fields(arg)
            elif isinstance(key, str):
                found.add(key)
    return found
