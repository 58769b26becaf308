"""The import wizard in the web UI: upload (CSV or .xlsx, the CSV's encoding guessed and
changeable) → map the columns (auto-matched, editable, saved per user and object; lookups by
id, name or a unique key; insert or upsert) → a dry-run preview of the first rows with each
error beside its cell → the import as a background job with a progress bar → the per-row
report as CSV or .xlsx.

Every step calls the REST import's own functions (parse, apply_mapping, prepare,
import_parsed with dry_run, start_job, job_status), so the checks are the API's.
"""

from __future__ import annotations

from flask import Response, request, url_for

from ..api import check_text
from ..errors import BadRequest, CrmError, Forbidden, NotFound
from ..features import Routes
from ..spreadsheets import XLSX_MIMETYPE, xlsx_chunks
from ..web.core import current_principal, current_service, redirect_to, render_page, runtime
from ..web.i18n import current_locale, format_number, format_percent, label, message, t
from . import uploads, wizard
from .jobs import job_status, start_job
from .lookups import match_fields
from .parsing import Parsed, apply_mapping, parse
from .run import import_parsed, prepare

routes = Routes()
page = routes.page

PROBLEMS_SHOWN = 50
DETAILED = ("bad_file", "bad_header", "bad_encoding")
ENCODING_KEYS = {"utf-8": "utf8", "utf-8-sig": "utf8_bom", "utf-16": "utf16", "gb18030": "gb18030",
                 "gbk": "gbk", "big5": "big5", "latin-1": "latin1"}


def import_url(object_name: str) -> str | None:
    """The list page's "Import" link (a template global), for users who may create records."""
    service = current_service()
    if not service.access.can(object_name, "create"):
        return None
    return url_for("web.import_upload", object_name=object_name)


def on_app(app) -> None:
    app.jinja_env.globals["import_url"] = import_url


def _object(object_name: str):
    """The object, once the user may create its records (403), or 404 if they cannot read it."""
    service = current_service()
    obj = service.obj(object_name)
    if not service.access.can(obj.name, "create"):
        if not service.access.can(obj.name, "read"):
            raise NotFound(f"Unknown object {obj.name!r}.", code="unknown_object")
        raise Forbidden(f"You may not create {obj.name} records.")
    return service, obj


def _encodings() -> list[tuple[str, str]]:
    return [(name, t(f"imports.encoding.{key}")) for name, key in ENCODING_KEYS.items()]


def _error_text(exc: CrmError) -> str:
    """A file-level refusal in the reader's words (the code's sentence, else the message)."""
    key = f"imports.error.{exc.code}"
    text = t(key)
    if text == key:
        return message(exc.message)
    if exc.code in DETAILED:  # which byte, line or column: the platform's sentence says it
        return f"{text} ({exc.message})"
    return text


def _parse_upload(row, encoding: str | None = None) -> Parsed:
    parsed = parse(bytes(row.data), row.format, encoding or row.encoding)
    check_text([values for _, values in parsed.rows if isinstance(values, dict)], "The file")
    return parsed


# --- step 1: upload --------------------------------------------------------------------------

@page("/records/<object_name>/import")
def import_upload(object_name: str):
    _, obj = _object(object_name)
    return _upload_page(obj)


def _upload_page(obj, error: str | None = None, status: int = 200):
    return render_page("imports/upload.html", status, obj=obj, obj_label=obj.display_label(current_locale(), plural=True),
                       encodings=_encodings(), error=error, chosen=request.form.get("encoding", ""))


@page("/records/<object_name>/import", methods=("POST",), endpoint="import_upload_post")
def import_upload_post(object_name: str):
    _, obj = _object(object_name)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _upload_page(obj, t("imports.error.no_file"), 400)
    data = upload.read()
    if not data.strip():
        return _upload_page(obj, t("imports.error.empty_file"), 400)
    fmt = wizard.format_of(upload.filename, data)
    if fmt is None:
        return _upload_page(obj, t("imports.error.bad_type"), 400)
    encoding = (request.form.get("encoding") or "").strip() or None
    try:
        parsed = parse(data, fmt, encoding if fmt == "csv" else None)
        check_text([values for _, values in parsed.rows if isinstance(values, dict)], "The file")
    except CrmError as exc:
        return _upload_page(obj, _error_text(exc), 400)
    if not parsed.rows:
        return _upload_page(obj, t("imports.error.no_rows"), 400)
    upload_id = uploads.store_upload(runtime(), current_principal().user_id, obj.name, upload.filename, fmt,
                                     parsed.encoding, data)
    return redirect_to("web.import_map", object_name=obj.name, upload_id=upload_id)


