"""History notes in the reader's language.

A history note is stored as one English sentence: it is what the REST API returns and what an
export shows, and older notes exist only in that form. The sentences the product writes have
templates in the message catalogues under `note.<key>` (English and Chinese, the same
placeholders; the English is exactly what the writer produces, which tests/test_history_notes.py
checks on real notes). A page shows a stored note with `localise(text, locale, relabel)`, which finds the English template the text was made from,
reads its values back, lets the caller turn values into the reader's words (a process, step or
pool label, "the system"), and renders the same key in the reader's locale. A note no template
matches (a comment typed by a person, a plugin's own words) is shown as stored.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .i18n import MESSAGES, translate

PREFIX = "note."
_FIELD = re.compile(r"\{(\w+)\}")
_CACHE: dict[str, Any] = {"sig": None, "patterns": []}


def _compile(template: str) -> re.Pattern | None:
    parts = _FIELD.split(template)
    seen: set[str] = set()
    regex = []
    for index, part in enumerate(parts):
        if index % 2 == 0:
            regex.append(re.escape(part))
        elif part in seen:
            regex.append(f"(?P={part})")
        else:
            seen.add(part)
            regex.append(f"(?P<{part}>.+?)")
    try:
        return re.compile("".join(regex), re.DOTALL)
    except re.error:
        return None


def _patterns() -> list[tuple[str, re.Pattern]]:
    english = MESSAGES.get("en", {})
    sig = (id(english), len(english))
    if _CACHE["sig"] != sig:
        found = []
        for key, template in english.items():
            if key.startswith(PREFIX):
                pattern = _compile(template)
                if pattern is not None:
                    # the longest literal text first: "... Comment: {comment}" before its shorter form
                    found.append((len(_FIELD.sub("", template)), key, pattern))
        found.sort(key=lambda item: -item[0])
        _CACHE.update(sig=sig, patterns=[(key, pattern) for _, key, pattern in found])
    return _CACHE["patterns"]


def parse(text: str) -> tuple[str, dict[str, str]] | None:
    """(key, values) of the English template `text` was written from, or None."""
    if not text:
        return None
    for key, pattern in _patterns():
        match = pattern.fullmatch(text)
        if match:
            return key, match.groupdict()
    return None


def localise(text: str | None, locale: str,
             relabel: Callable[[dict[str, str]], dict[str, str]] | None = None) -> str | None:
    """The stored note in `locale` (unchanged when no template matches)."""
    if not text:
        return text
    found = parse(text)
    if found is None:
        return text
    key, values = found
    if relabel is not None:
        values = relabel(values)
    return translate(locale, key, **values)
