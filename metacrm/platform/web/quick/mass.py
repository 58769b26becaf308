"""Selection and mass actions on list pages.

The list page posts (GET) its selection to `record_mass`: the ticked rows (`_ids`), or every
record matching the list as shown (`_all=1` with the list's query string in `_query`: its
saved view, filters, search and record type). Actions: update a field, assign an owner, add
to a campaign (a lookup to `campaign`), delete, export. The change is chosen on the mass page,
then a summary (N records, the change) asks for confirmation; the run goes through
RecordService one record at a time as the logged-in user, so field access, row scope,
approval locks and validation apply to each record, and each refused record is reported with
why (permission, lock, validation). Over `Config.mass_job_threshold` records (1,000) the run is
a background job (a thread, state in mc_mass_job) with a progress bar; either way the
per-record report is the job page. Control parameters start with `_` (field names never do),
so the new value travels under the field's own name, as the edit form posts it."""

from __future__ import annotations

import copy
import logging
from typing import Any
from urllib.parse import parse_qsl

import sqlalchemy as sa
from flask import jsonify, request, url_for
from werkzeug.datastructures import MultiDict

from ....metadata.model import ObjectDef
from ... import filters as flt_mod
from ...api.exports import export_response
from ...errors import BadRequest, Forbidden, NotFound
from ...records import RecordService
from .. import display, forms
from ..core import current_principal, current_service, page, redirect_to, render_page, runtime
from ..i18n import current_locale, format_number, format_percent, message, t
from ..list_views import _owner_options, _record_options, build_filter
from ..record_views import _object, _visible_fields
from .inline import editable_fields
from .jobs import ensure_table, load_job, mass_jobs, reason_of, run_mass, start, titles_of, wait_for  # noqa: F401

log = logging.getLogger(__name__)

ACTIONS = ("update", "owner", "campaign", "delete", "export")
PREVIEW = 20  # records named on the summary page
MAX_TARGETS = 50_000
REPORT_SHOWN = 500  # refused records listed on the report page
CONTROL = ("_action", "_ids", "_all", "_query", "_field", "_owner", "_campaign")

# --- which records ------------------------------------------------------------------------------


def list_args(args) -> MultiDict:
    out = MultiDict()
    for key, value in parse_qsl((args.get("_query") or "")[:4000], keep_blank_values=False):
        out.add(key, value)
    return out


def selection_filter(service: RecordService, obj: ObjectDef, largs: MultiDict) -> Any:
    """The list page's own condition (saved view, filters, search, record type) for these args."""
    from ... import views as saved
    from .. import saved_views

    base = None
    name = largs.get("view")
    if name and name != saved.ALL:
        base = next((v for v in saved.usable_views(service, obj.name) if v["name"] == name), None)
    record_type = largs.get("record_type") if largs.get("record_type") in (obj.record_types or []) else None
    layout = forms.layout_for(service, obj, record_type)
    flt, _, _ = build_filter(service, obj, layout, largs)
    return saved_views.combine((base or {}).get("filter"), flt, {"record_type": record_type} if record_type else None)


def count_matching(service: RecordService, obj: ObjectDef, condition: Any) -> int:
    """How many records the user may read match `condition` (the list's "all N")."""
    table = service.table(obj.name)
    where = [table.c.deleted_at.is_(None), service.access.row_filter(obj.name, "read", table)]
    if condition not in (None, {}, ""):
        ctx = flt_mod.FilterContext.current(service.principal.user_id, service.principal.department)
        try:
            where.append(flt_mod.compile_sql(condition, table, _visible_fields(service, obj), ctx))
        except flt_mod.FilterError:
            return 0
    with service._reading() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar() or 0)


def targets(service: RecordService, obj: ObjectDef, args) -> list[str]:
    """The ids the action is for: every match of the list (readable ones), or the ticked rows."""
    if args.get("_all") == "1":
        condition = selection_filter(service, obj, list_args(args))
        ids: list[str] = []
        cursor = None
        while len(ids) < MAX_TARGETS:
            items, cursor = service.list(obj.name, filter=condition, sort="-created_at", fields=["id"], limit=500,
                                         cursor=cursor)
            ids.extend(item["id"] for item in items)
            if not cursor:
                break
        return ids[:MAX_TARGETS]
    return list(dict.fromkeys(i[:64] for i in args.getlist("_ids") if i))[:MAX_TARGETS]


