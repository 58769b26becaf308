"""JSON Schema validation of single metadata documents, with errors at JSON-pointer paths.

The schemas in ``schemas/`` (draft 2020-12) are the authority on what a document may say; this
module only loads them once and turns jsonschema's errors into issues an admin can act on: every
error, each at the deepest path that names the problem (``/fields/1/type``, not ``/fields/1``).
Checks that span documents (does that field exist?) live elsewhere.

Schemas may carry ``errorMessage`` (a string, or a map from keyword to string, ``{value}`` standing
for the offending value) where jsonschema's own message would be cryptic, e.g. for a ``oneOf``.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

KINDS: tuple[str, ...] = (
    "object",
    "layout",
    "dedup_rule",
    "pool",
    "workflow_rule",
    "approval_process",
    "conversion",
    "role",
    "report",
    "lead_scoring",
    "assignment_rule",
    "app",
    "view",
    "dashboard",
    "web_form",
)

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
DEFS_FILE = "defs.schema.json"


@dataclass(frozen=True)
class SchemaIssue:
    """One problem in a document: where (a JSON pointer, "" for the root) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '/'}: {self.message}"


def schema_for(kind: str) -> dict:
    """The JSON Schema of a kind (a copy: callers may change it freely)."""
    if kind not in KINDS:
        raise ValueError(f"unknown metadata kind {kind!r}; kinds: {', '.join(KINDS)}")
    return copy.deepcopy(_load(f"{kind}.schema.json"))


def shared_definitions() -> dict:
    """The definitions the kinds share (name, label, filter, action, approver, ...), as a copy."""
    return copy.deepcopy(_load(DEFS_FILE))


def validate_document(doc: object) -> list[SchemaIssue]:
    """Every schema problem of one document, sorted by path; an empty list means it is valid."""
    try:
        key = json.dumps(doc, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        return _validate_document(doc)
    return list(_validate_cached(key))


@functools.lru_cache(maxsize=4096)
def _validate_cached(key: str) -> tuple[SchemaIssue, ...]:
    # Applies re-validate every live document (references can break); the same document
    # text always gives the same schema issues, so each is checked once per process.
    return tuple(_validate_document(json.loads(key)))


def _validate_document(doc: object) -> list[SchemaIssue]:
    if not isinstance(doc, dict):
        return [SchemaIssue("", f"a metadata document is a JSON object, not {_json_type(doc)}")]
    issues = _head_issues(doc)
    kind = doc.get("kind")
    if isinstance(kind, str) and kind in KINDS:
        for error in _validator(kind).iter_errors(doc):
            if not _reported_by_head(error):
                issues.extend(_issues(error))
        if kind == "object":
            issues.extend(_scale_issues(doc))
    return sorted(set(issues), key=lambda issue: (_path_key(issue.path), issue.message))


def _head_issues(doc: dict) -> list[SchemaIssue]:
    """kind and name come first: without a valid kind there is no schema to pick."""
    issues = []
    kind = doc.get("kind")
    if "kind" not in doc:
        issues.append(SchemaIssue("/kind", f"'kind' is a required property: one of {list(KINDS)}"))
    elif not (isinstance(kind, str) and kind in KINDS):
        issues.append(SchemaIssue("/kind", f"{_short(kind)} is not one of {list(KINDS)}"))
    if "name" not in doc:
        issues.append(SchemaIssue("/name", "'name' is a required property"))
    else:
        for error in _head_validator().iter_errors(doc):
            issues.extend(_issues(error))
    return issues


def _reported_by_head(error: ValidationError) -> bool:
    if list(error.absolute_path)[:1] == ["name"]:
        return True
    return (
        error.validator == "required"
        and not error.absolute_path
        and error.message in ("'kind' is a required property", "'name' is a required property")
    )


def _issues(error: ValidationError) -> Iterator[SchemaIssue]:
    """One jsonschema error as issues: unknown keys one by one, combinators at their best branch."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(error.schema.get("properties", {}))
        patterns = list(error.schema.get("patternProperties", {}))
        for key in _extra_keys(error.instance, allowed, patterns):
            message = _custom_message(error, key) or _unknown_key(key, allowed)
            yield SchemaIssue(_pointer([*path, key]), message)
        return
    custom = _custom_message(error, error.instance)
    if "propertyNames" in error.relative_schema_path:
        # jsonschema reports a bad key at its object; the key itself is the useful place.
        key = error.instance
        message = custom or error.message
        if error.validator == "enum":
            allowed = list(error.validator_value)
            message = f"{custom} (allowed: {', '.join(allowed)})" if custom else _unknown_key(key, allowed)
        yield SchemaIssue(_pointer([*path, key]), message)
        return
    if error.validator in ("anyOf", "oneOf") and not custom and error.context:
        yield from _issues(best_match(error.context))
        return
    if error.schema is False:
        yield SchemaIssue(_pointer(path), f"key {path[-1]!r} is not allowed here" if path else error.message)
        return
    yield SchemaIssue(_pointer(path), custom or error.message)


def _custom_message(error: ValidationError, value: object) -> str | None:
    """The schema's own errorMessage for this error, if it has one, with {value} filled in."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    message = schema.get("errorMessage")
    if isinstance(message, dict):
        message = message.get(str(error.validator))
    return message.replace("{value}", _short(value)) if message else None


def _extra_keys(instance: dict, allowed: list[str], patterns: list[str]) -> list[str]:
    return [key for key in instance if key not in allowed and not any(re.search(p, key) for p in patterns)]


def _unknown_key(key: object, allowed: list[str]) -> str:
    message = f"key {key!r} is not allowed here"
    close = difflib.get_close_matches(str(key), allowed, n=1)
    if close:
        message += f"; did you mean {close[0]!r}?"
    return f"{message} (allowed: {', '.join(allowed)})"


def _scale_issues(doc: dict) -> Iterator[SchemaIssue]:
    """scale <= precision: one field's two numbers, which JSON Schema cannot compare."""
    fields = doc.get("fields")
    for index, field in enumerate(fields if isinstance(fields, list) else []):
        if not isinstance(field, dict):
            continue
        precision, scale = field.get("precision"), field.get("scale")
        if isinstance(precision, int) and isinstance(scale, int) and scale > precision:
            yield SchemaIssue(
                f"/fields/{index}/scale", f"scale {scale} is greater than precision {precision}"
            )


def _pointer(parts: list[Any]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def _path_key(path: str) -> tuple:
    """Sort /fields/2 before /fields/10."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.split("/")[1:])


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


@cache
def _load(filename: str) -> dict:
    return json.loads((SCHEMA_DIR / filename).read_text(encoding="utf-8"))


@cache
def _registry() -> Registry:
    schemas = [_load(DEFS_FILE), *(_load(f"{kind}.schema.json") for kind in KINDS)]
    return Registry().with_resources((schema["$id"], Resource.from_contents(schema)) for schema in schemas)


@cache
def _validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(_load(f"{kind}.schema.json"), registry=_registry())


@cache
def _head_validator() -> Draft202012Validator:
    head = {"$ref": _load(DEFS_FILE)["$id"] + "#/$defs/document"}
    return Draft202012Validator(head, registry=_registry())
