"""A filter compiled to a SQL WHERE clause, for sweeps and lists, with the dialect functions that
make the database compare and fold text the way Python does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from .parse import FieldLike, FilterContext, FilterError, _checked, _Leaf
from .plan import _plan


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
            test = _fold_case(col).contains(x, autoescape=True)
        case "startswith":
            test = _fold_case(col).startswith(x, autoescape=True)
        case _:  # "changed" was refused by validation; keep the guard explicit
            raise FilterError(leaf.path, "changed only applies in update triggers")
    return sa.and_(col.is_not(None), test)


class _fold_case(FunctionElement):
    """Unicode lower case on every dialect (see plan.fold_case): PostgreSQL's lower(), SQLite's
    `mc_lower` (Python's str.lower, registered on every connection by db.make_engine)."""

    type = sa.String()
    name = "fold_case"
    inherit_cache = True


@compiles(_fold_case)
def _fold_case_default(element: _fold_case, compiler: Any, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(_fold_case, "sqlite")
def _fold_case_sqlite(element: _fold_case, compiler: Any, **kw: Any) -> str:
    return f"mc_lower({compiler.process(element.clauses, **kw)})"


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
