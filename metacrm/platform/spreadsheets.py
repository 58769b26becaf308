"""Writing .xlsx files (the record export, import reports) with openpyxl in write-only mode:
rows are appended one by one to a temporary file, which is then streamed in chunks, so a large
export never holds the sheet in memory."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def xlsx_chunks(header: list[str], rows: Iterable[list[Any]], title: str = "Sheet1") -> Iterator[bytes]:
    """A workbook of one sheet: the header row, then `rows` (already neutralised text or numbers)."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title[:31] or "Sheet1")
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    with tempfile.TemporaryFile() as handle:
        workbook.save(handle)
        handle.seek(0)
        while True:
            chunk = handle.read(256 * 1024)
            if not chunk:
                return
            yield chunk
