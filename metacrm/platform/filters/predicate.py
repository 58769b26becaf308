"""A filter compiled to a Python predicate, for testing one record in memory (a save, a trigger)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .parse import FieldLike, FilterContext, _checked, _Leaf
from .plan import _plan, fold_case

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
            test = lambda v: x in fold_case(v)
        case "startswith":
            test = lambda v: fold_case(v).startswith(x)
    when_null = op in ("ne", "nin")
    return lambda record: when_null if (v := record.get(name)) is None else bool(test(v))
