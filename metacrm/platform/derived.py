"""What a computed field is computed from, so its access can follow its inputs.

A formula shows a function of the fields it names; a rollup shows an aggregate of a child
field (and of the fields its filter tests). `dependencies(registry, object, field)` lists those
inputs as (object, field) pairs; `security.Access.field_access` hides a computed field from a
role that may not see one of them, and every path that asks "may this role see field X" (reads,
filters, sorts, exports, history, search, reports) goes through that one resolver.
"""

from __future__ import annotations

import functools
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

_ENV = ImmutableSandboxedEnvironment()
ANY = "*"  # a formula that reads `record` in a way not known in advance: every field


@functools.lru_cache(maxsize=2048)
def formula_names(expression: str) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """(names read, (name, attribute) pairs read) of a formula expression; ANY in the names when
    the expression reads `record` dynamically. An expression that does not parse reads nothing
    (it computes None)."""
    try:
        tree = _ENV.parse("{{ (" + expression + ") }}")
    except (TemplateSyntaxError, RecursionError, MemoryError):
        return frozenset(), frozenset()
    names: set[str] = set()
    attributes: set[tuple[str, str]] = set()
    consumed: set[int] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not isinstance(target, nodes.Name):
            continue
        attr = node.attr if isinstance(node, nodes.Getattr) else (
            node.arg.value if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str) else None)
        consumed.add(id(target))
        if target.name == "record":
            names.add(attr if attr is not None else ANY)
        else:
            names.add(target.name)
            if attr is not None:
                attributes.add((target.name, attr))
    for node in tree.find_all(nodes.Name):
        if node.name == "record" and id(node) not in consumed:
            names.add(ANY)  # the whole record handed on (to a filter, a call, ...)
        elif node.name != "record":
            names.add(node.name)
    return frozenset(names), frozenset(attributes)


def filter_fields(condition: Any, fields: Any) -> set[str]:
    """Every field name a JSON filter tests (keys that are fields, at any depth)."""
    found: set[str] = set()
    stack, steps = [condition], 0
    while stack and steps < 10000:
        steps += 1
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if isinstance(key, str) and key in fields:
                    found.add(key)
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return found


def dependencies(registry: Any, object_name: str, field_name: str) -> list[tuple[str, str]]:
    """The (object, field) pairs a computed field's value is derived from ([] for stored fields)."""
    if not registry.has_object(object_name):
        return []
    obj = registry.object(object_name)
    fdef = obj.fields.get(field_name)
    if fdef is None:
        return []
    out: list[tuple[str, str]] = []
    if fdef.type == "formula" and fdef.expression:
        names, attributes = formula_names(fdef.expression)
        every = obj.all_fields
        if ANY in names:
            out.extend((obj.name, name) for name in every if name != field_name)
        out.extend((obj.name, name) for name in sorted(names) if name in every and name != field_name)
        for lookup, attr in sorted(attributes):
            ref = every.get(lookup)
            if ref is None or not ref.is_reference:
                continue
            for target in ref.target:
                if registry.has_object(target) and attr in registry.object(target).all_fields:
                    out.append((target, attr))
    elif fdef.type == "rollup" and fdef.child_object and registry.has_object(fdef.child_object):
        child = registry.object(fdef.child_object)
        if fdef.agg_field and fdef.agg_field in child.all_fields:
            out.append((child.name, fdef.agg_field))
        out.extend((child.name, name) for name in sorted(filter_fields(fdef.agg_filter, child.all_fields)))
    return out
