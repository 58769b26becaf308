"""A field document from the field editor's form, and the form's values from a field document.

The form names: `label_en`, `label_zh`, `help_en`, `help_zh`, the flags (`required`, `unique`,
`indexed`, `searchable`, `read_only`), `default`, and per type `max_length`, `precision`, `scale`,
`expression`, `result_type`, `format`, `target`, `on_delete`, `child` ("object.lookup_field"),
`function`, `agg_field`, the rollup filter's condition rows (prefix `rf`), and the option rows
`opt.<n>.value|label_en|label_zh|color|default`. What the schema allows for a type is read from
object.schema.json (`field_<type>`'s property names), not kept here. Attributes the form does not
edit (an option's probability, a lookup's relationship label...) are kept from the live field."""

from __future__ import annotations

import copy
import functools
import re
from datetime import date, datetime
from typing import Any

from ...metadata.model import NAME_RE, SYSTEM_FIELD_NAMES, FieldDef
from ...metadata.schema import schema_for
from ...platform.web.admin import _labels, slug
from ...platform.web.condition_rows import rows_from_filter, rows_from_form
from ...platform.web.i18n import t

TYPES = ("text", "textarea", "integer", "decimal", "currency", "percent", "boolean", "date", "datetime", "email",
         "phone", "url", "picklist", "multipicklist", "lookup", "user", "autonumber", "formula", "rollup")
FLAGS = ("required", "unique", "indexed", "searchable", "read_only")
NUMERIC = ("decimal", "currency", "percent")
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
DECIMAL_RE = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
AUTONUMBER_RE = re.compile(r"(?:[^{}]|\{(?:YYYY|YY|MM|DD)\})*\{0+\}(?:[^{}]|\{(?:YYYY|YY|MM|DD)\})*")
OPTION_KEY = re.compile(r"^opt\.(\d+)\.value$")
MAX_OPTIONS = 500
# An issue's path under /fields/<n>/ -> the form input it is shown beside.
INPUT_OF = {"label": "label_en", "help": "help_en", "name": "name", "type": "type", "default": "default",
            "expression": "expression", "result_type": "result_type", "scale": "scale", "precision": "precision",
            "format": "format", "target": "target", "on_delete": "on_delete", "child_object": "child",
            "child_field": "child", "function": "function", "field": "agg_field", "filter": "filter",
            "options": "options", "max_length": "max_length"}


@functools.cache
def allowed_keys(ftype: str) -> frozenset[str]:
    definition = schema_for("object")["$defs"].get(f"field_{ftype}") or {}
    return frozenset((definition.get("propertyNames") or {}).get("enum") or ())


@functools.cache
def schema_enum(ftype: str, key: str) -> tuple[str, ...]:
    prop = ((schema_for("object")["$defs"].get(f"field_{ftype}") or {}).get("properties") or {}).get(key) or {}
    return tuple(prop.get("enum") or ())


def _split_label(label: Any) -> tuple[str, str]:
    if isinstance(label, dict):
        return str(label.get("en", "")), str(label.get("zh-CN", ""))
    return (str(label), "") if label else ("", "")


def child_links(registry, object_name: str) -> list[tuple[str, Any, Any]]:
    """(`child.field`, child ObjectDef, lookup FieldDef) for every lookup that points to this object."""
    out = []
    for child_name, child in sorted(registry.objects.items()):
        for fdef in child.fields.values():
            if fdef.type == "lookup" and object_name in fdef.target:
                out.append((f"{child_name}.{fdef.name}", child, fdef))
    return out


def aggregatable(child) -> list[FieldDef]:
    return [f for f in child.all_fields.values()
            if f.value_type in ("integer", "decimal", "currency", "percent", "date", "datetime")]


# --- document -> form ------------------------------------------------------------------------------


