"""What the reports read: only the rows the caller may report on AND read (the `report` scope of
their roles, or `read` where a role gives none, never beyond the read scope), only fields the
caller may see (a hidden one refuses the report: 403 `hidden_field` naming it), with labels in
the caller's locale."""

from __future__ import annotations

import sqlalchemy as sa

from ....metadata.model import label_text
from ....platform.errors import Forbidden, NotFound
from ....platform.reports import require_report, require_visible, scope_condition


def _require(service, object_name: str, fields: tuple[str, ...] = ()) -> None:
    """403 when the caller may not report on (or read) what the report counts: the report is
    listed to everyone, so refusing it says nothing about any record."""
    try:
        require_report(service, object_name)
    except NotFound:
        raise Forbidden(f"You may not report on {object_name} records.") from None
    require_visible(service, object_name, fields)


def _select(service, conn, object_name: str, columns: list[str], *where, uses: tuple[str, ...] = ()) -> list[sa.Row]:
    """The rows of `object_name` a report may count; `columns` and the fields `where` tests (`uses`)
    must be visible to the caller."""
    require_visible(service, object_name, [*columns, *uses])
    table = service.table(object_name)
    query = sa.select(*[table.c[c] for c in columns]).where(
        table.c.deleted_at.is_(None), scope_condition(service, object_name, table), *where)
    return conn.execute(query).fetchall()


def _t(locale: str, en: str, zh: str) -> str:
    return label_text({"en": en, "zh-CN": zh}, locale)