# --- step 2: map the columns -----------------------------------------------------------------

def _saved_for(rows, columns: list[str], chosen: str | None):
    """The saved mapping to start from: the one asked for, else the newest with these columns."""
    if chosen:
        return next((r for r in rows if r.id == chosen), None)
    return next((r for r in rows if list(r.columns) == columns), None)


def _map_context(service, obj, row, parsed: Parsed, settings: dict, errors: dict | None = None) -> dict:
    locale = current_locale()
    fields = wizard.importable_fields(service, obj)
    samples = [data for _, data in parsed.rows[:wizard.SAMPLE_ROWS] if isinstance(data, dict)]
    mapping = settings.get("mapping") or wizard.auto_mapping(service, obj, parsed.columns)
    lookups = settings.get("lookups") or wizard.default_lookups(service, obj, mapping, samples)
    errors = errors or {}
    by_field = {v: c for c, v in mapping.items() if v}
    columns = []
    for index, column in enumerate(parsed.columns):
        field_name = mapping.get(column, "")
        problems = [*errors.get(f"map.{index}", []), *errors.get(f"mapping.{column}", []),
                    *(errors.get(field_name, []) if field_name else [])]
        columns.append({"index": index, "name": column, "field": field_name, "errors": [message(m) for m in problems],
                        "samples": [str(s.get(column, "")) for s in samples]})
    lookup_rows = []
    for f in fields:
        choices = match_fields(service, obj, f.name)
        if len(choices) < 2 or f.name not in by_field:
            continue  # only the lookups a column is mapped to (one mapped later gets the default)
        target = service.obj(f.target[0])
        lookup_rows.append({
            "field": f.name, "label": f.display_label(locale), "mapped": f.name in by_field,
            "by": lookups.get(f.name, "id"),
            "choices": [(c, t("imports.by_id") if c == "id" else target.all_fields[c].display_label(locale))
                        for c in choices],
            "errors": [message(m) for m in errors.get(f"lookup.{f.name}", [])]})
    saved = uploads.saved_mappings(runtime(), current_principal().user_id, obj.name)
    return {
        "obj": obj, "obj_label": obj.display_label(locale, plural=True), "upload": row, "columns": columns,
        "fields": [(f.name, f.display_label(locale)) for f in fields], "lookups": lookup_rows,
        "mode": settings.get("mode") or "insert", "key": settings.get("key") or "",
        "key_errors": [message(m) for m in errors.get("key", [])], "encodings": _encodings(),
        "encoding": parsed.encoding or row.encoding, "total": len(parsed.rows), "saved": saved,
        "total_text": format_number(len(parsed.rows), locale),
        "saved_name": settings.get("saved_name", ""), "fmt": row.format,
    }


@page("/records/<object_name>/import/<upload_id>")
def import_map(object_name: str, upload_id: str):
    service, obj = _object(object_name)
    row = uploads.load_upload(runtime(), current_principal().user_id, obj.name, upload_id)
    encoding = (request.args.get("encoding") or "").strip() or None
    try:
        parsed = _parse_upload(row, encoding if row.format == "csv" else None)
    except CrmError as exc:
        return render_page("imports/map.html", 400, **_bad_file_context(obj, row, _error_text(exc)))
    if encoding and parsed.encoding != row.encoding:
        uploads.update_upload(runtime(), row.id, encoding=parsed.encoding)
    settings = dict(row.settings or {})
    saved = _saved_for(uploads.saved_mappings(runtime(), current_principal().user_id, obj.name), parsed.columns,
                       request.args.get("saved"))
    if saved is not None and (request.args.get("saved") or not settings.get("mapping")):
        settings = {**saved.settings, "mapping": {c: saved.settings.get("mapping", {}).get(c, "")
                                                  for c in parsed.columns}, "saved_name": saved.name}
    return render_page("imports/map.html", **_map_context(service, obj, row, parsed, settings))


