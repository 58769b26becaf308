"""Duplicates and merge in the web UI: "Check duplicates" on a record's detail page (the
matches the active rules find that the user may read; the others only said to exist), and a
merge page (two or three records side by side, a surviving value per field, what moves, then
confirm). Both call the functions the REST API calls (checks.check, merging.merge), so the
rights are the API's: read to see a match, edit on the master and delete on the others to merge.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import abort, request, url_for

from .. import normalize
from ..errors import CrmError, Forbidden, NotFound, StaleVersion
from ..features import Routes
from ..filters import FilterContext, FilterError, compile_sql
from ..web import display
from ..web.core import NavEntry, current_service, notify, redirect_to, render_page
from ..web.form_views import error_text
from ..web.i18n import current_locale, t
from .checks import check
from .keys import ensure_keyed
from .merging import merge
from .rules import Rule, column_for, plan_for

routes = Routes()
page = routes.page

MAX_MERGED = 3
SKIPPED = {"id", "version", "created_at", "created_by", "updated_at", "updated_by", "deleted_at", "owner_since",
           "protected_until", "pool", "last_activity_at"}


def _object(service, name: str):
    obj = service.obj(name)
    if not service.access.can(obj.name, "read"):
        raise NotFound(f"Unknown object {name!r}.", code="unknown_object")
    return obj


def rule_label(registry, name: str) -> str:
    doc = registry.get("dedup_rule", name) or {}
    return display.label_text(doc.get("label"), current_locale(), name) if doc.get("label") else name


def _key(method: str, value: Any, region: str | None, default_region: str) -> str | None:
    if value is None:
        return None
    if method == "fuzzy":
        return normalize.company_name(value)
    return normalize.match_key(method, value, region or default_region)


def matching_fields(service, rule: Rule, record: dict, target: str, other: dict) -> list[str]:
    """The fields of `record` (labels) whose match keys equal `other`'s under `rule`."""
    obj = service.obj(rule.object)
    region = service.runtime.config.phone_region or "CN"
    names: list[str] = []
    for group in rule.groups:
        hits = []
        for cond in group:
            mine = _key(cond.method, record.get(cond.field), cond.region, region)
            theirs = _key(cond.method, other.get(cond.field_on(target, rule.object)), cond.region, region)
            same = bool(mine) and bool(theirs) and (
                normalize.similarity(mine, theirs) >= cond.threshold if cond.fuzzy else mine == theirs)
            if not same:
                break
            hits.append(cond.field)
        else:
            names.extend(n for n in hits if n not in names)
    locale = current_locale()
    return [obj.all_fields[n].display_label(locale) for n in names if n in obj.all_fields]


# --- check ----------------------------------------------------------------------------------


@page("/records/<object_name>/<record_id>/duplicates")
def record_duplicates(object_name: str, record_id: str):
    service = current_service()
    obj = _object(service, object_name)
    record = service.get_record(obj.name, record_id)  # 404 unless readable
    rules = {r.name: r for r in plan_for(service.registry).rules.get(obj.name, [])}
    if not rules:
        raise NotFound(f"No duplicate rule applies to {obj.name}.", code="no_dedup_rule")
    matches = check(service, obj.name, record_id=record_id)
    locale = current_locale()
    found: dict[tuple[str, str], dict] = {}
    hidden: list[dict] = []
    for match in matches:
        if match.get("hidden"):
            owners = match.get("owners") or []
            hidden.append({"rule": rule_label(service.registry, match["rule"]),
                           "text": t("dedup.hidden_held", owners=", ".join(owners)) if owners else t("dedup.hidden")})
            continue
        key = (match["object"], match["id"])
        if key not in found:
            target = service.obj(match["object"])
            other = service.get_record(target.name, match["id"])
            found[key] = {"object": target.name, "id": match["id"], "record": other,
                          "obj_label": target.display_label(locale), "title": display.record_title(target, other),
                          "href": url_for("web.record_detail", object_name=target.name, record_id=match["id"]),
                          "rules": [], "fields": [], "mergeable": target.name == obj.name}
        entry = found[key]
        rule = rules.get(match["rule"])
        entry["rules"].append(rule_label(service.registry, match["rule"]))
        if rule is not None:
            for label in matching_fields(service, rule, record, entry["object"], entry["record"]):
                if label not in entry["fields"]:
                    entry["fields"].append(label)
    items = list(found.values())
    return render_page(
        "dedup/check.html", obj=obj, record=record, items=items, hidden=hidden,
        title=t("dedup.check_title"), record_title=display.record_title(obj, record),
        back=url_for("web.record_detail", object_name=obj.name, record_id=record_id),
        can_merge=any(i["mergeable"] for i in items),
    )


