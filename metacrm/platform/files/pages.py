"""The files card on a record's detail page (attachments and file fields), and its upload,
download and remove endpoints. Every read and write goes through store.py as the logged-in user."""

from __future__ import annotations

from flask import g, request, url_for

from ..errors import CrmError
from ..features import Routes
from ..web import display
from ..web.core import current_service, notify, redirect_to
from ..web.i18n import current_locale, t
from . import store

routes = Routes()

ERROR_KEYS = {
    "file_too_large": "files.error.too_large", "file_executable": "files.error.executable",
    "file_active_content": "files.error.active", "file_type_mismatch": "files.error.mismatch",
    "file_empty": "files.error.empty", "file_missing": "files.error.missing",
    "stale_version": "files.error.stale", "forbidden": "files.error.forbidden",
    "record_locked": "files.error.locked",
}


def error_text(exc: CrmError) -> str:
    key = ERROR_KEYS.get(exc.code)
    if key is None and exc.status == 409:
        key = "files.error.stale"
    if key:
        limit = int(exc.extra.get("limit") or 0)
        return t(key, limit=display.format_number(limit // (1024 * 1024), current_locale(), 0))
    if exc.fields:
        first = next(iter(exc.fields.values()))
        return f"{exc.message} {first[0] if first else ''}".strip()
    return exc.message


def record_panels(obj, record: dict) -> list[dict]:
    service = current_service()
    hidden = service.access.hidden_fields(obj.name)
    fields = [n for n in store.file_fields(obj) if n not in hidden]
    if not store.attachments_enabled(obj) and not fields:
        return []
    locale = current_locale()
    files = store.list_files(service, obj.name, record["id"])
    names = display.Names(service)
    for f in files:
        names.want("user", f["created_by"])
    names.resolve()
    can_edit = service.access.allows_row(obj.name, "edit", record)
    writable = {f.name for f in service.writable_fields(obj, False)[0]}

    def shown(f: dict) -> dict:
        return {**f, "href": url_for("web.file_download", file_id=f["id"]),
                "size_text": store.size_text(f["size"], locale),
                "at": display.datetime_text(f["created_at"]),
                "by": names.name("user", f["created_by"]) or t("history.system"),
                "remove": url_for("web.file_remove", file_id=f["id"])}

    by_field = {f["field"]: f for f in files if f["field"]}
    errors = g.get("files_errors") or {}
    return [{
        "template": "files/panel.html",
        "upload": url_for("web.file_upload", object_name=obj.name, record_id=record["id"]),
        "attachments": [shown(f) for f in files if f["field"] is None] if store.attachments_enabled(obj) else None,
        "fields": [{"name": n, "label": obj.fields[n].display_label(locale),
                    "accept": obj.fields[n].raw.get("accept") or "",
                    "camera": (obj.fields[n].raw.get("accept") or "").startswith("image/"),
                    "file": shown(by_field[n]) if n in by_field else None,
                    "editable": can_edit and n in writable, "error": errors.get(n)} for n in fields],
        "can_edit": can_edit, "error": errors.get(""), "version": record.get("version"),
        "limit": display.format_number(store.limit_bytes(service) // (1024 * 1024), locale, 0),
    }]


@routes.post("/records/<object_name>/<record_id>/files", endpoint="file_upload")
def file_upload(object_name: str, record_id: str):
    service = current_service()
    field = (request.form.get("field") or "").strip() or None
    version = request.form.get("version")
    try:
        part = next((p for p in request.files.getlist("file") if p.filename), None)  # a file or a camera photo
        if part is None:
            raise store.ValidationFailed("Choose a file.", code="file_missing")
        upload = store.Upload(part.filename, part.mimetype, part.read())
        made = store.add_file(service, object_name, record_id, upload, field=field,
                              version=int(version) if version and version.isdigit() else None)
    except CrmError as exc:
        if exc.status == 404:
            raise
        g.files_errors = {field or "": error_text(exc)}
        from ..web.record_views import record_detail

        body, _status = record_detail(object_name, record_id)
        return body, 422
    notify(t("files.added", name=made["name"]))
    return redirect_to("web.record_detail", object_name=object_name, record_id=record_id)


@routes.get("/files/<file_id>", endpoint="file_download")
def file_download(file_id: str):
    row, _obj, _record = store.open_file(current_service(), file_id)
    return store.download_response(row)


@routes.post("/files/<file_id>/remove", endpoint="file_remove")
def file_remove(file_id: str):
    service = current_service()
    row, obj, record = store.open_file(service, file_id)
    version = request.form.get("version")
    try:
        store.remove_file(service, file_id, version=int(version) if version and version.isdigit() else None)
    except CrmError as exc:
        if exc.status == 404:
            raise
        notify(error_text(exc), "error")  # locked, stale, not allowed: said on the record page
        return redirect_to("web.record_detail", object_name=obj.name, record_id=record["id"])
    notify(t("files.removed", name=row.name))
    return redirect_to("web.record_detail", object_name=obj.name, record_id=record["id"])
