"""The field editor pages (Admin → Objects → a field), the formula check endpoint and the record
types page. Every save is the admin pages' review → diff → apply: `_action=preview` runs the dry
run and shows the diff with an Apply button, `_action=apply` applies with the versions the form
loaded (changed in between: 409, the page reloads the live field), and bad input is refused with
the message beside its input, changing nothing. Option rows move with `_action=opt_up:<n>` etc.,
which only redraws the form (so the page works without JavaScript)."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import jsonify, request, url_for

from ...metadata.model import FieldDef, label_text
from ...platform import db
from ...platform.clock import utcnow
from ...platform.computed import format_autonumber, period_key
from ...platform.errors import BadRequest, NotFound
from ...platform.features import Routes
from ...platform.metastore import document_version
from ...platform.web import display
from ...platform.web.admin import _form_versions, _labels, _require_admin, _run, versions_of
from ...platform.web.condition_rows import field_choices
from ...platform.web.core import current_service, notify, redirect_to, render_page, runtime
from ...platform.web.i18n import current_locale, t
from . import editor, formula

routes = Routes()
ACTIVITY = "activity"
FORMULA_SYSTEM_FIELDS = ("owner", "created_at", "updated_at", "record_type", "last_activity_at")
ACTIVITY_LINK = "related_to"


def _object(name: str):
    registry = current_service().registry
    if not registry.has_object(name) or registry.get("object", name) is None:
        raise NotFound(f"Unknown object {name!r}.", code="unknown_object")
    return registry, registry.object(name), registry.get("object", name)


def _field_index(doc: dict, field_name: str) -> int:
    for index, fdoc in enumerate(doc.get("fields") or []):
        if fdoc.get("name") == field_name:
            return index
    raise NotFound(f"No field {field_name!r}.", code="unknown_field")


def _samples(obj) -> list[tuple[str, str]]:
    """A few records of the object to preview a formula on (the latest first)."""
    service = current_service()
    try:
        records, _ = service.list(obj.name, limit=20, sort="-updated_at")
    except Exception:  # noqa: BLE001 - no sample records is an empty picker, not an error page
        return []
    name_field = obj.name_field or "id"
    return [(r["id"], str(r.get(name_field) or r["id"])) for r in records]


def _next_counter(obj_name: str, field_name: str, fmt: str) -> int:
    """The counter the next record gets (the counters restart when the pattern's date part changes)."""
    key = f"{obj_name}.{field_name}.{period_key(fmt or '{0000}', utcnow())}"
    with runtime().engine.connect() as conn:
        current = conn.execute(sa.select(db.sequence.c.value).where(db.sequence.c.name == key)).scalar()
    return int(current or 0) + 1


def _next_autonumber(obj_name: str, field_name: str, fmt: str) -> str:
    if not fmt or not editor.AUTONUMBER_RE.fullmatch(fmt):
        return ""
    return format_autonumber(fmt, _next_counter(obj_name, field_name, fmt), utcnow())


def _context(obj, values: dict, *, live: dict | None, ftype: str, **extra: Any) -> dict:
    registry = current_service().registry
    locale = current_locale()
    links = editor.child_links(registry, obj.name)
    values["child"] = values.get("child") or (links[0][0] if links else "")
    child = next((c for key, c, _ in links if key == values["child"]), None)
    allowed = editor.allowed_keys(ftype)
    options_rows = list(values.get("options") or [])
    if ftype in ("picklist", "multipicklist"):
        options_rows.append({"value": "", "label_en": "", "label_zh": "", "color": "", "default": ""})
    ctx = dict(
        obj=obj, obj_label=obj.display_label(locale), ftype=ftype,
        field_title=label_text(live.get("label"), locale, live["name"]) if live else "", type_label=t(f"type.{ftype}"), live=live,
        values=values, allowed=allowed, flags=[f for f in editor.FLAGS if f in allowed],
        options_rows=options_rows,
        targets=[(n, o.display_label(locale)) for n, o in sorted(registry.objects.items())],
        on_delete_choices=[(v, t(f"studio.on_delete_{v}")) for v in editor.schema_enum(ftype, "on_delete")],
        result_types=[(v, t(f"type.{v}")) for v in formula.RESULT_TYPES],
        functions=formula.FUNCTIONS, operators=formula.OPERATORS, all_filters=formula.all_filters(),
        formula_fields=[(f.name, f.display_label(locale)) for f in obj.all_fields.values()
                        if f.type != "password" and f.name != values.get("name")
                        and (not f.system or f.name in FORMULA_SYSTEM_FIELDS)],
        samples=_samples(obj) if ftype == "formula" else [],
        rollup_links=[(key, f"{c.display_label(locale)} · {f.display_label(locale)}") for key, c, f in links],
        rollup_functions=[(v, t(f"studio.fn_{v}")) for v in editor.schema_enum("rollup", "function")],
        agg_fields=[(f.name, f.display_label(locale)) for f in editor.aggregatable(child)] if child else [],
        filter_choices=field_choices(child.all_fields) if child else [],
        filter_rows=values.get("filter_rows") or [], row_errors=extra.pop("row_errors", {}),
        next_number=_next_autonumber(obj.name, values.get("name") or "new", values.get("format", ""))
        if ftype == "autonumber" else "",
        next_counter=_next_counter(obj.name, values.get("name") or "new", values.get("format", ""))
        if ftype == "autonumber" else 1,
        check_url=url_for("web.studio_formula_check", name=obj.name),
        action_url=url_for("web.studio_field", name=obj.name, field_name=live["name"]) if live else
        url_for("web.studio_field_new", name=obj.name, type=ftype),
        errors=extra.pop("errors", {}), issues=extra.pop("issues", []),
        versions=extra.pop("versions", None) or versions_of(_keys(obj.name)),
        archive_rows=extra.pop("archive_rows", None), **extra)
    return ctx


def _keys(obj_name: str) -> list[tuple[str, str]]:
    return [("object", obj_name)] + [("layout", d["name"]) for d in current_service().registry.layouts(obj_name)]


def _layouts_without(obj_name: str, field_name: str) -> list[dict]:
    """The object's layouts with the field taken out wherever they name it."""
    out = []
    for layout in current_service().registry.layouts(obj_name):
        changed = copy.deepcopy(layout)
        for section in changed.get("sections") or []:
            section["fields"] = [f for f in section.get("fields") or [] if f != field_name]
        for key in ("required", "read_only", "hidden", "list_columns", "list_filters"):
            if key in changed:
                changed[key] = [f for f in changed[key] if f != field_name]
        if changed != layout:
            out.append(changed)
    return out


def _layouts_with(obj_name: str, field_name: str, values: dict) -> list[dict]:
    out = []
    for layout in current_service().registry.layouts(obj_name):
        changed = copy.deepcopy(layout)
        if values.get("add_layout") and changed.get("sections"):
            last = changed["sections"][-1]
            last["fields"] = list(last.get("fields") or []) + [field_name]
        if values.get("add_list") and changed.get("list_columns"):
            changed["list_columns"] = list(changed["list_columns"]) + [field_name]
        if changed != layout:
            out.append(changed)
    return out


def _rows_holding(obj, field_name: str) -> int:
    otable = runtime().compiled().tables.get(obj.name)
    table = getattr(otable, "table", otable)
    if table is None or field_name not in table.c:
        return 0
    with runtime().engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(
            table.c[field_name].isnot(None), table.c.deleted_at.is_(None))).scalar() or 0)


