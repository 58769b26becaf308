"""Unique fields: checked before a write (one record, or a whole batch set-wise), and the
database's unique index as the last word when a concurrent save got there first.

A unique email compares with A-Z folded (storage.folds_case): `Ann@X.com` and `ann@x.com` are
one address, the value is stored as typed, and the database's index is on the folded text."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from ...metadata.model import ObjectDef
from ..errors import ValidationFailed
from ..storage import compared, compared_value
from .context import SaveContext


class UniqueValues:
    """The unique checks of RecordService (mixed into it)."""

    def _check_unique(self, conn: sa.Connection, obj: ObjectDef, record: dict, changed: list[str]) -> None:
        table = self.table(obj.name)
        errors = {}
        for name in changed:
            fdef = obj.fields.get(name)
            if fdef is None or not fdef.unique or record.get(name) is None:
                continue
            clash = conn.execute(
                sa.select(table.c.id).where(
                    compared(table.c[name], fdef) == compared_value(record[name], fdef),
                    table.c.id != record["id"], table.c.deleted_at.is_(None),
                ).limit(1)
            ).first()
            if clash:
                errors[name] = ["This value is already used by another record."]
        if errors:
            raise ValidationFailed("Some values must be unique.", code="not_unique", fields=errors)

    def _unique_in_batch(self, conn: sa.Connection, obj: ObjectDef, good: list[SaveContext],
                         results: list[dict]) -> list[SaveContext]:
        """Unique fields across a batch: a value already used by a live record, or by an earlier
        row of the batch, makes the row an error (one query per unique field, not per row)."""
        unique = [name for name, fdef in obj.fields.items() if fdef.unique]
        if not unique or not good:
            return good
        table = self.table(obj.name)
        refused: dict[int, dict[str, list[str]]] = {}
        for name in unique:
            fdef = obj.fields[name]
            column = compared(table.c[name], fdef)
            values = sorted({compared_value(c.record[name], fdef) for c in good if c.record.get(name) is not None},
                            key=repr)
            used: set = set()
            for first in range(0, len(values), 500):
                used.update(conn.execute(sa.select(column).where(
                    column.in_(values[first:first + 500]), table.c.deleted_at.is_(None))).scalars())
            seen: set = set()
            for ctx in good:
                value = compared_value(ctx.record.get(name), fdef)
                if value is None:
                    continue
                if value in used or value in seen:
                    refused.setdefault(id(ctx), {})[name] = [
                        "This value is already used by another record." if value in used
                        else "An earlier row of this batch uses the same value."]
                else:
                    seen.add(value)
        if not refused:
            return good
        for position, result in enumerate(results):
            ctx = result.get("_ctx")
            if ctx is not None and id(ctx) in refused:
                results[position] = {"status": "error", **ValidationFailed(
                    "Some values must be unique.", code="not_unique", fields=refused[id(ctx)]).to_dict()}
        return [ctx for ctx in good if id(ctx) not in refused]


@contextmanager
def unique_guard(obj: ObjectDef) -> Iterator[None]:
    """The database's unique index (live records) refused a write that the service's own check
    let through, i.e. a concurrent save took the value first: a 400 not_unique, not a 500."""
    try:
        yield
    except sa.exc.IntegrityError as exc:
        text = str(exc.orig or exc)
        unique = [name for name, fdef in obj.fields.items() if fdef.unique]
        named = [name for name in unique if f"_{name}" in text or f".{name}" in text] or unique
        if not unique:
            raise
        raise ValidationFailed("Some values must be unique.", code="not_unique",
                               fields={name: ["This value is already used by another record."] for name in named}
                               ) from None
