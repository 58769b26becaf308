"""A simple condition form: rows of field / operator / value with typed inputs, AND-ed together.

The flat sibling of the condition builder (conditions.py): where a page needs "only these records"
and nothing nested (report filters, the report builder; the admin studio reuses it), the template
macro `condition_rows(prefix, rows, fields)` in `_condition_rows.html` draws the rows as plain form
inputs named `<prefix>.<n>.field`, `<prefix>.<n>.op`, `<prefix>.<n>.value` (so the page works
without JavaScript: there is always one empty row more), and `static/condition_rows.js` adds rows
and swaps the value input to suit the chosen field. `rows_from_form` turns the posted rows into a
filter of the JSON filter grammar, validated against the fields the caller may see, with each
problem kept beside its row; `rows_from_filter` gives the rows back for a filter they made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...metadata.model import FieldDef
from ..filters import validate_filter
from . import display
from .i18n import current_locale, t

MAX_ROWS = 20  # rows a flat form draws at most (kept for callers)
MAX_ITEMS = 80  # rows and groups read from one posted form
MAX_GROUP_DEPTH = 4  # groups within groups
OPERATORS = {
    "text": ("eq", "ne", "contains", "startswith", "is_null"),
    "choice": ("eq", "ne", "is_null"),
    "number": ("eq", "ne", "gt", "gte", "lt", "lte", "is_null"),
    "date": ("eq", "gte", "lte", "gt", "lt", "within_last_days", "older_than_days", "is_null"),
    "boolean": ("eq",),
    "multi": ("contains", "is_null"),
    "id": ("eq", "ne", "is_null"),
}


def row_kind(fdef: FieldDef) -> str | None:
    vtype = fdef.value_type
    if fdef.type == "password":
        return None
    if fdef.is_reference or vtype in ("id", "autonumber"):
        return "id"
    if vtype == "picklist":
        return "choice"
    if vtype == "multipicklist":
        return "multi"
    if vtype in ("integer", "decimal", "currency", "percent"):
        return "number"
    if vtype in ("date", "datetime"):
        return "date"
    if vtype == "boolean":
        return "boolean"
    return "text"


def field_choices(fields: Mapping[str, FieldDef]) -> list[dict]:
    """What the macro offers per field: label, kind, its operators, and its options (picklists)."""
    locale = current_locale()
    out = []
    for name, fdef in fields.items():
        kind = row_kind(fdef)
        if kind is None:
            continue
        options = display.options(fdef) if kind in ("choice", "multi") else (
            [("true", t("common.yes")), ("false", t("common.no"))] if kind == "boolean" else [])
        out.append({"name": name, "label": fdef.display_label(locale), "kind": kind,
                    "input": "date" if fdef.value_type == "date" else (
                        "datetime-local" if fdef.value_type == "datetime" else "number" if kind == "number" else "text"),
                    "operators": [(op, t(f"condrows.op.{op}")) for op in OPERATORS[kind]], "options": options})
    out.sort(key=lambda c: c["label"].lower())
    return out


def _value(fdef: FieldDef, op: str, text: str) -> Any:
    kind = row_kind(fdef)
    if op == "is_null":
        return text != "false"
    if op in ("within_last_days", "older_than_days") or (kind == "number" and fdef.value_type == "integer"):
        try:
            return int(text)
        except ValueError:
            return text
    if kind == "boolean":
        return {"true": True, "false": False}.get(text, text)
    if fdef.value_type == "datetime" and len(text) == 16:  # datetime-local: 2025-03-01T09:30
        return text + ":00Z"
    return text


def rows_from_form(form: Mapping[str, str], fields: Mapping[str, FieldDef], prefix: str = "c"
                   ) -> tuple[Any, list[dict], dict[int, str]]:
    """(filter or None, the items as entered, {item index: problem}). Rows without a field are
    ignored; a row naming a field the caller may not see is a problem of that row.

    Items are rows (`<prefix>.<n>.field / op / value`) and groups (`<prefix>.<n>.kind = group`,
    `.mode` all / any, `.not`); `<prefix>.<n>.group` names the group an item is in (the index of an
    earlier group item; empty or absent: the top level, whose items are AND-ed as before). A group
    without any filled row is dropped, so a blank group is as harmless as a blank row. The items
    come back in order, a nested one with `group` = the position of its group in the list."""
    raw: dict[int, dict] = {}
    for index in range(MAX_ITEMS):
        kind = (form.get(f"{prefix}.{index}.kind") or "").strip()
        parent_text = (form.get(f"{prefix}.{index}.group") or "").strip()
        if kind == "group":
            item = {"kind": "group", "mode": (form.get(f"{prefix}.{index}.mode") or "all").strip(),
                    "not": bool(form.get(f"{prefix}.{index}.not"))}
        else:
            name = (form.get(f"{prefix}.{index}.field") or "").strip()
            if not name:
                continue
            item = {"field": name, "op": (form.get(f"{prefix}.{index}.op") or "eq").strip(),
                    "value": (form.get(f"{prefix}.{index}.value") or "").strip()}
        item["_parent"] = parent_text
        raw[index] = item
    # Which groups hold a filled row (their own or a nested group's): the others are dropped.
    filled: set[int] = set()
    for index, item in raw.items():
        if item.get("kind") == "group":
            continue
        seen, at = set(), item["_parent"]
        while at.isdigit() and int(at) in raw and raw[int(at)].get("kind") == "group" and int(at) not in seen:
            seen.add(int(at))
            filled.add(int(at))
            at = raw[int(at)]["_parent"]
    rows: list[dict] = []
    errors: dict[int, str] = {}
    position_of: dict[int, int] = {}
    depth_of: dict[int, int] = {}
    members: dict[int | None, list[tuple[int, Any]]] = {None: []}  # group position -> [(position, part)]
    for index in sorted(raw):
        item = raw[index]
        if item.get("kind") == "group" and index not in filled:
            continue
        parent_text = item.pop("_parent")
        position = len(rows)
        parent: int | None = None
        problem = None
        if parent_text:
            owner = int(parent_text) if parent_text.isdigit() else -1
            if owner >= index or owner not in position_of or raw[owner].get("kind") != "group":
                problem = t("condrows.bad_group")
            else:
                parent = position_of[owner]
        if parent is not None:
            item["group"] = parent
        rows.append(item)
        if item.get("kind") == "group":
            position_of[index] = position
            depth_of[position] = depth_of.get(parent, 0) + 1 if parent is not None else 1
            members[position] = []
            if problem is None and item["mode"] not in ("all", "any"):
                problem = t("condrows.bad_mode")
            if problem is None and depth_of[position] > MAX_GROUP_DEPTH:
                problem = t("condrows.too_deep", levels=MAX_GROUP_DEPTH)
            if problem:
                errors[position] = problem
                members[position] = None  # type: ignore[assignment]  # an invalid group adds nothing
            elif members.get(parent) is not None:
                members[parent].append((position, position))  # type: ignore[union-attr]
            continue
        if problem:
            errors[position] = problem
            continue
        problem, condition = _condition(item, fields)
        if problem:
            errors[position] = problem
        elif members.get(parent) is not None:
            members[parent].append((position, condition))  # type: ignore[union-attr]

    def build(group: int | None) -> list:
        out = []
        for _, part in members.get(group) or []:
            if isinstance(part, int):  # a nested group
                inner = build(part)
                if not inner:
                    continue
                body = inner[0] if len(inner) == 1 else {rows[part]["mode"]: inner}
                out.append({"not": body} if rows[part]["not"] else body)
            else:
                out.append(part)
        return out

    parts = build(None)
    flt = None if not parts else parts[0] if len(parts) == 1 else {"all": parts}
    return flt, rows, errors


def _condition(row: dict, fields: Mapping[str, FieldDef]) -> tuple[str | None, Any]:
    """(problem, None) or (None, the condition) for one filled row."""
    name, op, text = row["field"], row["op"], row["value"]
    fdef = fields.get(name)
    if fdef is None or row_kind(fdef) is None:
        return t("condrows.unknown_field", field=name), None
    if op not in OPERATORS[row_kind(fdef)]:
        return t("condrows.bad_operator"), None
    if text == "" and op != "is_null":
        return t("condrows.value_required"), None
    value = _value(fdef, op, text)
    condition = {name: value} if op == "eq" else {name: {op: value}}
    if validate_filter(condition, dict(fields)):
        return t("condrows.bad_value", field=fdef.display_label(current_locale())), None
    return None, condition


def rows_from_filter(flt: Any) -> list[dict] | None:
    """The items that make `flt` (None when rows and groups cannot show it). A flat AND of simple
    conditions gives plain rows, exactly as before; all / any / not nest as groups."""
    if flt in (None, {}):
        return []
    parts = flt.get("all") if isinstance(flt, dict) and set(flt) == {"all"} else [flt]
    if not isinstance(parts, list):
        return None
    rows: list[dict] = []
    for part in parts:
        if not _add_item(part, rows, None, 0):
            return None
    return rows


def _add_item(part: Any, rows: list[dict], group: int | None, depth: int) -> bool:
    if not isinstance(part, dict) or len(part) != 1:
        return False
    (name, cond), = part.items()
    if name in ("all", "any", "not"):
        if depth >= MAX_GROUP_DEPTH:
            return False
        negate = name == "not"
        body = cond
        if negate and isinstance(body, dict) and len(body) == 1 and next(iter(body)) in ("all", "any"):
            (name, body), = body.items()
        elif negate:
            name, body = "all", [body]
        if not isinstance(body, list) or not body:
            return False
        position = len(rows)
        item: dict[str, Any] = {"kind": "group", "mode": name, "not": negate}
        if group is not None:
            item["group"] = group
        rows.append(item)
        return all(_add_item(inner, rows, position, depth + 1) for inner in body)
    if isinstance(cond, dict):
        if len(cond) != 1:
            return False
        (op, value), = cond.items()
    else:
        op, value = "eq", cond
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, (list, dict)):
        return False
    row = {"field": name, "op": op, "value": "" if value is None else str(value)}
    if group is not None:
        row["group"] = group
    rows.append(row)
    return True


def describe(flt: Any, fields: Mapping[str, FieldDef]) -> list[str] | None:
    """A flat AND of simple conditions in words ("Stage is none of Won, Lost"), one per condition, in
    the reader's language; None when the filter is anything else (nested any / not, variables)."""
    if flt in (None, {}):
        return []
    parts = flt.get("all") if isinstance(flt, dict) and set(flt) == {"all"} else [flt]
    locale = current_locale()
    out = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict) or len(part) != 1:
            return None
        (name, cond), = part.items()
        fdef = fields.get(name)
        if fdef is None:
            return None
        op, value = next(iter(cond.items())) if isinstance(cond, dict) and len(cond) == 1 else ("eq", cond)
        if isinstance(cond, dict) and len(cond) != 1 or op not in (*OPERATORS["number"], *OPERATORS["text"],
                                                                    "in", "nin", "within_last_days", "older_than_days"):
            return None
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, (dict, list)) or (isinstance(v, str) and v.startswith("$")) for v in values):
            return None
        shown = ", ".join(display.show(fdef, v).text for v in values) if op != "is_null" else ""
        out.append(" ".join(p for p in (fdef.display_label(locale), t(f"condrows.op.{op}"), shown) if p))
    return out