# --- what change --------------------------------------------------------------------------------


def campaign_field(service: RecordService, obj: ObjectDef) -> str | None:
    """The lookup to campaign this user may set (leads, contacts), if any."""
    layout = forms.layout_for(service, obj, None)
    editable = editable_fields(service, obj, layout)
    for name, fdef in obj.all_fields.items():
        if name in editable and fdef.type == "lookup" and list(fdef.target) == ["campaign"]:
            return name
    return None


def update_choices(service: RecordService, obj: ObjectDef) -> list[tuple[str, str]]:
    layout = forms.layout_for(service, obj, None)
    editable = editable_fields(service, obj, layout) - {"owner"}
    locale = current_locale()
    return sorted(((n, obj.all_fields[n].display_label(locale)) for n in editable if n in obj.all_fields),
                  key=lambda pair: pair[1].lower())


def value_form(service: RecordService, obj: ObjectDef, field: str, posted: MultiDict | None = None) -> forms.Form:
    layout = copy.copy(forms.layout_for(service, obj, None))
    layout.sections = [forms.Section("", 1, [field])]
    layout.required = set()
    return forms.build_form(service, obj, layout, creating=False, record={}, posted=posted)


class Change:
    """The action and its data, read from the request; `problem` is why it cannot run (shown)."""

    def __init__(self, service: RecordService, obj: ObjectDef, args):
        self.action = args.get("_action") if args.get("_action") in ACTIONS else "update"
        self.data: dict[str, Any] = {}
        self.field: str | None = None
        self.problem: str | None = None
        self.ready = False
        if self.action == "update":
            choices = dict(update_choices(service, obj))
            self.field = args.get("_field") if args.get("_field") in choices else None
            if self.field is not None and (self.field in args or obj.all_fields[self.field].value_type == "boolean"):
                form = value_form(service, obj, self.field)
                posted = MultiDict([(self.field, v) for v in args.getlist(self.field)])
                try:
                    data = forms.parse(form, posted)
                except forms.Tampered as exc:
                    self.problem = exc.detail
                else:
                    self.data = {self.field: data.get(self.field)}
                    self.ready = True
        elif self.action == "owner":
            owner = args.get("_owner") or ""
            if owner and owner in {v for v, _ in _owner_options(service, "") if v not in ("me", "none")}:
                self.data, self.ready = {"owner": owner}, True
            elif owner:
                self.problem = t("mass.unknown_owner")
        elif self.action == "campaign":
            self.field = campaign_field(service, obj)
            if self.field is None:
                self.problem = t("mass.no_campaign")
            else:
                campaign = args.get("_campaign") or ""
                if campaign and campaign in {v for v, _ in (_record_options(service, "campaign", "") or [])}:
                    self.data, self.ready = {self.field: campaign}, True
                elif campaign:
                    self.problem = t("mass.unknown_campaign")
        else:  # delete, export: nothing to choose
            self.ready = True

    def text(self, service: RecordService, obj: ObjectDef) -> str:
        """The change in words: "Status → Qualified", "Delete (to the recycle bin)"."""
        if self.action == "delete":
            return t("mass.change_delete")
        names = display.Names(service)
        parts = []
        for name, value in self.data.items():
            fdef = obj.all_fields[name]
            if fdef.is_reference and value:
                for target in fdef.target:
                    names.want(target, value)
        names.resolve()
        for name, value in self.data.items():
            fdef = obj.all_fields[name]
            shown = display.show(fdef, value, names, {})
            parts.append(t("mass.change_set", field=fdef.display_label(current_locale()), value=shown.text))
        return "; ".join(parts)

    def hidden(self, args) -> list[tuple[str, str]]:
        """The request's selection and change, as hidden inputs for the next step."""
        keep = [(k, v) for k in CONTROL for v in args.getlist(k)]
        if self.field and self.action == "update":
            keep += [(self.field, v) for v in args.getlist(self.field)]
        return keep


