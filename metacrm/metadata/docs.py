"""The metadata reference (docs/metadata.md), generated from the JSON Schemas.

The schemas are the authority; generating the reference from their ``description`` strings keeps
the two from drifting apart (a test fails when docs/metadata.md is stale). Run
``python -m metacrm.metadata.docs > docs/metadata.md`` after changing a schema.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator

from .schema import KINDS, schema_for, shared_definitions

SCHEMA_PATH = "metacrm/metadata/schemas"

# How a reference to a shared definition reads in a table, with a link to its section.
REF_TYPES = {
    "name": "[name](#name)",
    "name_list": "list of [names](#name)",
    "name_or_any": "[name](#name) or `*`",
    "label": "[label](#label)",
    "sort": "[sort](#sort)",
    "principals": "[principals](#principals)",
    "filter": "[filter](#filter-grammar)",
    "action_list": "list of [actions](#actions)",
    "approver": "[approver](#approvers)",
    "field": "[field](#field-types)",
}

Row = tuple[str, str, str, str, str]


def render_reference() -> str:
    """The whole reference as Markdown; the same schemas always give the same text."""
    defs = shared_definitions()["$defs"]
    parts = [
        "# Metadata reference",
        "",
        (
            f"Generated from the JSON Schemas in `{SCHEMA_PATH}/` by `python -m metacrm.metadata.docs`; "
            "do not edit by hand. Those schemas (draft 2020-12) are the authority on what a document may say."
        ),
        "",
        (
            "A metadata document is one JSON object with a `kind` and a `name`; a bundle is a folder of them. "
            "Unknown keys are errors, reported with the JSON path of the key. References across documents "
            "(a layout naming a field, a pool naming an object) are checked when a bundle is validated."
        ),
        "",
        "| kind | what it says |",
        "| --- | --- |",
        *(f"| [`{kind}`](#{kind}) | {_cell(schema_for(kind)['description'])} |" for kind in KINDS),
        "",
        "## Kinds",
    ]
    for kind in KINDS:
        parts += _kind_section(kind)
    parts += _field_types_section()
    parts += _actions_section(defs)
    parts += _approvers_section(defs)
    parts += _filter_section(defs)
    parts += _shared_section(defs)
    return "\n".join(parts).rstrip() + "\n"


def _kind_section(kind: str) -> list[str]:
    schema = schema_for(kind)
    return [
        "",
        f"### `{kind}`",
        "",
        schema["description"],
        "",
        f"Schema: `{SCHEMA_PATH}/{kind}.schema.json`.",
        "",
        *_table(_rows(schema)),
    ]


def _field_types_section() -> list[str]:
    defs = schema_for("object")["$defs"]
    field = defs["field"]
    common = list(field["properties"])
    lines = [
        "",
        "## Field types",
        "",
        field["description"] + " Attributes every field may take (computed types take fewer):",
        "",
        *_table(_rows(field)),
    ]
    for rule in field["allOf"]:
        type_name = rule["if"]["properties"]["type"]["const"]
        variant = defs[rule["then"]["$ref"].rsplit("/", 1)[-1]]
        allowed = variant["propertyNames"]["enum"]
        missing = [key for key in common if key not in allowed]
        lines += ["", f"### `{type_name}`", "", variant["description"]]
        if missing:
            lines += ["", "Not allowed: " + ", ".join(f"`{key}`" for key in missing) + "."]
        rows = list(_rows(variant))
        if rows:
            lines += ["", *_table(rows)]
    return lines


def _actions_section(defs: dict) -> list[str]:
    action = defs["action"]
    lines = ["", "## Actions", "", action["description"], "Workflow rules and approval processes run them."]
    for rule in action["else"]["allOf"]:
        name = rule["if"]["properties"]["action"]["const"]
        variant = defs[rule["then"]["$ref"].rsplit("/", 1)[-1]]
        rows = [row for row in _rows(variant) if row[0] != "action"]
        lines += ["", f"### `{name}`", "", variant["description"], "", *_table(rows)]
    plugin = defs["action_plugin"]
    lines += ["", "### Plugin actions", "", plugin["description"], "", *_table(_rows(plugin))]
    return lines


def _approvers_section(defs: dict) -> list[str]:
    rule = defs["approver_rule"]
    return [
        "",
        "## Approvers",
        "",
        defs["approver"]["description"],
        rule["description"],
        "",
        *_table(_rows(rule)),
    ]


def _filter_section(defs: dict) -> list[str]:
    grammar, operators = defs["filter"], defs["operators"]["properties"]
    return [
        "",
        "## Filter grammar",
        "",
        grammar["description"],
        "",
        "| key | value | meaning |",
        "| --- | --- | --- |",
        *(
            f"| `{key}` | {_cell(_type(spec))} | {_cell(spec['description'])} |"
            for key, spec in grammar["properties"].items()
        ),
        f"| a field name | value or operators | {_cell(defs['condition']['description'])} |",
        "",
        "Operators:",
        "",
        "| operator | value | meaning |",
        "| --- | --- | --- |",
        *(
            f"| `{op}` | {_cell(_type(spec))} | {_cell(_join(spec['description'], _allowed(spec)))} |"
            for op, spec in operators.items()
        ),
    ]


def _shared_section(defs: dict) -> list[str]:
    lines = ["", "## Shared values"]
    for key in ("name", "label", "sort"):
        lines += ["", f"### {key}", "", defs[key]["description"]]
        if "pattern" in defs[key]:
            lines += ["", f"Pattern: `{defs[key]['pattern']}`"]
    principals = defs["principals"]
    lines += ["", "### principals", "", principals["description"], "", *_table(_rows(principals))]
    return lines


def _rows(schema: dict, prefix: str = "") -> Iterator[Row]:
    """One row per key, nested objects flattened as `claim.max_held`, `sections[].fields`."""
    required = set(schema.get("required", []))
    for key, spec in schema.get("properties", {}).items():
        yield (
            prefix + key,
            _type(spec),
            "yes" if key in required else "",
            spec.get("description", "") if isinstance(spec, dict) else "",
            _allowed(spec),
        )
        for nested, suffix in _nested(spec):
            yield from _rows(nested, f"{prefix}{key}{suffix}")


def _nested(spec: object) -> Iterator[tuple[dict, str]]:
    if not isinstance(spec, dict):
        return
    if "properties" in spec:
        yield spec, "."
    elif isinstance(spec.get("items"), dict) and _object_part(spec["items"]):
        yield _object_part(spec["items"]), "[]."
    elif isinstance(spec.get("additionalProperties"), dict) and "properties" in spec["additionalProperties"]:
        yield spec["additionalProperties"], ".<name>."


def _object_part(spec: dict) -> dict | None:
    if "properties" in spec:
        return spec
    if spec.get("if", {}).get("type") == "object" and "properties" in spec.get("then", {}):
        return spec["then"]
    return None


def _type(spec: object) -> str:
    if not isinstance(spec, dict):
        return "any"
    if "$ref" in spec:
        name = spec["$ref"].rsplit("/", 1)[-1]
        return REF_TYPES.get(name, name)
    if "const" in spec or "enum" in spec:
        values = [spec["const"]] if "const" in spec else spec["enum"]
        return " or ".join(dict.fromkeys(_json_type(value) for value in values))
    if "type" in spec.get("if", {}) and "then" in spec and "else" in spec:
        return f"{_type(spec['else'])} or {_type(spec['then'])}"
    kind = spec.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        return "list of " + _plural(_type(spec.get("items")))
    if kind == "object" and isinstance(spec.get("additionalProperties"), dict):
        return "map of name → " + _type(spec["additionalProperties"])
    return kind or ("object" if "properties" in spec else "any")


def _plural(text: str) -> str:
    """Plural for "list of names", also inside a link: "list of [names](#name)"."""
    link = re.fullmatch(r"\[(\w+)\]\((#[\w-]+)\)", text)
    if link:
        return f"[{link[1]}s]({link[2]})"
    return text + "s" if text in {"string", "object", "integer", "number", "boolean"} else text


def _allowed(spec: object) -> str:
    if not isinstance(spec, dict):
        return ""
    parts = []
    values = [spec["const"]] if "const" in spec else spec.get("enum")
    for inner in (spec.get("items"), spec.get("additionalProperties")):
        if not values and isinstance(inner, dict):
            values = inner.get("enum")
    if values:
        parts.append(", ".join(f"`{value}`" for value in values))
    low, high = spec.get("minimum"), spec.get("maximum")
    if low is not None and high is not None:
        parts.append(f"{low}..{high}")
    elif low is not None:
        parts.append(f"≥ {low}")
    elif high is not None:
        parts.append(f"≤ {high}")
    if spec.get("minItems") and spec.get("minItems") == spec.get("maxItems"):
        parts.append(f"exactly {spec['minItems']}")
    elif spec.get("minItems"):
        parts.append(f"at least {spec['minItems']}")
    if "default" in spec:
        parts.append(f"default `{json.dumps(spec['default'], ensure_ascii=False)}`")
    return "; ".join(parts)


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    return {str: "string", int: "integer", float: "number"}.get(type(value), "any")


def _table(rows: Iterator[Row] | list[Row]) -> list[str]:
    lines = ["| key | type | required | description | allowed values |", "| --- | --- | --- | --- | --- |"]
    for key, type_, required, description, allowed in rows:
        lines.append(f"| `{key}` | {_cell(type_)} | {required} | {_cell(description)} | {_cell(allowed)} |")
    return lines


def _join(*texts: str) -> str:
    return "; ".join(text for text in texts if text)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main() -> None:
    sys.stdout.buffer.write(render_reference().encode("utf-8"))


if __name__ == "__main__":
    main()
