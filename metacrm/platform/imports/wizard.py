"""The web import wizard's logic, apart from its pages: which fields a column may go to, the
automatic matching of headers to fields, the settings a form posts, and the per-row report.

Everything is then handed to the same functions the REST import calls (parse, apply_mapping,
prepare, import_parsed, start_job), so validation, hooks, duplicate rules and permissions are
the API's.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

from ..errors import BadRequest
from ..records import RecordService
from .lookups import match_fields

PREVIEW_ROWS = 20
SAMPLE_ROWS = 3
ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".xlsx": "xlsx"}
REPORT_HEADER = ["row", "status", "id", "field", "message"]


def _norm(text: str) -> str:
    """A header or label compared loosely: case, width, spaces, underscores and punctuation ignored."""
    text = unicodedata.normalize("NFKC", str(text)).casefold()
    return re.sub(r"[\s_\-./:()（）*]+", "", text)


def importable_fields(service: RecordService, obj) -> list:
    """The fields an import may set, as the API's check_columns allows them."""
    allowed, _ = service.writable_fields(obj, creating=True)
    return [f for f in allowed if f.type != "password" or obj.name == "user"]


def auto_mapping(service: RecordService, obj, columns: list[str]) -> dict[str, str]:
    """{column: field} by field name, then English label, then Chinese label (each field once)."""
    fields = importable_fields(service, obj)
    keys: dict[str, str] = {}
    for level in ("name", "en", "zh-CN"):
        for f in fields:
            key = _norm(f.name if level == "name" else f.display_label(level))
            keys.setdefault(key, f.name)
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for column in columns:
        name = keys.get(_norm(column))
        if name and name not in used:
            mapping[column] = name
            used.add(name)
        else:
            mapping[column] = ""
    return mapping


def default_lookups(service: RecordService, obj, mapping: dict[str, str], samples: list[dict]) -> dict[str, str]:
    """For each mapped lookup column: by id when its sample values look like ids, else by the
    target's name field (the first match field after id)."""
    out = {}
    for column, name in mapping.items():
        choices = match_fields(service, obj, name) if name else []
        if len(choices) < 2:
            continue
        values = [str(row.get(column)) for row in samples if row.get(column) not in (None, "")]
        out[name] = "id" if values and all(ID_PATTERN.match(v) for v in values) else choices[1]
    return out


def settings_from_form(form, columns: list[str], service: RecordService, obj) -> dict:
    """The wizard's settings from its mapping form: map.<column index>, lookup.<field>, mode,
    key; refused (400) when a field offered is not one the page offered."""
    offered = {f.name for f in importable_fields(service, obj)}
    mapping, bad = {}, {}
    for index, column in enumerate(columns):
        value = (form.get(f"map.{index}") or "").strip()
        if value and value not in offered:
            bad[f"map.{index}"] = ["Not an importable field."]
        mapping[column] = value
    lookups = {}
    for name in set(mapping.values()):
        by = (form.get(f"lookup.{name}") or "").strip() if name else ""
        if by:
            lookups[name] = by
    mode = form.get("mode") or "insert"
    if mode not in ("insert", "upsert"):
        bad["mode"] = ["Not insert or upsert."]
    key = (form.get("key") or "").strip() or None
    if mode == "upsert" and not key:
        bad["key"] = ["Choose the field to match existing records by."]
    if bad:
        raise BadRequest("The mapping form is not valid.", code="bad_mapping", fields=bad)
    return {"mapping": mapping, "lookups": lookups, "mode": mode, "key": key if mode == "upsert" else None}


def format_of(filename: str, data: bytes) -> str | None:
    """csv or xlsx, by the name's suffix, else by content; None for anything else."""
    from .xlsx import is_xlsx

    lower = filename.lower()
    for suffix, fmt in FORMATS.items():
        if lower.endswith(suffix):
            return fmt
    if is_xlsx(data):
        return "xlsx"
    return None


def report_lines(report: dict) -> Iterator[list[Any]]:
    """The per-row report as lines: row, status, record id, field, message (one line per field
    error, one line for a row without any)."""
    for entry in report.get("rows") or []:
        base = [entry["row"], entry["status"], entry.get("id") or ""]
        fields = entry.get("fields") or {}
        if fields:
            for name, messages in fields.items():
                base_message = "; ".join(str(m) for m in (messages if isinstance(messages, list) else [messages]))
                yield [*base, name, base_message]
            continue
        message = entry.get("message") or ""
        duplicates = [d.get("id") or (f"row {d['row']}" if d.get("row") else "") for d in entry.get("duplicates") or []]
        if duplicates and entry["status"] == "duplicate":
            message = f"{message} ({', '.join(d for d in duplicates if d)})" if message else ", ".join(duplicates)
        yield [*base, "", message]


def report_csv(report: dict) -> bytes:
    from ..api.exports import neutralise

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")
    writer.writerow(REPORT_HEADER)
    for line in report_lines(report):
        writer.writerow([neutralise(str(v)) if isinstance(v, str) else v for v in line])
    return buffer.getvalue().encode("utf-8")
