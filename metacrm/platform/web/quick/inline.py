"""Inline edit: one field of one record, from a list cell or a detail page field.

GET  /records/<object>/<id>/inline/<field>  -> the field's input (an HTML fragment, the same
     widget as the edit form), or 403 when the user may not edit that field of that record.
POST the same URL (CSRF, `_version` = the version the page showed) -> saves through
     RecordService.update_record. JSON {"ok", "version", "html"} or {"ok": false, "error",
     "field_error", "html", "version"} with the service's status: 409 on a stale version (the
     current value comes back so the cell reverts), 423 when an approval locks the record, 400
     on a validation error. Without script the page keeps its plain edit form."""

from __future__ import annotations

import copy

from flask import jsonify, render_template, request, url_for

from ....metadata.model import ObjectDef
from ...errors import CrmError, Forbidden, StaleVersion, ValidationFailed
from ...records import RecordService
from .. import display, forms
from ..core import current_service, page
from ..form_views import error_text
from ..i18n import current_locale, message, t
from ..record_views import _object

NOT_INLINE = {"formula", "rollup", "autonumber", "password", "multipicklist", "textarea"}


def editable_fields(service: RecordService, obj: ObjectDef, layout: forms.Layout) -> set[str]:
    """The fields this user may change in place (field access, the layout's read-only fields)."""
    allowed, _ = service.writable_fields(obj, False)
    return {f.name for f in allowed if f.name not in layout.read_only and f.name not in forms.NOT_ON_FORMS
            and f.type not in NOT_INLINE and f.name != "record_type"}


def record_locked(service: RecordService, obj: ObjectDef, record_id: str) -> bool:
    """A feature's lock on the record (approval: a pending request), for this user: no pencils then.
    Registered as runtime.extensions["record_locked"] (service, object name, id) -> bool."""
    check = service.runtime.extensions.get("record_locked")
    if check is None:
        return False
    try:
        return bool(check(service, obj.name, record_id))
    except CrmError:
        return False


def inline_url(obj: ObjectDef, record_id: str, field: str) -> str:
    return url_for("web.record_inline", object_name=obj.name, record_id=record_id, field=field)


def _one_field_form(service: RecordService, obj: ObjectDef, record: dict, field: str) -> forms.Form:
    layout = copy.copy(forms.layout_for(service, obj, record.get("record_type")))
    layout.sections = [forms.Section("", 1, [field])]
    return forms.build_form(service, obj, layout, creating=False, record=record)


def _shown_html(service: RecordService, obj: ObjectDef, record: dict, field: str) -> str:
    names = display.Names(service)
    names.want_record(obj, record, [field])
    names.resolve()
    shown = display.show(obj.all_fields[field], record.get(field), names, record)
    return render_template("quick/inline_value.html", shown=shown)


def _field_label(obj: ObjectDef, name: str) -> str:
    fdef = obj.all_fields.get(name)
    return fdef.display_label(current_locale()) if fdef else name


@page("/records/<object_name>/<record_id>/inline/<field>", methods=("GET", "POST"), endpoint="record_inline")
def record_inline(object_name: str, record_id: str, field: str):
    service = current_service()
    obj = _object(service, object_name)
    record = service.get(obj.name, record_id)
    layout = forms.layout_for(service, obj, record.get("record_type"))
    if field not in obj.all_fields or field in layout.hidden or field not in editable_fields(service, obj, layout) \
            or not service.access.allows_row(obj.name, "edit", record):
        return jsonify({"ok": False, "error": t("inline.not_editable", field=_field_label(obj, field)),
                        "code": "forbidden"}), 403
    form = _one_field_form(service, obj, record, field)
    if request.method == "GET":
        if record_locked(service, obj, record_id):
            return jsonify({"ok": False, "error": t("inline.locked"), "code": "record_locked"}), 423
        return render_template("quick/inline_form.html", form=form, f=form.fields[field], obj=obj, record=record,
                               action=inline_url(obj, record_id, field))
    try:
        version = int(request.form.get("_version", ""))
    except ValueError:
        return jsonify({"ok": False, "error": t("form.tamper_version"), "code": "bad_version"}), 400
    try:
        data = forms.parse(form, request.form)
    except forms.Tampered as exc:
        return jsonify({"ok": False, "error": exc.detail, "code": "tampered"}), 400
    if field not in data:
        data[field] = None
    try:
        missing = forms.required_errors(form, data)
        if missing:
            raise ValidationFailed("layout", fields=missing)
        service.update_record(obj.name, record_id, data, version=version)
    except CrmError as exc:
        if isinstance(exc, Forbidden) or exc.status == 404:
            return jsonify({"ok": False, "error": error_text(service, exc), "code": exc.code}), exc.status
        current = service.get(obj.name, record_id)
        body = {"ok": False, "code": exc.code, "version": current.get("version"),
                "html": _shown_html(service, obj, current, field)}
        if isinstance(exc, StaleVersion):
            body["error"] = t("inline.stale")
        elif isinstance(exc, ValidationFailed) and exc.fields:
            texts = []
            for name, problems in exc.fields.items():
                items = problems if isinstance(problems, list) else [problems]
                prefix = "" if name == field else f"{_field_label(obj, name)}: "
                texts.append(prefix + " ".join(message(str(p)) for p in items))
            body["error"] = " ".join(texts)
            body["field_error"] = True
        else:
            body["error"] = error_text(service, exc)
        return jsonify(body), exc.status
    current = service.get(obj.name, record_id)
    return jsonify({"ok": True, "version": current.get("version"), "html": _shown_html(service, obj, current, field),
                    "message": t("inline.saved", field=_field_label(obj, field))})
