"""Recent items: the last records a user opened, kept in their (signed, server-checked) session
as [object, id] pairs, newest first, at most RECENT_MAX. Shown on the home page and in the
header menu, each by its current name; a record the user can no longer read (deleted, moved out
of their scope, an object they lost) is simply left out, so the list never tells more than the
record pages would."""

from __future__ import annotations

from flask import session, url_for

from .. import display
from ..core import current_service
from ..i18n import current_locale

SESSION_KEY = "recent"
RECENT_MAX = 10


def remember(object_name: str, record_id: str) -> None:
    """Called by the detail page after the record was read."""
    items = [pair for pair in session.get(SESSION_KEY) or []
             if isinstance(pair, list) and len(pair) == 2 and pair != [object_name, record_id]]
    session[SESSION_KEY] = [[object_name, record_id], *items][:RECENT_MAX]


def recent_items() -> list[dict]:
    """The remembered records the user may still read: {title, object_label, href}."""
    pairs = [p for p in session.get(SESSION_KEY) or [] if isinstance(p, list) and len(p) == 2]
    if not pairs:
        return []
    service = current_service()
    names = display.Names(service)
    usable = []
    for object_name, record_id in pairs:
        if not service.registry.has_object(object_name) or not service.access.can(object_name, "read"):
            continue
        names.want(object_name, record_id)
        usable.append((object_name, record_id))
    names.resolve()
    locale = current_locale()
    out = []
    for object_name, record_id in usable:
        title = names.name(object_name, record_id)
        if title is None:
            continue
        out.append({"title": title, "object": object_name,
                    "object_label": service.registry.object(object_name).display_label(locale),
                    "href": url_for("web.record_detail", object_name=object_name, record_id=record_id)})
    return out
