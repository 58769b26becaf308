"""L2 lead scoring from the `lead_scoring` metadata document (default: rules/lead_score).

score = Σ criteria points of the record's values + min(follow-ups in the last `within_days`
days × points_each, max_points) + round(recency points × 0.5^(days since the last touch /
half_life_days)), clamped to 0 .. max_score. The last touch is last_activity_at, else the
creation. The score field is computed on every save of the record (and of a follow-up of it)
and by the daily sweep (recency decays with time), never typed; reaching `threshold` sets
the key field (as does any matching lead_priority_rule).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa

from ...platform.clock import today, utcnow
from .common import system_for, tx_cache

HALF = Decimal("0.5")


def scoring_doc(registry, object_name: str = "lead") -> dict | None:
    docs = sorted((d for d in registry.of_kind("lead_scoring") if d.get("object") == object_name),
                  key=lambda d: d["name"])
    return docs[0] if docs else None


def _day(value) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        return date.fromisoformat(value[:10])
    return None


def compute(doc: dict, record: dict, follow_ups: int, as_of: date) -> dict:
    """The score and its parts: {"score", "parts": {criterion: points}}."""
    parts: dict[str, int] = {}
    for criterion in doc.get("criteria") or []:
        value = record.get(criterion["field"])
        parts[criterion["field"]] = int((criterion.get("points") or {}).get(str(value), 0)) if value is not None else 0
    activity = doc.get("activity")
    if activity:
        points = follow_ups * int(activity.get("points_each") or 0)
        if activity.get("max_points") is not None:
            points = min(points, int(activity["max_points"]))
        parts["activity"] = points
    recency = doc.get("recency")
    if recency:
        touched = _day(record.get("last_activity_at")) or _day(record.get("created_at")) or as_of
        days = max((as_of - touched).days, 0)
        decayed = Decimal(int(recency["points"])) * HALF ** (Decimal(days) / Decimal(int(recency["half_life_days"])))
        parts["recency"] = int(decayed.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    total = max(0, min(sum(parts.values()), int(doc.get("max_score") or 100)))
    return {"score": total, "parts": parts}


def follow_up_count(service, conn, doc: dict, record_id: str, now: datetime | None = None) -> int:
    activity = doc.get("activity")
    if not activity or not record_id:
        return 0
    table = service.table(activity["object"])
    since = (now or utcnow()) - timedelta(days=int(activity.get("within_days") or 90))
    return int(conn.execute(sa.select(sa.func.count()).where(
        table.c[activity["via"]] == record_id, table.c.deleted_at.is_(None), table.c.created_at >= since)).scalar()
        or 0)


def follow_up_counts(service, conn, doc: dict, record_ids: list[str]) -> dict[str, int]:
    """Follow-ups per record for many records at once (the sweep): one grouped query per 500 ids."""
    activity = doc.get("activity")
    if not activity or not record_ids:
        return {}
    table = service.table(activity["object"])
    via = table.c[activity["via"]]
    since = utcnow() - timedelta(days=int(activity.get("within_days") or 90))
    counts: dict[str, int] = {}
    for start in range(0, len(record_ids), 500):
        chunk = record_ids[start:start + 500]
        query = sa.select(via, sa.func.count()).where(via.in_(chunk), table.c.deleted_at.is_(None),
                                                       table.c.created_at >= since).group_by(via)
        counts.update({key: int(n) for key, n in conn.execute(query).all()})
    return counts


def score_hook(ctx) -> None:
    """before_save on lead: the score from the metadata (before the key-lead hook reads it)."""
    if ctx.op not in ("create", "update"):
        return
    cache = tx_cache(ctx.tx)
    if "lead_scoring" not in cache:
        cache["lead_scoring"] = scoring_doc(ctx.registry, ctx.obj.name)
    doc = cache["lead_scoring"]
    if doc is None:
        return
    count = 0 if ctx.op == "create" else follow_up_count(ctx.service, ctx.conn, doc, ctx.record["id"])
    ctx.record[doc["score_field"]] = compute(doc, ctx.record, count, today())["score"]


def is_key(doc: dict | None, record: dict) -> bool:
    """The threshold of the scoring document marks a key lead."""
    if not doc or doc.get("threshold") is None:
        return False
    return int(record.get(doc["score_field"]) or 0) >= int(doc["threshold"])


def follow_up_after_save(ctx) -> None:
    """after_save on the follow-up object (activity): re-score the scored record it is about."""
    doc = scoring_doc(ctx.registry)
    if doc is None or (doc.get("activity") or {}).get("object") != ctx.obj.name:
        return
    via = doc["activity"]["via"]
    ids = {ctx.record.get(via), (ctx.old or {}).get(via)} - {None}
    table = ctx.service.table(doc["object"])
    for record_id in ids:
        exists = ctx.conn.execute(sa.select(table.c.id).where(table.c.id == record_id)).first()
        if exists:
            system_for(ctx).system_update(doc["object"], record_id, {}, note=None, track=True)
