"""Cross-document checks of `web_form` documents (public web-to-lead forms)."""

from __future__ import annotations

from .registry import Registry
from .validate import CHECKERS, Report, _field, _object

# What a visitor may type into a public form: plain values, never a reference, a secret or a
# computed value.
FORM_TYPES = ("text", "textarea", "email", "phone", "url", "picklist", "multipicklist", "integer", "decimal",
              "currency", "percent", "date", "boolean")


def form_field_problem(fdef) -> str | None:
    """Why a field cannot be an input of a public form (None: it can)."""
    if fdef.system:
        return f"{fdef.name} is a system field"
    if fdef.type in ("formula", "rollup", "autonumber"):
        return f"{fdef.name} is computed"
    if fdef.read_only:
        return f"{fdef.name} is read-only"
    if fdef.type not in FORM_TYPES:
        return f"{fdef.name} is a {fdef.type} field; a public form takes {', '.join(FORM_TYPES)}"
    return None


def check_web_form(registry: Registry, doc: dict, report: Report) -> None:
    """A public form: its fields exist on its object and can be typed by a visitor; what it
    stamps exists and fits."""
    obj = _object(registry, doc.get("object"), "/object", report)
    if obj is None:
        return
    if obj.system_object:
        report("/object", f"{obj.name} is a system object; a public form cannot create it")
        return
    seen: set[str] = set()
    for index, item in enumerate(doc.get("fields") or []):
        path = f"/fields/{index}/field"
        fdef = _field(obj, item.get("field"), path, report, system_ok=False)
        if fdef is None:
            continue
        if fdef.name in seen:
            report(path, f"{fdef.name} is on the form twice")
        seen.add(fdef.name)
        problem = form_field_problem(fdef)
        if problem:
            report(path, problem)
    for name, value in (doc.get("stamp") or {}).items():
        path = f"/stamp/{name}"
        fdef = _field(obj, name, path, report, system_ok=False)
        if fdef is None:
            continue
        if name in seen:
            report(path, f"{name} is also an input of the form; a stamped value cannot be typed")
        if fdef.type in ("formula", "rollup", "autonumber"):
            report(path, f"{name} is computed")
        elif fdef.type == "picklist" and fdef.options and str(value) not in fdef.option_values:
            report(path, f"{value!r} is not a value of {obj.name}.{name}")
        elif fdef.type == "lookup" and not isinstance(value, str):
            report(path, f"{name} takes a record id")
    names = set(seen) | set(doc.get("stamp") or {})
    missing = [f.name for f in obj.fields.values() if f.required and f.default is None and f.name not in names
               and f.type not in ("formula", "rollup", "autonumber")]
    if missing:
        report("/fields", f"{obj.name} requires {', '.join(missing)}: put them on the form or stamp them")


CHECKERS["web_form"] = check_web_form