# --- running ------------------------------------------------------------------------------------


# --- pages --------------------------------------------------------------------------------------


def _threshold() -> int:
    return int(getattr(runtime().config, "mass_job_threshold", 1000) or 1000)


def _require(service: RecordService, obj: ObjectDef, action: str) -> None:
    need = {"delete": "delete", "export": "export"}.get(action, "edit")
    if not service.access.can(obj.name, need):
        raise Forbidden(f"You may not {need} {obj.name} records.")


def _preview(service: RecordService, obj: ObjectDef, ids: list[str]) -> list[dict]:
    titles = titles_of(service, obj, ids[:PREVIEW])
    return [{"title": titles.get(i) or i, "href": url_for("web.record_detail", object_name=obj.name, record_id=i)}
            for i in ids[:PREVIEW]]


def _page(step: str, service: RecordService, obj: ObjectDef, ids: list[str], change: Change, args, status=200,
          **extra):
    locale = current_locale()
    largs = list_args(args)
    back = url_for("web.record_list", object_name=obj.name, **{k: v for k, v in largs.items(multi=False)})
    context = {
        "step": step, "obj": obj, "obj_label": obj.display_label(locale, plural=True), "change": change,
        "count": len(ids), "count_text": format_number(len(ids), locale, 0), "back": back,
        "hidden": change.hidden(args), "background": len(ids) > _threshold(),
        "threshold_text": format_number(_threshold(), locale, 0), "action_label": t(f"mass.action.{change.action}"),
    }
    context.update(extra)
    return render_page("quick/mass.html", status, **context)


@page("/records/<object_name>/mass", endpoint="record_mass")
def record_mass(object_name: str):
    """Step 1: choose the change for the selection (or, for delete, straight to the summary)."""
    service = current_service()
    obj = _object(service, object_name)
    args = request.args
    change = Change(service, obj, args)
    _require(service, obj, change.action)
    ids = targets(service, obj, args)
    if not ids:
        return _page("empty", service, obj, ids, change, args)
    if change.action == "export":
        fmt = "xlsx" if args.get("_format") == "xlsx" else None
        return export_response(service, obj.name, fmt, filter={"id": {"in": ids[:MAX_TARGETS]}})
    if change.action == "delete":
        return redirect_to("web.record_mass_review", object_name=obj.name, **_query_dict(change.hidden(args)))
    extra: dict[str, Any] = {}
    if change.action == "update":
        extra["choices"] = update_choices(service, obj)
        if change.field:
            extra["value_field"] = value_form(service, obj, change.field).fields[change.field]
    elif change.action == "owner":
        extra["owners"] = [(v, text) for v, text in _owner_options(service, "") if v not in ("me", "none")]
    elif change.action == "campaign" and change.field:
        extra["campaigns"] = _record_options(service, "campaign", "") or []
    return _page("choose", service, obj, ids, change, args, **extra)


def _query_dict(pairs: list[tuple[str, str]]) -> dict:
    out: dict[str, Any] = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out


@page("/records/<object_name>/mass/review", endpoint="record_mass_review")
def record_mass_review(object_name: str):
    """Step 2: the summary (N records, the change) and Confirm."""
    service = current_service()
    obj = _object(service, object_name)
    args = request.args
    change = Change(service, obj, args)
    _require(service, obj, change.action)
    if change.action == "export":
        return redirect_to("web.record_mass", object_name=obj.name, **_query_dict(change.hidden(args)))
    ids = targets(service, obj, args)
    if not ids:
        return _page("empty", service, obj, ids, change, args)
    if not change.ready:
        return redirect_to("web.record_mass", object_name=obj.name, **_query_dict(change.hidden(args)))
    return _page("review", service, obj, ids, change, args, preview=_preview(service, obj, ids),
                 change_text=change.text(service, obj), more=max(0, len(ids) - PREVIEW))