def values_of(fdoc: dict) -> dict:
    """The form's values for a field document."""
    values: dict[str, Any] = {"name": fdoc.get("name", ""), "type": fdoc.get("type", "text")}
    values["label_en"], values["label_zh"] = _split_label(fdoc.get("label"))
    values["help_en"], values["help_zh"] = _split_label(fdoc.get("help"))
    for flag in FLAGS:
        values[flag] = "on" if fdoc.get(flag) else ""
    default = fdoc.get("default")
    if isinstance(default, bool):
        values["default"] = "true" if default else "false"
    elif default is not None and not isinstance(default, list):
        values["default"] = str(default)
    for key in ("max_length", "precision", "scale", "expression", "result_type", "format", "on_delete", "function"):
        if fdoc.get(key) is not None:
            values[key] = str(fdoc[key])
    target = fdoc.get("target")
    values["target"] = target if isinstance(target, str) else (target[0] if isinstance(target, list) and
                                                                len(target) == 1 else "")
    values["polymorphic"] = target if isinstance(target, list) and len(target) > 1 else []
    if fdoc.get("child_object"):
        values["child"] = f"{fdoc['child_object']}.{fdoc.get('child_field', '')}"
    values["agg_field"] = fdoc.get("field", "")
    values["filter_rows"] = rows_from_filter(fdoc.get("filter"))
    values["filter_raw"] = fdoc.get("filter") if values["filter_rows"] is None else None
    defaults = default if isinstance(default, list) else [default] if default is not None else []
    rows = []
    for opt in fdoc.get("options") or []:
        opt = opt if isinstance(opt, dict) else {"value": opt}
        en, zh = _split_label(opt.get("label"))
        rows.append({"value": str(opt["value"]), "label_en": en, "label_zh": zh, "color": opt.get("color", ""),
                     "default": "on" if opt["value"] in defaults else ""})
    values["options"] = rows
    return values


# --- form -> values ----------------------------------------------------------------------------------


def read_form(form, ftype: str) -> dict:
    """The posted values (as `values_of` gives them), option rows in their posted order."""
    values: dict[str, Any] = {k: (form.get(k) or "").strip() for k in (
        "name", "label_en", "label_zh", "help_en", "help_zh", "default", "max_length", "precision", "scale",
        "expression", "result_type", "format", "target", "on_delete", "child", "function", "agg_field")}
    values["expression"] = form.get("expression") or ""
    values["type"] = ftype
    for flag in FLAGS:
        values[flag] = "on" if form.get(flag) else ""
    rows = []
    indexes = sorted(int(m.group(1)) for key in form if (m := OPTION_KEY.match(key)))[:MAX_OPTIONS]
    for n in indexes:
        row = {k: (form.get(f"opt.{n}.{k}") or "").strip() for k in ("value", "label_en", "label_zh", "color")}
        row["default"] = "on" if form.get(f"opt.{n}.default") else ""
        if row["value"] or row["label_en"] or row["label_zh"]:
            rows.append(row)
    values["options"] = rows
    return values


def move_option(values: dict, action: str) -> bool:
    """`opt_up:<n>`, `opt_down:<n>`, `opt_remove:<n>`, `opt_add`: change the rows; True if it was one."""
    rows = values["options"]
    verb, _, arg = action.partition(":")
    if verb == "opt_add":
        rows.append({"value": "", "label_en": "", "label_zh": "", "color": "", "default": ""})
        return True
    if verb not in ("opt_up", "opt_down", "opt_remove") or not arg.isdigit() or int(arg) >= len(rows):
        return False
    n = int(arg)
    if verb == "opt_remove":
        rows.pop(n)
    elif verb == "opt_up" and n > 0:
        rows[n - 1], rows[n] = rows[n], rows[n - 1]
    elif verb == "opt_down" and n + 1 < len(rows):
        rows[n + 1], rows[n] = rows[n], rows[n + 1]
    return True


# --- values -> document -----------------------------------------------------------------------------


def _int(values: dict, key: str, errors: dict, low: int, high: int) -> int | None:
    text = values.get(key, "")
    if text == "":
        return None
    try:
        number = int(text)
    except ValueError:
        errors[key] = t("studio.whole_number")
        return None
    if not low <= number <= high:
        errors[key] = t("studio.between", low=low, high=high)
        return None
    return number


def _default(ftype: str, text: str, errors: dict) -> Any:
    if text == "":
        return None
    if ftype == "integer":
        try:
            return int(text)
        except ValueError:
            errors["default"] = t("studio.whole_number")
    elif ftype in NUMERIC:
        if DECIMAL_RE.match(text):
            return text
        errors["default"] = t("studio.decimal_number")
    elif ftype == "boolean":
        if text in ("true", "false"):
            return text == "true"
        errors["default"] = t("msg.Not allowed.")
    elif ftype == "date":
        try:
            return text if text == "$today" else date.fromisoformat(text).isoformat()
        except ValueError:
            errors["default"] = t("studio.bad_date")
    elif ftype == "datetime":
        try:
            if text != "$now":
                datetime.fromisoformat(text)
            return text
        except ValueError:
            errors["default"] = t("studio.bad_datetime")
    else:
        return text
    return None


