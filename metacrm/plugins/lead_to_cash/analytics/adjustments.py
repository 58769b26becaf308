"""Manager overrides of the forecast (`forecast_adjustment` records): a manager's own call on one
person's commit and best case for one period, kept beside that person's own figures.

The rules, enforced in a before_save hook on the one write path (REST, web form, import,
workflow, plugin alike):

- `period` is a month (2025-03) or a quarter (2025-Q1); at least one of `commit` / `best_case`
  is given, and best case (cumulative, as in the report) is not below commit;
- the record belongs to the manager who makes it: its owner is the acting user (an admin may
  file one for a manager), and only that owner edits it — the manager above makes their own
  adjustment instead of changing the one below (403 `not_your_adjustment`);
- the adjusted person is someone in the owner's forecast scope (`adjustable`: whose
  opportunities the owner may read, or who reports to them), never the owner themselves
  (403 `rep_out_of_scope` on the field `rep`);
- one per owner, person and period: `adjustment_key` (owner:rep:period) is unique, and a second
  one is 409 `adjustment_exists` naming the existing record (`existing_id`).
"""

from __future__ import annotations

import re
from decimal import Decimal

import sqlalchemy as sa

from ....platform.errors import Conflict, Forbidden, ValidationFailed
from ....platform.security import Access, Principal

OBJECT = "forecast_adjustment"
PERIOD_RE = {"month": re.compile(r"^\d{4}-(0[1-9]|1[0-2])$"), "quarter": re.compile(r"^\d{4}-Q[1-4]$")}


def period_kind(key: str | None) -> str | None:
    """"month" or "quarter" for a well-formed period key, else None."""
    for kind, pattern in PERIOD_RE.items():
        if key and pattern.match(key):
            return kind
    return None


def access_of(service, user_id: str) -> Access | None:
    """The rights of another user (the adjustment's owner when an admin files it)."""
    directory = service.runtime.directory()
    info = directory.users.get(user_id)
    if info is None:
        return None
    principal = Principal(user_id=user_id, username=user_id, roles=frozenset(info.get("roles") or []),
                          department=info.get("department"), manager=info.get("manager"))
    return Access(service.registry, principal, directory)


def forecast_scope(access: Access, directory) -> set[str] | None:
    """Whose forecast `access` sees: the owners of the opportunities it may read and everyone
    below it in the reporting line (None: everyone)."""
    owners = access.owners_in_scope(access.scope("opportunity", "read"))
    if owners is None:
        return None
    me = access.principal.user_id
    return owners | (directory.reports_of(me) if me else set())


def adjustable(access: Access, directory, user_id: str | None) -> bool:
    """May the holder of `access` adjust `user_id`'s forecast (never their own)?"""
    me = access.principal.user_id
    if not user_id or not me or user_id == me or user_id not in directory.users:
        return False
    scope = forecast_scope(access, directory)
    return scope is None or user_id in scope


def adjustment_hook(ctx) -> None:
    record, service = ctx.record, ctx.service
    if ctx.op == "delete":
        if not ctx.access.is_admin and (ctx.old or record).get("owner") != service.principal.user_id:
            raise Forbidden("Only the manager who made an adjustment deletes it.", code="not_your_adjustment")
        return
    period = (record.get("period") or "").strip()
    record["period"] = period
    if period_kind(period) is None:
        raise ValidationFailed("period is a month (2025-03) or a quarter (2025-Q1).",
                               fields={"period": ["A month like 2025-03 or a quarter like 2025-Q1."]})
    commit, best = record.get("commit"), record.get("best_case")
    if commit is None and best is None:
        raise ValidationFailed("An adjustment sets the commit, the best case or both.",
                               fields={"commit": ["Give an adjusted commit or best case."]})
    if commit is not None and best is not None and Decimal(str(best)) < Decimal(str(commit)):
        raise ValidationFailed("The best case includes the commit, so it cannot be lower.",
                               fields={"best_case": ["At least the adjusted commit."]})
    principal, access = service.principal, ctx.access
    directory = service.runtime.directory()
    owner = record.get("owner")
    if ctx.op == "create" and not owner:
        owner = record["owner"] = principal.user_id
    acting = principal.user_id
    if not access.is_admin:
        if ctx.op != "create" and (ctx.old or {}).get("owner") != acting:
            raise Forbidden("Only the manager who made an adjustment changes it; make your own adjustment instead.",
                            code="not_your_adjustment")
        if owner != acting:
            raise Forbidden("An adjustment belongs to the manager who makes it.", code="not_your_adjustment",
                            fields={"owner": ["Must be you."]})
    owner_access = access if owner == acting and not principal.is_system else access_of(service, owner)
    if owner_access is None or not adjustable(owner_access, directory, record.get("rep")):
        raise Forbidden("You can adjust the forecast only of people in your team (not your own).",
                        code="rep_out_of_scope", fields={"rep": ["Not someone whose forecast you manage."]})
    record["adjustment_key"] = f"{owner}:{record['rep']}:{period}"
    table = service.table(OBJECT)
    clash = ctx.conn.execute(sa.select(table.c.id).where(
        table.c.adjustment_key == record["adjustment_key"], table.c.id != record["id"],
        table.c.deleted_at.is_(None)).limit(1)).scalar()
    if clash:
        raise Conflict("There is already an adjustment of this person for this period by this manager: edit it.",
                       code="adjustment_exists", fields={"period": ["Already adjusted: edit that one."]},
                       existing_id=clash)
