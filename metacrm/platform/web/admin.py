"""Admin pages: objects and fields (create an object, add a field in a form), and a
metadata editor for any document (layouts included) that validates, shows the diff of a
dry run, and applies. Every change goes through `apply_change`: live at once, no restart."""

from __future__ import annotations

import copy
import difflib
import json
import re
import unicodedata
from typing import Any

from flask import request, url_for

from ...metadata.bundle import documents_bundle
from ...metadata.model import NAME_RE, SYSTEM_FIELD_NAMES, label_text
from ...metadata.schema import KINDS
from ..apply import ApplyResult, apply_change
from ..errors import BadRequest, Forbidden, MetadataInvalid, NotFound, StaleVersion
from ..metastore import ABSENT, document_version
from .core import current_access, current_service, notify, page, redirect_to, render_page, runtime
from .forms import default_layout_doc
from .i18n import current_locale, t

FIELD_TYPES = ("text", "textarea", "integer", "decimal", "currency", "percent", "boolean", "date", "datetime",
               "email", "phone", "url", "picklist", "multipicklist", "lookup", "user", "file")

# The types the field editor (metacrm/studio/fields) creates; the add-field form keeps the simple ones.
STUDIO_TYPES = ("formula", "rollup", "autonumber", "picklist", "multipicklist", "lookup", "currency", "decimal",
                *(ty for ty in FIELD_TYPES if ty not in ("picklist", "multipicklist", "lookup", "currency",
                                                         "decimal")))


def _require_admin() -> None:
    if not current_access().has_permission("metadata.apply"):
        raise Forbidden("Only administrators may change metadata.")


def _labels(en: str, zh: str) -> Any:
    en, zh = en.strip(), zh.strip()
    if en and zh:
        return {"en": en, "zh-CN": zh}
    return en or zh or None


def english_plural(label: str) -> str:
    """The plural an admin who left it empty most likely means ("Project" → "Projects",
    "Opportunity" → "Opportunities", "Box" → "Boxes"); Chinese needs none."""
    if not label or not label[-1].isalpha() or not label.isascii():
        return label
    lower = label.lower()
    if lower.endswith("y") and lower[-2:-1] not in ("a", "e", "i", "o", "u"):
        return label[:-1] + "ies"
    if lower.endswith(("s", "x", "z", "ch", "sh")):
        return label + "es"
    return label + "s"


