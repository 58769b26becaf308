"""GET /records/{object}/export: the records as CSV (or ?format=xlsx), streamed page by page.

Same query parameters as the list (`filter`, `sort`, `fields`), but the rows are those
the caller's `export` scope reaches (not the read scope); a caller whose export scope is
`none` gets 403. The file is UTF-8 with a BOM (so Excel opens Chinese text correctly),
one header row of field names, decimals written exactly, lookups as ids.

Spreadsheet formula injection: a text cell starting with `=`, `+`, `-`, `@`, a tab or a
carriage return is prefixed with a single quote (OWASP's advice), so opening the file
never runs a formula someone typed into a record. Values of numeric fields (integers,
decimals, money, percentages) are written as they are: `-12.50` stays a number.

The web UI's "Export CSV" link (web/export_views.py) uses the same generator.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Response, g, request

from ..errors import BadRequest
from ..records import MAX_LIMIT, RecordService
from ..spreadsheets import XLSX_MIMETYPE, xlsx_chunks
from . import api, runtime
from .records import _filter

BOM = "\ufeff"
PAGE_SIZE = MAX_LIMIT
NUMERIC = frozenset({"integer", "decimal", "currency", "percent"})
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def neutralise(text: str) -> str:
    """A text cell that a spreadsheet would read as a formula, made inert with a leading quote."""
    return "'" + text if text.startswith(FORMULA_START) else text


def _number(value: Any) -> str | None:
    """The exact text of a numeric value (no exponent, no float), or None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    try:
        number = Decimal(value) if isinstance(value, (str, Decimal)) else None
    except InvalidOperation:
        return None
    if number is None or not number.is_finite():
        return None
    text = format(number, "f")
    return text if _NUMBER.match(text) else None


def cell(value_type: str | None, value: Any) -> str:
    """One CSV cell from a record's JSON value (as the list returns it)."""
    if value is None:
        return ""
    if value_type in NUMERIC:
        text = _number(value)
        if text is not None:
            return text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        text = ";".join(str(v) for v in value)  # the importer reads multi-picklists the same way
    elif isinstance(value, dict):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    return neutralise(text)


def export_columns(service: RecordService, object_name: str, fields: list[str] | None) -> list[str]:
    """The header: the requested fields in order, else every field the caller may see (id
    first, the object's own fields, then the system fields)."""
    if fields:
        return list(dict.fromkeys(fields))
    obj = service.obj(object_name)
    hidden = service.access.hidden_fields(obj.name)
    own = [n for n, f in obj.fields.items() if not f.system]
    names = ["id", *own, *(n for n in obj.all_fields if n not in own and n != "id")]
    columns = []
    for name in names:
        fdef = obj.all_fields[name]
        if name in hidden or fdef.type == "password":
            continue
        columns.append(name)
        if fdef.polymorphic:
            columns.append(f"{name}__object")
    return columns


def _record_rows(service: RecordService, object_name: str, *, filter: Any = None, sort: str | None = None,
                 fields: list[str] | None = None, page_size: int | None = None):
    """(columns, types, rows): rows is an iterator of the records as JSON, page by page.

    The first page is read before this returns, so a refusal (unknown object, no export
    scope, a bad filter, sort or field) is raised here as a CrmError and the caller can
    answer it properly; later pages follow the keyset cursor while the response streams."""
    obj = service.obj(object_name)
    page_size = page_size or PAGE_SIZE
    columns = export_columns(service, object_name, fields)
    types = {}
    for name in columns:
        fdef = obj.all_fields.get(name)
        types[name] = fdef.value_type if fdef is not None and not fdef.is_reference else None

    def page(cursor: str | None) -> tuple[list[dict], str | None]:
        return service.list(object_name, filter=filter, sort=sort, fields=fields, limit=page_size,
                            cursor=cursor, action="export")

    first, next_cursor = page(None)

    def pages() -> Iterator[list[dict]]:
        items, cursor = first, next_cursor
        while True:
            yield items
            if not cursor:
                return
            items, cursor = page(cursor)

    return columns, types, pages()