def _editor(name: str, field_name: str | None, ftype: str | None):
    _require_admin()
    registry, obj, doc = _object(name)
    if field_name is not None:
        index = _field_index(doc, field_name)
        live = doc["fields"][index]
        ftype = live["type"]
    else:
        live, index = None, len(doc.get("fields") or [])
        if ftype not in editor.TYPES:
            raise NotFound(f"Unknown field type {ftype!r}.", code="unknown_type")
    if request.method == "GET":
        values = editor.values_of(live) if live else {"type": ftype, "options": [], "add_layout": "on",
                                                      "add_list": "on", "result_type": "decimal",
                                                      "function": "count", "on_delete": "set_null"}
        return render_page("studio/field.html", **_context(obj, values, live=live, ftype=ftype))
    form = request.form
    action = form.get("_action", "preview")
    values = editor.read_form(form, ftype)
    values["form"] = form
    if live:
        values["name"] = live["name"]
        values["polymorphic"] = live.get("target") if isinstance(live.get("target"), list) and \
            len(live["target"]) > 1 else []
        if isinstance(live.get("filter"), dict) and editor.rows_from_filter(live["filter"]) is None:
            values["filter_raw"] = live["filter"]
    else:
        values["add_layout"] = "on" if form.get("add_layout") else ""
        values["add_list"] = "on" if form.get("add_list") else ""
    loaded = form.get("versions") or None
    errors: dict[str, str] = {}
    issues: list[dict] = []
    if editor.move_option(values, action) or action == "refresh":
        values.pop("form", None)
        if ftype == "rollup":
            editor.build(values, {}, obj, registry, live)  # the filter rows as posted
        return render_page("studio/field.html", **_context(obj, values, live=live, ftype=ftype, versions=loaded))
    try:
        expected = _form_versions()
    except BadRequest as exc:
        expected, issues = {}, [{"document": f"object/{name}", "path": "/", "message": exc.message}]
    archive = action in ("archive_preview", "archive")
    fields = list(doc.get("fields") or [])
    row_errors: dict[int, str] = {}
    if archive:
        if live is None or obj.name_field == live["name"]:
            issues.append({"document": f"object/{name}", "path": f"/fields/{index}",
                           "message": t("studio.name_field_stays")})
        new_doc = copy.deepcopy(doc)
        new_doc["fields"] = [f for f in fields if f.get("name") != (live or {}).get("name")]
        for key in ("track_history", "updates_last_activity"):
            if key in new_doc:
                new_doc[key] = [f for f in new_doc[key] if f != live["name"]]
        documents = [new_doc, *_layouts_without(name, live["name"])]
    else:
        fdoc, row_errors = editor.build(values, errors, obj, registry, live)
        new_doc = copy.deepcopy(doc)
        if live:
            fields[index] = fdoc
        else:
            fields.append(fdoc)
        new_doc["fields"] = fields
        documents = [new_doc]
        if not live and not errors:
            documents += _layouts_with(name, fdoc["name"], values)
    values.pop("form", None)
    outcome: dict[str, Any] = {}
    status = 400
    if not errors and not issues:
        run_action = "apply" if action in ("apply", "archive") else "preview"
        outcome = _run(documents, [], run_action, expected)
        status = outcome.pop("status")
        stale = outcome.pop("stale", False)
        if "issues" in outcome:
            beside, issues = editor.issue_inputs(outcome.pop("issues"), f"object/{name}", index)
            errors.update(beside)
            if beside and not issues:
                issues = [{"document": f"object/{name}", "path": "/", "message": t("studio.fix_inputs")}]
        if stale:
            loaded = None
            _, obj, doc = _object(name)
            if live and any(f.get("name") == live["name"] for f in doc.get("fields") or []):
                live = doc["fields"][_field_index(doc, live["name"])]
                values = editor.values_of(live)
        if run_action == "apply" and "result" in outcome:
            notify(t("admin.applied", version=outcome["result"].version) if not outcome["unchanged"]
                   else t("admin.no_changes"))
            if archive:
                notify(t("studio.archived", name=live["name"]))
                return redirect_to("web.admin_object", name=name)
            return redirect_to("web.studio_field", name=name, field_name=documents[0]["fields"][
                index if live else -1]["name"])
    elif errors and not issues:
        issues = [{"document": f"object/{name}", "path": "/", "message": t("studio.fix_inputs")}]
    return render_page("studio/field.html", status, **_context(
        obj, values, live=live, ftype=ftype, errors=errors, issues=issues, row_errors=row_errors,
        versions=loaded, archive=archive, archive_rows=_rows_holding(obj, live["name"]) if archive and live
        else None, **outcome))


