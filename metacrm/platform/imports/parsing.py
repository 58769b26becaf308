"""Reading an import file: decoding, CSV or JSON rows, and checking its columns.

The whole file is read and checked before anything is written, so a file-level problem
(encoding, malformed CSV or JSON, a column that is not an importable field, a bad upsert
key) raises BadRequest and imports nothing; a bad row becomes that row's error.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequest, CrmError
from ..records import RecordService

SNIFF_BYTES = 64 * 1024


@dataclass
class Parsed:
    """The rows of a file: (row number, values) or (row number, CrmError) for a bad row."""

    columns: list[str]
    rows: list[tuple[int, dict | CrmError]]
    format: str
    encoding: str | None = None
    options: dict = field(default_factory=dict)  # options that came inside a JSON body


# More columns than any object can have fields (object schema: fields maxItems) is refused up front.
MAX_COLUMNS = 1000

# The encodings a CSV may be read as (the web wizard offers them; `encoding=` on the API).
ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "gb18030", "gbk", "big5", "latin-1")


def decode(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """(text, encoding): the encoding asked for, else by its byte-order mark (UTF-8, UTF-16),
    else UTF-8, else GB18030 (a superset of GBK)."""
    if encoding:
        name = encoding.strip().lower()
        if name not in ENCODINGS:
            raise BadRequest(f"Unknown encoding {encoding[:40]!r} (one of {', '.join(ENCODINGS)}).",
                             code="bad_encoding", fields={"encoding": ["Not a supported encoding."]})
        if name == "utf-8" and data.startswith(codecs.BOM_UTF8):
            name = "utf-8-sig"
        try:
            return data.decode(name).lstrip("\ufeff"), name
        except UnicodeDecodeError as exc:
            raise BadRequest(f"The file is not {name} text (bad byte at {exc.start}).", code="bad_encoding",
                             fields={"encoding": ["The file cannot be read in this encoding."]}) from None
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8):].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise BadRequest(f"The file starts with a UTF-8 mark but is not UTF-8 (byte {exc.start + 3}).",
                             code="bad_encoding") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise BadRequest(f"The file starts with a UTF-16 mark but is not UTF-16 (byte {exc.start}).",
                             code="bad_encoding") from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as utf8_error:
        try:
            return data.decode("gb18030"), "gb18030"
        except UnicodeDecodeError:
            raise BadRequest(
                f"The file is neither UTF-8 (bad byte at {utf8_error.start}) nor GBK/GB18030 text; "
                "save it as UTF-8 CSV and try again.", code="bad_encoding",
            ) from None


def _json_rows(content: Any) -> Parsed:
    options = {}
    if isinstance(content, dict) and isinstance(content.get("rows"), list):
        options = {k: v for k, v in content.items() if k in ("key", "dry_run", "batch_size")}
        content = content["rows"]
    if not isinstance(content, list):
        raise BadRequest("A JSON import is an array of records (or {\"rows\": [...]}).", code="bad_file")
    columns: dict[str, None] = {}
    rows: list[tuple[int, dict | CrmError]] = []
    for number, item in enumerate(content, start=1):
        if not isinstance(item, dict):
            rows.append((number, BadRequest("The row is not a JSON object.", code="bad_row")))
            continue
        columns.update(dict.fromkeys(item))
        if len(columns) > MAX_COLUMNS:
            raise BadRequest(f"The records name more than {MAX_COLUMNS} different fields (row {number}); "
                             f"an import takes at most {MAX_COLUMNS}.", code="too_many_columns")
        rows.append((number, dict(item)))
    return Parsed(list(columns), rows, "json", options=options)


def check_header(cells: list[str]) -> list[str]:
    """The header's column names: none empty, none repeated, at most MAX_COLUMNS."""
    if len(cells) > MAX_COLUMNS:
        raise BadRequest(f"The header has {len(cells)} columns; an import takes at most {MAX_COLUMNS}.",
                         code="too_many_columns")
    header = [cell.strip().lstrip("\ufeff") for cell in cells]
    if any(not name for name in header):
        raise BadRequest(f"The header has an empty column name (column {header.index('') + 1}).",
                         code="bad_header")
    counts = Counter(header)  # linear: header.count() per column was quadratic
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        raise BadRequest(f"The header names {', '.join(duplicates)} more than once.", code="bad_header",
                         fields={name: ["Repeated column."] for name in duplicates})
    return header


