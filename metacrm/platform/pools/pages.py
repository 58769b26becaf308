"""Public pools in the web UI: the pools a user belongs to, a pool's records with claim
(one or several) and, for pool admins, assign; release from a record's detail page.
Everything goes through the feature's browsing and claims functions, the ones the REST API calls."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import request, url_for

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
from . import browsing, claims
from .definitions import all_pools, pool_for_record, pools_by_object
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
    return t("pools.failure", reason=reason, code=code)


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
    obj = service.obj(info["object"])
    locale = current_locale()
    items, next_cursor = browsing.list_records(runtime(), current_principal(), pool_name, limit=PAGE_SIZE,
                                            cursor=request.args.get("cursor") or None)
    hidden = service.access.hidden_fields(obj.name)
    columns = [n for n in forms.layout_for(service, obj).list_columns
               if n not in hidden and n in obj.all_fields and n not in ("owner", obj.name_field)][:5]
    names = display.Names(service)
    for item in items:
        names.want_record(obj, item, columns)
    names.resolve()
    rows = [{"id": item["id"], "title": display.record_title(obj, item),
             "cells": [{"label": obj.all_fields[c].display_label(locale),
                        "shown": display.show(obj.all_fields[c], item.get(c), names, item)} for c in columns]}
            for item in items]
    return render_page(
        "pools/records.html", pool=info, obj=obj, rows=rows, title=info["label"],
        headers=[obj.all_fields[c].display_label(locale) for c in columns],
        users=active_users() if info["admin"] else [],
        next_url=url_for("web.pool_records", pool_name=pool_name, cursor=next_cursor) if next_cursor else None,
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
