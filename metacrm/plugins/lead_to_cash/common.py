"""Helpers shared by the lead-to-cash plugin's hooks, actions, jobs and reports."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa

from ...platform.errors import CrmError
from ...platform.records import RecordService

PLUGIN = "lead_to_cash"
CENT = Decimal("0.01")
ZERO = Decimal("0.00")


class Unprocessable(CrmError):
    """A well-formed request the money rules refuse (overpayment, a plan that does not add up): 422."""

    status = 422
    code = "unprocessable"


def money(value: Any) -> Decimal:
    """Exact decimal, two places, half up (never float)."""
    if value is None:
        return ZERO
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def money_str(value: Any) -> str:
    return str(money(value))


def pct_str(numerator: Any, denominator: Any) -> str | None:
    """numerator / denominator as a percentage with two places, or None when undefined."""
    numerator, denominator = Decimal(str(numerator or 0)), Decimal(str(denominator or 0))
    if not denominator:
        return None
    return str((numerator * 100 / denominator).quantize(CENT, rounding=ROUND_HALF_UP))


def plugin_ctx(runtime):
    """The PluginContext this plugin was set up with in this runtime (None if not loaded)."""
    state = runtime.extensions.get(PLUGIN)
    return state.get("ctx") if isinstance(state, dict) else None


def system_service(runtime, tx=None) -> RecordService:
    """The platform acting for itself (derived values the acting user may not edit), on `tx`:
    PluginContext.system_service, which needs the `elevated` permission the manifest asks for."""
    ctx = plugin_ctx(runtime)
    if ctx is None:
        from ...platform.errors import CrmError

        raise CrmError("The lead_to_cash plugin is not loaded in this process.", code="plugin_not_loaded")
    return ctx.system_service(tx=tx)


def system_on(runtime, tx) -> RecordService:
    """A system service on transaction `tx` (one per transaction)."""
    cache = tx.__dict__.setdefault("_ltc_system", {})
    if "service" not in cache:
        cache["service"] = system_service(runtime, tx)
    return cache["service"]


def system_for(ctx) -> RecordService:
    """A system service on the saving transaction of a hook's SaveContext."""
    return system_on(ctx.service.runtime, ctx.tx)


def tx_cache(tx) -> dict:
    """Per-transaction memo for hooks (e.g. rules read once per batch)."""
    return tx.__dict__.setdefault("_ltc_cache", {})


def fetch(ctx_or_service, conn: sa.Connection, object_name: str, record_id: str | None) -> dict | None:
    if not record_id:
        return None
    service = getattr(ctx_or_service, "service", ctx_or_service)
    return service.fetch(conn, service.registry.object(object_name), str(record_id))


def rows(service, conn: sa.Connection, object_name: str, *where: Any, columns: Iterable[str] | None = None,
         order_by: Iterable[str] = ()) -> list[dict]:
    """Raw typed records of an object (not deleted) matching SQL conditions; permission-free."""
    table = service.table(object_name)
    obj = service.registry.object(object_name)
    cols = [table.c[c] for c in columns] if columns else [table]
    query = sa.select(*cols).where(table.c.deleted_at.is_(None), *where)
    for name in order_by:
        query = query.order_by(table.c[name])
    return [service.row_to_record(obj, row) for row in conn.execute(query)]


def option(service, object_name: str, field_name: str, value: Any) -> dict:
    fdef = service.registry.object(object_name).fields.get(field_name)
    return (fdef.option(value) if fdef is not None and value is not None else None) or {}


def stage_options(registry) -> dict[str, dict]:
    fdef = registry.object("opportunity").fields["stage"]
    return {str(o["value"]): o for o in fdef.options}


def stage_category(registry, stage: str | None) -> str | None:
    return stage_options(registry).get(str(stage), {}).get("forecast_category")


def is_closed_stage(registry, stage: str | None) -> bool:
    opt = stage_options(registry).get(str(stage), {})
    return bool(opt.get("is_closed")) or opt.get("forecast_category") in ("closed", "omitted")


def is_won_stage(registry, stage: str | None) -> bool:
    opt = stage_options(registry).get(str(stage), {})
    return bool(opt.get("is_won")) or opt.get("forecast_category") == "closed"


def as_date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def parse_date(value: Any, name: str) -> date | None:
    from ...platform.errors import BadRequest

    if value in (None, ""):
        return None
    try:
        return as_date(value)
    except ValueError:
        raise BadRequest(f"{name} must be a date (YYYY-MM-DD).", fields={name: ["Not a date."]}) from None


def user_names(service, user_ids: Iterable[str]) -> dict[str, str]:
    ids = sorted({u for u in user_ids if u})
    if not ids:
        return {}
    table = service.table("user")
    with service._reading() as conn:
        found = conn.execute(sa.select(table.c.id, table.c.display_name, table.c.username)
                             .where(table.c.id.in_(ids))).fetchall()
    return {row.id: row.display_name or row.username for row in found}


def names_of(service, object_name: str, ids: Iterable[str]) -> dict[str, str]:
    """The names of the records the caller may read (the directory — users, departments — is
    open to everyone); a record they may not read gets no name, so a report names nothing a
    read would not show."""
    ids = sorted({i for i in ids if i})
    obj = service.registry.object(object_name)
    if not ids or not obj.name_field:
        return {}
    access = service.access
    table = service.table(object_name)
    query = sa.select(table.c.id, table.c[obj.name_field]).where(table.c.id.in_(ids))
    if object_name not in ("user", "department") and not access.is_admin:
        if access.field_access(object_name, obj.name_field) == "hidden":
            return {}
        query = query.where(table.c.deleted_at.is_(None), access.row_filter(object_name, "read", table))
    with service._reading() as conn:
        found = conn.execute(query).fetchall()
    return {row[0]: row[1] for row in found}


def to_input(service, object_name: str, values: dict) -> dict:
    """Typed values -> JSON input for the record service (decimals and dates as strings)."""
    from ...platform import schemas

    obj = service.registry.object(object_name)
    out = {}
    for name, value in values.items():
        fdef = obj.all_fields.get(name)
        out[name] = schemas.to_json_value(fdef, value) if fdef is not None else value
    return out


def fill_line(ctx, record: dict, parent: dict | None) -> None:
    """A quote or order line: price and description from its product when not given, and on
    create the parent's owner (a line belongs to whoever owns the quote or order)."""
    if record.get("unit_price") is None and record.get("product"):
        product = fetch(ctx, ctx.conn, "product", record["product"])
        if product:
            record["unit_price"] = product.get("list_price")
            if not record.get("description"):
                record["description"] = product.get("name")
    if ctx.op == "create" and parent is not None and parent.get("owner"):
        record["owner"] = parent["owner"]
