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
- Large imports run as a background job (a thread in this process; state in the table
  mc_import_job) whose progress GET /api/v1/jobs/{id} reports.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from marshmallow import ValidationError

from .. import db, dedup, schemas
from ..clock import utcnow
from ..errors import BadRequest, CrmError, Forbidden, NotFound
from ..records import RecordService
from ..security import Access, Principal
from ..storage import UtcDateTime

log = logging.getLogger(__name__)

DEFAULT_BATCH = 1000
MAX_BATCH = 10000
ASYNC_THRESHOLD = 5000
SNIFF_BYTES = 64 * 1024
STATUSES = ("created", "updated", "duplicate", "error")


# --- reading the file ------------------------------------------------------------------------


@dataclass
class Parsed:
    """The rows of a file: (row number, values) or (row number, CrmError) for a bad row."""

    columns: list[str]
    rows: list[tuple[int, dict | CrmError]]
    format: str
    encoding: str | None = None
    options: dict = field(default_factory=dict)  # options that came inside a JSON body


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
    header = [cell.strip().lstrip("\ufeff") for cell in records[0]]
    if any(not name for name in header):
        raise BadRequest(f"The header has an empty column name (column {header.index('') + 1}).",
                         code="bad_header")
    duplicates = sorted({name for name in header if header.count(name) > 1})
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


# --- importing -------------------------------------------------------------------------------


class _Rollback(Exception):
    """Raised inside a batch's transaction to undo a dry run."""


def _error_entry(number: int, exc: CrmError) -> dict:
    body = exc.to_dict()
    status = body.pop("import_status", None)
    entry = {"row": number, "status": status if status in STATUSES else "error"}
    if entry["status"] == "duplicate":
        entry.update(duplicates=body.get("duplicates", []), message=body.get("message"))
        return entry
    entry.update({k: v for k, v in body.items() if k in ("code", "message", "fields", "duplicates")})
    return entry


def _result_entry(number: int, result: dict) -> dict:
    if result.get("status") == "created":
        entry = {"row": number, "status": "created", "id": result["id"]}
        if result.get("warnings"):
            entry["warnings"] = result["warnings"]
            found = [m for w in result["warnings"] for m in w.get("duplicates") or []]
            if found:
                entry["duplicates"] = found
        return entry
    status = result.get("import_status") or result.get("status")
    entry = {"row": number, "status": status if status in ("duplicate", "error") else "error"}
    keys = ("duplicates", "message") if entry["status"] == "duplicate" else ("code", "message", "fields", "duplicates")
    entry.update({k: result[k] for k in keys if k in result})
    return entry


@dataclass
class _State:
    """What one import remembers across batches."""

    finder: dedup.DuplicateFinder
    keys_seen: dict = field(default_factory=dict)  # upsert key value -> first row number
    created: dict = field(default_factory=dict)  # record id -> row number (to name in-file duplicates)
    analyzed_at: int = 0  # rows created when the table's planner statistics were last refreshed


def _coerce_key(fdef, value: Any) -> Any:
    field_ = schemas.marshmallow_field(fdef)
    return field_.deserialize(value)


