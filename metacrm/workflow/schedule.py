"""Scheduled triggers: N days after (or before) a date field, run by the periodic sweep.

Set-based: one query per rule finds the due records (the rule's condition pushed down to
SQL, minus those already fired for this date), in batches. Each firing is recorded in
`mc_workflow_fired` under a unique key (rule, record, date value) in the same transaction
as its actions, so a record fires once per date, even with two sweeps at once; a record
whose date moves is due again for the new date.

Due means: `after_days` - the date plus N days has come; `before_days` - the date is at
most N days ahead and has not passed yet.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ..platform import db, filters
from ..platform.clock import utcnow
from ..platform.security import Principal
from ..platform.storage import UtcDateTime
from .actions import ActionContext, run_actions

log = logging.getLogger("metacrm.workflow")
BATCH = 500

fired = sa.Table(
    "mc_workflow_fired",
    db.system_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(250), nullable=False, unique=True),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("object", sa.String(64), nullable=False),
    sa.Column("record_id", sa.String(32), nullable=False),
    sa.Column("on_date", sa.Date),
    sa.Column("on_datetime", UtcDateTime),
    sa.Column("fired_at", UtcDateTime, nullable=False),
    sa.Index("ix_mc_workflow_fired_rule", "rule", "record_id"),
)


def _insert(conn: sa.Connection):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(fired)


def due_query(rule: Any, obj: Any, table: sa.Table, now: datetime) -> sa.Select:
    trigger = rule.doc["trigger"]
    fdef = obj.all_fields[trigger["field"]]
    column = table.c[fdef.name]
    is_date = fdef.value_type == "date"
    base = now.date() if is_date else now
    fired_column = fired.c.on_date if is_date else fired.c.on_datetime
    if "before_days" in trigger:
        window = sa.and_(column <= base + timedelta(days=trigger["before_days"]), column >= base)
    else:
        window = column <= base - timedelta(days=trigger.get("after_days") or 0)
    already = sa.exists().where(fired.c.rule == rule.name, fired.c.record_id == table.c.id, fired_column == column)
    query = sa.select(table).where(column.isnot(None), window, table.c.deleted_at.is_(None), ~already)
    if rule.condition:
        ctx = filters.FilterContext.current()
        query = query.where(filters.compile_sql(rule.condition, table, obj.all_fields, ctx))
    return query.order_by(table.c.id).limit(BATCH)


def fire(runtime: Any, rule: Any, obj: Any, record: dict, base: Any = None) -> bool:
    """Fire one rule for one record, once: the fired-log row and the actions share a transaction."""
    trigger = rule.doc["trigger"]
    value = record.get(trigger["field"])
    is_date = obj.all_fields[trigger["field"]].value_type == "date"
    key = f"{rule.name}:{record['id']}:{value.isoformat()}"
    with runtime.transaction() as tx:
        stmt = _insert(tx.conn).values(
            key=key[:250], rule=rule.name, object=obj.name, record_id=record["id"],
            on_date=value if is_date else None, on_datetime=None if is_date else value, fired_at=utcnow(),
        ).on_conflict_do_nothing(index_elements=["key"]).returning(fired.c.id)
        if tx.conn.execute(stmt).first() is None:
            return False
        actx = ActionContext(runtime, tx, obj, record, Principal.system(), event="schedule",
                             key_base=f"wfs:{key}", rule=rule.name, source="workflow", base=base)
        run_actions(actx, rule.actions)
    return True


def sweep(runtime: Any) -> str:
    from .engine import rule_index

    compiled = runtime.compiled()
    index = rule_index(compiled)
    if not index.scheduled:
        return "no scheduled rules"
    from ..platform.records import RecordService

    reader = RecordService(runtime, Principal.system(), source="workflow")
    parts = []
    for rule in index.scheduled:
        obj = compiled.registry.object(rule.object)
        table = compiled.tables[obj.name]
        count = 0
        while True:
            with runtime.reading() as conn:
                rows = conn.execute(due_query(rule, obj, table, utcnow())).fetchall()
            if not rows:
                break
            progressed = False
            for row in rows:
                if fire(runtime, rule, obj, reader.row_to_record(obj, row), base=reader):
                    count += 1
                    progressed = True
            if len(rows) < BATCH or not progressed:
                break
        parts.append(f"{rule.name}: {count} fired")
    return "; ".join(parts)
