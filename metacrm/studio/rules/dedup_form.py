"""Admin → Rules → a duplicate rule: every option `dedup_rule.schema.json` knows, as form inputs,
and "Test on existing data".

Object (chosen first, fixed afterwards), labels, the objects compared with (cross-object), the
match groups (two records are duplicates when ANY group matches; a group matches when ALL its
conditions do): per condition the field, how it is compared (the normaliser), the fuzzy
threshold (as a percentage), the field on the other object and the default phone region; the
records never checked (condition rows); and what happens per entry path (create, update, import).

"Test on existing data" runs the rule as written, unsaved, through the duplicate-groups page's
group finder (dedup.pages.duplicate_groups, draft mode: keys computed from the values where the
key columns do not exist yet) over the records the admin may read.
"""

from __future__ import annotations

import copy
from typing import Any

from flask import request, url_for

from ...platform.dedup import pages as dedup_pages
from ...platform.dedup.rules import _rule_from_doc
from ...platform.errors import NotFound
from ...platform.web import display
from ...platform.web.admin import _require_admin
from ...platform.web.condition_rows import field_choices, row_kind
from ...platform.web.core import current_service, notify, redirect_to, render_page
from ...platform.web.i18n import current_locale, t
from . import common
from .pages import page
from .pool_form import _condition_values, _read_condition

KIND = "dedup_rule"
METHODS = ("exact", "normalized", "company_name", "email", "phone", "fuzzy")
ON_CREATE = ("block", "warn", "none")
ON_IMPORT = ("report", "block", "warn", "none")
MAX_GROUPS = 10
MAX_CONDS = 10
EXAMPLES = 5
MATCHABLE = ("text", "textarea", "email", "phone", "url", "picklist", "autonumber", "lookup", "user", "integer")


def _matchable(obj) -> list[tuple[str, str]]:
    locale = current_locale()
    out = [(n, f.display_label(locale)) for n, f in obj.all_fields.items()
           if f.type in MATCHABLE and not f.system]
    return sorted(out, key=lambda pair: pair[1].casefold())


def doc_values(doc: dict) -> dict:
    registry = current_service().registry
    obj = registry.object(doc["object"])
    label = doc.get("label") or {}
    label = {"en": label} if isinstance(label, str) else label
    values: dict[str, Any] = {
        "name": doc.get("name", ""), "object": doc["object"], "label_en": label.get("en", ""),
        "label_zh": label.get("zh-CN", ""), "description": doc.get("description", ""),
        "active": doc.get("active", True) is not False, "compare": list(doc.get("compare_with") or [doc["object"]]),
        "on_create": doc.get("on_create", ""), "on_update": doc.get("on_update", ""),
        "on_import": doc.get("on_import", ""),
    }
    groups = []
    for group in doc.get("match_any") or []:
        conds = []
        for cond in group.get("all") or []:
            threshold = cond.get("threshold")
            conds.append({"field": cond.get("field", ""), "method": cond.get("method", "exact"),
                          "threshold": "" if threshold is None else f"{round(float(threshold) * 100, 1):g}",
                          "other_field": cond.get("other_field", ""), "region": cond.get("region", "")})
        groups.append(conds)
    values["groups"] = groups
    values.update(_condition_values("ignore", doc.get("ignore"), obj.all_fields))
    return values