# --- merge ----------------------------------------------------------------------------------


def _fields(service, obj) -> list:
    writable = {f.name for f in service.writable_fields(obj, False)[0]}
    hidden = service.access.hidden_fields(obj.name)
    return [f for name, f in obj.all_fields.items()
            if name in writable and name not in hidden and name not in SKIPPED and not f.system
            and f.type not in ("password", "formula", "rollup", "autonumber")]


def _moves(service, obj, losers: list[str]) -> list[dict]:
    """What merging.merge re-points: per child lookup, the live children of the losers."""
    locale = current_locale()
    out = []
    with service.runtime.reading() as conn:
        for child, fdef in service.registry.children_of(obj.name):
            if fdef.system:
                continue
            table = service.compiled.tables[child.name]
            condition = [table.c[fdef.name].in_(losers), table.c.deleted_at.is_(None)]
            if fdef.polymorphic:
                condition.append(table.c[f"{fdef.name}__object"] == obj.name)
            count = conn.execute(sa.select(sa.func.count()).select_from(table).where(*condition)).scalar()
            if count:
                out.append({"label": t("dedup.moves_line", count=display.group_digits(str(count)),
                                       object=child.display_label(locale, plural=True),
                                       field=fdef.display_label(locale))})
    return out


def _merge_ids() -> list[str]:
    source = request.form if request.method == "POST" else request.args
    ids = list(dict.fromkeys(i.strip() for i in source.getlist("ids") if i.strip()))
    return ids


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _build(service, obj, ids: list[str], master: str, chosen: dict[str, str]) -> dict:
    records = {rid: service.get_record(obj.name, rid) for rid in ids}  # 404 unless readable
    locale = current_locale()
    names = display.Names(service)
    fields = _fields(service, obj)
    for record in records.values():
        names.want_record(obj, record, [f.name for f in fields])
    names.resolve()
    rows = []
    for fdef in fields:
        values = [records[rid].get(fdef.name) for rid in ids]
        if all(_empty(v) for v in values):
            continue
        differ = any(v != values[0] for v in values)
        default = master if not _empty(records[master].get(fdef.name)) else next(
            rid for rid in ids if not _empty(records[rid].get(fdef.name)))
        pick = chosen.get(fdef.name) if chosen.get(fdef.name) in records else default
        rows.append({"name": fdef.name, "label": fdef.display_label(locale), "differ": differ,
                     "cells": [{"id": rid, "shown": display.show(fdef, records[rid].get(fdef.name), names,
                                                                 records[rid]),
                                "checked": rid == pick} for rid in ids]})
    columns = [{"id": rid, "title": display.record_title(obj, records[rid]), "version": records[rid]["version"],
                "href": url_for("web.record_detail", object_name=obj.name, record_id=rid),
                "master": rid == master,
                "can": service.access.allows_row(obj.name, "edit" if rid == master else "delete", records[rid])}
               for rid in ids]
    return {"records": records, "rows": rows, "columns": columns,
            "moves": _moves(service, obj, [rid for rid in ids if rid != master])}


@page("/records/<object_name>/merge", methods=("GET", "POST"))
def record_merge(object_name: str):
    service = current_service()
    obj = _object(service, object_name)
    ids = _merge_ids()
    if not 2 <= len(ids) <= MAX_MERGED:
        notify(t("dedup.choose_two"), "warning")
        if ids:
            return redirect_to("web.record_duplicates", object_name=obj.name, record_id=ids[0])
        return redirect_to("web.record_list", object_name=obj.name)
    source = request.form if request.method == "POST" else request.args
    master = (source.get("master") or ids[0]).strip()
    if master not in ids:
        abort(400)
    chosen = {key[2:]: value for key, value in source.items() if key.startswith("v.")}
    status, conflict, error = 200, False, None
    if request.method == "POST" and source.get("confirm") == "1":
        fields = {f.name for f in _fields(service, obj)}
        try:
            versions = {rid: int(request.form.get(f"version.{rid}", "")) for rid in ids}
        except ValueError:
            abort(400)
        values = {}
        for name, rid in chosen.items():
            if name not in fields or rid not in ids:
                abort(400)
            if rid != master:
                values[name] = {"from": rid}
        losers = [rid for rid in ids if rid != master]
        try:
            result = merge(service, obj.name, master, losers, values, versions)
        except StaleVersion:
            conflict, status = True, 409
        except Forbidden:
            raise
        except CrmError as exc:
            if exc.status == 404:
                raise
            error, status = error_text(service, exc), exc.status
        else:
            moved = sum(result["moved"].values())
            notify(t("dedup.merged", count=len(losers), moved=moved))
            return redirect_to("web.record_detail", object_name=obj.name, record_id=master)
    built = _build(service, obj, ids, master, chosen)
    return render_page(
        "dedup/merge.html", status, obj=obj, ids=ids, master=master, title=t("dedup.merge_title"),
        conflict=conflict, error=error, allowed=all(c["can"] for c in built["columns"]),
        back=url_for("web.record_detail", object_name=obj.name, record_id=ids[0]), **built,
    )