def _import_batch(runtime, principal: Principal, obj, batch: list, key: str | None, dry_run: bool,
                  state: _State) -> list[dict]:
    out: dict[int, dict] = {}
    svc = RecordService(runtime, principal, source="import")  # before the transaction (see pools.People)
    try:
        with svc.transaction() as tx:
            table = svc.table(obj.name)
            rows = []
            for number, data in batch:
                if isinstance(data, CrmError):
                    out[number] = _error_entry(number, data)
                else:
                    rows.append((number, data))
            updates, creates = [], []
            if key is not None:
                fdef = obj.fields[key]
                wanted: dict[Any, list[tuple[int, dict]]] = {}
                for number, data in rows:
                    raw = data.get(key)
                    if raw is None:
                        creates.append((number, data))
                        continue
                    try:
                        value = _coerce_key(fdef, raw)
                    except ValidationError as exc:
                        messages = exc.messages
                        out[number] = {"row": number, "status": "error", "code": "validation_failed",
                                       "message": "Some fields are not valid.",
                                       "fields": {key: messages if isinstance(messages, list) else [str(messages)]}}
                        continue
                    if value in state.keys_seen:
                        out[number] = {"row": number, "status": "error", "code": "duplicate_key",
                                       "message": f"Row {state.keys_seen[value]} has the same {key}.",
                                       "fields": {key: ["Repeated in the file."]}}
                        continue
                    state.keys_seen[value] = number
                    wanted.setdefault(value, []).append((number, data))
                existing = {}
                if wanted:
                    existing = dict(tx.conn.execute(
                        sa.select(table.c[key], table.c.id).where(
                            table.c[key].in_(list(wanted)), table.c.deleted_at.is_(None))
                    ).fetchall())
                for value, items in wanted.items():
                    for number, data in items:
                        if value in existing:
                            updates.append((number, existing[value], data))
                        else:
                            creates.append((number, data))
            else:
                creates = rows
            for number, record_id, data in updates:
                try:
                    with tx.conn.begin_nested():
                        svc.update_record(obj.name, record_id, data)
                    out[number] = {"row": number, "status": "updated", "id": record_id}
                except CrmError as exc:
                    out[number] = _error_entry(number, exc)
            if creates:
                creates.sort(key=lambda item: item[0])
                if state.finder.rules:
                    state.finder.prefetch(tx.conn, [data for _, data in creates])
                results = svc.create_many(obj.name, [data for _, data in creates], dedup_batch=state.finder)
                for (number, _), result in zip(creates, results):
                    out[number] = _result_entry(number, result)
                    if out[number]["status"] == "created":
                        state.created[result["id"]] = number
            if dry_run:
                raise _Rollback()
    except _Rollback:
        pass
    entries = [out[number] for number, _ in batch]
    for entry in entries:
        for match in entry.get("duplicates") or []:
            if match.get("object") == obj.name and match.get("id") in state.created:
                match["row"] = state.created[match["id"]]
                if dry_run:
                    match.pop("id", None)
        if dry_run and entry["status"] in ("created",):
            entry.pop("id", None)
    return entries


def import_parsed(runtime, principal: Principal, object_name: str, parsed: Parsed, *, key: str | None = None,
                  dry_run: bool = False, batch_size: int = DEFAULT_BATCH,
                  progress: Callable[[int, int], Any] | None = None) -> dict:
    """Import checked rows; returns {"summary": {...}, "rows": [...]}."""
    service = RecordService(runtime, principal, source="import")
    obj = prepare(service, object_name, parsed, key)
    batch_size = max(1, min(int(batch_size or DEFAULT_BATCH), MAX_BATCH))
    state = _State(dedup.DuplicateFinder(runtime, service.compiled, obj.name))
    entries: list[dict] = []
    total = len(parsed.rows)
    if progress:
        progress(0, total)
    for start in range(0, total, batch_size):
        entries.extend(_import_batch(runtime, principal, obj, parsed.rows[start:start + batch_size], key,
                                     dry_run, state))
        if not dry_run:
            _refresh_statistics(runtime, service.table(obj.name), state)
        if progress:
            progress(len(entries), total)
    summary = {status: 0 for status in STATUSES}
    for entry in entries:
        summary[entry["status"]] += 1
    summary.update(total=total, dry_run=dry_run)
    return {"summary": summary, "rows": entries}


def _refresh_statistics(runtime, table: sa.Table, state: _State) -> None:
    """PostgreSQL: ANALYZE the table each time an import has grown it by half since the last
    statistics (autovacuum may be a minute behind). With statistics of a table that was empty,
    the planner reads the duplicate check's key lookups through the deleted_at index and
    filters every row: each batch then scans the whole table."""
    if runtime.engine.dialect.name != "postgresql":
        return
    created = len(state.created)
    if created - state.analyzed_at < 1000:
        return
    with runtime.engine.connect() as conn:
        estimate = conn.execute(sa.text("SELECT reltuples FROM pg_class WHERE oid = CAST(:name AS regclass)"),
                                {"name": table.name}).scalar() or 0
        if created - state.analyzed_at >= max(1000.0, 0.5 * max(estimate, 0)):
            conn.execute(sa.text(f'ANALYZE "{table.name}"'))  # a generated rec_<name>, not user text
            conn.commit()
            state.analyzed_at = created


def prepare(service: RecordService, object_name: str, parsed: Parsed, key: str | None):
    """The object, once the caller may create its records and the columns are right."""
    obj = service.obj(object_name)
    if not service.access.can(obj.name, "create"):
        if not service.access.can(obj.name, "read"):
            raise NotFound(f"Unknown object {obj.name!r}.", code="unknown_object")
        raise Forbidden(f"You may not create {obj.name} records.")
    check_columns(service, obj, parsed.columns, key)
    return obj


