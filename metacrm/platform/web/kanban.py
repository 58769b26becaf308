"""Kanban boards: a `view` with `mode: kanban` shows one column per value of a picklist, in the
picklist's order, with the count and sum of the records the user may read, and the cards a
page at a time per column ("more"). Moving a card (drag and drop, or the select on the card
without a mouse or script) posts to `record_move`, which saves through RecordService.update
with the card's version: approval gates, validation and stale versions refuse the move, the
card shows why and stays where it was."""

from __future__ import annotations

from flask import jsonify, request, url_for

from ...metadata.model import ObjectDef
from .. import views as saved
from ..errors import BadRequest, CrmError, StaleVersion, ValidationFailed
from ..i18n import format_number
from ..records import RecordService, encode_cursor, parse_sort
from . import display, forms
from .core import current_service, notify, page, redirect_to, render_page
from .form_views import error_text
from .i18n import current_locale, message, t
from .record_views import _object, _visible_fields

CARDS_PER_COLUMN = 10


def _board_filter(view: dict, record_type: str | None = None):
    from .saved_views import combine

    return combine(view.get("filter"), {"record_type": record_type} if record_type else None)


def totals_json(service: RecordService, obj: ObjectDef, view: dict) -> dict:
    """Each column's count and sum as shown on the board (after a move, for the script)."""
    field = view["kanban_field"]
    sum_name = saved.sum_field(service, obj, view)
    totals = saved.column_totals(service, obj, field, _board_filter(view), sum_name)
    out = {}
    for value, _ in display.options(obj.all_fields[field]):
        count, total = totals.get(value, (0, None))
        out[value] = {"count": format_number(count, current_locale(), 0),
                      "sum": _sum_text(obj, sum_name, total)}
    return out


def _sum_text(obj: ObjectDef, sum_name: str | None, total) -> str | None:
    if sum_name is None:
        return None
    return display.show(obj.all_fields[sum_name], total if total is not None else 0).text


def board_page(service: RecordService, obj: ObjectDef, view: dict, bar: dict):
    """The board of one kanban view."""
    locale = current_locale()
    visible = _visible_fields(service, obj)
    field = view.get("kanban_field")
    fdef = visible.get(field)
    if fdef is None or fdef.type != "picklist":
        notify(t("kanban.field_hidden"), "error")
        return redirect_to("web.record_list", object_name=obj.name, view=saved.ALL)
    layout = forms.layout_for(service, obj, None)
    columns = [n for n in (view.get("columns") or layout.list_columns) if n in visible and n != field]
    sort = view.get("sort") or layout.sort or "-created_at"
    try:
        order = parse_sort(sort, visible)
    except BadRequest:
        sort, order = "-created_at", parse_sort("-created_at", visible)
    sum_name = saved.sum_field(service, obj, view)
    condition = _board_filter(view)
    totals = saved.column_totals(service, obj, field, condition, sum_name)
    fetch = list(dict.fromkeys([n for n, _ in order] + columns + ["version", "owner", "record_type", field]
                               + ([obj.name_field] if obj.name_field in visible else [])))
    fetch = [n for n in fetch if n in visible]
    can_move = service.access.can(obj.name, "edit") and service.access.field_access(obj.name, field) == "edit"
    options = display.options(fdef)
    more_col, after = request.args.get("column"), request.args.get("after")
    names = display.Names(service)
    board = []
    for value, label in options:
        part = {field: value}
        cursor = after if more_col == value else None
        try:
            items, more = service.list(obj.name, filter=saved_combine(condition, part), sort=sort, fields=fetch,
                                       limit=CARDS_PER_COLUMN, cursor=cursor)
        except BadRequest as exc:
            if exc.code != "bad_cursor":
                raise
            items, more = service.list(obj.name, filter=saved_combine(condition, part), sort=sort, fields=fetch,
                                       limit=CARDS_PER_COLUMN)
        for item in items:
            names.want_record(obj, item, columns)
        count, total = totals.get(value, (0, None))
        board.append({"value": value, "label": label, "items": items, "count": count,
                      "count_text": format_number(count, locale, 0),
                      "sum": _sum_text(obj, sum_name, total),
                      "more": url_for("web.record_list", object_name=obj.name, view=view["name"], column=value,
                                      after=encode_cursor(items[-1], order, visible)) if more and items else None,
                      "paged": cursor is not None})
    names.resolve()
    for col in board:
        cards = []
        for item in col.pop("items"):
            cells = [{"label": obj.all_fields[n].display_label(locale),
                      "shown": display.show(obj.all_fields[n], item.get(n), names, item)}
                     for n in columns if n != obj.name_field]
            cards.append({"id": item["id"], "title": display.record_title(obj, item), "cells": cells,
                          "version": item.get("version"), "value": col["value"],
                          "href": url_for("web.record_detail", object_name=obj.name, record_id=item["id"]),
                          "move_url": url_for("web.record_move", object_name=obj.name, record_id=item["id"]),
                          "can_move": can_move and service.access.allows_row(obj.name, "edit", item)})
        col["cards"] = cards
    return render_page(
        "kanban.html", obj=obj, obj_label=obj.display_label(locale, plural=True), view=view, bar=bar,
        board=board, field=field, field_label=fdef.display_label(locale), options=options,
        sum_label=obj.all_fields[sum_name].display_label(locale) if sum_name else None,
        can_create=service.access.can(obj.name, "create"),
        first_page=url_for("web.record_list", object_name=obj.name, view=view["name"]),
        paged=bool(more_col and after),
    )


