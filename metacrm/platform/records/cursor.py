"""Sorting and keyset paging for record lists: a sort string checked against the fields the
caller may see, the ORDER BY it means, and an opaque cursor holding the last row's sort values,
so the next page starts strictly after it (no OFFSET scan, no row skipped or repeated)."""

from __future__ import annotations

import base64
import json
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from marshmallow import ValidationError

from ...metadata.model import FieldDef
from .. import schemas
from ..errors import BadRequest


def parse_sort(sort: str, fields: dict[str, FieldDef]) -> list[tuple[str, bool]]:
    """'-amount,name' -> [('amount', True), ('name', False), ('id', False)]; names checked."""
    order = []
    for part in (p.strip() for p in sort.split(",")):
        if not part:
            continue
        descending = part.startswith("-")
        name = part.lstrip("-+")
        fdef = fields.get(name)
        if fdef is None or fdef.value_type in ("multipicklist", "textarea"):
            raise BadRequest(f"Cannot sort by {name!r}.", code="bad_sort", fields={"sort": [f"Unknown field {name!r}."]})
        if name != "id":
            order.append((name, descending))
    order.append(("id", order[-1][1] if order else False))
    return order


def order_clauses(table: sa.Table, order: list[tuple[str, bool]]) -> list:
    clauses = []
    for name, descending in order:
        column = table.c[name]
        clauses.append(column.desc().nulls_last() if descending else column.asc().nulls_first())
    return clauses


def keyset_after(table: sa.Table, order: list[tuple[str, bool]], values: list) -> Any:
    """Rows strictly after `values` in `order` (NULLs first ascending, last descending)."""
    ors = []
    for i, (name, descending) in enumerate(order):
        column, value = table.c[name], values[i]
        equal_before = [
            table.c[n].is_(None) if v is None else table.c[n] == v for (n, _), v in zip(order[:i], values[:i])
        ]
        if descending:
            after = sa.false() if value is None else sa.or_(column < value, column.is_(None))
        else:
            after = column.isnot(None) if value is None else column > value
        ors.append(sa.and_(*equal_before, after))
    return sa.or_(*ors)


def encode_cursor(record: dict, order: list[tuple[str, bool]], fields: dict[str, FieldDef]) -> str:
    values = [schemas.to_json_value(fields[name], record.get(name)) for name, _ in order]
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, order: list[tuple[str, bool]], fields: dict[str, FieldDef]) -> list:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        if not isinstance(values, list) or len(values) != len(order):
            raise ValueError("shape")
        return [parse_cursor_value(fields[name], value) for (name, _), value in zip(order, values)]
    except (ValueError, TypeError, KeyError, ArithmeticError, RecursionError, ValidationError):
        raise BadRequest("The cursor is not valid for this list (sort changed?).", code="bad_cursor") from None


def parse_cursor_value(fdef: FieldDef, value: Any) -> Any:
    if value is None:
        return None
    # A cursor comes from the client: every value is checked as strictly as the field's own
    # input (a crafted one is a 400 bad_cursor, never a value the database cannot bind).
    vtype = fdef.value_type
    if isinstance(value, (dict, list)):
        raise TypeError("not a scalar")
    if vtype in ("decimal", "currency", "percent"):
        return schemas.ExactDecimalField(scale=fdef.scale if fdef.scale is not None else 2,
                                         precision=fdef.precision or 18).deserialize(value)
    if vtype == "datetime":
        return datetime.fromisoformat(str(value).replace("Z", ""))
    if vtype == "date":
        return date.fromisoformat(str(value))
    if vtype == "integer":
        if isinstance(value, bool) or not isinstance(value, int) or not schemas.INT64_MIN <= value <= schemas.INT64_MAX:
            raise ValueError("not a 64-bit integer")
        return value
    if vtype == "boolean":
        if not isinstance(value, bool):
            raise ValueError("not a boolean")
        return value
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError("not a string")
    return value
