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

MAX_ROWS = 20
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
    """(filter or None, the rows as entered, {row index: problem}). Rows without a field are
    ignored; a row naming a field the caller may not see is a problem of that row."""
    rows, parts, errors = [], [], {}
    for index in range(MAX_ROWS):
        name = (form.get(f"{prefix}.{index}.field") or "").strip()
        op = (form.get(f"{prefix}.{index}.op") or "eq").strip()
        text = (form.get(f"{prefix}.{index}.value") or "").strip()
        if not name:
            continue
        row = {"field": name, "op": op, "value": text}
        position = len(rows)
        rows.append(row)
        fdef = fields.get(name)
        if fdef is None or row_kind(fdef) is None:
            errors[position] = t("condrows.unknown_field", field=name)
            continue
        if op not in OPERATORS[row_kind(fdef)]:
            errors[position] = t("condrows.bad_operator")
            continue
        if text == "" and op != "is_null":
            errors[position] = t("condrows.value_required")
            continue
        value = _value(fdef, op, text)
        condition = {name: value} if op == "eq" else {name: {op: value}}
        problems = validate_filter(condition, dict(fields))
        if problems:
            errors[position] = t("condrows.bad_value", field=fdef.display_label(current_locale()))
            continue
        parts.append(condition)
    flt = None if not parts else parts[0] if len(parts) == 1 else {"all": parts}
    return flt, rows, errors


def rows_from_filter(flt: Any) -> list[dict] | None:
    """The rows that make `flt` (None when it is not a flat AND of simple conditions)."""
    if flt in (None, {}):
        return []
    parts = flt.get("all") if isinstance(flt, dict) and set(flt) == {"all"} else [flt]
    rows = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict) or len(part) != 1:
            return None
        (name, cond), = part.items()
        if name in ("all", "any", "not"):
            return None
        if isinstance(cond, dict):
            if len(cond) != 1:
                return None
            (op, value), = cond.items()
        else:
            op, value = "eq", cond
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (list, dict)):
            return None
        rows.append({"field": name, "op": op, "value": "" if value is None else str(value)})
    return rows


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