def saved_combine(*conditions):
    from .saved_views import combine

    return combine(*conditions)


def _refusal(service: RecordService, exc: CrmError) -> str:
    if isinstance(exc, StaleVersion):
        return t("kanban.stale")
    if isinstance(exc, ValidationFailed) and exc.fields:
        obj_fields = service.registry.objects.get(request.view_args["object_name"])
        parts = []
        for name, problems in exc.fields.items():
            fdef = obj_fields.all_fields.get(name) if obj_fields else None
            label = fdef.display_label(current_locale()) if fdef else name
            texts = problems if isinstance(problems, list) else [problems]
            parts.append(f"{label}: " + "; ".join(message(str(p)) for p in texts))
        return " ".join(parts)
    return error_text(service, exc)


def _wants_json() -> bool:
    return request.headers.get("X-Requested-With") == "fetch"


@page("/records/<object_name>/<record_id>/move", methods=("POST",), endpoint="record_move")
def record_move(object_name: str, record_id: str):
    """Move a card: set the board's picklist to another value through the one write path."""
    service = current_service()
    obj = _object(service, object_name)
    view = saved.find_view(service, obj.name, request.form.get("view", ""))
    field = view.get("kanban_field")
    value = request.form.get("value", "")
    fdef = obj.all_fields.get(field or "")
    if fdef is None or value not in {v for v, _ in display.options(fdef)}:
        raise BadRequest(f"{value!r} is not a value of {field}.", code="bad_value", fields={field: ["Unknown value."]})
    try:
        version = int(request.form.get("version", ""))
    except ValueError:
        raise BadRequest("The card's version is missing.", code="bad_version", fields={"version": ["Required."]})
    label = dict(display.options(fdef))[value]
    try:
        record = service.update(obj.name, record_id, {field: value}, version=version)
    except CrmError as exc:
        if exc.status in (403, 404) and not _wants_json():
            raise
        text = _refusal(service, exc)
        if _wants_json():
            return jsonify({"ok": False, "error": text, "code": exc.code}), exc.status
        notify(t("kanban.refused", error=text), "error")
        return redirect_to("web.record_list", object_name=obj.name, view=view["name"])
    if _wants_json():
        return jsonify({"ok": True, "version": record.get("version"), "value": value, "label": label,
                        "columns": totals_json(service, obj, view)})
    notify(t("kanban.moved", label=label))
    return redirect_to("web.record_list", object_name=obj.name, view=view["name"])