def slug(text: str) -> str:
    """'Contract value (CNY)' -> 'contract_value_cny'; '' when nothing usable is left."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[^a-z0-9]+", "_", text).strip("_")
    if text and not text[0].isalpha():
        text = f"f_{text}"
    return text[:63]


def _stale_issues(exc: StaleVersion) -> list[dict]:
    """Someone else applied a change to a document since this form loaded it: nothing was changed."""
    return [{"document": item["document"], "path": "/", "message": t("admin.stale_version")}
            for item in exc.extra.get("stale", [])] or [{"document": "", "path": "/", "message": t("admin.stale_version")}]


def _form_versions() -> dict[tuple[str, str], str]:
    """The document versions a form loaded (hidden `versions`: {"kind/name": version})."""
    try:
        sent = json.loads(request.form.get("versions") or "{}")
    except ValueError:
        raise BadRequest(t("admin.bad_versions")) from None
    if not isinstance(sent, dict) or not all(isinstance(k, str) and "/" in k and isinstance(v, str)
                                             for k, v in sent.items()):
        raise BadRequest(t("admin.bad_versions"))
    return {tuple(key.split("/", 1)): version for key, version in sent.items()}


def versions_of(keys) -> str:
    """The hidden `versions` value for documents as this request sees them live."""
    registry = current_service().registry
    return json.dumps({f"{k}/{n}": document_version(registry.get(k, n)) for k, n in keys}, sort_keys=True)


def _issues(exc: MetadataInvalid) -> list[dict]:
    return [i if isinstance(i, dict) else i.as_dict() for i in exc.extra.get("issues", [])] or [
        {"document": "", "path": "/", "message": exc.message}]


# --- objects and fields ---------------------------------------------------------------------


def _objects_context(**extra: Any) -> dict:
    from . import admin_roles  # the permissions pages import this module's helpers

    registry = current_service().registry
    locale = current_locale()
    objects = []
    for name, obj in sorted(registry.objects.items()):
        objects.append({"name": name, "label": obj.display_label(locale), "fields": len(obj.fields),
                        "layouts": len(registry.layouts(name)), "system": obj.system_object,
                        "href": url_for("web.admin_object", name=name)})
    values = extra.pop("values", {})
    return dict(objects=objects, values=values, errors=extra.pop("errors", {}), **admin_roles.grant_choices(values),
                **extra)


@page("/admin")
def admin_objects():
    _require_admin()
    return render_page("admin/objects.html", **_objects_context())


@page("/admin/objects", methods=("POST",))
def admin_object_create():
    from . import admin_roles

    _require_admin()
    form = request.form
    values = {k: form.get(k, "").strip() for k in ("name", "label_en", "label_zh", "plural_en", "plural_zh")}
    values.update(admin_roles.grant_values(form))
    name = values["name"] or slug(values["label_en"])
    errors: dict[str, str] = {}
    registry = current_service().registry
    if not NAME_RE.match(name or ""):
        errors["name"] = t("admin.bad_name")
    elif registry.has_object(name) or registry.get("object", name):
        errors["name"] = t("admin.object_exists")
    if not values["label_en"] and not values["label_zh"]:
        errors["label_en"] = t("form.required_missing")
    issues = []
    if not errors:
        doc = {
            "kind": "object", "name": name,
            "label": _labels(values["label_en"], values["label_zh"]),
            "plural_label": _labels(values["plural_en"] or english_plural(values["label_en"]),
                                    values["plural_zh"] or values["label_zh"]),
            "name_field": "name",
            "fields": [{"name": "name", "type": "text", "label": {"en": "Name", "zh-CN": "名称"},
                        "required": True, "max_length": 200, "indexed": True}],
        }
        # "Who can use it": the chosen roles get the object in the same apply (admins always do).
        grants, expected = admin_roles.grant_documents(name, values, errors)
    if not errors and request.form.get("_action") == "preview":
        # "Review changes": the object and the role documents it changes, as a dry run; nothing is saved.
        outcome = _run([doc, *grants], [], "preview", {("object", name): ABSENT, **expected})
        status = outcome.pop("status")
        outcome.pop("stale", None)
        return render_page("admin/objects.html", status, **_objects_context(values=values, errors=errors, **outcome))
    if not errors:
        try:
            apply_change(runtime(), documents_bundle([doc, *grants]), expected={("object", name): ABSENT, **expected})
        except MetadataInvalid as exc:
            issues = _issues(exc)
        except StaleVersion as exc:
            if any(item["document"].startswith("role/") for item in exc.extra.get("stale", [])):
                issues = _stale_issues(exc)
            else:
                errors["name"] = t("admin.object_exists")
        else:
            notify(t("admin.object_created", name=name))
            return redirect_to("web.admin_object", name=name)
    return render_page("admin/objects.html", 400, **_objects_context(values=values, errors=errors, issues=issues))


def _object_context(name: str, **extra: Any) -> dict:
    service = current_service()
    registry = service.registry
    if not registry.has_object(name):
        raise NotFound(f"Unknown object {name!r}.", code="unknown_object")
    obj = registry.object(name)
    locale = current_locale()
    own = {fdoc.get("name") for fdoc in (registry.get("object", name) or {}).get("fields") or []}
    fields = [{"name": f.name, "label": f.display_label(locale), "type": f.type, "required": f.required,
               "system": f.system, "read_only": f.read_only, "editable": f.name in own,
               "target": ", ".join(f.target) if f.type == "lookup" else ""}
              for f in obj.all_fields.values() if f.type != "password" or not f.system]
    targets = [(n, o.display_label(locale)) for n, o in sorted(registry.objects.items())]
    layouts = [{"name": d["name"], "href": url_for("web.admin_document", kind="layout", name=d["name"])}
               for d in registry.layouts(name)]
    return dict(obj=obj, obj_label=obj.display_label(locale), fields=fields, layouts=layouts, targets=targets,
                types=[(ty, t(f"type.{ty}")) for ty in FIELD_TYPES],
                studio_types=[(ty, t(f"type.{ty}")) for ty in STUDIO_TYPES],
                new_layout=url_for("web.admin_document", kind="layout", name=f"{name}_default", new=1)
                if not layouts else None,
                values=extra.pop("values", {"add_layout": "on", "add_list": "on"}),
                versions=extra.pop("versions", None) or versions_of([("object", name)]),
                errors=extra.pop("errors", {}), issues=extra.pop("issues", []), **extra)


@page("/admin/objects/<name>")
def admin_object(name: str):
    _require_admin()
    return render_page("admin/object.html", **_object_context(name))


def parse_options(text: str) -> list:
    """One option per line: `value` or `value = label`."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        value, sep, shown = line.partition("=")
        value, shown = value.strip(), shown.strip()
        out.append({"value": value, "label": shown} if sep and shown else value)
    return out