# --- duplicate groups in existing data -----------------------------------------------------

GROUPS_SHOWN = 50
MEMBERS_SHOWN = 10


def _rules_readable(service) -> list[Rule]:
    """The active rules on objects the user may read, in object then rule order."""
    plan = plan_for(service.registry)
    return [rule for name in sorted(plan.rules) if service.access.can(name, "read") for rule in plan.rules[name]]


SCANNED = 20000  # records a draft rule's group without key columns is computed over (in memory)
FUZZY_BUCKET = 200  # records compared pairwise within one candidate block


def _keyed_columns(service, obj, table, group) -> list | None:
    """The key columns of a rule group, when the live plan keeps them as this group computes them."""
    specs = plan_for(service.registry).specs.get(obj.name, {})
    cols = []
    for cond in group:
        column = column_for(cond.method, cond.field)
        spec = specs.get(column)
        if cond.fuzzy or spec is None or table.c.get(column) is None or spec.region != cond.region:
            return None
        cols.append(table.c[column])
    return cols


def _root(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _groups_in_memory(service, conn, table, where, group) -> list[tuple[list[str], int]]:
    """(ids, count) per set of records matching one rule group, keys computed from the field values:
    a draft rule's group has no key columns yet. Fuzzy conditions compare pairwise within blocks."""
    fields = [cond.field for cond in group]
    if any(name not in table.c for name in fields):
        return []
    region = service.runtime.config.phone_region or "CN"
    rows = conn.execute(sa.select(table.c.id, *(table.c[n] for n in dict.fromkeys(fields))).where(*where)
                        .order_by(table.c.created_at, table.c.id).limit(SCANNED)).fetchall()
    buckets: dict[tuple, list[tuple[str, list]]] = {}
    for row in rows:
        record = row._mapping
        keys, bucket = [], []
        for cond in group:
            key = _key(cond.method, record.get(cond.field), cond.region, region)
            if not key:
                break
            keys.append(key)
            bucket.append(normalize.block_key(key) if cond.fuzzy else key)
        else:
            buckets.setdefault(tuple(bucket), []).append((row.id, keys))
    found = []
    fuzzy = [i for i, cond in enumerate(group) if cond.fuzzy]
    for members in buckets.values():
        if len(members) < 2:
            continue
        if not fuzzy:
            found.append(([m[0] for m in members], len(members)))
            continue
        members = members[:FUZZY_BUCKET]
        parent = list(range(len(members)))
        for i in range(len(members)):
            for j in range(i + 1, len(members)):
                if all(normalize.similarity(members[i][1][k], members[j][1][k]) >= group[k].threshold
                       for k in fuzzy):
                    parent[_root(parent, j)] = _root(parent, i)
        sets: dict[int, list[str]] = {}
        for i, member in enumerate(members):
            sets.setdefault(_root(parent, i), []).append(member[0])
        found.extend((ids, len(ids)) for ids in sets.values() if len(ids) > 1)
    found.sort(key=lambda item: -item[1])
    return found


def duplicate_groups(service, rule: Rule, draft: bool = False) -> tuple[list[dict], bool]:
    """Groups of the rule object's records that share every match key of one rule group, among
    the records the user may read (so a group never reveals a record they cannot); fuzzy groups are
    left out (a group is an index lookup, fuzzy matching is pairwise). (groups, some were fuzzy).

    `draft`: the rule is not applied yet (the admin studio's "test on existing data"): a group
    whose key columns do not exist yet, or a fuzzy one, is computed from the field values of up
    to SCANNED records instead."""
    obj = service.obj(rule.object)
    table = service.compiled.tables[obj.name]
    ctx = FilterContext.current()
    base = [table.c.deleted_at.is_(None), service.access.row_filter(obj.name, "read", table)]
    if rule.ignore not in (None, {}):
        try:
            base.append(sa.not_(compile_sql(rule.ignore, table, obj.all_fields, ctx)))
        except FilterError:
            pass
    groups, seen, fuzzy = [], set(), False
    locale = current_locale()
    with service.transaction() as tx:
        ensure_keyed(tx, service.runtime, service.compiled)
        conn = tx.conn
        for group in rule.groups:
            labels = [obj.all_fields[c.field].display_label(locale) for c in group if c.field in obj.all_fields]
            cols = _keyed_columns(service, obj, table, group) if draft else None
            if draft and cols is None:
                for ids, count in _groups_in_memory(service, conn, table, base, group)[:GROUPS_SHOWN]:
                    ids = ids[:MEMBERS_SHOWN]
                    if tuple(ids) not in seen:
                        seen.add(tuple(ids))
                        groups.append({"ids": ids, "count": count, "fields": labels})
                continue
            if any(cond.fuzzy for cond in group):
                fuzzy = True
                continue
            cols = [table.c.get(column_for(cond.method, cond.field)) for cond in group]
            if any(col is None for col in cols):
                continue
            where = [*base, *(sa.and_(col.isnot(None), col != "") for col in cols)]
            keys = conn.execute(sa.select(*cols, sa.func.count().label("n")).where(*where).group_by(*cols)
                                .having(sa.func.count() > 1).order_by(sa.desc("n"), *cols)
                                .limit(GROUPS_SHOWN)).fetchall()
            for key in keys:
                ids = conn.execute(sa.select(table.c.id).where(
                    *where, *(col == value for col, value in zip(cols, key[:len(cols)])))
                    .order_by(table.c.created_at, table.c.id).limit(MEMBERS_SHOWN)).scalars().all()
                if tuple(ids) in seen:
                    continue
                seen.add(tuple(ids))
                groups.append({"ids": ids, "count": key.n, "fields": labels})
    names = display.Names(service)
    for group in groups:
        for rid in group["ids"]:
            names.want(obj.name, rid)
    names.resolve()
    for group in groups:
        group["members"] = [{"id": rid, "title": names.name(obj.name, rid) or rid,
                             "href": url_for("web.record_detail", object_name=obj.name, record_id=rid)}
                            for rid in group["ids"]]
        group["merge"] = url_for("web.record_merge", object_name=obj.name, ids=group["ids"][:MAX_MERGED])
    return groups[:GROUPS_SHOWN], fuzzy


@page("/duplicates")
def duplicate_rules():
    service = current_service()
    locale = current_locale()
    items = [{"name": r.name, "label": rule_label(service.registry, r.name),
              "object": service.obj(r.object).display_label(locale, plural=True),
              "href": url_for("web.duplicate_rule_groups", rule_name=r.name)} for r in _rules_readable(service)]
    return render_page("dedup/rules.html", rules=items, title=t("dedup.rules_title"))


@page("/duplicates/<rule_name>")
def duplicate_rule_groups(rule_name: str):
    service = current_service()
    rule = next((r for r in _rules_readable(service) if r.name == rule_name), None)
    if rule is None:
        raise NotFound(f"No duplicate rule named {rule_name!r}.", code="unknown_rule")
    groups, fuzzy = duplicate_groups(service, rule)
    obj = service.obj(rule.object)
    return render_page("dedup/groups.html", rule_label=rule_label(service.registry, rule.name), obj=obj,
                       groups=groups, fuzzy=fuzzy, capped=len(groups) >= GROUPS_SHOWN,
                       title=rule_label(service.registry, rule.name), max_merged=MAX_MERGED)


def _may_browse(access) -> bool:
    plan = plan_for(access.registry)
    return any(access.can(name, "read") for name in plan.rules)


NAV = (NavEntry("duplicates", "nav.duplicates", "web.duplicate_rules", order=55, visible=_may_browse),)


# --- detail-page button ---------------------------------------------------------------------


def record_buttons(obj, record: dict) -> list[dict]:
    """"Check duplicates" on a record whose object has an active duplicate rule."""
    if not plan_for(current_service().registry).rules.get(obj.name):
        return []
    return [{"id": "check-duplicates", "label": t("dedup.check"), "method": "get",
             "url": url_for("web.record_duplicates", object_name=obj.name, record_id=record["id"])}]
