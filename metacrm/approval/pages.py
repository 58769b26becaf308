"""Approvals in the web UI: the inbox (my queue / my requests), one request beside its
record, approve / reject / recall, and "Submit for approval" from a record's detail page.
Everything goes through the same functions as the REST API (submission.py, decisions.py, views.py)."""

from __future__ import annotations

import sqlalchemy as sa
from flask import request, url_for

from ..platform.errors import CrmError
from ..platform.features import Routes
from ..platform.web import display, forms
from ..platform.web.core import (
    NavEntry,
    current_principal,
    current_service,
    notify,
    redirect_to,
    render_page,
    runtime,
    wants_form_value,
)
from ..platform.web.i18n import current_locale, t
from .decisions import decide, recall
from .gates import INVALIDATED, latest_request
from .processes import processes_for
from .state import APPROVED, PENDING, REJECTED, T_PENDING, tasks_of
from .submission import submit
from .views import get_request, queue
from .views import iso as views_iso

routes = Routes()
page = routes.page

STATUSES = ("pending", "approved", "rejected", "recalled", "skipped", "closed", "not_reached", "no_response",
            "delegated", "invalidated")
SUBMIT_CODES = ("approval_not_required", "approval_pending", "no_approver")


def user_names(ids) -> dict[str, str]:
    """Display names of users (approvers, submitters): names only, whatever the reader's role."""
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    users = current_service().table("user")
    with runtime().reading() as conn:
        rows = conn.execute(sa.select(users.c.id, users.c.username, users.c.display_name)
                            .where(users.c.id.in_(wanted))).fetchall()
    return {r.id: r.display_name or r.username for r in rows}


def status_text(status: str | None) -> str:
    return t(f"approvals.status.{status}") if status in STATUSES else (status or "")


def _process_label(name: str) -> str:
    doc = current_service().registry.get("approval_process", name) or {}
    return display.label_text(doc.get("label"), current_locale(), name)


def _object_label(name: str) -> str:
    registry = current_service().registry
    return registry.object(name).display_label(current_locale()) if registry.has_object(name) else name


def _step_text(process_name: str, step_name: str | None) -> str:
    """A step by its label in the reader's language, not its internal name."""
    doc = current_service().registry.get("approval_process", process_name) or {}
    step = next((s for s in doc.get("steps") or [] if s.get("name") == step_name), None)
    return display.label_text(step.get("label"), current_locale(), step_name) if step else (step_name or "")


def _row(item: dict, names: dict) -> dict:
    return {
        "id": item["id"], "href": url_for("web.approval_request", request_id=item["id"]),
        "title": item.get("record_name") or item["record"] or _process_label(item["process"]), "object": _object_label(item["object"]),
        "process": _process_label(item["process"]), "step": _step_text(item["process"], item.get("step")),
        "status": item["status"], "status_text": status_text(item["status"]),
        "submitter": names.get(item["submitter"], item["submitter"] or t("history.system")),
        "submitted_at": display.datetime_text(item["submitted_at"] or ""),
    }


def _pending_count() -> int:
    principal = current_principal()
    if principal is None or principal.user_id is None:
        return 0
    return len(queue(runtime(), principal, limit=100))


# --- pages -----------------------------------------------------------------------------------


@page("/approvals")
def approval_inbox():
    tab = "mine" if request.args.get("tab") == "mine" else "queue"
    items = queue(runtime(), current_principal(), as_submitter=tab == "mine")
    names = user_names(i["submitter"] for i in items)
    return render_page("approvals/inbox.html", tab=tab, rows=[_row(i, names) for i in items],
                       title=t("approvals.title"))


