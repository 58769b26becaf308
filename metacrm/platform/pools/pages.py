"""Public pools in the web UI: the pools a user belongs to, a pool's records with claim
(one or several) and, for pool admins, assign; release from a record's detail page.
Everything goes through the feature's browsing and claims functions, the ones the REST API calls."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from flask import request, url_for

from ..clock import utcnow
from ..errors import BadRequest, Conflict, CrmError, NotFound
from ..features import Routes
from ..web import display, forms
from ..web.core import (
    NavEntry,
    current_principal,
    current_service,
    notify,
    redirect_to,
    render_page,
    runtime,
    wants_form_value,
)
from ..web.i18n import current_locale, t
from . import browsing, claims, recycle
from .definitions import all_pools, get_pool, pool_for_record, pools_by_object
from .people import People, is_member

routes = Routes()
page = routes.page

PAGE_SIZE = 25
LIMIT_CODES = ("not_in_pool", "reclaim_cooldown", "max_held", "max_per_day", "not_found")


def _pool_info(pool_name: str) -> dict:
    """The pool as list_pools shows it (label, count, admin, limits); 404 unless a member."""
    found = [p for p in browsing.list_pools(runtime(), current_principal(), current_locale()) if p["name"] == pool_name]
    if not found:
        raise NotFound(f"No pool named {pool_name!r}.", code="unknown_pool")
    return found[0]


def active_users() -> list[tuple[str, str]]:
    """(id, name) of every active user, for the assign form (names only, no record data)."""
    users = current_service().table("user")
    with runtime().reading() as conn:
        rows = conn.execute(
            sa.select(users.c.id, users.c.username, users.c.display_name)
            .where(users.c.deleted_at.is_(None), users.c.active.isnot(False)).order_by(users.c.username)
        ).fetchall()
    return [(r.id, f"{r.display_name} ({r.username})" if r.display_name else r.username) for r in rows]


def failure_text(failure: dict, limits: dict) -> str:
    """A claim / assign failure as a sentence in the user's language, with its code."""
    code = failure.get("code") or ""
    values: dict[str, Any] = {}
    if code == "max_held":
        values["limit"] = limits.get("max_held")
    elif code == "max_per_day":
        values["limit"] = limits.get("max_per_day")
    elif code == "reclaim_cooldown":
        values["until"] = display.datetime_text(failure.get("until") or "")
    reason = t(f"pools.code.{code}", **values) if code in LIMIT_CODES else failure.get("message") or code
    return t("pools.failure", reason=reason)


def _ids() -> list[str]:
    one = wants_form_value("one")
    if one:
        return [one]
    return [i for i in request.form.getlist("ids") if i]


# --- pages -----------------------------------------------------------------------------------


@page("/pools")
def pool_list():
    registry = current_service().registry
    locale = current_locale()
    items = browsing.list_pools(runtime(), current_principal(), locale)
    for item in items:
        item["object_label"] = (registry.object(item["object"]).display_label(locale, plural=True)
                                if registry.has_object(item["object"]) else item["object"])
    return render_page("pools/list.html", pools=items, title=t("pools.title"))


@page("/pools/<pool_name>")
def pool_records(pool_name: str):
    service = current_service()
    info = _pool_info(pool_name)
    pool = get_pool(service.registry, pool_name)
    obj = service.obj(info["object"])
    locale = current_locale()
    items, next_cursor = browsing.list_records(runtime(), current_principal(), pool_name, limit=PAGE_SIZE,
                                            cursor=request.args.get("cursor") or None)
    hidden = service.access.hidden_fields(obj.name)
    held, capped = _held_rows(service, pool, obj)
    columns = [n for n in forms.layout_for(service, obj).list_columns
               if n not in hidden and n in obj.all_fields and n not in ("owner", obj.name_field)][:5]
    names = display.Names(service)
    for item in items:
        names.want_record(obj, item, columns)
    names.resolve()
    rows = [{"id": item["id"], "title": display.record_title(obj, item),
             "href": url_for("web.pool_record", pool_name=pool_name, record_id=item["id"]),
             "cells": [{"label": obj.all_fields[c].display_label(locale),
                        "shown": display.show(obj.all_fields[c], item.get(c), names, item)} for c in columns]}
            for item in items]
    return render_page(
        "pools/records.html", pool=info, obj=obj, rows=rows, title=info["label"],
        headers=[obj.all_fields[c].display_label(locale) for c in columns],
        users=active_users() if info["admin"] else [],
        recycle_rules=_recycle_rules(pool, locale), held=held[:HELD_SHOWN], held_count=f"{len(held)}+" if capped else len(held),
        held_soon=sum(1 for h in held if h["soon"]),
        next_url=url_for("web.pool_records", pool_name=pool_name, cursor=next_cursor) if next_cursor else None,
    )


