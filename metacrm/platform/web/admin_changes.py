"""Admin → Change log: every metadata change (who, when, how, a readable diff of each document),
a document's own history ("who removed that field?"), and revert of an entry or one of its
documents: a preview with the diff the revert would apply (documents and storage, refused
values, exactly as the raw editor's preview), then apply, recorded as a change of its own.
The log itself is platform/changelog.py; every page here is for metadata admins only."""

from __future__ import annotations

import difflib

import sqlalchemy as sa
from flask import request, url_for

from ...metadata.model import label_text
from ...metadata.schema import KINDS
from .. import changelog
from ..errors import BadRequest, MetadataInvalid, NotFound, StaleVersion
from ..i18n import format_datetime
from .admin import _issues, _line_kind, _pretty, _require_admin
from .core import NavEntry, add_nav, notify, page, redirect_to, render_page, runtime
from .i18n import current_locale, t

PAGE_SIZE = 25


def _names(user_ids: set[str]) -> dict[str, str]:
    """Display names of the users who made changes (deleted users too: the log outlives them)."""
    ids = sorted(u for u in user_ids if u and u != changelog.SYSTEM)
    if not ids:
        return {}
    users = runtime().compiled().tables["user"]
    with runtime().reading() as conn:
        rows = conn.execute(sa.select(users.c.id, users.c.display_name, users.c.username).where(users.c.id.in_(ids)))
        return {r.id: (r.display_name or "").strip() or r.username or r.id for r in rows}


def kind_text(kind: str) -> str:
    """A metadata kind as an admin reads it ("Duplicate rule", "查重规则"); the code if unknown."""
    key = f"kind.{kind}"
    text = t(key)
    return text if text != key else kind


def document_title(kind: str, name: str, *bodies: dict | None) -> str:
    """A document's own label in the reader's language (from the live document, else the
    stored copy of the change), falling back to its name."""
    live = runtime().registry().get(kind, name)
    for body in (live, *bodies):
        if isinstance(body, dict) and body.get("label"):
            return label_text(body["label"], current_locale(), name)
    return name


def _described(d: dict) -> dict:
    return {**d, "action_text": t(f"changes.action_{d['action']}"), "kind_text": kind_text(d["kind"]),
            "title": document_title(d["kind"], d["name"], d.get("after"), d.get("before"))}


def _who(entry: dict, names: dict[str, str]) -> str:
    user = entry["user"]
    text = t("changes.system") if user == changelog.SYSTEM else names.get(user) or user
    if entry.get("plugin"):
        text = t("changes.by_plugin", plugin=entry["plugin"], user=text)
    return text


def _via(entry: dict) -> str:
    key = f"changes.via_{entry['via']}"
    text = t(key)
    return text if text != key else entry["via"]


def _shown(entry: dict, names: dict[str, str]) -> dict:
    return {**entry, "who": _who(entry, names), "via_text": _via(entry),
            "when": format_datetime(entry["at"], current_locale()),
            "href": url_for("web.admin_change", change_id=entry["id"]),
            "storage_lines": storage_lines(entry.get("storage") or {})}


def storage_lines(storage: dict) -> list[str]:
    """The storage diff as readable lines in the reader's language (tables and columns are the
    real names: that is what a DBA looks for)."""
    out = [t("changes.st_new_table", table=name) for name in storage.get("new_tables") or []]
    out += [t("changes.st_new_column", table=c["table"], column=c["column"], type=c["type"])
            for c in storage.get("new_columns") or []]
    for key in ("restored_column", "archived_column", "new_index"):
        out += [t(f"changes.st_{key}", table=c["table"], column=c["column"]) for c in storage.get(f"{key}s") or []]
    out += [t("changes.st_changed_column", table=c.get("table"), column=c.get("column"), old=c.get("old_type"),
              new=c.get("new_type")) for c in storage.get("changed_columns") or []]
    out += [t("changes.st_dropped_index", table=c.get("table"), index=c.get("index"))
            for c in storage.get("dropped_indexes") or []]
    return out


def _filters() -> tuple[changelog.Filters, dict]:
    args = request.args
    values = {k: changelog.check_parameter((args.get(k) or "").strip(), k) or "" for k in ("kind", "document", "user")}
    if values["kind"] and values["kind"] not in KINDS:
        raise BadRequest(t("changes.bad_kind", kind=values["kind"]))
    document = None
    if values["document"]:
        kind, sep, name = values["document"].partition("/")
        if not sep or not kind or not name:
            raise BadRequest(t("changes.bad_document"))
        document = (kind, name)
    return changelog.Filters(kind=values["kind"] or None, document=document, user=values["user"] or None), values


def _history_link(kind: str, name: str) -> str:
    return url_for("web.admin_changes", document=f"{kind}/{name}")


@page("/admin/changes")
def admin_changes():
    _require_admin()
    filters, values = _filters()
    with runtime().reading() as conn:
        items, cursor = changelog.list_changes(conn, filters, PAGE_SIZE, request.args.get("cursor") or None)
        actors = changelog.actors(conn)
    names = _names({*actors, *(i["user"] for i in items)})
    entries = [_shown(i, names) for i in items]
    for entry in entries:
        entry["docs"] = [{**_described(d), "history": _history_link(d["kind"], d["name"])}
                         for d in entry["documents"]]
    query = {k: v for k, v in values.items() if v}
    older = url_for("web.admin_changes", **query, cursor=cursor) if cursor else None
    newest = url_for("web.admin_changes", **query) if request.args.get("cursor") else None
    users = [(u, t("changes.system") if u == changelog.SYSTEM else names.get(u) or u) for u in actors]
    document_href = None
    if filters.document and runtime().registry().get(*filters.document) is not None:
        document_href = url_for("web.admin_document", kind=filters.document[0], name=filters.document[1])
    kinds = [(k, kind_text(k)) for k in KINDS]
    return render_page("admin/changes.html", entries=entries, values=values, kinds=kinds, users=users,
                       older=older, newest=newest, document=values["document"], document_href=document_href,
                       filtered=bool(query))