@page("/records/<object_name>/mass/run", methods=("POST",), endpoint="record_mass_run")
def record_mass_run(object_name: str):
    """Step 3: run it (a background job over the threshold) and show the per-record report."""
    service = current_service()
    obj = _object(service, object_name)
    args = request.form
    change = Change(service, obj, args)
    _require(service, obj, change.action)
    if change.action == "export" or not change.ready:
        raise BadRequest("Nothing to run: choose the change first.", code="mass_not_ready")
    ids = targets(service, obj, args)
    if not ids:
        return _page("empty", service, obj, ids, change, args)
    job_id = start(runtime(), current_principal(), obj, ids, change.action, change.data,
                   background=len(ids) > _threshold())
    return redirect_to("web.record_mass_job", object_name=obj.name, job_id=job_id)


def _job_body(row) -> dict:
    locale = current_locale()
    summary = (row.result or {}).get("summary") or {}
    percent = round(100.0 * row.done / row.total, 1) if row.total else 100.0
    return {
        "status": row.status, "done": row.done, "total": row.total,
        "status_text": t(f"mass.job_status.{row.status}"),
        "counts_text": t("mass.progress", done=format_number(row.done, locale, 0),
                         total=format_number(row.total, locale, 0)),
        "percent_text": format_percent(percent, locale),
        "done_text": format_number(summary.get("done", 0), locale, 0),
        "refused_text": format_number(summary.get("refused", 0), locale, 0),
    }


def _refusal_text(obj: ObjectDef, entry: dict) -> str:
    locale = current_locale()
    if entry.get("reason") == "validation" and entry.get("fields"):
        parts = []
        for name, problems in entry["fields"].items():
            fdef = obj.all_fields.get(name)
            label = fdef.display_label(locale) if fdef else name
            parts.append(f"{label}: " + " ".join(message(p) for p in problems))
        return "; ".join(parts)
    return message(entry.get("message") or "")


@page("/records/<object_name>/mass/jobs/<job_id>", endpoint="record_mass_job")
def record_mass_job(object_name: str, job_id: str):
    service = current_service()
    obj = _object(service, object_name)
    row = load_job(runtime(), current_principal(), job_id)
    if row.object != obj.name:
        raise NotFound("No such job.", code="job_not_found")
    if request.args.get("format") == "json":
        return jsonify(_job_body(row))
    refused = []
    if row.status == "done":
        for entry in (row.result or {}).get("results") or []:
            if entry.get("status") != "refused" or len(refused) >= REPORT_SHOWN:
                continue
            refused.append({"title": entry.get("title") or t("mass.record_unnamed"),
                            "href": url_for("web.record_detail", object_name=obj.name, record_id=entry["id"])
                            if entry.get("title") else None,
                            "reason": t(f"mass.reason.{entry.get('reason') or 'error'}"),
                            "message": _refusal_text(obj, entry)})
    locale = current_locale()
    return render_page("quick/mass_job.html", obj=obj, obj_label=obj.display_label(locale, plural=True), job=row,
                       body=_job_body(row), refused=refused, action_label=t(f"mass.action.{row.action}"),
                       finished=row.status in ("done", "failed"), failure=message(row.error or ""),
                       json_url=url_for("web.record_mass_job", object_name=obj.name, job_id=row.id, format="json"))


def list_toolbar(service: RecordService, obj: ObjectDef, condition: Any, view: dict | None) -> dict | None:
    """What the list page needs for its selection bar (None: the user may do none of it)."""
    from ... import views as saved

    actions = []
    if service.access.can(obj.name, "edit"):
        actions.append("update")
        if "owner" in editable_fields(service, obj, forms.layout_for(service, obj, None)):
            actions.append("owner")
        if campaign_field(service, obj):
            actions.append("campaign")
    if service.access.can(obj.name, "delete"):
        actions.append("delete")
    if service.access.can(obj.name, "export"):
        actions.append("export")
    if not actions:
        return None
    query = MultiDict(request.args)
    for key in ("after", "before", "limit"):
        query.pop(key, None)
    query.pop("view", None)
    query.add("view", view["name"] if view else saved.ALL)
    from urllib.parse import urlencode

    count = count_matching(service, obj, condition)
    return {"actions": [(a, t(f"mass.action.{a}")) for a in actions],
            "query": urlencode(list(query.items(multi=True)))[:4000], "count": count,
            "count_text": format_number(count, current_locale(), 0),
            "url": url_for("web.record_mass", object_name=obj.name)}