def build_field(values: dict, errors: dict, obj) -> dict | None:
    ftype = values.get("type", "")
    if ftype not in FIELD_TYPES:
        errors["type"] = t("msg.Not allowed.")
    label = _labels(values.get("label_en", ""), values.get("label_zh", ""))
    if label is None:
        errors["label_en"] = t("form.required_missing")
    name = values.get("name") or slug(values.get("label_en", ""))
    if not NAME_RE.match(name or ""):
        errors["name"] = t("admin.bad_name")
    elif name in obj.fields or name in SYSTEM_FIELD_NAMES:
        errors["name"] = t("admin.field_exists")
    doc: dict[str, Any] = {"name": name, "type": ftype, "label": label}
    if values.get("required") and ftype != "file":  # a file is uploaded after the record exists
        doc["required"] = True
    if ftype in ("picklist", "multipicklist"):
        options = parse_options(values.get("options", ""))
        if not options:
            errors["options"] = t("admin.options_required")
        doc["options"] = options
    if ftype == "lookup":
        if not values.get("target"):
            errors["target"] = t("admin.target_required")
        doc["target"] = values.get("target")
    return None if errors else doc


@page("/admin/objects/<name>/fields", methods=("POST",))
def admin_field_add(name: str):
    _require_admin()
    registry = current_service().registry
    if not registry.has_object(name):
        raise NotFound(f"Unknown object {name!r}.", code="unknown_object")
    obj = registry.object(name)
    form = request.form
    values = {k: form.get(k, "").strip() for k in ("name", "label_en", "label_zh", "type", "options", "target")}
    values["options"] = form.get("options", "")
    for flag in ("required", "add_layout", "add_list"):
        values[flag] = "on" if form.get(flag) else ""
    errors: dict[str, str] = {}
    expected = _form_versions()
    loaded = request.form.get("versions") or None
    field = build_field(values, errors, obj)
    issues: list[dict] = []
    if field is not None:
        doc = copy.deepcopy(registry.get("object", name))
        doc["fields"] = list(doc.get("fields") or []) + [field]
        documents = [doc]
        for layout in registry.layouts(name):
            changed = copy.deepcopy(layout)
            if values["add_layout"] and changed.get("sections"):
                last = changed["sections"][-1]
                last["fields"] = list(last.get("fields") or []) + [field["name"]]
            if values["add_list"] and changed.get("list_columns"):
                changed["list_columns"] = list(changed["list_columns"]) + [field["name"]]
            if changed != layout:
                documents.append(changed)
        try:
            apply_change(runtime(), documents_bundle(documents), expected=expected)
        except MetadataInvalid as exc:
            issues = _issues(exc)
        except StaleVersion as exc:
            # The page now shows the object as it is; submitting again adds the field to that.
            issues, loaded = _stale_issues(exc), None
        else:
            notify(t("admin.field_added", name=label_text(field["label"], current_locale(), field["name"])))
            return redirect_to("web.admin_object", name=name)
    status = 409 if issues and issues[0]["message"] == t("admin.stale_version") else 400
    return render_page("admin/object.html", status, **_object_context(name, values=values, errors=errors,
                                                                        issues=issues, versions=loaded))


