"""Notifications in the web UI: the bell with the unread count, the list, mark read.
Through metacrm.platform.notifications, as the REST API does."""

from __future__ import annotations

from flask import url_for

from .. import notifications
from ..errors import NotFound
from ..features import Routes
from ..web import display
from ..web.core import (
    NavEntry,
    current_principal,
    current_service,
    notify,
    redirect_to,
    render_page,
    runtime,
)
from ..web.history_notes import NoteText
from ..web.i18n import t

routes = Routes()
page = routes.page

LIMIT = 50


def _user_id() -> str:
    principal = current_principal()
    if principal is None or principal.user_id is None:
        raise NotFound("No notifications.", code="notification_not_found")
    return principal.user_id


def unread_count() -> int:
    principal = current_principal()
    if principal is None or principal.user_id is None:
        return 0
    return notifications.list_for(runtime(), principal.user_id, limit=1)["unread"]


@page("/notifications")
def notification_list():
    data = notifications.list_for(runtime(), _user_id(), limit=LIMIT)
    service = current_service()
    registry = service.registry
    words = NoteText(service, display.Names(service))  # the product's own sentences in the reader's language
    items = []
    for n in data["items"]:
        href = None
        if n["object"] and n["record"] and registry.has_object(n["object"]):
            href = url_for("web.record_detail", object_name=n["object"], record_id=n["record"])
        items.append({**n, **notifications.read_in(n, words.locale, words.text),
                      "href": href, "at": display.datetime_text(n["created_at"] or "")})
    return render_page("notifications/list.html", items=items, unread=data["unread"], title=t("notifications.title"))


@page("/notifications/<int:notification_id>/read", methods=("POST",))
def notification_read(notification_id: int):
    uid = _user_id()
    if not notifications.exists_for(runtime(), uid, notification_id):
        raise NotFound("No such notification.", code="notification_not_found")
    notifications.mark_read(runtime(), uid, notification_id)
    return redirect_to("web.notification_list")


@page("/notifications/read_all", methods=("POST",))
def notification_read_all():
    changed = notifications.mark_read(runtime(), _user_id())
    notify(t("notifications.marked", count=changed))
    return redirect_to("web.notification_list")


# Navigation this feature adds (FEATURE.nav): the header bell, whose text is the unread count.
NAV = (
    NavEntry("notifications", lambda: str(unread_count()), "web.notification_list", section="bell",
             title="nav.notifications"),
)