def _entry(change_id: int) -> dict:
    if not 0 < change_id <= changelog.MAX_ID:
        raise NotFound(f"No metadata change {change_id}.", code="unknown_change")
    with runtime().reading() as conn:
        return changelog.get_change(conn, change_id)


def _doc_diff(kind: str, name: str, before: dict | None, after: dict | None,
              labels: tuple[str, str] = ("changes.before", "changes.after")) -> list[dict]:
    old = _pretty(before).splitlines() if before is not None else []
    new = _pretty(after).splitlines() if after is not None else []
    return [{"text": line, "kind": _line_kind(line)}
            for line in difflib.unified_diff(old, new, f"{kind}/{name} ({t(labels[0])})",
                                             f"{kind}/{name} ({t(labels[1])})", lineterm="", n=2)]


def _revert_diff(plan: changelog.RevertPlan) -> list[dict]:
    """What the revert does to each live document, line by line (as the raw editor's preview)."""
    registry = runtime().registry()
    labels = ("changes.live", "changes.after_revert")
    lines = []
    for doc in plan.documents:
        lines += _doc_diff(doc["kind"], doc["name"], registry.get(doc["kind"], doc["name"]), doc, labels)
    for kind, name in plan.deletes:
        lines += _doc_diff(kind, name, registry.get(kind, name), None, labels)
    return lines


@page("/admin/changes/<int:change_id>")
def admin_change(change_id: int):
    _require_admin()
    entry = _entry(change_id)
    names = _names({entry["user"]})
    shown = _shown(entry, names)
    docs = []
    for d in entry["documents"]:
        docs.append({**_described(d),
                     "summary": [(t(f"changes.{what}"), text) for what, text in
                                 changelog.summary(d["kind"], d["before"], d["after"])],
                     "diff": _doc_diff(d["kind"], d["name"], d["before"], d["after"]),
                     "history": _history_link(d["kind"], d["name"]),
                     "revert": url_for("web.admin_change_revert", change_id=change_id,
                                       document=f"{d['kind']}/{d['name']}")})
    reverts = url_for("web.admin_change", change_id=entry["reverts"]) if entry.get("reverts") else None
    return render_page("admin/change.html", entry=shown, docs=docs, reverts=reverts,
                       revert_all=url_for("web.admin_change_revert", change_id=change_id) if len(docs) > 1 else None)


def _revert_outcome(change_id: int, document: tuple[str, str] | None, apply: bool) -> dict:
    """Preview (or apply) a revert: the raw editor's outcome context (diff, storage, issues)."""
    try:
        with runtime().reading() as conn:
            plan = changelog.revert_plan(conn, change_id, document)
        text_diff = _revert_diff(plan)
        result = changelog.revert(runtime(), change_id, document, dry_run=not apply)
    except MetadataInvalid as exc:
        return {"issues": _issues(exc), "status": 400}
    except StaleVersion as exc:
        stale = exc.extra.get("stale", [])
        return {"issues": [{"document": s["document"], "path": "/", "message": t("changes.stale", change=change_id)}
                           for s in stale], "status": 409, "stale": True}
    except BadRequest as exc:
        return {"issues": [{"document": "", "path": "/", "message": t("changes.nothing_to_revert")
                            if exc.code == "nothing_to_revert" else exc.message}], "status": 400}
    diff = result.diff
    docs = diff.get("documents", {})
    storage = storage_lines(diff.get("storage", {}))
    unchanged = not (docs.get("added") or docs.get("changed") or docs.get("removed") or storage)
    return {"result": result, "docs_diff": docs, "storage": storage, "unchanged": unchanged,
            "text_diff": text_diff, "status": 200}


@page("/admin/changes/<int:change_id>/revert", methods=("GET", "POST"))
def admin_change_revert(change_id: int):
    _require_admin()
    entry = _entry(change_id)
    raw = (request.values.get("document") or "").strip()
    document = None
    if raw:
        kind, _, name = raw.partition("/")
        document = (kind, name)
        if not any((d["kind"], d["name"]) == document for d in entry["documents"]):
            raise NotFound(t("changes.not_in_change", document=raw, change=change_id), code="unknown_document")
    apply = request.method == "POST"
    outcome = _revert_outcome(change_id, document, apply)
    if apply and "result" in outcome:
        with runtime().reading() as conn:
            new_id = changelog.change_for_version(conn, outcome["result"].version)
        notify(t("changes.reverted", change=change_id, version=outcome["result"].version)
               if not outcome["unchanged"] else t("admin.no_changes"))
        return redirect_to("web.admin_change", change_id=new_id) if new_id and not outcome["unchanged"] \
            else redirect_to("web.admin_change", change_id=change_id)
    status = outcome.pop("status")
    stale = outcome.pop("stale", False)
    names = _names({entry["user"]})
    targets = [f"{d['kind']}/{d['name']}" for d in entry["documents"]
               if document is None or (d["kind"], d["name"]) == document]
    return render_page("admin/change_revert.html", status, entry=_shown(entry, names), document=raw,
                       targets=targets, stale=stale, can_apply="result" in outcome and not outcome["unchanged"],
                       **outcome)


add_nav(NavEntry("admin_changes", "nav.admin_changes", "web.admin_changes", section="admin", order=30,
                 visible=lambda access: access.has_permission("metadata.apply")))
