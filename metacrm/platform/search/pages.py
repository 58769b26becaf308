"""The search page (/search) and the header's search box (a NavEntry in the "search" section,
which base.html draws as a form in the top bar; "/" or Ctrl+K focuses it)."""

from __future__ import annotations

from flask import request, url_for

from ..errors import BadRequest
from ..features import Routes
from ..web import display
from ..web.core import NavEntry, current_service, render_page, runtime
from ..web.i18n import current_locale, t
from .query import MAX_QUERY, search

routes = Routes()

NAV = (NavEntry("search", "search.placeholder", "web.search_page", section="search", title="search.title"),)


@routes.page("/search")
def search_page():
    from . import ensure_current

    q = request.args.get("q", "").strip()[:MAX_QUERY]
    only = request.args.get("object") or None
    svc = current_service()
    locale = current_locale()
    groups, error = [], None
    if q:
        ensure_current(runtime())
        try:
            found = search(svc, q, per_object=25 if only else (3 if request.args.get("partial") == "1" else 5), objects=[only] if only else None)
        except BadRequest as exc:
            found, error = [], exc.message
        for group in found:
            obj = svc.obj(group.object)
            rows = []
            for record in group.records:
                hit = group.hits[record["id"]]
                fdef = obj.all_fields.get(hit.field)
                rows.append({"title": display.record_title(obj, record),
                             "href": url_for("web.record_detail", object_name=obj.name, record_id=record["id"]),
                             "field": fdef.display_label(locale) if fdef else hit.field,
                             "value": hit.body, "show_value": hit.body != display.record_title(obj, record)})
            groups.append({"object": obj.name, "label": obj.display_label(locale, plural=True), "rows": rows,
                           "more": group.more,
                           "more_href": url_for("web.search_page", q=q, object=obj.name)})
    if request.args.get("partial") == "1":  # the header box's suggestions: the groups only
        return render_page("search/_groups.html", q=q, groups=groups, error=error, compact=True)
    return render_page("search/results.html", q=q, groups=groups, error=error, only=only,
                       title=t("search.title"))
