"""Files kept in the database (db.file_blob): checks on the way in, permissions on the way out.

A file belongs to one record: to its attachments list (field NULL, objects with
`"attachments": true`) or to one of its `file` fields. Reading the record is what lets a caller
download it, editing the record what lets them add or remove it; a file of a field needs that
field readable (download) or writable (upload). A deleted record's files are out of reach
until the record is restored. Adding and removing an attachment is in the record's history.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ...metadata.model import ObjectDef
from .. import db
from ..clock import utcnow
from ..errors import BadRequest, CrmError, Forbidden, NotFound, ValidationFailed
from ..records import RecordService
from ..records.context import new_id


class FileTooLarge(CrmError):
    status = 413
    code = "file_too_large"


class FileRefused(CrmError):
    status = 415
    code = "file_type_refused"


# What the first bytes say a file is. Office documents (docx, xlsx, pptx) are zip files.
MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"%PDF-", 0, "application/pdf"),
    (b"PK\x03\x04", 0, "application/zip"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 0, "application/x-ole-storage"),  # old .doc / .xls
)
EXECUTABLE_MAGIC = (b"MZ", b"\x7fELF", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
                    b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe", b"#!")
EXECUTABLE_EXTENSIONS = frozenset({
    "exe", "dll", "com", "bat", "cmd", "msi", "scr", "pif", "cpl", "vbs", "vbe", "js", "jse", "wsf", "wsh",
    "ps1", "psm1", "sh", "bash", "app", "jar", "apk", "elf", "bin", "run", "hta", "reg", "lnk"})
# Declared types that a browser would run or render as a page: refused as such, stored as bytes.
ACTIVE_TYPES = frozenset({"text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml",
                          "text/javascript", "application/javascript", "application/x-msdownload",
                          "application/x-sh", "application/x-executable"})
ZIP_FAMILY = {"application/zip", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
              "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
              "application/vnd.openxmlformats-officedocument.presentationml.presentation",
              "application/x-zip-compressed", "application/vnd.oasis.opendocument.text",
              "application/vnd.oasis.opendocument.spreadsheet"}
OLE_FAMILY = {"application/x-ole-storage", "application/msword", "application/vnd.ms-excel",
              "application/vnd.ms-powerpoint"}
HTML_START = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body|<script|<svg|<\?xml|<iframe)", re.IGNORECASE)
TYPE_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")


def sniff(data: bytes) -> str | None:
    """The content type the bytes show, or None when they show nothing known (plain text, CSV...)."""
    head = data[:64]
    for magic, offset, ctype in MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return ctype
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if HTML_START.match(data[:512]):
        return "text/html"
    return None


def family(ctype: str) -> str:
    if ctype in ZIP_FAMILY:
        return "application/zip"
    if ctype in OLE_FAMILY:
        return "application/x-ole-storage"
    if ctype == "image/jpg":
        return "image/jpeg"
    return ctype


def clean_name(name: str | None) -> str:
    """A file name without folders, control characters or surrounding dots, at most 200 characters."""
    text = unicodedata.normalize("NFC", (name or "").replace("\\", "/").rsplit("/", 1)[-1])
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C").strip().strip(".").strip()
    return text[:200] or "file"


def extension(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def checked_type(name: str, declared: str | None, data: bytes) -> str:
    """The content type to store, after the checks: no executables, no pages, and the bytes must
    be what the upload says they are (a .exe renamed photo.png is refused)."""
    declared = (declared or "").split(";")[0].strip().lower()
    if declared and not TYPE_RE.match(declared):
        declared = ""
    if data.startswith(EXECUTABLE_MAGIC) or extension(name) in EXECUTABLE_EXTENSIONS:
        raise FileRefused("Programs and scripts cannot be attached.", code="file_executable",
                          fields={"file": ["Programs and scripts cannot be attached."]})
    found = sniff(data)
    if found == "text/html" or declared in ACTIVE_TYPES or extension(name) in ("html", "htm", "xhtml", "svg"):
        raise FileRefused("Web pages and SVG images cannot be attached (a browser would run them).",
                          code="file_active_content",
                          fields={"file": ["Web pages and SVG images cannot be attached."]})
    generic = declared in ("", "application/octet-stream", "binary/octet-stream")
    if found is not None and not generic and family(declared) != found:
        raise FileRefused(f"The file's content ({found}) does not match its declared type ({declared}).",
                          code="file_type_mismatch",
                          fields={"file": ["The content does not match the file's type."]})
    if found is None and not generic and family(declared) in {m[2] for m in MAGIC} | {"image/webp"}:
        raise FileRefused(f"The file is not a valid {declared} file.", code="file_type_mismatch",
                          fields={"file": ["The content does not match the file's type."]})
    if found is not None and generic:
        return found
    return declared or "application/octet-stream"


@dataclass
class Upload:
    name: str
    content_type: str | None
    data: bytes


def file_json(row: Any, user_names: dict | None = None) -> dict:
    return {"id": row.id, "object": row.object, "record_id": row.record_id, "field": row.field,
            "name": row.name, "content_type": row.content_type, "size": row.size, "sha256": row.sha256,
            "created_at": row.created_at.isoformat() + "Z" if row.created_at else None,
            "created_by": row.created_by}


META_COLUMNS = [c for c in db.file_blob.c if c.name != "data"]


def attachments_enabled(obj: ObjectDef) -> bool:
    return bool(obj.doc.get("attachments"))


def file_fields(obj: ObjectDef) -> list[str]:
    return [n for n, f in obj.fields.items() if f.type == "file"]


def _record(service: RecordService, object_name: str, record_id: str) -> tuple[ObjectDef, dict]:
    obj = service.obj(object_name)
    return obj, service.get(obj.name, record_id)  # 404 unless the caller may read it (and it is live)


def _may_edit(service: RecordService, obj: ObjectDef, record: dict) -> None:
    if not service.access.allows_row(obj.name, "edit", record):
        raise Forbidden(f"You may not change this {obj.name} record's files.", code="forbidden")


def _check_change(service: RecordService, tx: Any, obj: ObjectDef, record_id: str) -> None:
    """Attaching or removing a file changes the record without saving it: the checks features
    register for such changes (runtime.extensions["record_change_checks"], e.g. approval's
    record lock) see it as an update that changes nothing else."""
    checks = (service.runtime.extensions.get("record_change_checks") or {}).values()
    if not checks:
        return
    from ..records.context import SaveContext

    old = service.fetch(tx.conn, obj, record_id)
    ctx = SaveContext(service, tx, service.registry, obj, service.table(obj.name), "update", dict(old), old,
                      service.principal, service.access, service.source, options={"files": True})
    for check in checks:
        check(ctx)
    service._write_notes(ctx)


def limit_bytes(service: RecordService) -> int:
    return int(getattr(service.runtime.config, "max_file_bytes", 10 * 1024 * 1024))


def list_files(service: RecordService, object_name: str, record_id: str) -> list[dict]:
    """The record's attachments and the files of the fields the caller may read."""
    obj, record = _record(service, object_name, record_id)
    hidden = service.access.hidden_fields(obj.name)
    current = {record.get(n) for n in file_fields(obj) if n not in hidden and record.get(n)}
    table = db.file_blob
    with service._reading() as conn:
        rows = conn.execute(sa.select(*META_COLUMNS).where(
            table.c.object == obj.name, table.c.record_id == record["id"]).order_by(table.c.created_at, table.c.id)).all()
    out = []
    for row in rows:
        if row.field is None and attachments_enabled(obj) or row.field is not None and row.id in current:
            out.append(file_json(row))
    return out