def read_form(live: dict | None, object_name: str) -> tuple[dict, dict, dict]:
    registry = current_service().registry
    obj = registry.object(object_name)
    form = request.form
    values: dict[str, Any] = {k: (form.get(k) or "").strip() for k in (
        "name", "label_en", "label_zh", "description", "on_create", "on_update", "on_import")}
    values["object"] = object_name
    values["active"] = bool(form.get("active"))
    errors: dict[str, Any] = {}
    name = common.document_name(KIND, values, errors, live is None, live and live["name"])
    doc: dict[str, Any] = copy.deepcopy(live) if live else {}
    doc.update({"kind": KIND, "name": name, "object": object_name})
    label = common.labels_of(values, errors)
    if label is not None:
        doc["label"] = label
    if values["description"]:
        doc["description"] = values["description"]
    else:
        doc.pop("description", None)
    compare = common.in_order([c for c in dict.fromkeys(form.getlist("compare")) if c],
                              (live or {}).get("compare_with"))
    values["compare"] = compare
    unknown = [c for c in compare if not registry.has_object(c)]
    if unknown:
        errors["compare"] = common.t("studio.unknown_choice", value=", ".join(unknown))
    if compare and compare != [object_name]:
        doc["compare_with"] = compare
    else:
        doc.pop("compare_with", None)
    own = dict(_matchable(obj))
    others = {n for target in compare if target != object_name and registry.has_object(target)
              for n, _ in _matchable(registry.object(target))}
    groups, shown = [], []
    for gi in range(MAX_GROUPS):
        conds, rows = [], []
        for ci in range(MAX_CONDS):
            key = f"g.{gi}.{ci}"
            row = {k: (form.get(f"{key}.{k}") or "").strip()
                   for k in ("field", "method", "threshold", "other_field", "region")}
            if not row["field"]:
                continue
            at = f"g.{len(shown)}.{len(rows)}"
            rows.append(row)
            cond: dict[str, Any] = {"field": row["field"], "method": row["method"]}
            if row["field"] not in own:
                errors[f"{at}.field"] = t("condrows.unknown_field", field=row["field"])
            if row["method"] not in METHODS:
                errors[f"{at}.method"] = t("studio.unknown_choice", value=row["method"])
            if row["method"] == "fuzzy":
                try:
                    percent = float(row["threshold"] or dedup_pages.normalize.DEFAULT_FUZZY_THRESHOLD * 100)
                except ValueError:
                    percent = -1
                if not 0 < percent <= 100:
                    errors[f"{at}.threshold"] = t("studio.bad_threshold")
                else:
                    cond["threshold"] = round(percent / 100, 4)
            if row["other_field"]:
                if row["other_field"] not in others:
                    errors[f"{at}.other_field"] = t("condrows.unknown_field", field=row["other_field"])
                cond["other_field"] = row["other_field"]
            if row["region"]:
                row["region"] = row["region"].upper()
                if row["method"] != "phone" or len(row["region"]) != 2 or not row["region"].isalpha():
                    errors[f"{at}.region"] = t("studio.bad_region")
                cond["region"] = row["region"]
            conds.append(cond)
        if conds:
            groups.append({"all": conds})
            shown.append(rows)
    values["groups"] = shown
    if not groups:
        errors["g.0.0.field"] = t("studio.needs_condition")
    doc["match_any"] = groups
    ignore = _read_condition("ignore", obj.all_fields, values, errors)
    if ignore is None:
        doc.pop("ignore", None)
    else:
        doc["ignore"] = ignore
    for key, allowed in (("on_create", ON_CREATE), ("on_update", ON_CREATE), ("on_import", ON_IMPORT)):
        if values[key] and values[key] not in allowed:
            errors[key] = t("studio.unknown_choice", value=values[key])
        if values[key]:
            doc[key] = values[key]
        else:
            doc.pop(key, None)
    if values["active"]:
        doc.pop("active", None)
    else:
        doc["active"] = False
    return doc, values, errors


def test_on_data(doc: dict) -> dict:
    """The draft rule run over the records the admin may read: group count and examples."""
    service = current_service()
    rule = _rule_from_doc(doc)
    groups, _ = dedup_pages.duplicate_groups(service, rule, draft=True)
    capped = len(groups) >= dedup_pages.GROUPS_SHOWN
    total = sum(g["count"] for g in groups)
    count = display.group_digits(str(len(groups)))
    obj = service.obj(rule.object)
    return {"groups": len(groups), "capped": capped, "examples": groups[:EXAMPLES],
            "summary": t("studio.test_capped" if capped else "studio.test_found", count=count,
                         records=display.group_digits(str(total)),
                         object=obj.display_label(current_locale(), plural=True)),
            "cross_only": rule.object not in rule.targets}


def _inputs(values: dict) -> set[str]:
    keys = {"name", "label_en", "on_create", "on_update", "on_import", "compare_with", "ignore", "match_any"}
    for gi, rows in enumerate(values.get("groups") or []):
        for ci in range(len(rows)):
            keys |= {f"match_any.{gi}.all.{ci}", *(f"match_any.{gi}.all.{ci}.{k}" for k in (
                "field", "method", "threshold", "other_field", "region"))}
    return keys


def _issue_errors(issues: list[dict], name: str, values: dict, errors: dict) -> list[dict]:
    placed: dict[str, str] = {}
    rest = common.place_issues(issues, KIND, name, _inputs(values), placed)
    for key, message in placed.items():
        parts = key.split(".")
        if parts[0] == "match_any" and len(parts) >= 4:
            errors.setdefault(f"g.{parts[1]}.{parts[3]}.{parts[4] if len(parts) > 4 else 'field'}", message)
        elif key == "compare_with":
            errors.setdefault("compare", message)
        elif key == "match_any":
            errors.setdefault("g.0.0.field", message)
        elif key == "ignore":
            errors.setdefault("block:ignore", message)
        else:
            errors.setdefault(key, message)
    return rest


