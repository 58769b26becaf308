"""The list page's "Export CSV" and "Export .xlsx" downloads: the records of the current list (its filter,
search and sort) within the user's export scope, as CSV.

A plain GET authenticated by the session cookie; it changes nothing. The CSV itself comes
from the same generator as the REST API's GET /api/v1/records/{object}/export
(api/exports.py): the export scope, hidden fields and formula neutralisation are the same.
"""

from __future__ import annotations

from flask import request, url_for

from ..api.exports import export_response
from ..errors import Forbidden
from ..records import RecordService
from . import forms
from .core import current_service, page
from .list_views import _sort, build_filter
from .record_views import _object, _visible_fields

# The list page's own parameters that do not describe which records: paging and page size.
_NOT_A_FILTER = ("after", "before", "limit")


def export_url(service: RecordService, object_name: str, fmt: str | None = None) -> str | None:
    """The download link for the list page being shown (None when the export scope is none);
    fmt="xlsx" for the .xlsx download."""
    if not service.access.can(object_name, "export"):
        return None
    args = {k: v for k, v in request.args.items() if k not in _NOT_A_FILTER + ("format",) and v != ""}
    if fmt:
        args["format"] = fmt
    return url_for("web.record_export", object_name=object_name, **args)


@page("/records/<object_name>/export")
def record_export(object_name: str):
    service = current_service()
    obj = _object(service, object_name)
    if not service.access.can(obj.name, "export"):
        raise Forbidden(f"You may not export {obj.name} records.")
    layout = forms.layout_for(service, obj)
    args = request.args.copy()
    fmt = args.pop("format", None)
    flt, _, _ = build_filter(service, obj, layout, args)
    sort = _sort(args, layout, _visible_fields(service, obj), False)
    return export_response(service, obj.name, fmt, filter=flt, sort=sort)