def add_file(service: RecordService, object_name: str, record_id: str, upload: Upload, *,
             field: str | None = None, version: int | None = None) -> dict:
    """Store one upload on the record: an attachment (field None) or the value of a file field
    (an update through the record service, with the version the caller read)."""
    obj = service.obj(object_name)
    if field is None and not attachments_enabled(obj):
        raise NotFound(f"{obj.name} records have no attachments.", code="attachments_off")
    if field is not None:
        fdef = obj.fields.get(field)
        if fdef is None or fdef.type != "file" or field in service.access.hidden_fields(obj.name):
            raise ValidationFailed(f"{obj.name} has no file field {field!r}.", code="unknown_field",
                                   fields={"field": ["Not a file field of this object."]})
    _obj, record = _record(service, obj.name, record_id)
    _may_edit(service, obj, record)
    if not upload.data:
        raise ValidationFailed("The file is empty.", code="file_empty", fields={"file": ["The file is empty."]})
    limit = limit_bytes(service)
    if len(upload.data) > limit:
        raise FileTooLarge(f"The file is larger than the limit of {limit // (1024 * 1024)} MB.",
                           fields={"file": ["Too large."]}, limit=limit)
    name = clean_name(upload.name)
    ctype = checked_type(name, upload.content_type, upload.data)
    now = utcnow()
    row = {"id": new_id(), "object": obj.name, "record_id": record["id"], "field": field, "name": name,
           "content_type": ctype, "size": len(upload.data), "sha256": hashlib.sha256(upload.data).hexdigest(),
           "data": upload.data, "created_at": now, "created_by": service.principal.user_id}
    with service.transaction() as tx:
        if field is None:
            _check_change(service, tx, obj, record["id"])
        tx.conn.execute(db.file_blob.insert(), row)
        if field is None:
            service.write_history(tx.conn, obj.name, record["id"], "file_added", {}, name)
        else:
            if version is None:
                raise BadRequest("Send the version you read so no change is lost.", code="version_required",
                                 fields={"version": ["Required."]})
            service.update_record(obj.name, record["id"], {field: row["id"]}, version=version)
    return file_json(_Row(row))


