"""Importing checked rows in batches, one transaction each, with the report row per input row.

Upserts by key update the existing record (one savepoint per row); the rest go through
RecordService.create_many with a DuplicateFinder that prefetched the batch's candidates,
so rows of the same file match each other too. A dry run rolls every batch back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from marshmallow import ValidationError

from .. import schemas
from ..dedup import DuplicateFinder
from ..dedup.matching import lock_keys
from ..errors import CrmError, Forbidden, NotFound, OutOfRange, StaleVersion
from ..records import RecordService
from ..security import Principal
from ..storage import compared, compared_value
from .lookups import check_lookups, resolve_lookups
from .parsing import Parsed, apply_mapping, check_columns, parse

DEFAULT_BATCH = 1000
MAX_BATCH = 10000
STATUSES = ("created", "updated", "duplicate", "error")


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

    finder: DuplicateFinder
    keys_seen: dict = field(default_factory=dict)  # upsert key value -> first row number
    created: dict = field(default_factory=dict)  # record id -> row number (to name in-file duplicates)
    analyzed_at: int = 0  # rows created when the table's planner statistics were last refreshed


def _coerce_key(fdef, value: Any) -> Any:
    """The key as it is compared: a unique email with A-Z folded (Ann@X.com matches ann@x.com)."""
    field_ = schemas.marshmallow_field(fdef)
    return compared_value(field_.deserialize(value), fdef)


def _upsert_lock(object_name: str, key: str, value: Any) -> int:
    digest = hashlib.blake2b(repr(("upsert", object_name, key, str(value))).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _lost_race(entry: dict, key: str) -> bool:
    return entry.get("status") == "error" and entry.get("code") == "not_unique" and key in (entry.get("fields") or {})


UPDATE_TRIES = 5


def _upsert_update(svc: RecordService, tx, obj, number: int, record_id: str, data: dict) -> dict:
    """One upsert row's update in its own savepoint. The import sends no version (the file says
    what the record should be), so a concurrent save in between is no conflict: read again and
    apply the row once more, never answer stale_version for it."""
    for attempt in range(UPDATE_TRIES):
        try:
            with tx.conn.begin_nested():
                svc.update_record(obj.name, record_id, dict(data))
            return {"row": number, "status": "updated", "id": record_id}
        except StaleVersion as exc:
            if attempt == UPDATE_TRIES - 1:
                return _error_entry(number, exc)
        except CrmError as exc:
            return _error_entry(number, exc)
    raise AssertionError("unreachable")


def _create_rows(svc: RecordService, tx, obj, rows: list[dict], finder) -> list[dict]:
    """The batch's new rows with one create_many. A refusal that only shows after the rows are
    written (a rollup on a parent that would overflow, 422 value_out_of_range) undoes the batch's
    savepoint; the rows are then created one by one, so that only the rows that cause it fail,
    each with its own error (and row number). The duplicate finder forgets what it remembered of
    rows that were undone."""
    saved = finder.savepoint()
    try:
        with tx.conn.begin_nested():
            return svc.create_many(obj.name, rows, dedup_batch=finder)
    except OutOfRange:
        finder.rollback_to(saved)
    results = []
    for data in rows:
        saved = finder.savepoint()
        try:
            with tx.conn.begin_nested():
                results.extend(svc.create_many(obj.name, [data], dedup_batch=finder))
        except OutOfRange as exc:
            finder.rollback_to(saved)
            results.append({"status": "error", **exc.to_dict()})
    return results


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
                    # Only records the caller may read are matched: a key held by a record they
                    # cannot see answers as a new key does (no oracle; a unique key is refused
                    # as not_unique, without naming the record).
                    # concurrent imports upserting one key value take turns from here to commit, so
                    # the second finds the first's record instead of creating its own (PostgreSQL;
                    # SQLite's BEGIN IMMEDIATE already serialises writers)
                    lock_keys(tx.conn, [_upsert_lock(obj.name, key, value) for value in wanted])
                    key_column = compared(table.c[key], fdef)
                    existing = dict(tx.conn.execute(
                        sa.select(key_column, table.c.id).where(
                            key_column.in_(list(wanted)), table.c.deleted_at.is_(None),
                            svc.access.row_filter(obj.name, "read", table))
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
                out[number] = _upsert_update(svc, tx, obj, number, record_id, data)
            if creates:
                creates.sort(key=lambda item: item[0])
                if state.finder.rules:
                    state.finder.prefetch(tx.conn, [data for _, data in creates])
                results = _create_rows(svc, tx, obj, [data for _, data in creates], state.finder)
                for (number, data), result in zip(creates, results):
                    out[number] = _result_entry(number, result)
                    if key is not None and _lost_race(out[number], key) and not dry_run:
                        # a save outside the import took the unique value since we looked: update it
                        # (only a record the caller may read: else the not_unique stands, no oracle)
                        found = tx.conn.execute(sa.select(table.c.id).where(
                            compared(table.c[key], obj.fields[key]) == _coerce_key(obj.fields[key], data[key]),
                            table.c.deleted_at.is_(None), svc.access.row_filter(obj.name, "read", table))).scalar()
                        if found is not None:
                            out[number] = _upsert_update(svc, tx, obj, number, found, data)
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
                  progress: Callable[[int, int], Any] | None = None, lookups: dict[str, str] | None = None,
                  counts: Callable[[dict], Any] | None = None) -> dict:
    """Import checked rows; returns {"summary": {...}, "rows": [...]}.

    `lookups` ({lookup field: target field}) matches those columns by name or unique key
    (imports/lookups.py); `counts(summary so far)` is called after each batch (job progress)."""
    service = RecordService(runtime, principal, source="import")
    obj = prepare(service, object_name, parsed, key)
    parsed = resolve_lookups(service, obj, parsed, lookups)
    batch_size = max(1, min(int(batch_size or DEFAULT_BATCH), MAX_BATCH))
    state = _State(DuplicateFinder(runtime, service.compiled, obj.name))
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
        if counts:
            counts(_summary(entries))
    summary = _summary(entries)
    summary.update(total=total, dry_run=dry_run)
    return {"summary": summary, "rows": entries}


def _summary(entries: list[dict]) -> dict:
    summary = {status: 0 for status in STATUSES}
    for entry in entries:
        summary[entry["status"]] += 1
    return summary


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


def prepare(service: RecordService, object_name: str, parsed: Parsed, key: str | None,
            lookups: dict[str, str] | None = None):
    """The object, once the caller may create its records and the columns (and the lookups'
    match fields) are right."""
    obj = service.obj(object_name)
    if not service.access.can(obj.name, "create"):
        if not service.access.can(obj.name, "read"):
            raise NotFound(f"Unknown object {obj.name!r}.", code="unknown_object")
        raise Forbidden(f"You may not create {obj.name} records.")
    check_columns(service, obj, parsed.columns, key)
    wanted = {f: by for f, by in (lookups or {}).items() if by and by != "id"}
    if wanted:
        check_lookups(service, obj, wanted)
    return obj


def run_import(runtime, principal: Principal, object_name: str, data: bytes | str | list, *, key: str | None = None,
               dry_run: bool = False, batch_size: int = DEFAULT_BATCH, fmt: str | None = None,
               progress: Callable[[int, int], Any] | None = None, lookups: dict[str, str] | None = None,
               mapping: dict[str, str] | None = None, encoding: str | None = None) -> dict:
    """Parse and import a file in one call (the CLI and tests)."""
    parsed = apply_mapping(parse(data, fmt, encoding), mapping)
    return import_parsed(runtime, principal, object_name, parsed, key=key, dry_run=dry_run,
                         batch_size=batch_size, progress=progress, lookups=lookups)
