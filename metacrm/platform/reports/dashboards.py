"""Dashboards composed in the web from saved reports (`dashboard` metadata).

Which dashboard the home page shows (`dashboard_for`): the user's own (`owner`), else the first
by name whose `for_roles` names one of their roles, else none (the built-in widgets). Each widget
is a saved report the user may see (`may_see`), run as that user and drawn with the widget's
chart; a report they may not see or run is left off their page, a category of the chart opens
the records it counts (the report page's links), the title opens the report.

/dashboard/edit composes the user's own dashboard with buttons (add a saved report, move
earlier / later, wider / narrower, remove, start again from the built-in widgets);
/dashboard/edit?role=<role> edits a role's default, for who may apply metadata. Every change
writes the `dashboard` document through apply_change (validated, in the change log, with the
version the form loaded: a stale form is refused)."""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import request, url_for

from ...metadata.bundle import documents_bundle
from ...metadata.model import label_text
from ..apply import apply_change
from ..errors import CrmError, Forbidden, MetadataInvalid, NotFound, StaleVersion
from ..metastore import ABSENT, document_version
from ..web import charts
from ..web.core import current_access, current_service, notify, redirect_to, render_page, runtime
from ..web.i18n import current_locale, t
from .pages import _chart, _list_href, report_context, routes
from .saved import list_reports, may_see

log = logging.getLogger(__name__)
CHARTS = ("bar", "stacked_bar", "line", "pie", "funnel", "number")
SIZES = ("half", "full")
MAX_WIDGETS = 24


def _version(doc: dict | None) -> str:
    return document_version(doc) if doc else ABSENT


def personal_name(user_id: str) -> str:
    return "user_" + re.sub(r"[^a-z0-9_]", "_", user_id.lower())[:58]


def role_name(role: str) -> str:
    return f"role_{role}"[:64]


def own_version(service) -> str | None:
    """The version of the user's own dashboard document (for a form that adds to it), None
    for a caller without a user id."""
    me = service.principal.user_id
    return _version(service.registry.get("dashboard", personal_name(me))) if me else None


def dashboard_for(service) -> dict | None:
    """The dashboard the user's home page shows (see the module docstring)."""
    me, roles = service.principal.user_id, set(service.principal.roles)
    docs = service.registry.of_kind("dashboard")
    own = next((d for d in docs if me and d.get("owner") == me), None)
    if own is not None:
        return own
    return next((d for d in docs if d.get("owner") is None and set(d.get("for_roles") or ()) & roles), None)


def widget_view(service, widget: dict) -> dict | None:
    """One widget as the home page draws it, or None when the user may not see or run its report."""
    doc = service.registry.get("report", widget["report"])
    if doc is None or not may_see(service, doc):
        return None
    try:
        context, _status = report_context(widget["report"])
    except CrmError:  # a hidden field, a report the user may not run: no widget
        return None
    chart_doc = dict(doc, chart={**(doc.get("chart") or {}), "type": widget.get("chart") or (
        (doc.get("chart") or {}).get("type") if (doc.get("chart") or {}).get("type") in CHARTS else "bar")})
    groups = context["result"]["group_by"]
    chart = _chart(chart_doc, groups, context["measures"], context["table"], context["result"])
    if chart is None:
        return None
    spec = chart["spec"]
    if len(groups) > 1 and spec.get("categories") and not any(spec.get("links") or ()):
        # two groups: a category opens the records of its first group's value
        first: dict[str, str | None] = {}
        for row in context["table"]:
            first.setdefault(row["groups"][0], _list_href(context["obj"], groups[:1], row["raw"]))
        chart = dict(chart, spec=dict(spec, links=[first.get(c) for c in spec["categories"]]))
        if not chart["empty"]:
            chart["svg"] = charts.render(chart["spec"])
    totals = context["totals"]
    spec = dict(chart["spec"], title=context["title"],
                total=totals[0] if totals and chart["spec"]["type"] != "number" else None)
    return {"name": widget["report"], "wide": widget.get("size") == "full", "spec": spec, "svg": chart["svg"],
            "empty": chart["empty"], "legend": chart.get("legend") or [],
            "href": url_for("web.report_run", name=widget["report"])}


def composed_widgets(service) -> list[dict] | None:
    """The widgets of the user's dashboard, or None when they have none (the built-in widgets)."""
    doc = dashboard_for(service)
    if doc is None:
        return None
    out = []
    for widget in doc.get("widgets") or []:
        try:
            view = widget_view(service, widget)
        except Exception:  # one broken widget must not take the home page down
            log.exception("dashboard widget %s failed", widget.get("report"))
            continue
        if view is not None:
            out.append(view)
    return out


# --- the edit page -----------------------------------------------------------------------------

def _target(service) -> tuple[str, dict | None, str | None]:
    """(document name, live document, role or None) of the dashboard being edited."""
    role = (request.values.get("role") or "").strip()
    if role:
        if not current_access().has_permission("metadata.apply"):
            raise Forbidden("Only who may apply metadata edits a role's dashboard.")
        if role not in service.registry.roles:
            raise NotFound(f"No role named {role!r}.")
        name = role_name(role)
        return name, service.registry.get("dashboard", name), role
    me = service.principal.user_id
    if not me:
        raise Forbidden("Only a signed-in user has a dashboard of their own.")
    name = personal_name(me)
    return name, service.registry.get("dashboard", name), None