@page("/approvals/<request_id>")
def approval_request(request_id: str):
    service = current_service()
    principal = current_principal()
    req = get_request(runtime(), principal, request_id)  # 404 unless involved (or an admin)
    locale = current_locale()
    ids = [req["submitter"], *req["approvers"]] + [d["approver"] for d in req["decisions"]]
    ids += [d["on_behalf_of"] for d in req["decisions"]] + [a for s in req["steps"] for a in s["approvers"]]
    names = user_names(ids)
    record, cells, obj = None, [], None
    if service.registry.has_object(req["object"]):
        obj = service.obj(req["object"])
        try:
            record = service.get(obj.name, req["record"]) if req["record"] else None
        except CrmError:
            record = None
    if record is not None:
        layout = forms.layout_for(service, obj, record.get("record_type"))
        shown = [n for s in layout.sections for n in s.fields if n in record and n in obj.all_fields]
        lookups = display.Names(service)
        lookups.want_record(obj, record, shown)
        lookups.resolve()
        cells = [{"name": n, "label": obj.all_fields[n].display_label(locale),
                  "shown": display.show(obj.all_fields[n], record.get(n), lookups, record)} for n in shown]
    me = principal.user_id
    pending = req["status"] == "pending"
    process = service.registry.get("approval_process", req["process"]) or {}
    steps = [{**s, "status_text": status_text(s["status"]),
              "approver_names": [names.get(a, a) for a in s["approvers"]]} for s in req["steps"]]
    decisions = [{**d, "step_text": _step_text(req["process"], d.get("step")),
                  "status_text": status_text(d["status"]), "approver_name": names.get(d["approver"], d["approver"]),
                  "behalf_name": names.get(d["on_behalf_of"], d["on_behalf_of"]) if d["on_behalf_of"] else None,
                  "at": display.datetime_text(d["decided_at"] or "")} for d in req["decisions"]]
    return render_page(
        "approvals/request.html", req=req, obj=obj, record=record, cells=cells, steps=steps, decisions=decisions,
        title=req.get("record_name") or req["record"] or _process_label(req["process"]), process_label=_process_label(req["process"]),
        object_label=_object_label(req["object"]), status_text=status_text(req["status"]),
        submitter=names.get(req["submitter"], req["submitter"] or t("history.system")),
        approvers=[names.get(a, a) for a in req["approvers"]], step_text=_step_text(req["process"], req.get("step")),
        submitted_at=display.datetime_text(req["submitted_at"] or ""),
        record_href=url_for("web.record_detail", object_name=req["object"], record_id=req["record"])
        if record is not None else None,
        can_decide=pending and any(tk["approver"] == me and tk["status"] == "pending" for tk in req["tasks"]),
        can_recall=pending and me is not None and me == req["submitter"] and process.get("allow_recall", True),
    )


@page("/approvals/<request_id>/decide", methods=("POST",))
def approval_decide(request_id: str):
    decision = wants_form_value("decision")
    if decision not in ("approve", "reject"):
        notify(t("approvals.pick_decision"), "error")
        return redirect_to("web.approval_request", request_id=request_id)
    try:
        decide(runtime(), current_principal(), request_id, decision, wants_form_value("comment") or None)
    except CrmError as exc:
        if exc.status == 404:
            raise
        notify(exc.message, "error")
    else:
        notify(t("approvals.approved") if decision == "approve" else t("approvals.rejected"))
    return redirect_to("web.approval_request", request_id=request_id)


@page("/approvals/<request_id>/recall", methods=("POST",))
def approval_recall(request_id: str):
    try:
        recall(runtime(), current_principal(), request_id, wants_form_value("comment") or None)
    except CrmError as exc:
        if exc.status == 404:
            raise
        notify(exc.message, "error")
    else:
        notify(t("approvals.recalled"))
    return redirect_to("web.approval_request", request_id=request_id)


@page("/records/<object_name>/<record_id>/submit", methods=("POST",))
def approval_submit(object_name: str, record_id: str):
    try:
        result = submit(runtime(), current_principal(), object_name, record_id,
                        comment=wants_form_value("comment") or None)
    except CrmError as exc:
        if exc.status == 404:
            raise
        kind = "warning" if exc.code == "approval_not_required" else "error"
        notify(t(f"approvals.code.{exc.code}") if exc.code in SUBMIT_CODES else exc.message, kind)
        return redirect_to("web.record_detail", object_name=object_name, record_id=record_id)
    if result["status"] == "approved":
        notify(t("approvals.auto_approved"))
    else:
        notify(t("approvals.submitted"))
    return redirect_to("web.approval_request", request_id=result["id"])


# --- navigation ------------------------------------------------------------------------------


def _nav_label() -> str:
    count = _pending_count()
    return t("nav.approvals_count", count=count) if count else t("nav.approvals")


def _latest_requests(obj, record: dict) -> list:
    """The newest request of each of the object's processes for this record, newest first."""
    registry = current_service().registry
    processes = processes_for(registry, obj.name)
    if not processes or not record.get("id"):
        return []
    with runtime().reading() as conn:
        found = [latest_request(conn, p["name"], obj.name, record["id"]) for p in processes]
    return sorted((r for r in found if r is not None), key=lambda r: (r.submitted_at, r.id), reverse=True)