@routes.page("/admin/objects/<name>/fields/<field_name>", methods=("GET", "POST"), endpoint="studio_field")
def studio_field(name: str, field_name: str):
    return _editor(name, field_name, None)


@routes.page("/admin/objects/<name>/new-field/<type>", methods=("GET", "POST"), endpoint="studio_field_new")
def studio_field_new(name: str, type: str):
    return _editor(name, None, type)


# --- the formula check ----------------------------------------------------------------------------


@routes.page("/admin/objects/<name>/formula-check", methods=("POST",), endpoint="studio_formula_check")
def studio_formula_check(name: str):
    """{expression, field?, result_type?, scale?, record?} -> {ok, errors: [{message, line, column,
    offset}], value?, shown?, value_error?}: the syntax check, then the value on the sample record."""
    _require_admin()
    _, obj, _ = _object(name)
    body = request.get_json(silent=True) if request.is_json else request.form
    body = body if isinstance(body, dict) or hasattr(body, "get") else {}
    expression = str(body.get("expression") or "")
    field_name = str(body.get("field") or "")
    result_type = str(body.get("result_type") or "text")
    if result_type not in formula.RESULT_TYPES:
        return jsonify({"ok": False, "errors": [{"message": t("msg.Not allowed."), "line": None,
                                                  "column": None, "offset": None, "input": "result_type"}]}), 400
    try:
        scale = int(body.get("scale")) if str(body.get("scale") or "").strip() else None
    except (TypeError, ValueError):
        scale = None
    problems = formula.check(obj, field_name, expression)
    if problems:
        shown = [dict(p, text=editor.describe_problem(p)) for p in problems]
        return jsonify({"ok": False, "errors": shown})
    answer: dict[str, Any] = {"ok": True, "errors": [], "message": t("studio.formula_ok")}
    record_id = str(body.get("record") or "")
    if record_id:
        try:
            record = current_service().get_record(name, record_id)
        except (NotFound, BadRequest):
            answer["value_error"] = t("studio.no_sample")
        else:
            value, why = formula.evaluate(expression, record, result_type, scale)
            fdef = FieldDef(name=field_name or "preview", type="formula", result_type=result_type, scale=scale)
            json_value = value.isoformat() if isinstance(value, datetime) else (
                str(value) if value is not None and not isinstance(value, (bool, int, str)) else value)
            answer["value"] = json_value
            answer["shown"] = display.show(fdef, json_value).text
            answer["text"] = t("studio.preview_line", value=answer["shown"])
            if why:
                answer["value_error"] = t("studio.formula_failed", detail=why)
    return jsonify(answer)