def _recycle_rules(pool, locale: str) -> list[str]:
    """The pool's recycle rules as members read them (their label, else the history reason)."""
    return [display.label_text(rule.get("label"), locale, rule.get("reason") or "") if rule.get("label")
            else rule.get("reason") or "" for rule in pool.recycle]


def _time_left(until: datetime, now: datetime) -> str:
    """'in 2 days' / 'in 5 hours' / 'due now', in the reader's language."""
    seconds = int((until - now).total_seconds())
    if seconds <= 0:
        return t("pools.due_now")
    days, hours = seconds // 86400, max(1, seconds // 3600)
    if days >= 2:
        return t("pools.in_days", count=days)
    if days == 1:
        return t("pools.in_one_day")
    return t("pools.in_hours", count=hours) if hours > 1 else t("pools.in_one_hour")


HELD_SHOWN = 10
HELD_SCANNED = 200  # the viewer's longest-held records looked at (the ones the rules reach first)


def _typed(obj, item: dict) -> dict:
    """A listed record (JSON values) with its dates and times typed again, as the recycle rules read them."""
    out = dict(item)
    for name, fdef in obj.all_fields.items():
        value = out.get(name)
        if not isinstance(value, str) or not value:
            continue
        try:
            if fdef.type == "datetime":
                out[name] = datetime.fromisoformat(value.rstrip("Z")).replace(tzinfo=None)
            elif fdef.type == "date":
                out[name] = date.fromisoformat(value)
        except ValueError:
            pass
    return out


def _held_rows(service, pool, obj) -> tuple[list[dict], bool]:
    """The viewer's own open records of this pool's population, soonest recycle first, with the
    time left before each goes back (the rules the sweep runs, read for each record)."""
    principal = current_principal()
    if principal is None or not pool.recycle or not service.access.can(obj.name, "read"):
        return [], False
    flt: dict = {"owner": principal.user_id}
    if pool.entry:
        flt = {"all": [pool.entry, flt]}
    try:
        items, _ = service.list(obj.name, filter=flt, sort="owner_since", limit=HELD_SCANNED)
    except CrmError:
        return [], False
    capped = len(items) == HELD_SCANNED
    items = [_typed(obj, item) for item in items]
    now = utcnow()
    locale = current_locale()
    rows = []
    for item in items:
        found = pool_for_record(service.registry, obj, item)
        if found is None or found.name != pool.name:
            continue
        best = None
        for rule in pool.recycle:
            due = recycle.earliest_due(rule, obj, item, now)
            if due is None:
                continue
            if item.get("protected_until") and item["protected_until"] > due:
                due = item["protected_until"]
            if best is None or due < best[0]:
                best = (due, rule)
        if best is None:
            continue
        rows.append({"id": item["id"], "title": display.record_title(obj, item), "due": best[0],
                     "when": display.datetime_text(best[0].isoformat(timespec="seconds") + "Z"),
                     "left": _time_left(best[0], now),
                     "soon": (best[0] - now).total_seconds() < max(pool.warn_days, 1) * 86400,
                     "rule": _recycle_rules(pool, locale)[pool.recycle.index(best[1])],
                     "href": url_for("web.record_detail", object_name=obj.name, record_id=item["id"])})
    rows.sort(key=lambda r: r["due"])
    return rows, capped


@page("/pools/<pool_name>/records/<record_id>")
def pool_record(pool_name: str, record_id: str):
    """A waiting record as a member sees it before claiming: the layout's fields the member may
    read, read-only, with Claim (and Assign for pool admins). 404 once it left the pool."""
    service = current_service()
    info = _pool_info(pool_name)
    obj = service.obj(info["object"])
    items, _ = browsing.list_records(runtime(), current_principal(), pool_name, filter={"id": record_id}, limit=1)
    if not items:
        raise NotFound("This record is no longer in the pool.", code="not_in_pool")
    item = items[0]
    locale = current_locale()
    hidden = service.access.hidden_fields(obj.name)
    layout = forms.layout_for(service, obj, item.get("record_type"))
    names = display.Names(service)
    names.want_record(obj, item, [n for s in layout.sections for n in s.fields])
    names.resolve()
    sections = []
    for section in layout.sections:
        cells = [{"name": n, "label": obj.all_fields[n].display_label(locale),
                  "shown": display.show(obj.all_fields[n], item.get(n), names, item),
                  "long": obj.all_fields[n].type in forms.LONG_TYPES}
                 for n in section.fields if n in obj.all_fields and n not in hidden and n in item
                 and obj.all_fields[n].type != "password"]
        if cells:
            sections.append({"label": section.label, "columns": section.columns, "cells": cells})
    return render_page(
        "pools/record.html", pool=info, obj=obj, record=item, sections=sections,
        title=display.record_title(obj, item), users=active_users() if info["admin"] else [],
    )