def run_import(runtime, principal: Principal, object_name: str, data: bytes | str | list, *, key: str | None = None,
               dry_run: bool = False, batch_size: int = DEFAULT_BATCH, fmt: str | None = None,
               progress: Callable[[int, int], Any] | None = None) -> dict:
    """Parse and import a file in one call (the CLI and tests)."""
    parsed = parse(data, fmt)
    return import_parsed(runtime, principal, object_name, parsed, key=key, dry_run=dry_run,
                         batch_size=batch_size, progress=progress)


# --- background jobs -------------------------------------------------------------------------

jobs = sa.Table(
    "mc_import_job",
    db.system_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("object", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(32)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("total", sa.Integer, nullable=False, default=0),
    sa.Column("done", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime),
    sa.Column("options", sa.JSON),
    sa.Column("result", sa.JSON),
    sa.Column("error", sa.Text),
)
_tables_ready: set[int] = set()
_tables_lock = threading.Lock()
_threads: dict[str, threading.Thread] = {}


def ensure_jobs_table(engine: sa.Engine) -> None:
    with _tables_lock:
        if id(engine) in _tables_ready:
            return
        try:
            jobs.create(engine, checkfirst=True)
        except sa.exc.DatabaseError:  # another process created it meanwhile
            if not sa.inspect(engine).has_table(jobs.name):
                raise
        _tables_ready.add(id(engine))


def start_job(runtime, principal: Principal, object_name: str, parsed: Parsed, *, key: str | None = None,
              dry_run: bool = False, batch_size: int = DEFAULT_BATCH) -> str:
    """Run an import in a background thread; returns the job id to poll."""
    ensure_jobs_table(runtime.engine)
    job_id = uuid.uuid4().hex
    now = utcnow()
    with runtime.transaction() as tx:
        tx.conn.execute(jobs.insert().values(
            id=job_id, kind="import", object=object_name, user_id=principal.user_id, status="queued",
            total=len(parsed.rows), done=0, created_at=now, updated_at=now,
            options={"key": key, "dry_run": dry_run, "batch_size": batch_size, "format": parsed.format},
        ))

    def update(**values) -> None:
        with runtime.transaction() as tx:
            tx.conn.execute(jobs.update().where(jobs.c.id == job_id).values(updated_at=utcnow(), **values))

    def work() -> None:
        try:
            update(status="running")
            report = import_parsed(runtime, principal, object_name, parsed, key=key, dry_run=dry_run,
                                   batch_size=batch_size, progress=lambda done, total: update(done=done))
            update(status="done", done=len(parsed.rows), result=report, finished_at=utcnow())
        except CrmError as exc:
            update(status="failed", error=exc.message, result={"error": exc.to_dict()}, finished_at=utcnow())
        except Exception as exc:  # a job must end in a state the caller can read
            log.exception("import job %s failed", job_id)
            update(status="failed", error=f"unexpected error: {exc}", finished_at=utcnow())
        finally:
            _threads.pop(job_id, None)

    thread = threading.Thread(target=work, name=f"metacrm-import-{job_id[:8]}", daemon=True)
    _threads[job_id] = thread
    thread.start()
    return job_id


def job_status(runtime, principal: Principal, job_id: str) -> dict:
    """A job as its owner (or an admin) sees it: progress, and the report once done."""
    ensure_jobs_table(runtime.engine)
    with runtime.engine.connect() as conn:
        row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
    access = Access(runtime.registry(), principal, runtime.directory())
    if row is None or (row.user_id != principal.user_id and not access.is_admin):
        raise NotFound("No such job.", code="job_not_found")
    body = {
        "id": row.id, "kind": row.kind, "object": row.object, "status": row.status,
        "progress": {"done": row.done, "total": row.total,
                     "percent": round(100.0 * row.done / row.total, 1) if row.total else 100.0},
        "created_at": row.created_at.isoformat() + "Z", "updated_at": row.updated_at.isoformat() + "Z",
        "finished_at": row.finished_at.isoformat() + "Z" if row.finished_at else None,
    }
    if row.status == "done":
        body["result"] = row.result
        body.update(row.result or {})
    elif row.status == "failed":
        body["error"] = row.error
    return body


def wait_for(job_id: str, timeout: float | None = None) -> None:
    """Tests and the CLI: wait until a job's thread has finished."""
    thread = _threads.get(job_id)
    if thread is not None:
        thread.join(timeout)


def register(runtime) -> None:
    runtime.features.add(FEATURE)


from ..features import Feature
from . import api, cli

FEATURE = Feature("imports", api=api.routes, openapi=api.openapi_paths, cli=cli.register_cli)