def _bad_file_context(obj, row, error: str) -> dict:
    return {"obj": obj, "obj_label": obj.display_label(current_locale(), plural=True), "upload": row, "columns": [],
                "fields": [], "lookups": [], "mode": "insert", "key": "", "key_errors": [], "encodings": _encodings(),
                "encoding": row.encoding, "total": 0, "total_text": "0", "saved": [], "saved_name": "", "fmt": row.format,
                "file_error": error}


# --- step 3: dry-run preview -----------------------------------------------------------------

@page("/records/<object_name>/import/<upload_id>/preview", methods=("POST",))
def import_preview(object_name: str, upload_id: str):
    service, obj = _object(object_name)
    rt = runtime()
    user_id = current_principal().user_id
    row = uploads.load_upload(rt, user_id, obj.name, upload_id)
    try:
        parsed = _parse_upload(row)
    except CrmError as exc:
        return render_page("imports/map.html", 400, **_bad_file_context(obj, row, _error_text(exc)))
    try:
        settings = wizard.settings_from_form(request.form, parsed.columns, service, obj)
    except BadRequest as exc:
        return render_page("imports/map.html", 400, **_map_context(service, obj, row, parsed, {}, exc.fields))
    samples = [data for _, data in parsed.rows[:wizard.SAMPLE_ROWS] if isinstance(data, dict)]
    for name, by in wizard.default_lookups(service, obj, settings["mapping"], samples).items():
        settings["lookups"].setdefault(name, by)  # a lookup mapped just now: matched as the page would offer
    save_as = (request.form.get("save_as") or "").strip()[:100]
    settings["saved_name"] = save_as
    uploads.update_upload(rt, row.id, settings=settings)
    try:
        mapped = apply_mapping(parsed, settings["mapping"])
        head = Parsed(mapped.columns, mapped.rows[:wizard.PREVIEW_ROWS], mapped.format, mapped.encoding)
        if not mapped.columns:
            raise BadRequest("No column is mapped to a field.", code="nothing_mapped")
        prepare(service, obj.name, mapped, settings["key"], settings["lookups"])
        report = import_parsed(rt, current_principal(), obj.name, head, key=settings["key"], dry_run=True,
                               lookups=settings["lookups"])
    except CrmError as exc:
        errors = dict(exc.fields or {})
        context = _map_context(service, obj, row, parsed, settings, errors)
        context["file_error"] = _error_text(exc)
        return render_page("imports/map.html", 400, **context)
    if save_as:
        uploads.save_mapping(rt, user_id, obj.name, save_as, parsed.columns,
                             {k: v for k, v in settings.items() if k != "saved_name"})
    return render_page("imports/preview.html", **_preview_context(obj, row, mapped, head, report, settings))


def _status_text(status: str) -> str:
    return t(f"imports.status.{status}")


def _shown(fdef, raw) -> str:
    """A file value as the preview shows it: a picklist value by its label, the rest as typed."""
    text = str(raw)
    if fdef.type in ("picklist", "multipicklist") and fdef.options:
        parts = [p.strip() for p in text.split(";")] if fdef.type == "multipicklist" else [text.strip()]
        shown = []
        for part in parts:
            option = fdef.option(part)
            shown.append(label(option.get("label"), part) if option else part)
        return "; ".join(shown)
    return text


def _preview_context(obj, row, mapped: Parsed, head: Parsed, report: dict, settings: dict) -> dict:
    locale = current_locale()
    fields = [(name, obj.all_fields[name].display_label(locale)) for name in mapped.columns]
    entries = {e["row"]: e for e in report["rows"]}
    lines = []
    for number, data in head.rows:
        entry = entries.get(number, {})
        field_errors = {k: [message(str(m)) for m in (v if isinstance(v, list) else [v])]
                        for k, v in (entry.get("fields") or {}).items()}
        values = data if isinstance(data, dict) else {}
        cells = [{"field": name, "label": label, "value": _shown(obj.all_fields[name], values.get(name, "")),
                  "errors": field_errors.get(name, [])} for name, label in fields]
        other = [f"{k}: {'; '.join(v)}" for k, v in field_errors.items() if k not in mapped.columns]
        row_message = entry.get("message") if entry.get("status") in ("error", "duplicate") and not field_errors else ""
        lines.append({"row": number, "status": entry.get("status", "error"), "status_text": _status_text(
            entry.get("status", "error")), "cells": cells, "message": message(row_message) if row_message else "",
            "other": other})
    summary = report["summary"]
    return {"obj": obj, "obj_label": obj.display_label(locale, plural=True), "upload": row, "fields": fields, "lines": lines,
                "counts": {k: format_number(summary[k], locale) for k in ("created", "updated", "duplicate", "error")},
                "total_text": format_number(len(mapped.rows), locale), "shown_text": format_number(len(head.rows), locale),
                "settings": settings}