# --- record types and the activity link -------------------------------------------------------------


def _record_type_rows(doc: dict) -> list[dict]:
    rows = []
    for rt in doc.get("record_types") or []:
        name = rt["name"] if isinstance(rt, dict) else rt
        en, zh = editor._split_label(rt.get("label") if isinstance(rt, dict) else None)
        rows.append({"name": name, "label_en": en, "label_zh": zh, "existing": True, "remove": ""})
    return rows


def _activity_doc() -> dict | None:
    return current_service().registry.get("object", ACTIVITY)


def _activity_targets() -> list[str]:
    doc = _activity_doc()
    for fdoc in (doc or {}).get("fields") or []:
        if fdoc.get("name") == ACTIVITY_LINK:
            target = fdoc.get("target")
            return list(target) if isinstance(target, list) else [target]
    return []


def _types_context(obj, rows: list[dict], activities: bool, **extra: Any) -> dict:
    keys = [("object", obj.name)] + ([("object", ACTIVITY)] if _activity_doc() and obj.name != ACTIVITY else [])
    return dict(obj=obj, obj_label=obj.display_label(current_locale()), rows=rows + [
        {"name": "", "label_en": "", "label_zh": "", "existing": False, "remove": ""}],
        activities=activities, can_link=_activity_doc() is not None and obj.name != ACTIVITY,
        add_related=extra.pop("add_related", "on"), errors=extra.pop("errors", {}), issues=extra.pop("issues", []),
        versions=extra.pop("versions", None) or versions_of(keys), **extra)


