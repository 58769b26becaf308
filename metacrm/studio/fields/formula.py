"""The formula editor's server side: what the formula engine knows (platform/computed.py runs
formulas as Jinja2 expressions in a sandbox), a syntax check that says where the expression is
wrong, and the value a formula would give on a sample record."""

from __future__ import annotations

import re
from typing import Any

from jinja2.exceptions import TemplateSyntaxError
from jinja2.parser import Parser

from ...metadata.model import FieldDef
from ...metadata.validate import formula_problems
from ...platform.computed import SANDBOX, _formula_value, coerce_result, out_of_range

RESULT_TYPES = ("text", "integer", "decimal", "currency", "percent", "boolean", "date", "datetime")
# The filters (functions written `value | name(...)`) shown in the editor, each with an example;
# every other Jinja2 filter of the sandbox works too (the list shows all of their names).
FUNCTIONS = (
    ("round", "amount | round(2)"),
    ("abs", "balance | abs"),
    ("int", "quantity | int"),
    ("float", "rate | float"),
    ("default", "discount | default(0)"),
    ("length", "name | length"),
    ("upper", "code | upper"),
    ("lower", "email | lower"),
    ("trim", "name | trim"),
    ("replace", "phone | replace('-', '')"),
    ("string", "amount | string"),
    ("join", "tags | join(', ')"),
    ("min", "[a, b] | min"),
    ("max", "[a, b] | max"),
    ("sum", "[a, b, c] | sum"),
)
OPERATORS = ("+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", "<=", ">", ">=", "and", "or", "not",
             "in", "x if condition else y", "x is none")


def all_filters() -> list[str]:
    return sorted(SANDBOX.filters)


def _positioned_stream(source: str, state: dict):
    """The parser's token stream, remembering where in `source` each token starts; `state` gets
    where the lexer stopped if it fails itself (an unclosed string or bracket)."""
    lexer = SANDBOX.lexer
    starts: list[tuple[Any, int, int]] = []  # (token, offset, column); the tokens kept alive

    def tokens():
        offset = line_start = 0
        raw = lexer.tokeniter(source, None, None, "variable")
        while True:
            try:
                lineno, kind, value = next(raw)
            except StopIteration:
                return
            except TemplateSyntaxError:
                state.update(lexer_error=True, offset=offset, column=offset - line_start)
                raise
            for token in lexer.wrap(iter([(lineno, kind, value)])):
                starts.append((token, offset, offset - line_start))
                yield token
            newline = value.rfind("\n")
            if newline >= 0:
                line_start = offset + newline + 1
            offset += len(value)

    from jinja2.lexer import TokenStream

    return TokenStream(tokens(), None, None), starts


def _error(message: str, line: int, source: str, offset: int) -> dict:
    offset = max(0, min(offset, len(source)))
    line_start = source.rfind("\n", 0, offset) + 1
    return {"message": message or "syntax error", "line": line or 1, "column": offset - line_start + 1,
            "offset": offset}


def syntax_errors(source: str) -> list[dict]:
    """[] when the expression parses; else one error {message, line, column (1-based), offset}."""
    if not source.strip():
        return [_error("empty", 1, source, 0)]
    state: dict = {}
    try:
        parser = Parser(SANDBOX, "", state="variable")
        parser.stream, starts = _positioned_stream(source, state)
        parser.parse_expression()
        if not parser.stream.eos:
            parser.fail("unexpected text after the expression", parser.stream.current.lineno)
    except TemplateSyntaxError as exc:
        at = re.search(r" at (\d+)$", exc.message or "")
        if at:
            offset = int(at.group(1))
        elif state.get("lexer_error"):
            offset = state["offset"]
        else:
            current = parser.stream.current
            offset = next((o for token, o, _ in starts if token is current), len(source.rstrip()))
        return [_error(exc.message, exc.lineno, source, offset)]
    return []


def check(obj, field_name: str, source: str) -> list[dict]:
    """Syntax errors, else the names the formula uses that the object does not have."""
    errors = syntax_errors(source)
    if errors:
        return errors
    return [{"message": problem, "line": None, "column": None, "offset": None}
            for problem in formula_problems(obj, field_name, source)]


def evaluate(source: str, record: dict, result_type: str, scale: int | None) -> tuple[Any, str | None]:
    """(the value, None) or (None, why it failed) for `record` (typed, as the write path has it)."""
    try:
        compiled = SANDBOX.compile_expression(source, undefined_to_none=True)
        env = {k: _formula_value(v) for k, v in record.items() if k.isidentifier()}
        value = compiled(record=env, **env)
    except Exception as exc:  # noqa: BLE001 - the preview reports what the save would turn into None
        return None, str(exc)
    value = coerce_result(value, result_type, scale)
    reason = out_of_range(FieldDef(name="preview", type="formula", result_type=result_type, scale=scale), value)
    return (None, reason) if reason else (value, None)
