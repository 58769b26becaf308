"""The condition builder's server side: one form field that holds a filter of the JSON filter grammar
(METADATA.md "Conditions"), wherever a condition is edited in the web (pool entry and recycle rules,
duplicate-rule scopes, workflow and approval conditions, report filters, saved views).

A page renders `condition_builder(name, object_name, value)` from `_conditions.html`: a textarea with
the filter as JSON (so the page works without JavaScript), which `static/conditions.js` turns into rows
of field / operator / value with nested all / any / not groups. The posted value is read back with
`parse_condition`, which validates it against the object's fields the user may see, with the error
at its JSON path, so a bad condition is shown beside the field and nothing is saved.
"""

from __future__ import annotations

import json
from typing import Any

from ..filters import FilterError, validate_filter


def condition_text(value: Any) -> str:
    """The filter as the textarea shows it (indented JSON), '' for no condition."""
    if value in (None, "", {}):
        return ""
    return json.dumps(value, ensure_ascii=False, indent=2)


def parse_condition(text: str | None, fields: dict, *, allow_changed: bool = False) -> tuple[Any, list[str]]:
    """(filter or None, error messages). `fields` are the FieldDefs a condition may name (the caller
    passes the object's fields visible to the user)."""
    text = (text or "").strip()
    if not text:
        return None, []
    try:
        value = json.loads(text)
    except ValueError as exc:
        return None, [f"Not valid JSON: {exc}"]
    except RecursionError:
        return None, ["The condition is nested too deeply."]
    problems: list[FilterError] = validate_filter(value, fields, allow_changed=allow_changed)
    if problems:
        return None, [str(p) for p in problems]
    return value, []