# --- step 4: run as a job, progress, report --------------------------------------------------

@page("/records/<object_name>/import/<upload_id>/run", methods=("POST",))
def import_run(object_name: str, upload_id: str):
    service, obj = _object(object_name)
    rt = runtime()
    principal = current_principal()
    row = uploads.load_upload(rt, principal.user_id, obj.name, upload_id)
    settings = dict(row.settings or {})
    if not settings.get("mapping"):
        return redirect_to("web.import_map", object_name=obj.name, upload_id=row.id)
    parsed = apply_mapping(_parse_upload(row), settings["mapping"])
    prepare(service, obj.name, parsed, settings.get("key"), settings.get("lookups"))
    job_id = start_job(rt, principal, obj.name, parsed, key=settings.get("key"), lookups=settings.get("lookups"),
                       meta={"upload": row.id, "filename": row.filename})
    return redirect_to("web.import_job", job_id=job_id)


def _job(job_id: str) -> dict:
    return job_status(runtime(), current_principal(), job_id)


@page("/imports/jobs/<job_id>")
def import_job(job_id: str):
    job = _job(job_id)
    service = current_service()
    obj = service.obj(job["object"])
    problems = []
    if job["status"] == "done":
        for line in wizard.report_lines(job.get("result") or {}):
            if line[1] in ("error", "duplicate") and len(problems) < PROBLEMS_SHOWN:
                field_label = obj.all_fields[line[3]].display_label(current_locale()) \
                    if line[3] in obj.all_fields else line[3]
                problems.append({"row": line[0], "status": _status_text(line[1]), "field": field_label,
                                 "message": message(str(line[4]))})
    return render_page("imports/job.html", job=job, obj=obj,
                       obj_label=obj.display_label(current_locale(), plural=True), problems=problems,
                       finished=job["status"] in ("done", "failed"), **job_texts(job))


def job_texts(job: dict) -> dict:
    """The progress words of a job page in the reader's language (the JS poll uses the same
    templates, passed as data attributes)."""
    locale = current_locale()
    progress = job["progress"]
    summary = (job.get("result") or {}).get("summary") or {}
    return {
        "status_text": t(f"imports.job_status.{job['status']}"),
        "counts_text": t("imports.progress", done=format_number(progress["done"], locale),
                         total=format_number(progress["total"], locale)),
        "errors_text": t("imports.errors_so_far", count=format_number(progress.get("errors", 0), locale)),
        "percent_text": format_percent(progress["percent"], locale),
        "counts": {k: format_number(summary.get(k, 0), locale) for k in ("created", "updated", "duplicate", "error")},
        "filename": job.get("filename") or "",
        "failure": message(job.get("error") or ""),
    }


@page("/imports/jobs/<job_id>/report.<fmt>")
def import_report(job_id: str, fmt: str):
    job = _job(job_id)
    if fmt not in ("csv", "xlsx"):
        raise NotFound("No such report format.", code="not_found")
    if job["status"] != "done":
        raise BadRequest("The import has not finished yet.", code="job_running")
    result = job.get("result") or {}
    name = f"import-{job['object']}-{job_id[:8]}.{fmt}"
    if fmt == "csv":
        response = Response(wizard.report_csv(result), mimetype="text/csv")
        response.headers["Content-Type"] = "text/csv; charset=utf-8"
    else:
        from ..api.exports import neutralise

        lines = ([neutralise(v) if isinstance(v, str) else v for v in line] for line in wizard.report_lines(result))
        response = Response(xlsx_chunks(wizard.REPORT_HEADER, lines, title="report"), mimetype=XLSX_MIMETYPE)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response

