"""Describe (/meta/objects) and metadata admin (/meta/{kind}/{name}, /meta/apply)."""

from __future__ import annotations

from flask import g, jsonify, request

from ...metadata.bundle import documents_bundle
from ...metadata.model import label_text
from ...metadata.schema import KINDS
from ..apply import apply_change
from ..errors import BadRequest, Forbidden, NotFound
from ..metastore import document_version
from ..security import Access
from . import api, json_body, runtime

ACTIONS = ("create", "read", "edit", "delete", "export", "report", "claim", "approve")


def access() -> Access:
    rt = runtime()
    return Access(rt.registry(), g.principal, rt.directory())


def require_metadata_admin(acc: Access) -> None:
    if not acc.has_permission("metadata.apply"):
        raise Forbidden("Only administrators may change metadata.", code="forbidden")


def describe_field(fdef, acc: Access, object_name: str, locale: str) -> dict:
    out = {
        "name": fdef.name,
        "type": fdef.type,
        "label": label_text(fdef.label, locale, fdef.name),
        "labels": fdef.label if isinstance(fdef.label, dict) else None,
        "required": fdef.required,
        "read_only": fdef.read_only or acc.field_access(object_name, fdef.name) == "read_only",
        "system": fdef.system,
    }
    for key in ("max_length", "precision", "scale", "min", "max", "help", "default", "format", "result_type"):
        value = getattr(fdef, key)
        if value is not None:
            # help may be a locale map, like a label: the reader's language, as a string
            out[key] = label_text(value, locale) if key == "help" else value
    if fdef.options:
        out["options"] = fdef.options
    if fdef.options_from:
        out["options"] = [{"value": r, "label": r} for r in sorted(runtime().registry().roles)]
    if fdef.target:
        out["target"] = fdef.target if fdef.polymorphic else fdef.target[0]
        out["on_delete"] = fdef.on_delete
    if fdef.unique:
        out["unique"] = True
    return out


def _without_fields(layout: dict, hidden: set[str]) -> dict:
    """A layout as the caller may see it: the object's hidden fields left out of its sections,
    list columns and filters (describe must not name them; related lists are other objects)."""
    out = dict(layout)
    if out.get("sections"):
        out["sections"] = [{**section, "fields": [f for f in section.get("fields") or [] if f not in hidden]}
                           for section in out["sections"]]
    for key in ("list_columns", "list_filters", "search_fields"):
        if isinstance(out.get(key), list):
            out[key] = [f for f in out[key] if f not in hidden]
    return out


def describe_object(obj, acc: Access, locale: str) -> dict:
    registry = runtime().registry()
    hidden = acc.hidden_fields(obj.name)
    layouts = [doc for doc in registry.layouts(obj.name)
               if "*" in ((doc.get("applies_to") or {}).get("roles") or ["*"])
               or set((doc.get("applies_to") or {}).get("roles") or []) & set(g.principal.roles)
               or acc.is_admin]
    return {
        "name": obj.name,
        "label": obj.display_label(locale),
        "plural_label": obj.display_label(locale, plural=True),
        "labels": obj.label if isinstance(obj.label, dict) else None,
        "name_field": obj.name_field,
        "record_types": obj.record_types,
        "record_type_labels": {name: obj.record_type_label(name, locale) for name in obj.record_types},
        "fields": [describe_field(f, acc, obj.name, locale) for n, f in obj.all_fields.items()
                   if n not in hidden and not (f.type == "password" and not acc.can(obj.name, "edit"))],
        "layouts": [_without_fields(doc, hidden) for doc in layouts] if hidden else layouts,
        "permissions": {action: acc.scope(obj.name, action) for action in ACTIONS},
    }


@api.get("/meta/objects")
def list_objects():
    acc = access()
    locale = request.args.get("locale") or g.principal.locale
    items = []
    for name, obj in sorted(runtime().registry().objects.items()):
        if acc.can(name, "read"):
            items.append({
                "name": name,
                "label": obj.display_label(locale),
                "plural_label": obj.display_label(locale, plural=True),
                "permissions": {action: acc.scope(name, action) for action in ACTIONS},
            })
    return jsonify({"items": items})


@api.get("/meta/objects/<name>")
def describe(name: str):
    acc = access()
    registry = runtime().registry()
    if not registry.has_object(name) or not acc.can(name, "read"):
        raise NotFound(f"Unknown object {name!r}.", code="unknown_object")
    return jsonify(describe_object(registry.object(name), acc, request.args.get("locale") or g.principal.locale))


def _kind(kind: str) -> None:
    if kind not in KINDS:
        raise NotFound(f"Unknown metadata kind {kind!r}; kinds are {', '.join(KINDS)}.", code="unknown_kind")


@api.get("/meta/<kind>")
def list_documents(kind: str):
    _kind(kind)
    acc = access()
    require_metadata_admin(acc) if kind not in ("object", "layout", "report") else None
    docs = runtime().registry().of_kind(kind)
    if kind in ("object", "layout", "report") and not acc.is_admin:
        docs = [d for d in docs if acc.can(d["name"] if kind == "object" else d.get("object"), "read")]
    return jsonify({"items": [{**_as_seen(kind, d, acc), "version": document_version(d)} for d in docs]})