@routes.page("/admin/objects/<name>/record-types", methods=("GET", "POST"), endpoint="studio_record_types")
def studio_record_types(name: str):
    _require_admin()
    registry, obj, doc = _object(name)
    linked = name in _activity_targets()
    if request.method == "GET":
        return render_page("studio/record_types.html", **_types_context(obj, _record_type_rows(doc), linked))
    form = request.form
    existing = {row["name"] for row in _record_type_rows(doc)}
    rows, errors, issues = [], {}, []
    indexes = sorted({int(k.split(".")[1]) for k in form if k.startswith("rt.") and k.split(".")[1].isdigit()})
    for n in indexes:
        row = {k: (form.get(f"rt.{n}.{k}") or "").strip() for k in ("name", "label_en", "label_zh")}
        row["remove"] = "on" if form.get(f"rt.{n}.remove") else ""
        if not row["name"] and (row["label_en"] or row["label_zh"]):
            row["name"] = editor.slug(row["label_en"])
        if not row["name"]:
            continue
        row["existing"] = row["name"] in existing
        position = len(rows)
        if not editor.NAME_RE.match(row["name"]):
            errors[f"rt.{position}.name"] = t("admin.bad_name")
        elif row["name"] in {r["name"] for r in rows}:
            errors[f"rt.{position}.name"] = t("studio.duplicate_value")
        rows.append(row)
    activities = bool(form.get("activities"))
    add_related = "on" if form.get("add_related") else ""
    loaded = form.get("versions") or None
    try:
        expected = _form_versions()
    except BadRequest as exc:
        expected, issues = {}, [{"document": f"object/{name}", "path": "/", "message": exc.message}]
    new_doc = copy.deepcopy(doc)
    record_types = []
    for row in rows:
        if row["remove"]:
            continue
        label = _labels(row["label_en"], row["label_zh"])
        record_types.append({"name": row["name"], "label": label} if label else row["name"])
    if record_types:
        new_doc["record_types"] = record_types
    else:
        new_doc.pop("record_types", None)
    documents = [new_doc]
    if activities != linked and _activity_doc() is not None and name != ACTIVITY:
        activity = copy.deepcopy(_activity_doc())
        for fdoc in activity["fields"]:
            if fdoc.get("name") == ACTIVITY_LINK:
                targets = [x for x in _activity_targets() if x != name] + ([name] if activities else [])
                fdoc["target"] = targets
        documents.append(activity)
        if activities and add_related:
            for layout in registry.layouts(name):
                if not any(r.get("object") == ACTIVITY for r in layout.get("related_lists") or []):
                    changed = copy.deepcopy(layout)
                    changed["related_lists"] = list(changed.get("related_lists") or []) + [
                        {"object": ACTIVITY, "via": ACTIVITY_LINK, "columns": ["subject", "type", "due_date", "done"],
                         "label": {"en": "Activities", "zh-CN": "跟进记录"}}]
                    documents.append(changed)
        if not activities:
            for layout in registry.layouts(name):
                kept = [r for r in layout.get("related_lists") or [] if r.get("object") != ACTIVITY]
                if kept != (layout.get("related_lists") or []):
                    changed = copy.deepcopy(layout)
                    changed["related_lists"] = kept
                    documents.append(changed)
        for layout in documents[2:]:
            expected.setdefault(("layout", layout["name"]), document_version(registry.get("layout", layout["name"])))
    action = form.get("_action", "preview")
    outcome: dict[str, Any] = {}
    status = 400
    if not errors and not issues:
        outcome = _run(documents, [], action, expected)
        status = outcome.pop("status")
        if outcome.pop("stale", False):
            loaded = None
        if "issues" in outcome:
            issues = outcome.pop("issues")
            for issue in issues:
                path = str(issue.get("path", ""))
                if issue.get("document") == f"object/{name}" and path.startswith("/record_types/"):
                    errors.setdefault(f"rt.{path.split('/')[2]}.name", issue["message"])
        if action == "apply" and "result" in outcome:
            notify(t("admin.applied", version=outcome["result"].version) if not outcome["unchanged"]
                   else t("admin.no_changes"))
            return redirect_to("web.studio_record_types", name=name)
    elif errors and not issues:
        issues = [{"document": f"object/{name}", "path": "/", "message": t("studio.fix_inputs")}]
    return render_page("studio/record_types.html", status, **_types_context(
        obj, rows, activities, add_related=add_related, errors=errors, issues=issues, versions=loaded, **outcome))