class _Row:
    def __init__(self, values: dict):
        self.__dict__.update(values)


def _file_row(conn: sa.Connection, file_id: str, with_data: bool = False):
    table = db.file_blob
    columns = list(table.c) if with_data else META_COLUMNS
    return conn.execute(sa.select(*columns).where(table.c.id == str(file_id)[:32])).first()


def open_file(service: RecordService, file_id: str) -> tuple[Any, ObjectDef, dict]:
    """(the file's row with its bytes, its object, its record) if the caller may download it;
    404 otherwise, as for a record they may not read."""
    with service._reading() as conn:
        row = _file_row(conn, file_id, with_data=True)
    missing = NotFound("No file with that id.", code="file_not_found")
    if row is None:
        raise missing
    try:
        obj, record = _record(service, row.object, row.record_id)
    except NotFound:
        raise missing from None
    if row.field is None and not attachments_enabled(obj):
        raise missing
    if row.field is not None and (row.field in service.access.hidden_fields(obj.name)
                                  or record.get(row.field) != row.id):
        raise missing
    return row, obj, record


def remove_file(service: RecordService, file_id: str, version: int | None = None) -> None:
    """Remove an attachment for good (its name stays in the history), or clear a file field
    (an update with the version the caller read)."""
    row, obj, record = open_file(service, file_id)
    _may_edit(service, obj, record)
    with service.transaction() as tx:
        if row.field is None:
            _check_change(service, tx, obj, record["id"])
            tx.conn.execute(db.file_blob.delete().where(db.file_blob.c.id == row.id))
            service.write_history(tx.conn, obj.name, record["id"], "file_removed", {}, row.name)
        else:
            if version is None:
                raise BadRequest("Send the version you read so no change is lost.", code="version_required",
                                 fields={"version": ["Required."]})
            service.update_record(obj.name, record["id"], {row.field: None}, version=version)


# --- hooks: a file field's value is a file of this record and field -------------------------


def check_file_fields(ctx: Any) -> None:
    """before_save: a file field holds the id of a file uploaded to this record and field."""
    if ctx.op not in ("create", "update"):
        return
    names = [n for n in file_fields(ctx.obj) if ctx.changed(n) and ctx.record.get(n) is not None]
    if not names:
        return
    table = db.file_blob
    errors = {}
    for name in names:
        found = ctx.conn.execute(sa.select(table.c.id).where(
            table.c.id == str(ctx.record[name]), table.c.object == ctx.obj.name,
            table.c.record_id == ctx.record["id"], table.c.field == name)).first()
        if found is None:
            errors[name] = ["Upload the file to this record (POST /records/{object}/{id}/files)."]
    if errors:
        raise ValidationFailed("A file field takes a file uploaded to this record.", fields=errors)


def drop_replaced(ctx: Any) -> None:
    """after_save: the file a file field no longer holds is removed (the history names the change)."""
    if ctx.op != "update" or ctx.old is None:
        return
    gone = [ctx.old.get(n) for n in file_fields(ctx.obj) if ctx.changed(n) and ctx.old.get(n)]
    if gone:
        ctx.conn.execute(db.file_blob.delete().where(db.file_blob.c.id.in_(gone),
                                                     db.file_blob.c.object == ctx.obj.name))


def content_disposition(name: str) -> str:
    from urllib.parse import quote

    ascii_name = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;' else "_" for ch in name) or "file"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def download_response(row: Any):
    from flask import Response

    ctype = row.content_type if row.content_type not in ACTIVE_TYPES else "application/octet-stream"
    response = Response(bytes(row.data), mimetype=ctype)
    response.headers["Content-Disposition"] = content_disposition(row.name)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Content-Length"] = str(row.size)
    return response


def size_text(size: int, locale: str) -> str:
    from ..i18n import format_number

    if size < 1024:
        return f"{format_number(size, locale, 0)} B"
    if size < 1024 * 1024:
        return f"{format_number(round(size / 1024, 1), locale, 1)} KB"
    return f"{format_number(round(size / (1024 * 1024), 1), locale, 1)} MB"