def _report_choices(service) -> list[dict]:
    return [r for r in list_reports(service) if r["kind"] == "report"]


def _context(service, name: str, doc: dict | None, role: str | None, error: str | None = None) -> dict:
    locale = current_locale()
    reports = {r["name"]: r for r in _report_choices(service)}
    widgets = []
    for index, w in enumerate((doc or {}).get("widgets") or []):
        report = reports.get(w["report"])
        widgets.append({"index": index, "report": w["report"], "label": report["label"] if report else
                        t("dash.edit_missing"), "chart": w.get("chart") or "", "size": w.get("size") or "half",
                        "href": url_for("web.report_run", name=w["report"]) if report else None})
    roles = [(r, label_text(d.get("label"), locale, r)) for r, d in sorted(service.registry.roles.items())]
    return {"name": name, "doc": doc, "role": role, "widgets": widgets, "reports": list(reports.values()),
            "charts": [(c, t(f"reports.chart.{c}")) for c in CHARTS], "error": error,
            "version": _version(doc), "roles": roles if current_access().has_permission("metadata.apply") else [],
            "role_label": dict(roles).get(role) if role else None, "full": len(widgets) >= MAX_WIDGETS}


def _changed(doc: dict | None, name: str, role: str | None, service, form) -> list[dict] | str:
    """The new widget list for the button pressed, or an error text."""
    widgets = [dict(w) for w in (doc or {}).get("widgets") or []]
    action = form.get("_action") or ""
    if action == "add":
        report, chart = (form.get("report") or "").strip(), (form.get("chart") or "").strip()
        if report not in {r["name"] for r in _report_choices(service)}:
            return t("dash.err_report")
        if chart and chart not in CHARTS:
            return t("dash.err_chart")
        if len(widgets) >= MAX_WIDGETS:
            return t("dash.err_full", count=MAX_WIDGETS)
        widgets.append({"report": report, **({"chart": chart} if chart else {}), "size": "half"})
        return widgets
    if action == "reset":
        return []
    index_text = form.get("index") or ""
    if not index_text.isdigit() or int(index_text) >= len(widgets):
        return t("dash.err_stale")
    i = int(index_text)
    if action == "up" and i > 0:
        widgets[i - 1], widgets[i] = widgets[i], widgets[i - 1]
    elif action == "down" and i < len(widgets) - 1:
        widgets[i + 1], widgets[i] = widgets[i], widgets[i + 1]
    elif action == "wider":
        widgets[i]["size"] = "full"
    elif action == "narrower":
        widgets[i]["size"] = "half"
    elif action == "remove":
        widgets.pop(i)
    elif action == "chart":
        chart = form.get("chart") or ""
        if chart and chart not in CHARTS:
            return t("dash.err_chart")
        widgets[i].pop("chart", None)
        if chart:
            widgets[i]["chart"] = chart
    else:
        return t("dash.err_stale")
    return widgets


@routes.page("/dashboard/edit", methods=("GET", "POST"), endpoint="dashboard_edit")
def dashboard_edit():
    service = current_service()
    name, doc, role = _target(service)
    if request.method == "GET":
        return render_page("reports/dashboard_edit.html", **_context(service, name, doc, role))
    if (request.form.get("_version") or "") != _version(doc):
        return render_page("reports/dashboard_edit.html", 409, **_context(service, name, doc, role,
                                                                          t("dash.err_stale")))
    widgets = _changed(doc, name, role, service, request.form)
    if isinstance(widgets, str):
        return render_page("reports/dashboard_edit.html", 400, **_context(service, name, doc, role, widgets))
    new: dict[str, Any] = {"kind": "dashboard", "name": name, "widgets": widgets}
    if role:
        new["for_roles"] = [role]
        labels = (service.registry.roles.get(role) or {}).get("label")
        en, zh = label_text(labels, "en", role), label_text(labels, "zh-CN", role)
        new["label"] = {"en": f"Default dashboard: {en}", "zh-CN": f"默认仪表板：{zh}"}
    else:
        new["owner"] = service.principal.user_id
        who = service.principal.username or service.principal.user_id
        new["label"] = {"en": f"Dashboard of {who}", "zh-CN": f"{who} 的仪表板"}
    # no widgets left (or "start again"): the document goes, the home page falls back to the
    # role's dashboard or the built-in widgets
    documents, deletes = ([], [("dashboard", name)]) if not widgets else ([new], [])
    if not documents and doc is None:
        return redirect_to("web.dashboard_edit", role=role or None)
    try:
        apply_change(runtime(), documents_bundle(documents), deletes=deletes,
                     expected={("dashboard", name): _version(doc)})
    except StaleVersion:
        fresh = current_service().registry.get("dashboard", name)
        return render_page("reports/dashboard_edit.html", 409, **_context(service, name, fresh, role,
                                                                          t("dash.err_stale")))
    except MetadataInvalid as exc:
        issues = [i if isinstance(i, dict) else i.as_dict() for i in exc.extra.get("issues", [])]
        text = "; ".join(f"{i.get('path')}: {i.get('message')}" for i in issues) or exc.message
        return render_page("reports/dashboard_edit.html", 400, **_context(service, name, doc, role,
                                                                          t("dash.err_invalid", detail=text)))
    notify(t("dash.saved"))
    return redirect_to("web.dashboard_edit", role=role or None)
