"""Match keys: computing them, and keeping the key columns current when rules change.

Until `after_apply` (called by apply.py) has re-keyed the objects whose key columns changed,
the first save under a new metadata version (`ensure_keyed`) keys the rows whose key is NULL
while their source field is not ("" marks a value with nothing to match).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa

from ...metadata.registry import Registry
from .. import normalize
from .rules import KeySpec, plan_for

log = logging.getLogger(__package__)

REKEY_BATCH = 1000


def spec_key(spec: KeySpec, value: Any, default_region: str) -> str | None:
    if value is None:
        return None
    if spec.method == "block":
        return normalize.block_key(normalize.company_name(value))
    return normalize.match_key(spec.method, value, spec.region or default_region)


def record_keys(specs: Iterable[KeySpec], record: dict, default_region: str) -> dict[str, str | None]:
    return {spec.column: spec_key(spec, record.get(spec.field), default_region) for spec in specs}


# --- re-keying -----------------------------------------------------------------------------


def _missing(table: sa.Table, specs: Iterable[KeySpec]):
    """Rows not keyed yet: a key column is NULL while its source field is not."""
    return sa.or_(*(sa.and_(table.c[s.column].is_(None), table.c[s.field].isnot(None)) for s in specs))


def _rekey_batch(conn: sa.Connection, table: sa.Table, specs: list[KeySpec], condition, last: str,
                 batch_size: int, region: str) -> tuple[int, str]:
    sources = sorted({s.field for s in specs})
    rows = conn.execute(
        sa.select(table.c.id, *[table.c[name] for name in sources])
        .where(condition, table.c.id > last).order_by(table.c.id).limit(batch_size)
    ).fetchall()
    if not rows:
        return 0, last
    update = table.update().where(table.c.id == sa.bindparam("_id")).values(
        {s.column: sa.bindparam(f"_k_{s.column}") for s in specs}
    )
    params = []
    for row in rows:
        record = row._mapping
        entry = {"_id": row.id}
        for spec in specs:
            value = record.get(spec.field)
            key = spec_key(spec, value, region)
            entry[f"_k_{spec.column}"] = "" if key is None and value is not None else key
        params.append(entry)
    conn.execute(update, params)
    return len(rows), rows[-1].id


def _rekey_setup(runtime, compiled, object_name: str, only_missing: bool):
    specs = list(plan_for(compiled.registry).specs.get(object_name, {}).values())
    if not specs:
        return None
    table = compiled.tables[object_name]
    condition = _missing(table, specs) if only_missing else sa.true()
    return table, specs, condition, runtime.config.phone_region or "CN"


def rekey_conn(conn: sa.Connection, runtime, compiled, object_name: str, *, batch_size: int = REKEY_BATCH,
               only_missing: bool = True) -> int:
    """Re-key an object's rows inside the caller's transaction, in batches of UPDATEs."""
    setup = _rekey_setup(runtime, compiled, object_name, only_missing)
    if setup is None:
        return 0
    table, specs, condition, region = setup
    done, last = 0, ""
    while True:
        count, last = _rekey_batch(conn, table, specs, condition, last, batch_size, region)
        done += count
        if count < batch_size:
            return done


def rekey(runtime, object_name: str, batch_size: int = REKEY_BATCH,
          progress: Callable[[int, int], Any] | None = None, *, only_missing: bool = True) -> int:
    """Re-key an object's rows, one transaction per batch; `progress(done, total)` after each.

    only_missing: just the rows whose key is NULL while the source field is set (new key
    columns); False recomputes every row (a rule's method or region changed).
    """
    compiled = runtime.compiled()
    setup = _rekey_setup(runtime, compiled, object_name, only_missing)
    if setup is None:
        return 0
    table, specs, condition, region = setup
    with runtime.reading() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(table).where(condition)).scalar() or 0
    if progress:
        progress(0, total)
    done, last = 0, ""
    while True:
        with runtime.transaction() as tx:
            count, last = _rekey_batch(tx.conn, table, specs, condition, last, batch_size, region)
        done += count
        if progress and count:
            progress(done, total)
        if count < batch_size:
            return done


def ensure_keyed(tx, runtime, compiled) -> None:
    """Once per metadata version and process: key the rows a rule change left without keys.

    Runs inside the caller's transaction (SQLite allows one writer); marked done only after
    that transaction commits, so a refused save does not lose the re-keying.
    """
    if compiled.cache.get("dedup_keyed") or getattr(tx, "dedup_keyed", None) is compiled:
        return
    tx.dedup_keyed = compiled
    plan = plan_for(compiled.registry)
    for object_name, specs in plan.specs.items():
        table = compiled.tables[object_name]
        if tx.conn.execute(sa.select(table.c.id).where(_missing(table, specs.values())).limit(1)).first():
            count = rekey_conn(tx.conn, runtime, compiled, object_name)
            log.info("dedup: keyed %d %s record(s) for metadata version %s", count, object_name,
                     compiled.registry.version)
    tx.after_commit(lambda: compiled.cache.__setitem__("dedup_keyed", True))


def after_apply(runtime, old_registry: Registry, new_registry: Registry,
                progress: Callable[[str, int, int], Any] | None = None) -> dict[str, int]:
    """Re-key the objects whose key columns a metadata change added or redefined.

    To be called by apply.py after a successful apply (with the registries before and
    after); returns {object: rows keyed}.
    """
    old_plan, new_plan = plan_for(old_registry), plan_for(new_registry)
    runtime.compiled(force=True)
    results = {}
    for object_name, specs in new_plan.specs.items():
        old_specs = old_plan.specs.get(object_name, {})
        if specs == old_specs:
            continue
        # Every row: a key column that comes back after its rule was removed may hold stale keys.
        report = (lambda done, total, name=object_name: progress(name, done, total)) if progress else None
        results[object_name] = rekey(runtime, object_name, progress=report, only_missing=False)
    return results
