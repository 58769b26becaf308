"""Reading an .xlsx workbook for an import (openpyxl in read-only mode: rows are streamed
from the zip, not loaded as a whole sheet); writing is core (platform/spreadsheets.py).

Cells become the text the CSV importer would have read: integral numbers without ".0",
dates as YYYY-MM-DD (a datetime at midnight is a date), other datetimes in ISO 8601,
booleans true / false. Only the first sheet is read; its first non-blank row is the header.
"""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from ..errors import BadRequest, CrmError
from ..spreadsheets import XLSX_MIMETYPE, xlsx_chunks
from .parsing import Parsed, check_header

__all__ = ["XLSX_MIMETYPE", "cell_text", "is_xlsx", "xlsx_chunks", "xlsx_rows"]


def is_xlsx(data: bytes) -> bool:
    """A zip with a workbook part (an .xlsx), by content, not by name."""
    if not data.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "xl/workbook.xml" in archive.namelist()
    except zipfile.BadZipFile:
        return False


def cell_text(value: Any) -> str:
    """One cell as import text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.time() == time(0, 0):
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return format(Decimal(repr(value)), "f")
    return str(value).strip()


def xlsx_rows(data: bytes) -> Parsed:
    """The first sheet's rows (the first non-blank row is the header)."""
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a damaged file
        raise BadRequest(f"The .xlsx file cannot be read ({type(exc).__name__}).", code="bad_file") from None
    try:
        sheet = workbook.worksheets[0] if workbook.worksheets else None
        if sheet is None:
            raise BadRequest("The workbook has no sheet.", code="empty_file")
        header: list[str] | None = None
        rows: list[tuple[int, dict | CrmError]] = []
        number = 0
        for values in sheet.iter_rows(values_only=True):
            cells = [cell_text(v) for v in values]
            while cells and cells[-1] == "":
                cells.pop()
            if not cells:
                continue
            if header is None:
                header = check_header(cells)
                continue
            number += 1
            if len(cells) > len(header):
                rows.append((number, BadRequest(
                    f"The row has {len(cells)} values for {len(header)} columns.", code="bad_row")))
                continue
            rows.append((number, {name: cell for name, cell in zip(header, cells) if cell != ""}))
    finally:
        workbook.close()
    if header is None:
        raise BadRequest("The file is empty: an import needs a header row.", code="empty_file")
    return Parsed(header, rows, "xlsx")