def _as_seen(kind: str, doc: dict, acc: Access) -> dict:
    """A document as a reader who is not a metadata admin may see it: no field the caller's
    roles hide is named (objects lose the field, layouts leave it out)."""
    if acc.has_permission("metadata.apply") or kind not in ("object", "layout"):
        return doc
    hidden = acc.hidden_fields(doc["name"] if kind == "object" else doc.get("object"))
    if not hidden:
        return doc
    if kind == "layout":
        return _without_fields(doc, hidden)
    out = {**doc, "fields": [f for f in doc.get("fields") or [] if f.get("name") not in hidden]}
    if isinstance(doc.get("track_history"), list):
        out["track_history"] = [name for name in doc["track_history"] if name not in hidden]
    return out


@api.get("/meta/<kind>/<name>")
def get_document(kind: str, name: str):
    _kind(kind)
    acc = access()
    doc = runtime().registry().get(kind, name)
    visible = acc.has_permission("metadata.apply") or (
        doc is not None and kind in ("object", "layout", "report")
        and acc.can(name if kind == "object" else doc.get("object"), "read")
    )
    if doc is None or not visible:
        raise NotFound(f"No {kind} named {name!r}.", code="unknown_document")
    version = document_version(doc)
    response = jsonify({**_as_seen(kind, doc, acc), "version": version})
    response.headers["ETag"] = f'"{version}"'
    return response


def _if_match() -> str | None:
    """The version an If-Match header names (one entity tag, weak or strong, or *)."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    value = header.strip()
    if value == "*":
        return value
    value = value.removeprefix("W/")
    if "," in value or len(value) < 2 or not (value.startswith('"') and value.endswith('"')):
        raise BadRequest('If-Match must be one entity tag as GET returned it in ETag, e.g. "3f2a...".',
                         code="bad_if_match")
    return value[1:-1]


def _pop_version(doc: dict, where: str) -> str | None:
    """The `version` a document in a write carries (removed: it is not part of the document)."""
    if "version" not in doc:
        return None
    version = doc.pop("version")
    if not isinstance(version, str) or not version:
        raise BadRequest(f"{where}/version must be the version string GET returned.", code="bad_version",
                         path=f"{where}/version")
    return version


def _expect(expected: dict, key: tuple[str, str], *versions: str | None) -> None:
    sent = {v for v in versions if v is not None}
    if len(sent) > 1:
        raise BadRequest("If-Match and the body's version name different versions.", code="bad_version")
    if sent:
        expected[key] = sent.pop()


@api.put("/meta/<kind>/<name>")
def put_document(kind: str, name: str):
    _kind(kind)
    require_metadata_admin(access())
    doc = json_body()
    if not isinstance(doc, dict):
        raise BadRequest("The body must be one metadata document (a JSON object).")
    doc.setdefault("kind", kind)
    doc.setdefault("name", name)
    if doc["kind"] != kind or doc["name"] != name:
        raise BadRequest("The document's kind and name must match the URL.", code="name_mismatch")
    expected: dict = {}
    _expect(expected, (kind, name), _if_match(), _pop_version(doc, ""))
    dry_run = _dry_run()
    result = apply_change(runtime(), documents_bundle([doc]), dry_run=dry_run, expected=expected)
    return _with_etag(result, f"{kind}/{name}")


@api.delete("/meta/<kind>/<name>")
def delete_document(kind: str, name: str):
    _kind(kind)
    require_metadata_admin(access())
    expected: dict = {}
    _expect(expected, (kind, name), _if_match(), request.args.get("version") or None)
    result = apply_change(runtime(), documents_bundle([]), deletes=[(kind, name)], dry_run=_dry_run(),
                          expected=expected)
    return jsonify(result.as_dict())


def _with_etag(result, key: str):
    response = jsonify(result.as_dict())
    version = (result.documents or {}).get(key)
    if result.applied and version:
        response.headers["ETag"] = f'"{version}"'
    return response


TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes"), ("", "0", "false", "no")


def _dry_run() -> bool:
    value = request.args.get("dry_run", "").strip().lower()
    if value not in TRUE_WORDS + FALSE_WORDS:
        raise BadRequest(f"dry_run must be true or false, not {request.args.get('dry_run')!r}.",
                         code="bad_parameter", parameter="dry_run")
    return value in TRUE_WORDS


@api.post("/meta/apply")
def apply():
    require_metadata_admin(access())
    body = json_body()
    if isinstance(body, list):
        documents, deletes = body, []
    elif isinstance(body, dict) and isinstance(body.get("documents", []), list):
        documents, deletes = body.get("documents", []), body.get("delete", [])
    else:
        raise BadRequest('Send {"documents": [...], "delete": [{"kind", "name"}]}.', code="bad_bundle")
    if not isinstance(deletes, list) or not all(
        isinstance(d, dict) and isinstance(d.get("kind"), str) and isinstance(d.get("name"), str) for d in deletes
    ):
        raise BadRequest('"delete" must be a list of {"kind", "name"}.', code="bad_bundle")
    expected: dict = {}
    for index, doc in enumerate(documents):
        if isinstance(doc, dict):
            doc = documents[index] = dict(doc)
            _expect(expected, (str(doc.get("kind")), str(doc.get("name"))), _pop_version(doc, f"/documents/{index}"))
    for index, item in enumerate(deletes):
        _expect(expected, (item["kind"], item["name"]), _pop_version(dict(item), f"/delete/{index}"))
    result = apply_change(runtime(), documents_bundle(documents), [(d["kind"], d["name"]) for d in deletes],
                          dry_run=_dry_run(), expected=expected)
    return jsonify(result.as_dict())