# --- the metadata editor ------------------------------------------------------------------------


def _pretty(doc: Any) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False)


def _text_diff(documents: list[dict], deletes: list[tuple[str, str]]) -> list[dict]:
    """Unified diffs of each document against the live one, line by line for the template."""
    registry = current_service().registry
    lines = []
    for doc in documents:
        if not isinstance(doc, dict):
            continue
        kind, name = str(doc.get("kind")), str(doc.get("name"))
        old = registry.get(kind, name)
        before = _pretty(old).splitlines() if old is not None else []
        for line in difflib.unified_diff(before, _pretty(doc).splitlines(), f"{kind}/{name} (live)",
                                         f"{kind}/{name} (new)", lineterm="", n=2):
            lines.append({"text": line, "kind": _line_kind(line)})
    for kind, name in deletes:
        old = registry.get(kind, name)
        if old is not None:
            for line in difflib.unified_diff(_pretty(old).splitlines(), [], f"{kind}/{name} (live)", "(removed)",
                                             lineterm="", n=0):
                lines.append({"text": line, "kind": _line_kind(line)})
    return lines


def _line_kind(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    return {"+": "add", "-": "del"}.get(line[:1], "same")


def _storage_lines(storage: dict) -> list[str]:
    out = [f"+ table {name}" for name in storage.get("new_tables", [])]
    out += [f"+ column {c['table']}.{c['column']} ({c['type']})" for c in storage.get("new_columns", [])]
    out += [f"+ restored column {c['table']}.{c['column']}" for c in storage.get("restored_columns", [])]
    out += [f"- archived column {c['table']}.{c['column']}" for c in storage.get("archived_columns", [])]
    out += [f"~ column {c.get('table')}.{c.get('column')} ({c.get('old_type')} → {c.get('new_type')})"
            for c in storage.get("changed_columns", [])]
    out += [f"+ index {c['table']}.{c['column']}" for c in storage.get("new_indexes", [])]
    return out


def _parse_bundle(text: str) -> tuple[list, list[tuple[str, str]]]:
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise BadRequest(t("admin.bad_json", error=str(exc))) from None
    if isinstance(body, list):
        return body, []
    if isinstance(body, dict) and "documents" in body and "kind" not in body:
        documents, deletes = body.get("documents"), body.get("delete") or []
        if not isinstance(documents, list) or not isinstance(deletes, list) or not all(
                isinstance(d, dict) and isinstance(d.get("kind"), str) and isinstance(d.get("name"), str)
                for d in deletes):
            raise BadRequest('Send {"documents": [...], "delete": [{"kind", "name"}]}.')
        return documents, [(d["kind"], d["name"]) for d in deletes]
    return [body], []


def _run(documents: list, deletes: list[tuple[str, str]], action: str,
         expected: dict[tuple[str, str], str] | None = None) -> dict:
    """Validate (and, for `apply`, apply). The template context for the outcome."""
    try:
        result: ApplyResult = apply_change(runtime(), documents_bundle(documents), deletes,
                                           dry_run=action != "apply", expected=expected)
    except MetadataInvalid as exc:
        return {"issues": _issues(exc), "status": 400}
    except StaleVersion as exc:
        return {"issues": _stale_issues(exc), "status": 409, "stale": True}
    diff = result.diff
    docs = diff.get("documents", {})
    storage = _storage_lines(diff.get("storage", {}))
    unchanged = not (docs.get("added") or docs.get("changed") or docs.get("removed") or storage)
    return {"result": result, "docs_diff": docs, "storage": storage, "unchanged": unchanged,
            "text_diff": _text_diff(documents, deletes), "status": 200}


@page("/admin/metadata", methods=("GET", "POST"))
def admin_metadata():
    _require_admin()
    registry = current_service().registry
    locale = current_locale()
    kinds = []
    for kind in KINDS:
        docs = registry.of_kind(kind)
        if docs:
            kinds.append({"kind": kind, "docs": [
                {"name": d["name"], "label": label_text(d.get("label"), locale, ""),
                 "href": url_for("web.admin_document", kind=kind, name=d["name"])} for d in docs]})
    text = request.form.get("document", "") if request.method == "POST" else ""
    outcome: dict[str, Any] = {"status": 200}
    versions = None
    if request.method == "POST":
        action = request.form.get("_action", "preview")
        try:
            documents, deletes = _parse_bundle(text)
            # A preview records the versions it was made against; applying after it is refused if
            # any of those documents changed in between (someone else's apply).
            expected = _form_versions()
        except BadRequest as exc:
            outcome = {"issues": [{"document": "", "path": "/", "message": exc.message}], "status": 400}
        else:
            outcome = _run(documents, deletes, action, expected)
            keys = [(str(d.get("kind")), str(d.get("name"))) for d in documents if isinstance(d, dict)] + deletes
            versions = versions_of(keys) if action != "apply" and "result" in outcome else None
            if action == "apply" and "result" in outcome:
                notify(t("admin.applied", version=outcome["result"].version) if not outcome["unchanged"]
                       else t("admin.no_changes"))
                return redirect_to("web.admin_metadata")
    status = outcome.pop("status")
    outcome.pop("stale", None)
    return render_page("admin/metadata.html", status, kinds=kinds, text=text, **outcome, versions=versions,
                       action=url_for("web.admin_metadata"), single=None)


@page("/admin/metadata/<kind>/<name>", methods=("GET", "POST"))
def admin_document(kind: str, name: str):
    _require_admin()
    if kind not in KINDS:
        raise NotFound(f"Unknown metadata kind {kind!r}.", code="unknown_kind")
    registry = current_service().registry
    live = registry.get(kind, name)
    if request.method == "GET":
        if live is None:
            obj_name = request.args.get("object") or name.removesuffix("_default")
            if kind == "layout" and request.args.get("new") and registry.has_object(obj_name):
                live = default_layout_doc(registry.object(obj_name))
                live["name"] = name
            else:
                raise NotFound(f"No {kind} named {name!r}.", code="unknown_document")
        return render_page("admin/document.html", kind=kind, name=name, text=_pretty(live), exists=name and
                           registry.get(kind, name) is not None, back=_back(kind, live),
                           versions=versions_of([(kind, name)]))
    text = request.form.get("document", "")
    action = request.form.get("_action", "preview")
    outcome: dict[str, Any]
    doc = None
    versions = request.form.get("versions") or None
    try:
        documents, _ = _parse_bundle(text)
        doc = documents[0] if len(documents) == 1 else None
        if not isinstance(doc, dict) or doc.get("kind") != kind or doc.get("name") != name:
            raise BadRequest(t("admin.name_mismatch", kind=kind, name=name))
        expected = _form_versions()
    except BadRequest as exc:
        outcome = {"issues": [{"document": f"{kind}/{name}", "path": "/", "message": exc.message}], "status": 400}
    else:
        outcome = _run([doc], [], action, expected)
        if action == "apply" and "result" in outcome:
            notify(t("admin.applied", version=outcome["result"].version) if not outcome["unchanged"]
                   else t("admin.no_changes"))
            return redirect_to("web.admin_document", kind=kind, name=name)
    status = outcome.pop("status")
    outcome.pop("stale", None)
    return render_page("admin/document.html", status, kind=kind, name=name, text=text, exists=live is not None,
                       back=_back(kind, doc if isinstance(doc, dict) else live or {}), versions=versions, **outcome)


def _back(kind: str, doc: dict) -> str:
    if kind in ("layout", "object") and isinstance(doc, dict):
        target = doc.get("object") if kind == "layout" else doc.get("name")
        if isinstance(target, str) and current_service().registry.has_object(target):
            return url_for("web.admin_object", name=target)
    return url_for("web.admin_metadata")