def build(values: dict, errors: dict, obj, registry, live: dict | None) -> tuple[dict, dict[int, str]]:
    """The field document for the posted values (live: the field as it is, None for a new one),
    and the rollup filter's row errors. Problems go into `errors` by input name."""
    ftype = values["type"]
    allowed = allowed_keys(ftype)
    doc: dict[str, Any] = copy.deepcopy(live) if live else {}
    if live is None:
        name = values.get("name") or slug(values.get("label_en", ""))
        if not NAME_RE.match(name or ""):
            errors["name"] = t("admin.bad_name")
        elif name in obj.all_fields or name in SYSTEM_FIELD_NAMES:
            errors["name"] = t("admin.field_exists")
        doc["name"], doc["type"] = name, ftype
    if ftype not in TYPES:
        errors["type"] = t("msg.Not allowed.")
        return doc, {}
    label = _labels(values.get("label_en", ""), values.get("label_zh", ""))
    if label is None:
        errors["label_en"] = t("form.required_missing")
    doc["label"] = label
    help_text = _labels(values.get("help_en", ""), values.get("help_zh", ""))
    _put(doc, "help", help_text)
    for flag in FLAGS:
        if flag in allowed:
            _put(doc, flag, True if values.get(flag) else None)
    if "default" in allowed and ftype not in ("picklist", "multipicklist"):
        _put(doc, "default", _default(ftype, values.get("default", ""), errors))
    if "max_length" in allowed:
        _put(doc, "max_length", _int(values, "max_length", errors, 1, 4000 if ftype == "text" else 10**9))
    if ftype in NUMERIC:
        precision = _int(values, "precision", errors, 1, 38)
        scale = _int(values, "scale", errors, 0, 38)
        if precision is not None and scale is not None and scale > precision:
            errors["scale"] = t("studio.scale_over_precision")
        _put(doc, "precision", precision)
        _put(doc, "scale", scale)
    row_errors: dict[int, str] = {}
    if ftype == "formula":
        _formula(values, errors, obj, doc)
    elif ftype == "rollup":
        row_errors = _rollup(values, errors, registry, obj, doc)
    elif ftype == "autonumber":
        fmt = values.get("format", "")
        if not fmt:
            errors["format"] = t("form.required_missing")
        elif not AUTONUMBER_RE.fullmatch(fmt):
            errors["format"] = t("studio.bad_format")
        doc["format"] = fmt
    elif ftype in ("lookup", "user"):
        if ftype == "lookup" and not values.get("polymorphic"):
            target = values.get("target", "")
            if not target:
                errors["target"] = t("admin.target_required")
            elif not registry.has_object(target):
                errors["target"] = t("msg.Not allowed.")
            doc["target"] = target
        on_delete = values.get("on_delete", "")
        if on_delete and on_delete not in schema_enum(ftype, "on_delete"):
            errors["on_delete"] = t("msg.Not allowed.")
        _put(doc, "on_delete", on_delete or None)
    elif ftype in ("picklist", "multipicklist"):
        _options(values, errors, ftype, doc, live)
    return {k: v for k, v in doc.items() if k in allowed or k in ("name", "type")}, row_errors


def _put(doc: dict, key: str, value: Any) -> None:
    if value is None:
        doc.pop(key, None)
    else:
        doc[key] = value


def _formula(values: dict, errors: dict, obj, doc: dict) -> None:
    from .formula import RESULT_TYPES, check

    expression = values.get("expression", "")
    if not expression.strip():
        errors["expression"] = t("form.required_missing")
    else:
        problems = check(obj, doc.get("name", ""), expression)
        if problems:
            errors["expression"] = describe_problem(problems[0])
    result_type = values.get("result_type", "")
    if result_type not in RESULT_TYPES:
        errors["result_type"] = t("msg.Not allowed.")
    doc["expression"], doc["result_type"] = expression, result_type
    scale = _int(values, "scale", errors, 0, 38)
    _put(doc, "scale", scale if result_type in NUMERIC else None)


# The formula engine's (Jinja2's) syntax messages, in the reader's words.
ENGINE_MESSAGES = (
    (re.compile(r"^unexpected 'end of template'$|^unexpected end of template.*$"), "studio.err_end", ()),
    (re.compile(r"^unexpected char (.+) at \d+$"), "studio.err_char", ("token",)),
    (re.compile(r"^unexpected '(.+)'$"), "studio.err_token", ("token",)),
    (re.compile(r"^unexpected text after the expression$"), "studio.err_after", ()),
    (re.compile(r"^expected token '(.+)', got '(.+)'$"), "studio.err_expected", ("token", "got")),
    # validate.formula_problems: names the formula may not use
    (re.compile(r"^formula uses '(.+)', which is not a field of \w+; did you mean '(.+)'\?$"), "studio.err_unknown_hint",
     ("name", "hint")),
    (re.compile(r"^formula uses '(.+)', which is not a field of \w+$"), "studio.err_unknown", ("name",)),
    (re.compile(r"^formula uses record\.(\w+), but \w+ has no field .+$"), "studio.err_unknown", ("name",)),
    (re.compile(r"^formula '(.+)' refers to itself$"), "studio.err_itself", ("name",)),
    (re.compile(r"^formula reads (\S+) through a lookup: .*$"), "studio.err_lookup", ("name",)),
)