def csv_chunks(service: RecordService, object_name: str, **query: Any) -> Iterator[bytes]:
    """The CSV as UTF-8 chunks (one per page of records); refusals raise before it returns."""
    columns, types, pages = _record_rows(service, object_name, **query)

    def generate() -> Iterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        buffer.write(BOM)
        writer.writerow(columns)
        for items in pages:
            for item in items:
                writer.writerow([cell(types[name], item.get(name)) for name in columns])
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()

    return generate()


def xlsx_cell(value_type: str | None, value: Any) -> Any:
    """One .xlsx cell: numeric fields as numbers (exact Decimals), the rest as the CSV's text
    (formula-neutralised: openpyxl would write a text starting with "=" as a formula)."""
    if value is None:
        return None
    if value_type in NUMERIC:
        text = _number(value)
        if text is not None:
            return int(text) if value_type == "integer" else Decimal(text)
    return cell(value_type, value)


def xlsx_response(service: RecordService, object_name: str, **query: Any) -> Response:
    """A streamed .xlsx download of the same rows and columns as the CSV."""
    columns, types, pages = _record_rows(service, object_name, **query)
    rows = ([xlsx_cell(types[name], item.get(name)) for name in columns] for items in pages for item in items)
    return _download(xlsx_chunks(columns, rows, title=object_name), XLSX_MIMETYPE, object_name, "xlsx")


def _download(chunks, content_type: str, object_name: str, suffix: str) -> Response:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    response = Response(chunks, mimetype=content_type)
    response.headers["Content-Type"] = content_type
    response.headers["Content-Disposition"] = f'attachment; filename="{object_name}-{stamp}.{suffix}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def csv_response(service: RecordService, object_name: str, **query: Any) -> Response:
    """A streamed text/csv download of `csv_chunks(...)` (errors raise before any byte is sent)."""
    return _download(csv_chunks(service, object_name, **query), "text/csv; charset=utf-8", object_name, "csv")


def export_response(service: RecordService, object_name: str, fmt: str | None, **query: Any) -> Response:
    """?format=csv (the default) or xlsx."""
    fmt = (fmt or "csv").strip().lower()
    if fmt not in ("csv", "xlsx"):
        raise BadRequest(f"format must be csv or xlsx, not {fmt[:20]!r}.", code="bad_parameter",
                         fields={"format": ["Not csv or xlsx."]})
    return (xlsx_response if fmt == "xlsx" else csv_response)(service, object_name, **query)


@api.get("/records/<object_name>/export")
def export_records(object_name: str):
    fields = [f.strip() for f in request.args.get("fields", "").split(",") if f.strip()] or None
    service = RecordService(runtime(), g.principal, source="api")
    return export_response(service, object_name, request.args.get("format"), filter=_filter(),
                           sort=request.args.get("sort"), fields=fields)


def openapi_paths() -> dict:
    """Paths for the generated OpenAPI document (api/openapi.py merges them)."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {
        "/records/{object}/export": {"get": {
            "tags": ["export"],
            "summary": "The records the caller's export scope reaches, as CSV (UTF-8 with BOM, streamed)",
            "description": "Text cells starting with =, +, -, @, tab or carriage return are prefixed with a "
                           "single quote (formula injection); numeric fields are written exactly.",
            "parameters": [
                {"name": "object", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "filter", "in": "query", "schema": {"type": "string"}, "description": "JSON filter"},
                {"name": "sort", "in": "query", "schema": {"type": "string"}},
                {"name": "fields", "in": "query", "schema": {"type": "string"},
                 "description": "comma-separated; the header row in this order"},
                {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["csv", "xlsx"]},
                 "description": "csv (default) or xlsx (same rows and columns; numbers as numbers)"},
            ],
            "responses": {
                "200": {"description": "CSV (or .xlsx), a header row of field names",
                        "content": {"text/csv": {"schema": {"type": "string"}},
                                    XLSX_MIMETYPE: {"schema": {"type": "string", "format": "binary"}}}},
                "400": {"description": "bad filter, sort or field", "content": error},
                "401": {"description": "no credentials", "content": error},
                "403": {"description": "export scope none", "content": error},
                "404": {"description": "unknown object", "content": error},
            },
        }},
    }
