"""Record-action buttons on the detail page (e.g. Convert on a lead): the same actions and
permission checks as POST /api/v1/records/{object}/{id}/actions/{action}."""

from __future__ import annotations

from flask import url_for
from werkzeug.routing import BuildError

from .. import actions as shared
from ..errors import CrmError
from .core import current_service, notify, page, redirect_to
from .i18n import current_locale, t


def record_actions(object_name: str, record: dict) -> list[dict]:
    """[{"name", "label", "href"}] of the actions the user may run on this record (for
    detail.html); `href` is the action's dialog page, when it asks for parameters first."""
    service = current_service()
    try:
        typed = service.get_record(object_name, record["id"])
    except CrmError:
        return []
    found = []
    for a in shared.available(service, object_name, typed):
        href = None
        if a.dialog:
            try:
                href = url_for(a.dialog, record_id=record["id"])
            except BuildError:  # the page is not mounted on this app: the plain button
                href = None
        found.append({"name": a.name, "label": shared.label(a, current_locale()), "href": href})
    return found


@page("/records/<object_name>/<record_id>/actions/<action_name>", methods=("POST",))
def record_action(object_name: str, record_id: str, action_name: str):
    service = current_service()
    try:
        action, _result = shared.run(service, object_name, record_id, action_name, {})
        notify(t("actions.done", action=shared.label(action, current_locale())))
    except CrmError as exc:
        notify(t("actions.failed", action=action_name, message=exc.message), kind="error")
    return redirect_to("web.record_detail", object_name=object_name, record_id=record_id)
