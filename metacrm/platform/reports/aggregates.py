"""Ad-hoc aggregates: ONE SQL aggregate over an object's table, within the caller's scope.

A report is a read path (scope.py): it counts only the rows the caller may report on AND read,
and never shows a value the caller could not read.
- Hidden fields (field access under the read and the report right; formulas and rollups over a
  hidden field included) can be neither grouped nor measured nor filtered: 403 `hidden_field`
  naming the field and the JSON path.
- Never grouped by `id`, a unique field or an autonumber: a group of one record is that
  record's value, a report is not a way to list records (400 `not_groupable`).
- `group_by` takes field names, or `{"field", "period"}` for date and datetime fields; the
  period bucket is computed in SQL (periods.py).
- Measures: count (rows, or non-empty values of a field), sum, avg, min, max. Money and
  other decimals come back as strings; sums stay exact whatever their size (PostgreSQL sums as
  numeric; SQLite, which keeps decimals as scaled integers, sums again in two exact halves
  past 2^63, see platform/sums.py), so a sum beyond the field's own digits is still the right figure;
  averages are sum / count, rounded to the field's scale (2 for integers), half up.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa

from ...metadata.model import FieldDef, ObjectDef, label_text
from .. import filters as flt
from .. import schemas
from ..derived import filter_fields
from ..errors import BadRequest, Forbidden
from ..sums import EXACT, run_exact, sum_columns, sum_value
from .periods import PERIODS, period_of
from .scope import report_hidden, require_report, scope_condition

FUNCTIONS = ("count", "sum", "avg", "min", "max")
NUMERIC = ("integer", "decimal", "currency", "percent")
ORDERED = NUMERIC + ("date", "datetime")
MAX_GROUPS = 10000


class _Group:
    def __init__(self, key: str, fdef: FieldDef, period: str | None, expr: Any):
        self.key, self.fdef, self.period, self.expr = key, fdef, period, expr


class _Measure:
    def __init__(self, name: str, function: str, fdef: FieldDef | None, label: Any):
        self.name, self.function, self.fdef, self.label = name, function, fdef, label


def _visible_fields(service, obj: ObjectDef) -> dict[str, FieldDef]:
    # Visible under the read right and the report right (a report shows no more than a read).
    hidden = report_hidden(service, obj.name)
    return {n: f for n, f in obj.all_fields.items() if n not in hidden and f.type != "password"}


def _refuse(strict: bool, name: str, path: str) -> None:
    """A field the caller may not see: 403 naming it (ad-hoc aggregates and report documents)."""
    raise Forbidden(f"The report uses the field {name!r}, which you cannot see.", code="hidden_field",
                    fields={path: [f"{name!r} is hidden from you."]})


def _identifying(fdef: FieldDef) -> bool:
    """One value per record: grouping by it would list the records, not aggregate them."""
    return fdef.name == "id" or fdef.unique or fdef.type == "autonumber"


def _parse_groups(spec: Any, obj: ObjectDef, fields: Mapping[str, FieldDef], table: sa.Table,
                  strict: bool) -> list[_Group]:
    if spec in (None, ""):
        return []
    if not isinstance(spec, list):
        raise BadRequest("group_by must be a list.", code="bad_report", fields={"group_by": ["Not a list."]})
    groups: list[_Group] = []
    for index, item in enumerate(spec):
        path = f"group_by/{index}"
        period = None
        if isinstance(item, Mapping):
            name, period = item.get("field"), item.get("period")
            if period not in PERIODS:
                raise BadRequest(f"period must be one of {', '.join(PERIODS)}.", code="bad_report",
                                 fields={path: ["Unknown period."]})
        else:
            name = item
        if not isinstance(name, str):
            raise BadRequest("A group is a field name or {field, period}.", code="bad_report",
                             fields={path: ["Not a field."]})
        fdef = fields.get(name)
        if fdef is None:
            if name in obj.all_fields:
                _refuse(strict, name, path)
            raise BadRequest(f"Unknown field {name!r}.", code="unknown_field", fields={path: ["Unknown field."]})
        if fdef.value_type in ("multipicklist", "textarea"):
            raise BadRequest(f"Cannot group by {name!r}.", code="bad_report", fields={path: ["Not groupable."]})
        if _identifying(fdef):
            raise BadRequest(f"Cannot group by {name!r}: it identifies single records.", code="not_groupable",
                             fields={path: ["Identifies single records; filter by it instead."]})
        column = table.c[name]
        if period is not None:
            if fdef.value_type not in ("date", "datetime"):
                raise BadRequest(f"{name!r} is not a date field.", code="bad_report",
                                 fields={path: ["A period needs a date or datetime field."]})
            groups.append(_Group(f"{name}_{period}", fdef, period, period_of(column, period)))
        else:
            groups.append(_Group(name, fdef, None, column))
    keys = [g.key for g in groups]
    if len(set(keys)) != len(keys):
        raise BadRequest("A field is grouped twice.", code="bad_report", fields={"group_by": ["Duplicate group."]})
    return groups


def _parse_measures(spec: Any, obj: ObjectDef, fields: Mapping[str, FieldDef], strict: bool) -> list[_Measure]:
    if spec in (None, []):
        return [_Measure("count", "count", None, {"en": "Count", "zh-CN": "数量"})]
    if not isinstance(spec, list):
        raise BadRequest("measures must be a list.", code="bad_report", fields={"measures": ["Not a list."]})
    measures: list[_Measure] = []
    for index, item in enumerate(spec):
        path = f"measures/{index}"
        if not isinstance(item, Mapping) or item.get("function") not in FUNCTIONS:
            raise BadRequest(f"A measure is {{function: {'|'.join(FUNCTIONS)}, field}}.", code="bad_report",
                             fields={path: ["Bad measure."]})
        function, name = item["function"], item.get("field")
        fdef = None
        if name is not None or function != "count":
            if not isinstance(name, str):
                raise BadRequest(f"{function} needs a field.", code="bad_report", fields={path: ["Field required."]})
            fdef = fields.get(name)
            if fdef is None:
                if name in obj.all_fields:
                    _refuse(strict, name, path)
                raise BadRequest(f"Unknown field {name!r}.", code="unknown_field", fields={path: ["Unknown field."]})
            allowed = NUMERIC if function in ("sum", "avg") else ORDERED if function in ("min", "max") else None
            if allowed and fdef.value_type not in allowed:
                raise BadRequest(f"Cannot {function} {name!r} ({fdef.type}).", code="bad_report",
                                 fields={path: ["Not a number field." if function in ("sum", "avg")
                                                else "Not a number or date field."]})
        default_name = "count" if fdef is None else f"{function}_{fdef.name}"
        mname = item.get("name") or default_name
        measures.append(_Measure(mname, function, fdef, item.get("label")))
    names = [m.name for m in measures]
    if len(set(names)) != len(names):
        raise BadRequest("Two measures have the same name.", code="bad_report", fields={"measures": ["Duplicate."]})
    return measures


def _measure_columns(measures: list[_Measure], table: sa.Table, split: bool = False) -> list[Any]:
    """The SELECT columns of the measures; `split` sums in two exact halves (platform/sums.py: SQLite past
    2^63, e.g. money near its precision, which SQLite keeps as scaled integers)."""
    cols = []
    for i, m in enumerate(measures):
        if m.function == "count":
            cols.append((sa.func.count() if m.fdef is None else sa.func.count(table.c[m.fdef.name])).label(f"m{i}"))
        elif m.function in ("sum", "avg"):
            cols.extend(sum_columns(table.c[m.fdef.name], f"m{i}", split))
            if m.function == "avg":
                cols.append(sa.func.count(table.c[m.fdef.name]).label(f"m{i}_n"))
        else:
            cols.append(getattr(sa.func, m.function)(table.c[m.fdef.name]).label(f"m{i}"))
    return cols


def _measure_values(measures: list[_Measure], row: Mapping, table: sa.Table) -> dict[str, Any]:
    out = {}
    for i, m in enumerate(measures):
        if m.function in ("sum", "avg"):
            value = sum_value(row, f"m{i}", table.c[m.fdef.name])
        else:
            value = row[f"m{i}"]
        if m.function == "count":
            out[m.name] = int(value or 0)
        elif m.function == "avg":
            count = int(row[f"m{i}_n"] or 0)
            if not count or value is None:
                out[m.name] = None
            else:
                scale = m.fdef.scale if m.fdef.value_type != "integer" and m.fdef.scale is not None else 2
                quantum = Decimal(1).scaleb(-scale)
                mean = EXACT.divide(Decimal(value), Decimal(count))
                out[m.name] = str(mean.quantize(quantum, rounding=ROUND_HALF_UP, context=EXACT))
        elif m.function == "sum" and value is None:
            integer = m.fdef.value_type == "integer"
            out[m.name] = 0 if integer else str(Decimal(0).quantize(Decimal(1).scaleb(-(m.fdef.scale or 0))))
        else:
            out[m.name] = _json(m.fdef, value)
    return out


def _json(fdef: FieldDef | None, value: Any) -> Any:
    if value is None:
        return None
    if fdef is not None and fdef.value_type == "integer" and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (Decimal, datetime, date)):
        return schemas.to_json_value(fdef or FieldDef("x", "decimal"), value)
    return value


def _labels(service, group: _Group, values: set) -> dict[str, str]:
    """Display names for the ids of a lookup / user group (only records the caller may read)."""
    fdef = group.fdef
    ids = sorted(v for v in values if isinstance(v, str))
    if not ids or group.period is not None or not fdef.is_reference:
        return {}
    labels: dict[str, str] = {}
    for target in fdef.target:
        if not service.registry.has_object(target):
            continue
        tobj = service.registry.object(target)
        name_field = tobj.name_field if tobj.name_field in tobj.all_fields else None
        if target == "user":
            name_field = "display_name"
        if name_field is None:
            continue
        ttable = service.table(target)
        query = sa.select(ttable.c.id, ttable.c[name_field]).where(ttable.c.id.in_(ids))
        if target == "user":
            query = query.add_columns(ttable.c.username)
        elif service.access.scope(target, "read") == "none" or service.access.field_access(
                target, name_field) == "hidden":
            continue  # no label the caller could not read on the record itself
        else:
            query = query.where(service.access.row_filter(target, "read", ttable))
        with service._reading() as conn:
            for row in conn.execute(query):
                label = row[1] or (row[2] if target == "user" else None)
                if label:
                    labels[row[0]] = str(label)
    return labels


def _sort_rows(rows: list[dict], sort: str | None, known: list[str]) -> list[dict]:
    if not sort:
        return rows
    keys = []
    for part in (p.strip() for p in str(sort).split(",")):
        if not part:
            continue
        name = part.lstrip("-+")
        if name not in known:
            raise BadRequest(f"Cannot sort by {name!r}: not a group or measure.", code="bad_sort",
                             fields={"sort": [f"Unknown {name!r}."]})
        keys.append((name, part.startswith("-")))

    def sortable(value: Any) -> tuple:
        if value is None:
            return (0, 0)
        if isinstance(value, str):
            try:
                return (1, Decimal(value))
            except ArithmeticError:
                return (2, value)
        return (1, value) if isinstance(value, (int, float, Decimal)) else (2, str(value))

    for name, descending in reversed(keys):
        rows.sort(key=lambda r, n=name: sortable(r.get(n)), reverse=descending)
    return rows


def aggregate(service, object_name: str, spec: Mapping[str, Any], *, strict: bool = False,
              extra_filter: Any = None) -> dict:
    """Run one aggregate. Hidden fields are refused with 403 whether the aggregate is ad hoc or a
    report document (`strict` is kept for callers; both are strict now)."""
    if not isinstance(spec, Mapping):
        raise BadRequest("The aggregate must be a JSON object.", code="bad_report")
    unknown = set(spec) - {"filter", "group_by", "measures", "sort", "limit"}
    if unknown:
        raise BadRequest(f"Unknown keys: {', '.join(sorted(unknown))}.", code="bad_report",
                         fields={k: ["Unknown key."] for k in sorted(unknown)})
    obj = service.obj(object_name)
    require_report(service, obj.name)
    table = service.table(obj.name)
    fields = _visible_fields(service, obj)
    groups = _parse_groups(spec.get("group_by"), obj, fields, table, strict)
    measures = _parse_measures(spec.get("measures"), obj, fields, strict)
    limit = spec.get("limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise BadRequest("limit must be a positive integer.", code="bad_report", fields={"limit": ["Bad limit."]})

    where = [table.c.deleted_at.is_(None), scope_condition(service, obj.name, table)]
    ctx = flt.FilterContext.current(service.principal.user_id, service.principal.department)
    for label, condition in (("filter", spec.get("filter")), ("filter", extra_filter)):
        if condition in (None, {}, ""):
            continue
        for name in sorted(filter_fields(condition, obj.all_fields)):
            if name not in fields:
                _refuse(True, name, label)
        try:
            where.append(flt.compile_sql(condition, table, fields, ctx))
        except flt.FilterError as exc:
            name = exc.path.split("/")[1] if exc.path.count("/") >= 1 else ""
            if name in obj.all_fields and name not in fields:
                _refuse(True, name, label)
            raise BadRequest(f"Bad filter at {exc.path or '/'}: {exc.message}", code="bad_filter",
                             path=exc.path) from None

    group_cols = [g.expr.label(f"g{i}") for i, g in enumerate(groups)]

    def grouped(split: bool) -> Any:
        query = sa.select(*group_cols, *_measure_columns(measures, table, split)).where(*where)
        return query.group_by(*[g.expr for g in groups]).limit(MAX_GROUPS + 1) if groups else query

    with service._reading() as conn:
        result = run_exact(conn, grouped, lambda query: conn.execute(query).mappings().fetchall())
        totals_row = run_exact(conn, lambda split: sa.select(*_measure_columns(measures, table, split)).where(*where),
                               lambda query: conn.execute(query).mappings().first()) if groups else None
    if len(result) > MAX_GROUPS:
        raise BadRequest(f"More than {MAX_GROUPS} groups; narrow the filter.", code="too_many_groups")

    rows = []
    seen: dict[int, set] = {i: set() for i in range(len(groups))}
    for row in result:
        out: dict[str, Any] = {}
        for i, g in enumerate(groups):
            value = row[f"g{i}"]
            out[g.key] = value if g.period is not None else _json(g.fdef, value)
            seen[i].add(out[g.key])
        out.update(_measure_values(measures, row, table))
        rows.append(out)
    for i, g in enumerate(groups):
        labels = _labels(service, g, seen[i])
        if labels:
            for out in rows:
                if out.get(g.key) in labels:
                    out[f"{g.key}__label"] = labels[out[g.key]]
    default_sort = ",".join(g.key for g in groups)
    rows = _sort_rows(rows, spec.get("sort") or default_sort, [g.key for g in groups] + [m.name for m in measures])
    if limit:
        rows = rows[:limit]
    totals = _measure_values(measures, totals_row, table) if totals_row is not None else (rows[0] if rows else {})
    return {
        "object": obj.name,
        "group_by": [{"key": g.key, "field": g.fdef.name, "period": g.period} for g in groups],
        "measures": [{"name": m.name, "function": m.function, "field": m.fdef.name if m.fdef else None,
                      "label": label_text(m.label, service.principal.locale, m.name) if m.label else m.name}
                     for m in measures],
        "rows": rows,
        "totals": {m.name: totals.get(m.name) for m in measures},
    }