def record_banners(obj, record: dict) -> list[dict]:
    """Where the record stands in its approval: pending (process, step n of m, who decides),
    approved, rejected, or approved but no longer current (changed since)."""
    latest = _latest_requests(obj, record)
    if not latest:
        return []
    req = latest[0]
    principal = current_principal()
    me = principal.user_id if principal else None
    process = _process_label(req.process)
    when = display.datetime_text(views_iso(req.decided_at or req.submitted_at) or "")
    banner = {"id": "approval-banner", "href": None, "link": t("approvals.open_request")}
    if req.status == PENDING:
        chain = list(req.chain or [])
        with runtime().reading() as conn:
            current = sorted({tk.approver for tk in tasks_of(conn, req.id)
                              if tk.round == req.round and tk.status == T_PENDING and tk.approver})
        names = user_names(current)
        waiting = "、".join(names.get(a, a) for a in current) if current_locale() == "zh-CN" else \
            ", ".join(names.get(a, a) for a in current)
        banner.update(tone="info", text=t(
            "approvals.banner.pending", process=process, number=(chain.index(req.step_index) + 1)
            if req.step_index in chain else 1, total=max(len(chain), 1), step=_step_text(req.process, req.step_name),
            approvers=waiting or t("common.none")))
        involved = me is not None and (me == req.submitter or me in current or current_service().access.is_admin)
    elif req.status == APPROVED:
        banner.update(tone="success", text=t("approvals.banner.approved", process=process, when=when))
        involved = me is not None and (me == req.submitter or current_service().access.is_admin)
    elif req.status == REJECTED:
        banner.update(tone="warning", text=t("approvals.banner.rejected", process=process, when=when))
        involved = me is not None and (me == req.submitter or current_service().access.is_admin)
    elif req.status == INVALIDATED:
        banner.update(tone="warning", text=t("approvals.banner.invalidated", process=process))
        involved = False
    else:
        return []
    if involved:
        banner["href"] = url_for("web.approval_request", request_id=req.id)
    return [banner]


def record_buttons(obj, record: dict) -> list[dict]:
    """"Submit for approval" on a record whose object has a process, for a user who may edit it,
    unless a request is pending or the newest one approved it (a change that invalidates the
    approval, a rejection or a recall offers it again)."""
    access = current_service().access
    if not processes_for(access.registry, obj.name) or not access.allows_row(obj.name, "edit", record):
        return []
    latest = _latest_requests(obj, record)
    if any(r.status == PENDING for r in latest) or (latest and latest[0].status == APPROVED):
        return []
    return [{"id": "submit-approval", "label": t("approvals.submit"), "method": "post",
             "url": url_for("web.approval_submit", object_name=obj.name, record_id=record["id"])}]


# Navigation this feature adds (FEATURE.nav).
NAV = (NavEntry("approvals", _nav_label, "web.approval_inbox", order=55),)


# --- transfer requests after a registration (报备) conflict ------------------------------------


def duplicate_text(service, exc, locale: str) -> str:
    """A blocked create in the reader's language; a hidden match names its holder only."""
    from ..platform.i18n import translate

    duplicates = exc.extra.get("duplicates") or []
    owners = sorted({name for d in duplicates if d.get("hidden") for name in d.get("owners") or ()})
    if owners:
        return translate(locale, "transfers.held_by", owners="、".join(owners) if locale == "zh-CN"
                         else ", ".join(owners))
    return exc.message


def transfer_offers(service, exc, obj) -> list[dict]:
    """"Request transfer" beside a duplicate block whose match another user holds."""
    from .transfers import PURPOSE

    duplicates = exc.extra.get("duplicates") or []
    if not any(d.get("transfer") for d in duplicates):
        return []
    objects = {d["object"] for d in duplicates if d.get("transfer")}
    if not any(processes_for(service.registry, name, PURPOSE) for name in objects):
        return []
    return [{"id": "request-transfer", "label": t("transfers.request"),
             "url": url_for("web.transfer_request_new", object_name=obj.name)}]


@page("/transfer-requests/<object_name>", methods=("POST",))
def transfer_request_new(object_name: str):
    """The blocked form's values, re-posted: a transfer request for the records it matched."""
    from . import transfers

    service = current_service()
    obj = service.obj(object_name)
    layout = forms.layout_for(service, obj, request.form.get("_record_type") or None)
    form = forms.build_form(service, obj, layout, creating=True)
    try:
        data = forms.parse(form, request.form)
        made = transfers.create(runtime(), current_principal(), {"object": obj.name, "record": data})
    except forms.Tampered as exc:
        notify(exc.detail, "error")
        return redirect_to("web.record_new", object_name=obj.name)
    except CrmError as exc:
        if exc.status == 404:
            raise
        text = t(f"transfers.code.{exc.code}") if exc.code in ("transfer_pending", "no_transfer_needed") \
            else exc.message
        notify(text, "error")
        return redirect_to("web.record_new", object_name=obj.name)
    owners = sorted({r["owner_name"] for r in made if r.get("owner_name")})
    notify(t("transfers.requested", owners=", ".join(owners)))
    return redirect_to("web.approval_inbox", tab="mine")