@page("/pools/<pool_name>/claim", methods=("POST",))
def pool_claim(pool_name: str):
    info = _pool_info(pool_name)
    ids = _ids()
    if not ids:
        notify(t("pools.none_selected"), "warning")
        return redirect_to("web.pool_records", pool_name=pool_name)
    result = claims.claim(runtime(), current_principal(), pool_name, ids)
    if result["claimed"]:
        notify(t("pools.claimed", count=len(result["claimed"])))
    for failure in result["failed"]:
        notify(failure_text(failure, info["limits"]), "error")
    if wants_form_value("after") == "record" and len(ids) == 1 and result["claimed"]:
        return redirect_to("web.record_detail", object_name=info["object"], record_id=ids[0])
    return redirect_to("web.pool_records", pool_name=pool_name)


@page("/pools/<pool_name>/assign", methods=("POST",))
def pool_assign(pool_name: str):
    info = _pool_info(pool_name)
    ids = _ids()
    user = wants_form_value("user")
    if not ids or not user:
        notify(t("pools.assign_missing"), "warning")
        return redirect_to("web.pool_records", pool_name=pool_name)
    try:
        result = claims.assign(runtime(), current_principal(), pool_name, ids, user)
    except BadRequest as exc:
        notify(exc.message, "error")
        return redirect_to("web.pool_records", pool_name=pool_name)
    if result["assigned"]:
        names = dict(active_users())
        notify(t("pools.assigned", count=len(result["assigned"]), user=names.get(result["user"], result["user"])))
    for failure in result["failed"]:
        notify(failure_text(failure, info["limits"]), "error")
    return redirect_to("web.pool_records", pool_name=pool_name)


@page("/records/<object_name>/<record_id>/release", methods=("GET", "POST"))
def pool_release(object_name: str, record_id: str):
    service = current_service()
    obj = service.obj(object_name)
    record = service.get_record(obj.name, record_id)  # 404 unless readable
    pool = pool_for_record(service.registry, obj, record)
    back = url_for("web.record_detail", object_name=obj.name, record_id=record_id)
    if request.method == "POST":
        try:
            claims.release(runtime(), current_principal(), obj.name, record_id, wants_form_value("reason") or None)
        except Conflict as exc:
            notify(t(f"pools.release_{exc.code}") if exc.code in ("no_pool", "not_owned") else exc.message, "error")
            return redirect_to("web.record_detail", object_name=obj.name, record_id=record_id)
        except CrmError as exc:
            if exc.status == 404:
                raise
            notify(exc.message, "error")
            return redirect_to("web.record_detail", object_name=obj.name, record_id=record_id)
        notify(t("pools.released", pool=display.label_text(pool.label, current_locale(), pool.name) if pool else ""))
        try:
            service.get_record(obj.name, record_id)
        except CrmError:  # the owner's role reads only its own records: back to the pool
            if pool is not None:
                return redirect_to("web.pool_records", pool_name=pool.name)
            return redirect_to("web.record_list", object_name=obj.name)
        return redirect_to("web.record_detail", object_name=obj.name, record_id=record_id)
    return render_page(
        "pools/release.html", obj=obj, record=record, back=back, title=t("pools.release_title"),
        record_title=display.record_title(obj, record),
        pool_label=display.label_text(pool.label, current_locale(), pool.name) if pool else None,
    )


# --- navigation ------------------------------------------------------------------------------


def _member_of_any(access) -> bool:
    people = People.of(runtime())
    return any(is_member(people, access, p) for p in all_pools(access.registry))


def record_buttons(obj, record: dict) -> list[dict]:
    """"Release to the pool" for the owner of a record whose object has a pool."""
    principal = current_principal()
    if not pools_by_object(current_service().registry).get(obj.name) or not record.get("owner") \
            or principal is None or record["owner"] != principal.user_id:
        return []
    return [{"id": "release-record", "label": t("pools.release"), "method": "get",
             "url": url_for("web.pool_release", object_name=obj.name, record_id=record["id"])}]


# Navigation this feature adds (FEATURE.nav).
NAV = (NavEntry("pools", "nav.pools", "web.pool_list", order=50, visible=_member_of_any),)
