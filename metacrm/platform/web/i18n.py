"""The web UI's words in the request's locale: `t(key, **values)`, `label(metadata_label)`.

The catalogue itself is core (metacrm.platform.i18n); the generic pages' messages are the data
files in web/messages/, and each feature brings its own messages/ folder. `t` formats with
str.format; a key missing in a locale falls back to English, then to the key itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import g, has_request_context

from ...metadata.model import label_text
from ..i18n import (  # noqa: F401 - the catalogue and formats live in the core
    DEFAULT_LOCALE,
    LOCALE_NAMES,
    LOCALES,
    MESSAGES,
    add_messages,
    format_date,
    format_datetime,
    format_money,
    format_number,
    format_percent,
    load_messages,
    normalise_locale,
    translate,
)

load_messages(Path(__file__).resolve().parent / "messages")


def current_locale() -> str:
    if has_request_context():
        return getattr(g, "locale", None) or DEFAULT_LOCALE
    return DEFAULT_LOCALE


def t(key: str, **values: Any) -> str:
    """The message `key` in the current request's locale."""
    return translate(current_locale(), key, **values)


def message(text: str) -> str:
    """A platform validation message in the user's words, when the catalogue knows it."""
    key = f"msg.{text}"
    locale = current_locale()
    return MESSAGES.get(locale, {}).get(key) or text


def label(value: Any, fallback: str = "") -> str:
    """A metadata label (a string or a locale map) in the current locale."""
    return label_text(value, current_locale(), fallback)
