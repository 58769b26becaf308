"""My tasks (overdue / today / upcoming), a week and month calendar of activities with due
dates, and "log a call / visit / note" in one step from any record an activity can relate to.

Everything is read and written through the record service as the logged-in user: the list
scope decides which activities the calendar shows, and logging creates an activity like any
other, so its hooks run (the related record's last_activity_at, the pools' protection clock).
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta

from flask import request, url_for

from ..clock import utcnow
from ..errors import CrmError, NotFound
from ..features import Routes
from ..web import display
from ..web.core import NavEntry, current_access, current_service, notify, redirect_to, render_page
from ..web.i18n import current_locale, format_date, t

routes = Routes()
ACTIVITY = "activity"
LOG_TYPES = ("call", "visit", "note")
PAGE = 200


def today() -> date:
    return utcnow().date()


def _can_read(access) -> bool:
    try:
        return access.registry.has_object(ACTIVITY) and access.can(ACTIVITY, "read")
    except Exception:  # noqa: BLE001 - no activity object in this metadata
        return False


def _row(service, obj, item: dict, names: display.Names, locale: str) -> dict:
    related = obj.fields.get("related_to")
    type_f = obj.fields.get("type")
    return {
        "id": item["id"], "subject": item.get("subject") or display.record_title(obj, item),
        "href": url_for("web.record_detail", object_name=ACTIVITY, record_id=item["id"]),
        "type": display.show(type_f, item.get("type"), names, item).text if type_f else "",
        "related": display.show(related, item.get("related_to"), names, item) if related and item.get("related_to")
        else None,
        "due": format_date(item["due_date"], locale) if item.get("due_date") else "",
        "due_raw": item.get("due_date"), "version": item.get("version"), "done": item.get("done"),
        "owner": names.name("user", item.get("owner")) if item.get("owner") else "",
    }


def _rows(service, items: list[dict]) -> list[dict]:
    obj = service.obj(ACTIVITY)
    names = display.Names(service)
    visible = [n for n in ("related_to", "owner", "type") if n in obj.all_fields]
    for item in items:
        names.want_record(obj, item, visible)
    names.resolve()
    locale = current_locale()
    return [_row(service, obj, item, names, locale) for item in items]


def my_tasks(service, day: date | None = None) -> dict[str, list[dict]]:
    """{overdue, today, upcoming}: the caller's open activities with a due date."""
    day = day or today()
    me = service.principal.user_id
    items, _ = service.list(ACTIVITY, filter={"owner": me, "done": {"ne": True}, "due_date": {"is_null": False}},
                            sort="due_date", limit=PAGE)
    iso = day.isoformat()
    buckets: dict[str, list[dict]] = {"overdue": [], "today": [], "upcoming": []}
    rows = _rows(service, items)
    for row in rows:
        due = str(row["due_raw"])
        buckets["overdue" if due < iso else "today" if due == iso else "upcoming"].append(row)
    return buckets


@routes.page("/tasks", endpoint="my_tasks")
def tasks_page():
    service = current_service()
    if not _can_read(service.access):
        raise NotFound("Unknown page.", code="not_found")
    buckets = my_tasks(service)
    return render_page("activities/tasks.html", title=t("tasks.title"), buckets=buckets,
                       total=sum(len(v) for v in buckets.values()),
                       can_edit=service.access.can(ACTIVITY, "edit"))


@routes.post("/tasks/<activity_id>/done", endpoint="task_done")
def task_done(activity_id: str):
    service = current_service()
    version = request.form.get("version")
    try:
        service.update(ACTIVITY, activity_id, {"done": True},
                       version=int(version) if version and version.isdigit() else None)
        notify(t("tasks.marked_done"))
    except CrmError as exc:
        if exc.status == 404:
            raise
        notify(t("tasks.not_done") + " " + exc.message, kind="error")
    back = request.form.get("back")
    return redirect_to("web.activity_calendar") if back == "calendar" else redirect_to("web.my_tasks")


def _parse_day(raw: str | None) -> date:
    try:
        return date.fromisoformat(raw) if raw else today()
    except ValueError:
        return today()


@routes.page("/calendar", endpoint="activity_calendar")
def calendar_page():
    service = current_service()
    if not _can_read(service.access):
        raise NotFound("Unknown page.", code="not_found")
    view = "week" if request.args.get("view") == "week" else "month"
    day = _parse_day(request.args.get("date"))
    if view == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=6)
        prev_day, next_day = start - timedelta(days=7), start + timedelta(days=7)
    else:
        first = day.replace(day=1)
        last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
        start = first - timedelta(days=first.weekday())
        end = last + timedelta(days=6 - last.weekday())
        prev_day = (first - timedelta(days=1)).replace(day=1)
        next_day = last + timedelta(days=1)
    items, more = service.list(ACTIVITY, filter={"due_date": {"between": [start.isoformat(), end.isoformat()]}},
                               sort="due_date", limit=PAGE)
    by_day: dict[str, list[dict]] = {}
    for row in _rows(service, items):
        by_day.setdefault(str(row["due_raw"]), []).append(row)
    locale = current_locale()
    weeks, cursor = [], start
    while cursor <= end:
        week = []
        for _ in range(7):
            week.append({"iso": cursor.isoformat(), "n": cursor.day, "label": format_date(cursor.isoformat(), locale),
                         "other": view == "month" and cursor.month != day.month, "today": cursor == today(),
                         "entries": by_day.get(cursor.isoformat(), []),
                         "weekday": t(f"calendar.day.{cursor.weekday()}")})
            cursor += timedelta(days=1)
        weeks.append(week)
    heading = (t("calendar.month_of", month=t(f"calendar.month.{day.month}"), year=day.year) if view == "month"
               else t("calendar.week_of", start=format_date(start.isoformat(), locale),
                      end=format_date(end.isoformat(), locale)))
    return render_page("activities/calendar.html", title=t("calendar.title"), view=view, weeks=weeks,
                       heading=heading, more=bool(more), count=len(items), day=day.isoformat(),
                       prev=url_for("web.activity_calendar", view=view, date=prev_day.isoformat()),
                       next=url_for("web.activity_calendar", view=view, date=next_day.isoformat()),
                       today_url=url_for("web.activity_calendar", view=view),
                       other_url=url_for("web.activity_calendar", view="month" if view == "week" else "week",
                                         date=day.isoformat()),
                       weekdays=[t(f"calendar.day.{i}") for i in range(7)])


