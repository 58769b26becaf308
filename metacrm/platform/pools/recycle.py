"""Recycle dates: when a pool's recycle rules will first take one record back (GET
/records/{object}/{id}/recycle), the rules read in Python for one record where the sweep
runs them as SQL over many."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from ..clock import utcnow
from ..filters import FilterContext, FilterError, compile_predicate
from ..records import RecordService
from ..security import Principal
from .definitions import pool_for_record


def _with_activity(record: dict) -> dict:
    """Recycle rules read last_activity_at as 'last follow-up, or since the owner got it'."""
    if record.get("last_activity_at") is None and record.get("owner_since") is not None:
        return dict(record, last_activity_at=record["owner_since"])
    return record


def _time_leaves(flt: Any) -> list[tuple[str, int]]:
    found = []
    if isinstance(flt, dict):
        for key, arg in flt.items():
            if key in ("all", "any") and isinstance(arg, list):
                for child in arg:
                    found += _time_leaves(child)
            elif key == "not":
                found += _time_leaves(arg)
            elif isinstance(arg, dict) and isinstance(arg.get("older_than_days"), int):
                found.append((key, arg["older_than_days"]))
    return found


def earliest_due(rule: dict, obj, record: dict, now: datetime) -> datetime | None:
    """When the rule's condition first holds for the record as it is now (None: not foreseeable)."""
    record = _with_activity(record)
    candidates = {now}
    for name, days in _time_leaves(rule.get("when")):
        value = record.get(name)
        if isinstance(value, datetime):
            candidates.add(value + timedelta(days=days, seconds=1))
        elif value is not None and hasattr(value, "toordinal"):
            candidates.add(datetime.combine(value + timedelta(days=days + 1), time()))
    for moment in sorted(c for c in candidates if c >= now):
        ctx = FilterContext(moment, moment.date())
        try:
            if compile_predicate(rule["when"], obj.all_fields, ctx)(record):
                return moment
        except FilterError:
            return None
    return None


def recycle_info(runtime, principal: Principal, object_name: str, record_id: str) -> dict:
    """The computed recycle date of a record the caller can read."""
    svc = RecordService(runtime, principal, source="api")
    record = svc.get_record(object_name, record_id)
    obj = svc.obj(object_name)
    pool = pool_for_record(svc.registry, obj, record)
    info = {"id": record["id"], "object": obj.name, "pool": pool.name if pool else None,
            "in_pool": record.get("pool"), "protected_until": _iso(record.get("protected_until")),
            "recycle_at": None, "reason": None}
    if pool is None or not record.get("owner"):
        return info
    now = utcnow()
    best: tuple[datetime, str] | None = None
    for rule in pool.recycle:
        due = earliest_due(rule, obj, record, now)
        if due is None:
            continue
        if record.get("protected_until") and record["protected_until"] > due:
            due = record["protected_until"]
        if best is None or due < best[0]:
            best = (due, rule.get("reason"))
    if best:
        info.update(recycle_at=_iso(best[0]), reason=best[1])
    return info


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"