def engine_message(message: str) -> str:
    for pattern, key, names in ENGINE_MESSAGES:
        match = pattern.match(message)
        if match:
            return t(key, **dict(zip(names, match.groups(), strict=False)))
    return message


def describe_problem(problem: dict) -> str:
    if problem.get("message") == "empty":
        return t("form.required_missing")
    if problem.get("line"):
        return t("studio.syntax_error", line=problem["line"], column=problem["column"],
                 detail=engine_message(problem["message"]))
    return t("studio.formula_problem", detail=engine_message(problem["message"]))


def _rollup(values: dict, errors: dict, registry, obj, doc: dict) -> dict[int, str]:
    links = {key: (child, fdef) for key, child, fdef in child_links(registry, obj.name)}
    chosen = links.get(values.get("child", ""))
    if chosen is None:
        errors["child"] = t("studio.pick_child")
        return {}
    child, link = chosen
    doc["child_object"], doc["child_field"] = child.name, link.name
    function = values.get("function", "")
    if function not in schema_enum("rollup", "function"):
        errors["function"] = t("msg.Not allowed.")
    doc["function"] = function
    if function and function != "count":
        agg = values.get("agg_field", "")
        if agg not in {f.name for f in aggregatable(child)}:
            errors["agg_field"] = t("studio.pick_agg_field")
        doc["field"] = agg
    else:
        doc.pop("field", None)
    _put(doc, "scale", _int(values, "scale", errors, 0, 38))
    if values.get("filter_raw") is not None:  # a filter the rows cannot show is kept as it is
        return {}
    flt, rows, row_errors = rows_from_form(values.get("form") or {}, child.all_fields, prefix="rf")
    values["filter_rows"] = rows
    if row_errors:
        errors["filter"] = t("studio.fix_rows")
    _put(doc, "filter", flt)
    return row_errors


def _options(values: dict, errors: dict, ftype: str, doc: dict, live: dict | None) -> None:
    rows = values["options"]
    old = {}
    for opt in (live or {}).get("options") or []:
        opt = opt if isinstance(opt, dict) else {"value": opt}
        old[str(opt["value"])] = opt
    options, seen, defaults = [], set(), []
    for n, row in enumerate(rows):
        value = row["value"]
        if not value:
            errors[f"opt.{n}.value"] = t("form.required_missing")
            continue
        if value in seen:
            errors[f"opt.{n}.value"] = t("studio.duplicate_value")
            continue
        seen.add(value)
        if row["color"] and not COLOR_RE.match(row["color"]):
            errors[f"opt.{n}.color"] = t("studio.bad_color")
        option = {k: v for k, v in copy.deepcopy(old.get(value, {})).items() if k not in ("label", "color")}
        option["value"] = value
        label = _labels(row["label_en"], row["label_zh"])
        if label is not None and label != value:
            option["label"] = label
        if row["color"]:
            option["color"] = row["color"].lower()
        options.append(option if len(option) > 1 else value)
        if row["default"]:
            defaults.append(value)
    if not rows and not doc.get("options_from"):
        errors["options"] = t("admin.options_required")
    if not doc.get("options_from"):
        doc["options"] = options
    if ftype == "picklist":
        if len(defaults) > 1:
            errors["options"] = t("studio.one_default")
        _put(doc, "default", defaults[0] if defaults else None)
    else:
        _put(doc, "default", defaults or None)


def issue_inputs(issues: list[dict], document: str, index: int) -> tuple[dict[str, str], list[dict]]:
    """Validation issues at /fields/<index>/<key> go beside their input; the rest stay on top."""
    beside, rest = {}, []
    prefix = f"/fields/{index}/"
    for issue in issues:
        path = str(issue.get("path", ""))
        if issue.get("document") == document and path.startswith(prefix):
            parts = path[len(prefix):].split("/")
            key = INPUT_OF.get(parts[0])
            if parts[0] == "options" and len(parts) > 1 and parts[1].isdigit():
                key = f"opt.{parts[1]}.value"
            if key:
                beside.setdefault(key, issue["message"])
                continue
        rest.append(issue)
    return beside, rest