# --- log a call / visit / note from a record ---------------------------------------------------


def _targets(registry) -> list[str]:
    if not registry.has_object(ACTIVITY):
        return []
    fdef = registry.object(ACTIVITY).fields.get("related_to")
    return list(fdef.target) if fdef is not None and fdef.is_reference else []


def record_panels(obj, record: dict) -> list[dict]:
    service = current_service()
    if obj.name not in _targets(service.registry) or not service.access.can(ACTIVITY, "create"):
        return []
    writable = {f.name for f in service.writable_fields(service.obj(ACTIVITY), True)[0]}
    if "related_to" not in writable:
        return []
    activity = service.obj(ACTIVITY)
    type_f = activity.fields.get("type")
    options = display.options(type_f, []) if type_f else []
    options = [o for o in options if o[0] in LOG_TYPES] or options
    from flask import g

    state = g.get("log_state") or {}
    return [{"template": "activities/log_panel.html",
             "action": url_for("web.log_activity", object_name=obj.name, record_id=record["id"]),
             "types": options, "form": state.get("values") or {"type": request.args.get("log") or "call"},
             "errors": state.get("errors") or {}, "message": state.get("message"),
             "has_followup": "due_date" in writable, "open": bool(state) or bool(request.args.get("log"))}]


@routes.post("/records/<object_name>/<record_id>/log", endpoint="log_activity")
def log_activity(object_name: str, record_id: str):
    from flask import g

    service = current_service()
    obj = service.obj(object_name)
    if obj.name not in _targets(service.registry):
        raise NotFound(f"Unknown object {object_name!r}.", code="unknown_object")
    record = service.get(obj.name, record_id)  # 404 unless readable
    form = {k: (request.form.get(k) or "").strip() for k in ("type", "subject", "notes", "follow_up")}
    errors: dict[str, str] = {}
    activity = service.obj(ACTIVITY)
    type_f = activity.fields.get("type")
    if type_f is not None and form["type"] not in type_f.option_values:
        errors["type"] = t("log.error.type")
    follow_up = None
    if form["follow_up"]:
        try:
            follow_up = date.fromisoformat(form["follow_up"])
        except ValueError:
            errors["follow_up"] = t("log.error.date")
    subject = form["subject"] or (display.option_label(type_f, form["type"]) if type_f and not errors.get("type")
                                  else "")
    if not subject:
        errors["subject"] = t("log.error.subject")
    if not errors:
        values = {"subject": subject[:200], "related_to": record["id"], "done": True, "due_date": today().isoformat()}
        if type_f is not None:
            values["type"] = form["type"]
        if form["notes"]:
            values["notes"] = form["notes"]
        try:
            with service.transaction():
                service.create(ACTIVITY, values)
                if follow_up is not None:
                    service.create(ACTIVITY, {"subject": t("log.follow_up_subject", subject=subject)[:200],
                                              "related_to": record["id"], "done": False,
                                              "due_date": follow_up.isoformat(),
                                              **({"type": "task"} if type_f and "task" in type_f.option_values
                                                 else {})})
        except CrmError as exc:
            if exc.status == 404:
                raise
            errors.update({k: "; ".join(v) if isinstance(v, list) else str(v) for k, v in (exc.fields or {}).items()
                           if k in ("type", "subject", "notes")})
            if "due_date" in (exc.fields or {}):
                errors["follow_up"] = "; ".join(exc.fields["due_date"])
            if not errors:
                errors["_"] = exc.message
    if errors:
        g.log_state = {"values": form, "errors": errors, "message": errors.get("_")}
        from ..web.record_views import record_detail

        body, _status = record_detail(obj.name, record["id"])
        return body, 422
    notify(t("log.done", subject=subject) + (" " + t("log.follow_up_done", date=format_date(follow_up.isoformat(),
                                                                                          current_locale()))
                                              if follow_up else ""))
    return redirect_to("web.record_detail", object_name=obj.name, record_id=record["id"])


def record_buttons(obj, record: dict) -> list[dict]:
    """One tap from the top of the record page (a phone's first screen) to the log form."""
    service = current_service()
    if obj.name not in _targets(service.registry) or not service.access.can(ACTIVITY, "create"):
        return []
    url = url_for("web.record_detail", object_name=obj.name, record_id=record["id"])
    return [{"id": "log-call", "label": t("log.call_button"), "url": f"{url}?log=call#log-activity", "method": "get"},
            {"id": "log-visit", "label": t("log.visit_button"), "url": f"{url}?log=visit#log-activity",
             "method": "get"}]


NAV = (NavEntry("my_tasks", "nav.my_tasks", "web.my_tasks", order=12, visible=_can_read),
       NavEntry("calendar", "nav.calendar", "web.activity_calendar", order=13, visible=_can_read))

__all__ = ["NAV", "current_access", "my_tasks", "record_buttons", "record_panels", "routes"]