def _csv_rows(text: str) -> Parsed:
    sample = text[:SNIFF_BYTES]
    if len(text) > SNIFF_BYTES and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), dialect, strict=True))
    except csv.Error as exc:
        raise BadRequest(f"The CSV file is malformed: {exc}.", code="bad_file") from None
    while records and not any(cell.strip() for cell in records[0]):
        records.pop(0)
    if not records:
        raise BadRequest("The file is empty: a CSV import needs a header row.", code="empty_file")
    if len(records[0]) > MAX_COLUMNS:
        raise BadRequest(f"The header has {len(records[0])} columns; an import takes at most {MAX_COLUMNS}.",
                         code="too_many_columns")
    header = check_header(records[0])
    rows: list[tuple[int, dict | CrmError]] = []
    number = 0
    for cells in records[1:]:
        if not any(cell.strip() for cell in cells):
            continue  # blank lines are not records
        number += 1
        if len(cells) > len(header):
            rows.append((number, BadRequest(
                f"The row has {len(cells)} values for {len(header)} columns.", code="bad_row")))
            continue
        rows.append((number, {name: cell for name, cell in zip(header, cells) if cell.strip() != ""}))
    return Parsed(header, rows, "csv")


def parse(data: bytes | str | list | dict, fmt: str | None = None, encoding: str | None = None) -> Parsed:
    """A file's rows; raises BadRequest (nothing imported) for a file-level problem.
    An .xlsx workbook (a zip: its first sheet, the first row the header) is recognised by its
    content or fmt="xlsx"; `encoding` forces a CSV's encoding instead of detecting it."""
    if isinstance(data, (list, dict)):
        return _json_rows(data)
    from .xlsx import is_xlsx, xlsx_rows  # it builds on this module's Parsed and check_header

    if fmt == "xlsx" or (fmt is None and isinstance(data, bytes) and is_xlsx(data)):
        if not isinstance(data, bytes):
            raise BadRequest("An .xlsx workbook must be sent as bytes.", code="bad_file")
        return xlsx_rows(data)
    decoded = None
    if isinstance(data, bytes):
        text, decoded = decode(data, encoding)
    else:
        text = data.lstrip("\ufeff")
    if fmt is None:
        fmt = "json" if text.lstrip()[:1] in ("[", "{") else "csv"
    if fmt == "json":
        try:
            parsed = _json_rows(json.loads(text))
        except ValueError as exc:
            raise BadRequest(f"The JSON file is malformed: {exc}.", code="bad_file") from None
    elif fmt == "csv":
        parsed = _csv_rows(text)
    else:
        raise BadRequest(f"Unknown import format {fmt!r} (csv, xlsx or json).", code="bad_format")
    parsed.encoding = decoded
    return parsed


def apply_mapping(parsed: Parsed, mapping: dict[str, str] | None) -> Parsed:
    """The rows with their columns renamed to fields: {column: field}, a column mapped to ""
    (or None) is ignored, a column not named keeps its name. Two columns onto one field are
    refused (which value would win?)."""
    if not mapping:
        return parsed
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and (v is None or isinstance(v, str))
                                                for k, v in mapping.items()):
        raise BadRequest("mapping is an object of column name to field name (\"\" ignores the column).",
                         code="bad_mapping", fields={"mapping": ["Not an object of strings."]})
    unknown = [c for c in mapping if c not in parsed.columns]
    if unknown:
        raise BadRequest(f"The mapping names column(s) the file does not have: {', '.join(unknown[:10])}.",
                         code="bad_mapping", fields={f"mapping.{c}": ["Not a column of the file."] for c in unknown})
    target = {c: (mapping[c] or "").strip() if c in mapping else c for c in parsed.columns}
    seen: dict[str, str] = {}
    twice = {}
    for column, name in target.items():
        if name and name in seen:
            twice[f"mapping.{column}"] = [f"Column {seen[name]!r} is mapped to {name} already."]
        elif name:
            seen[name] = column
    if twice:
        raise BadRequest("Two columns are mapped to the same field.", code="bad_mapping", fields=twice)
    columns = [target[c] for c in parsed.columns if target[c]]
    rows: list[tuple[int, dict | CrmError]] = []
    for number, data in parsed.rows:
        if isinstance(data, dict):
            data = {target[c]: v for c, v in data.items() if target.get(c)}
        rows.append((number, data))
    return Parsed(columns, rows, parsed.format, parsed.encoding, parsed.options)


def check_columns(service: RecordService, obj, columns: list[str], key: str | None) -> None:
    """Every column must be a field the caller may set; the key must be one of them."""
    allowed, refused = service.writable_fields(obj, creating=True)
    names = {f.name for f in allowed}
    bad = {c: [refused.get(c, "Unknown field.")] for c in columns if c not in names}
    if bad:
        raise BadRequest(
            f"The file has column(s) that are not importable {obj.name} fields: {', '.join(bad)}; "
            "nothing was imported.", code="unknown_columns", fields=bad,
        )
    if key is not None:
        fdef = obj.fields.get(key)
        if fdef is None or key not in names:
            raise BadRequest(f"The upsert key {key!r} is not an importable field of {obj.name}.",
                             code="bad_key", fields={"key": ["Unknown field."]})
        if key not in columns:
            raise BadRequest(f"The file has no column {key!r} to match existing records by.",
                             code="bad_key", fields={"key": ["Not a column of the file."]})
