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

def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding): UTF-8 (a BOM is dropped), else GB18030 (a superset of GBK)."""
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8):].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise BadRequest(f"The file starts with a UTF-8 mark but is not UTF-8 (byte {exc.start + 3}).",
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
    header = [cell.strip().lstrip("\ufeff") for cell in records[0]]
    if any(not name for name in header):
        raise BadRequest(f"The header has an empty column name (column {header.index('') + 1}).",
                         code="bad_header")
    counts = Counter(header)  # linear: header.count() per column was quadratic
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        raise BadRequest(f"The header names {', '.join(duplicates)} more than once.", code="bad_header",
                         fields={name: ["Repeated column."] for name in duplicates})
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


def parse(data: bytes | str | list | dict, fmt: str | None = None) -> Parsed:
    """A file's rows; raises BadRequest (nothing imported) for a file-level problem."""
    if isinstance(data, (list, dict)):
        return _json_rows(data)
    encoding = None
    if isinstance(data, bytes):
        text, encoding = decode(data)
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
        raise BadRequest(f"Unknown import format {fmt!r} (csv or json).", code="bad_format")
    parsed.encoding = encoding
    return parsed


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
