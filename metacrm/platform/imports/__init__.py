"""Bulk import: CSV (with a header) or a JSON array into one object, through the record
service's batch path.

- The whole file is read and checked first (encoding: UTF-8 with or without BOM, else
  GB18030/GBK; CSV dialect by csv.Sniffer; header names must be fields the caller may
  set; the upsert key must be one of them), so a file-level problem writes nothing.
- Rows go in batches (default 1,000), one transaction each: upserts by key update the
  existing record (RecordService.update_record, one savepoint per row), the rest go
  through RecordService.create_many with a DuplicateFinder that prefetched the batch's
  candidates in ONE query per duplicate-rule group; rows of the same file match each
  other too. A dry run rolls every batch back.
- The report has one entry per input row: {"row" (from 1; a CSV header is not counted),
  "status": created | updated | duplicate | error, "id"?, "code"?, "message"?, "fields"?,
  "duplicates"?} plus a summary.
- The web wizard (pages.py: upload → map → preview → job → report) calls the same functions;
  the file waits between its steps in mc_import_upload, saved mappings in mc_import_mapping
  (uploads.py). .xlsx is read by openpyxl (xlsx.py); lookups by name or unique key: lookups.py.
- Large imports run as a background job (a thread in this process; state in the table
  mc_import_job) whose progress GET /api/v1/jobs/{id} reports.
"""

from __future__ import annotations

from .jobs import wait_for
from .parsing import parse
from .run import import_parsed, run_import

# The names other packages use (bench scripts, tests).
__all__ = ["import_parsed", "parse", "register", "run_import", "wait_for"]


def register(runtime) -> None:
    runtime.features.add(FEATURE)


from pathlib import Path

from ..features import Feature
from . import api, cli, pages

HERE = Path(__file__).resolve().parent
FEATURE = Feature("imports", api=api.routes, openapi=api.openapi_paths, cli=cli.register_cli, pages=pages.routes,
                  templates=HERE / "templates", messages=HERE / "messages", on_app=pages.on_app)
