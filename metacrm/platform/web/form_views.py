"""Per-object create and edit forms generated from metadata (layouts by role and record
type): every problem shown at once, the version checked on edit. Every write goes through the
record service as the logged-in user."""

from __future__ import annotations

from flask import request, url_for

from ...metadata.model import ObjectDef
from ..errors import CrmError, Forbidden, StaleVersion, ValidationFailed
from ..records import RecordService
from . import display, forms
from .core import current_service, notify, page, redirect_to, render_page, runtime
from .i18n import current_locale, t
from .record_views import _object


def _record_type(service: RecordService, obj: ObjectDef) -> tuple[str | None, bool]:
    """(the record type of a new record, whether the user may choose it)."""
    default = obj.record_types[0] if obj.record_types else None
    choose = len(obj.record_types) > 1 and "record_type" in {f.name for f in service.writable_fields(obj, True)[0]}
    wanted = request.form.get("_record_type") or request.args.get("record_type")
    return (wanted if choose and wanted in obj.record_types else default), choose


def _refused(detail: str, back: str):
    return render_page("error.html", 400, title=t("error.bad_request"), message=t("form.tampered", detail=detail),
                       back=back)


def _more_errors(service: RecordService, obj: ObjectDef, data: dict, creating: bool,
                 old: dict | None = None) -> dict:
    """The record service's own validation, for showing every problem at once."""
    try:
        with runtime().reading() as conn:
            service.coerce(obj, data, creating=creating, conn=conn, old=old)
    except ValidationFailed as exc:
        return exc.fields
    except CrmError:
        return {}
    return {}


def _merge(errors: dict, more: dict) -> dict:
    merged = {k: list(v) for k, v in errors.items()}
    for name, messages in more.items():
        merged.setdefault(name, [])
        merged[name].extend(m for m in (messages if isinstance(messages, list) else [messages])
                            if m not in merged[name])
    return merged


@page("/records/<object_name>/new", methods=("GET", "POST"))
def record_new(object_name: str):
    service = current_service()
    obj = _object(service, object_name)
    if not service.access.can(obj.name, "create"):
        raise Forbidden(f"You may not create {obj.name} records.")
    record_type, choose_type = _record_type(service, obj)
    layout = forms.layout_for(service, obj, record_type)
    prefill = {k: v for k, v in request.args.items() if k in obj.fields} if request.method == "GET" else {}
    form = forms.build_form(service, obj, layout, creating=True, prefill=prefill)
    form.record_type = record_type
    status = 200
    if request.method == "POST":
        try:
            data = forms.parse(form, request.form)
        except forms.Tampered as exc:
            return _refused(exc.detail, url_for("web.record_new", object_name=obj.name))
        if choose_type and record_type:
            data["record_type"] = record_type
        errors = forms.required_errors(form, data)
        try:
            if errors:
                raise ValidationFailed("layout", fields=_merge(errors, _more_errors(service, obj, data, True)))
            ctx = service.create_record(obj.name, data)
        except ValidationFailed as exc:
            form = forms.build_form(service, obj, layout, creating=True, posted=request.form)
            form.record_type = record_type
            forms.attach_errors(form, exc.fields or {})
            if not exc.fields:
                form.errors.append(exc.message)
            status = 400
        except CrmError as exc:
            if exc.status in (403, 404) and exc.code != "record_not_found":
                raise
            form = forms.build_form(service, obj, layout, creating=True, posted=request.form)
            form.record_type = record_type
            form.errors.append(error_text(service, exc))
            forms.attach_errors(form, exc.fields or {})
            form.offers = error_offers(service, exc, obj)
            form.links = duplicate_links(service, exc)
            status = exc.status
        else:
            for warning in ctx.warnings:
                notify(warning_text(service, warning), "warning")
            notify(t("flash.created", object=obj.display_label(current_locale())))
            if not service.access.allows_row(obj.name, "read", ctx.record):
                # e.g. a pool took it on entry: the list, not a "not found" page
                return redirect_to("web.record_list", object_name=obj.name)
            return redirect_to("web.record_detail", object_name=obj.name, record_id=ctx.record["id"])
    return render_page("form.html", status, form=form, obj=obj, title=t(
        "form.new_title", object=obj.display_label(current_locale())),
        action=url_for("web.record_new", object_name=obj.name),
        cancel=url_for("web.record_list", object_name=obj.name),
        type_links=[(rt, obj.record_type_label(rt, current_locale()), url_for("web.record_new", object_name=obj.name, record_type=rt))
                    for rt in obj.record_types] if choose_type else [])


def error_offers(service: RecordService, exc: CrmError, obj) -> list[dict]:
    """What the user may do about a refused create, offered beside the error: a feature may
    register runtime.extensions["web_error_offers"] (code -> fn(service, exc, obj) -> [{"id",
    "label", "url"}]); each offer re-posts the form's values to its url (e.g. approval's
    "Request transfer" after a registration conflict)."""
    offer_for = (runtime().extensions.get("web_error_offers") or {}).get(exc.code)
    if offer_for is None:
        return []
    try:
        return list(offer_for(service, exc, obj) or [])
    except Exception:  # noqa: BLE001 - a broken offer must not hide the error itself
        return []