def _context(object_name: str, values: dict, live: dict | None, **extra: Any) -> dict:
    registry = current_service().registry
    obj = registry.object(object_name)
    locale = current_locale()
    groups = [list(rows) + [{}] for rows in values.get("groups") or []] + [[{}]]
    others = []
    for target in values.get("compare") or []:
        if target != object_name and registry.has_object(target):
            other = registry.object(target)
            others.append((other.display_label(locale), _matchable(other)))
    return dict(
        kind=KIND, live=live, is_new=live is None, obj=obj, obj_label=obj.display_label(locale, plural=True), values=values,
        groups=groups, fields=_matchable(obj), others=others,
        objects=sorted(((n, o.display_label(locale)) for n, o in registry.objects.items() if not o.system_object
                        or n in (values.get("compare") or [])), key=lambda pair: pair[1].casefold()),
        methods=[(m, t(f"studio.method_{m}")) for m in METHODS],
        on_create=[("", t("studio.on_default_block"))] + [(m, t(f"studio.on_{m}")) for m in ON_CREATE],
        on_update=[("", t("studio.on_as_create"))] + [(m, t(f"studio.on_{m}")) for m in ON_CREATE],
        on_import=[("", t("studio.on_default_report"))] + [(m, t(f"studio.on_{m}")) for m in ON_IMPORT],
        ignore_choices=field_choices({n: f for n, f in obj.all_fields.items() if row_kind(f)}),
        errors=extra.pop("errors", {}), issues=extra.pop("issues", []),
        versions=extra.pop("versions", None) or common.loaded_versions(KIND, values.get("name", ""), live is None),
        action=url_for("web.studio_dedup_edit", name=live["name"]) if live else url_for("web.studio_dedup_new"),
        title=(t("studio.dedup_edit", name=common.label_text(live.get("label"), locale, live["name"])) if live
               else t("studio.dedup_new")),
        groups_href=url_for("web.duplicate_rule_groups", rule_name=live["name"])
        if live and live.get("active", True) is not False else None,
        **extra)


def _handle(live: dict | None, object_name: str):
    if request.method == "GET":
        values = doc_values(live) if live else {"object": object_name, "active": True, "compare": [object_name],
                                                "groups": [], "ignore.rows": [], "ignore.raw": ""}
        return render_page("studio_rules/dedup_form.html", **_context(object_name, values, live))
    doc, values, errors = read_form(live, object_name)
    action = request.form.get("_action", "preview")
    status, outcome, issues, tested = 200, {}, [], None
    if action in ("preview", "apply", "test") and not errors:
        outcome = common.review(KIND, doc["name"], doc, live is None, "preview" if action == "test" else action)
        status = outcome.pop("status")
        issues = _issue_errors(outcome.pop("issues", []), doc["name"], values, errors)
        if action == "apply" and "result" in outcome:
            notify(t("admin.applied", version=outcome["result"].version) if not outcome["unchanged"]
                   else t("admin.no_changes"))
            return redirect_to("web.studio_dedup_edit", name=doc["name"])
        if action == "test":
            if "result" in outcome:
                tested = test_on_data(doc)
            outcome = {"versions": outcome.get("versions")}
    if errors:
        status = 400 if action != "edit" else 200
        if not issues and action != "edit":
            issues = [{"document": f"{KIND}/{doc['name'] or '?'}", "path": "/", "message": t("rules.fix_inputs")}]
    if action == "edit":
        errors, issues = {}, []
    return render_page("studio_rules/dedup_form.html", status,
                       **_context(object_name, values, live, errors=errors, issues=issues, tested=tested, **outcome))


def _new_object() -> str | None:
    name = (request.form.get("object") if request.method == "POST" else request.args.get("object")) or ""
    if not name:
        return None
    if not current_service().registry.has_object(name):
        raise NotFound(f"Unknown object {name!r}.", code="unknown_object")
    return name


@page("/admin/rules/duplicates/new", methods=("GET", "POST"))
def studio_dedup_new():
    _require_admin()
    object_name = _new_object()
    if object_name is None:  # the object is chosen on the list page first
        return redirect_to("web.studio_rules")
    return _handle(None, object_name)


@page("/admin/rules/duplicates/<name>", methods=("GET", "POST"))
def studio_dedup_edit(name: str):
    _require_admin()
    live = current_service().registry.get(KIND, name)
    if live is None:
        raise NotFound(f"No duplicate rule named {name!r}.", code="unknown_rule")
    if not current_service().registry.has_object(live.get("object", "")):
        raise NotFound(f"Unknown object {live.get('object')!r}.", code="unknown_object")
    return _handle(live, live["object"])
