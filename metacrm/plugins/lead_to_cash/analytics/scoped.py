"""What the reports read: only the rows the caller may report on (the `report` scope of
their roles, or `read` where a role gives none), with labels in the caller's locale."""

from __future__ import annotations

import sqlalchemy as sa

from ....metadata.model import label_text
from ....platform.errors import Forbidden
from ....platform.reports import report_action, scope_condition


def _require(service, object_name: str) -> None:
    if service.access.scope(object_name, report_action(service, object_name)) == "none":
        raise Forbidden(f"You may not report on {object_name} records.")


def _select(service, conn, object_name: str, columns: list[str], *where) -> list[sa.Row]:
    table = service.table(object_name)
    query = sa.select(*[table.c[c] for c in columns]).where(
        table.c.deleted_at.is_(None), scope_condition(service, object_name, table), *where)
    return conn.execute(query).fetchall()


def _t(locale: str, en: str, zh: str) -> str:
    return label_text({"en": en, "zh-CN": zh}, locale)
