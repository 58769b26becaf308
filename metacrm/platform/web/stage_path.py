"""The stage path: on a record whose object names a picklist in `stage_path` (an opportunity's
stage, a lead's status), the picklist's values in order as a chevron bar on the detail page.
Clicking a value posts to `record_stage`, which saves through RecordService.update with the
version the page showed: validation (a lost deal needs its reason), approval gates, record
locks and stale versions refuse the move, and the page says why."""

from __future__ import annotations

from flask import request, url_for

from ...metadata.model import ObjectDef
from ..errors import BadRequest, CrmError, StaleVersion
from ..records import RecordService
from . import display
from .core import current_service, notify, page, redirect_to
from .i18n import current_locale, t
from .record_views import _object


def stage_field(obj: ObjectDef):
    name = obj.doc.get("stage_path")
    fdef = obj.fields.get(name) if isinstance(name, str) else None
    return fdef if fdef is not None and fdef.type == "picklist" else None


def stage_path(service: RecordService, obj: ObjectDef, record: dict) -> dict | None:
    """The bar's steps for this record as the user sees it, or None (no stage field, or hidden)."""
    fdef = stage_field(obj)
    if fdef is None or fdef.name in service.access.hidden_fields(obj.name) or fdef.name not in record:
        return None
    current = record.get(fdef.name)
    values = display.options(fdef)
    index = next((i for i, (v, _) in enumerate(values) if v == current), -1)
    editable = service.access.allows_row(obj.name, "edit", record) and fdef.name in {
        f.name for f in service.writable_fields(obj, False)[0]}
    return {"field": fdef.name, "label": fdef.display_label(current_locale()), "editable": editable, "version": record.get("version"),
            "action": url_for("web.record_stage", object_name=obj.name, record_id=record["id"]),
            "steps": [{"value": v, "label": label, "state": "current" if i == index else "done" if i < index else "todo"}
                      for i, (v, label) in enumerate(values)]}


@page("/records/<object_name>/<record_id>/stage", methods=("POST",), endpoint="record_stage")
def record_stage(object_name: str, record_id: str):
    from .kanban import _refusal

    service = current_service()
    obj = _object(service, object_name)
    fdef = stage_field(obj)
    value = request.form.get("value", "")
    if fdef is None or value not in fdef.option_values:
        raise BadRequest(f"{value!r} is not a stage of {obj.name}.", code="bad_value",
                         fields={"value": ["Unknown value."]})
    try:
        version = int(request.form.get("version", ""))
    except ValueError:
        raise BadRequest("The page's version is missing.", code="bad_version", fields={"version": ["Required."]})
    label = display.option_label(fdef, value)
    try:
        service.update(obj.name, record_id, {fdef.name: value}, version=version)
    except CrmError as exc:
        if exc.status == 404:
            raise
        text = t("stage.stale") if isinstance(exc, StaleVersion) else _refusal(service, exc)
        notify(t("stage.refused", label=label, error=text), "error")
        return redirect_to("web.record_detail", object_name=obj.name, record_id=record_id)
    notify(t("stage.moved", label=label))
    return redirect_to("web.record_detail", object_name=obj.name, record_id=record_id)
