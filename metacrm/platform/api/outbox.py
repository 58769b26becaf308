"""The admins' view of the outbox (dead letters, retry), and the small argument helpers other
admin routes share (int_arg, checked_id, require_admin)."""

from __future__ import annotations

from flask import g, jsonify, request

from ..errors import BadRequest, Conflict, Forbidden, NotFound
from ..outbox import STATUSES, outbox
from ..security import Access
from . import api, runtime


def int_arg(name: str, default: int | None, low: int = 1, high: int = 500) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer.", fields={name: ["Not an integer."]}) from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}.", fields={name: ["Out of range."]})
    return value


MAX_ROW_ID = 2**63 - 1  # the largest id a BIGINT column (and SQLite's INTEGER) holds


def checked_id(value: int, what: str, code: str) -> int:
    """An id from the URL: beyond what the database can hold it names nothing (404), not a crash."""
    if value > MAX_ROW_ID:
        raise NotFound(f"No such {what}.", code=code)
    return value


def require_admin() -> None:
    rt = runtime()
    if not Access(rt.registry(), g.principal, rt.directory()).is_admin:
        raise Forbidden("Only admins may see the outbox.")


@api.get("/admin/outbox")
def admin_outbox():
    require_admin()
    status = request.args.get("status") or None
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status must be one of {', '.join(STATUSES)}.", fields={"status": ["Unknown status."]})
    items = outbox(runtime()).list(status=status, topic=request.args.get("topic") or None,
                                   limit=int_arg("limit", 50), before=int_arg("before", None, high=2**62))
    return jsonify({"items": items})


@api.post("/admin/outbox/<int:row_id>/retry")
def admin_outbox_retry(row_id: int):
    require_admin()
    row_id = checked_id(row_id, "outbox row", "outbox_row_not_found")
    box = outbox(runtime())
    if not box.retry(row_id):
        if not any(item["id"] == row_id for item in box.list(limit=1, before=row_id + 1)):
            raise NotFound("No such outbox row.", code="outbox_row_not_found")
        raise Conflict("Only dead or skipped rows can be retried.", code="not_retryable")
    return jsonify(box.list(limit=1, before=row_id + 1)[0])