def duplicate_links(service: RecordService, exc: CrmError) -> list[dict]:
    """A blocked duplicate's matches the user may read, as links by name (hidden ones stay unnamed)."""
    if exc.code != "duplicate":
        return []
    names = display.Names(service)
    shown = [m for m in exc.extra.get("duplicates") or [] if not m.get("hidden") and m.get("id")]
    for match in shown:
        names.want(match["object"], match["id"])
    names.resolve()
    links = []
    for match in shown[:5]:
        title = names.name(match["object"], match["id"])
        if title is None:
            continue
        links.append({"id": match["id"], "label": t("form.open_duplicate", name=title),
                      "href": url_for("web.record_detail", object_name=match["object"], record_id=match["id"])})
    return links


def _duplicate_text(service: RecordService, exc: CrmError, kind: str = "blocked") -> str | None:
    """'This lead matches 1 existing record (rule: Same email).' in the reader's language, with the
    rules by their labels; None when a feature's text (e.g. a holder's name for 报备) should speak.
    A warning names no record, so it is said the same way when some matches are hidden."""
    matches = exc.extra.get("duplicates") or []
    if not matches or (kind != "warned" and any(m.get("hidden") for m in matches)):
        return None
    locale = current_locale()
    labels = []
    for name in sorted({m.get("rule") for m in matches if m.get("rule")}):
        doc = service.registry.get("dedup_rule", name) or {}
        labels.append(display.label_text(doc.get("label"), locale, name.replace("_", " ")))
    obj = service.registry.object(matches[0]["object"]) if service.registry.has_object(matches[0]["object"]) else None
    return t(f"form.duplicate_{kind}", count=len(matches),
             object=obj.display_label(locale) if obj else matches[0]["object"],
             rules=("、" if locale == "zh-CN" else ", ").join(labels))


def warning_text(service: RecordService, warning) -> str:
    """A save's warning in the reader's language (a possible duplicate names its rules by label)."""
    if not isinstance(warning, dict):
        return str(warning)
    if warning.get("code") == "possible_duplicate":
        text = _duplicate_text(service, CrmError("", duplicates=warning.get("duplicates") or []), "warned")
        if text is not None:
            return text
    return str(warning.get("message"))


def error_text(service: RecordService, exc: CrmError) -> str:
    """An error in the user's language: a feature may register a text for its error codes in
    runtime.extensions["web_error_texts"] (code -> fn(service, exc, locale)), e.g. approval's
    approval_required naming the process by its label; otherwise the error's own message."""
    if exc.code == "duplicate":
        text = _duplicate_text(service, exc)
        if text is not None:
            return text
    text_for = (runtime().extensions.get("web_error_texts") or {}).get(exc.code)
    if text_for is not None:
        try:
            return text_for(service, exc, current_locale())
        except Exception:  # noqa: BLE001 - a broken text must not hide the error itself
            return exc.message
    return exc.message


@page("/records/<object_name>/<record_id>/edit", methods=("GET", "POST"))
def record_edit(object_name: str, record_id: str):
    service = current_service()
    obj = _object(service, object_name)
    record = service.get(obj.name, record_id)
    if not service.access.allows_row(obj.name, "edit", record):
        raise Forbidden(f"You may not edit this {obj.name} record.")
    layout = forms.layout_for(service, obj, record.get("record_type"))
    form = forms.build_form(service, obj, layout, creating=False, record=record)
    status = 200
    back = url_for("web.record_edit", object_name=obj.name, record_id=record_id)
    if request.method == "POST":
        if request.form.get("_id") != record_id:
            return _refused(t("form.tamper_record"), back)
        try:
            version = int(request.form.get("_version", ""))
        except ValueError:
            return _refused(t("form.tamper_version"), back)
        try:
            data = forms.parse(form, request.form)
        except forms.Tampered as exc:
            return _refused(exc.detail, back)
        errors = forms.required_errors(form, data)
        try:
            if errors:
                raise ValidationFailed("layout", fields=_merge(errors, _more_errors(service, obj, data, False, record)))
            service.update_record(obj.name, record_id, data, version=version)
        except StaleVersion:
            current = service.get(obj.name, record_id)
            form = forms.build_form(service, obj, layout, creating=False, record=current, posted=request.form)
            forms.show_current(form, current, display.Names(service))
            form.conflict = True
            status = 409
        except ValidationFailed as exc:
            form = forms.build_form(service, obj, layout, creating=False, record=record, posted=request.form)
            form.version = version
            forms.attach_errors(form, exc.fields or {})
            if not exc.fields:
                form.errors.append(exc.message)
            status = 400
        except CrmError as exc:
            if exc.status in (403, 404):
                raise
            form = forms.build_form(service, obj, layout, creating=False, record=record, posted=request.form)
            form.version = version
            form.errors.append(error_text(service, exc))
            form.links = duplicate_links(service, exc)
            status = exc.status
        else:
            notify(t("flash.saved"))
            return redirect_to("web.record_detail", object_name=obj.name, record_id=record_id)
    return render_page("form.html", status, form=form, obj=obj,
                       title=t("form.edit_title", object=obj.display_label(current_locale())),
                       subtitle=display.record_title(obj, record), action=back,
                       cancel=url_for("web.record_detail", object_name=obj.name, record_id=record_id), type_links=[])
