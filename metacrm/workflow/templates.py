"""Message templates: Jinja2's immutable sandbox, rendered with `record`, `comment`, `user`.

A template that fails at render time (a filter on a missing value...) yields its error
text in the message instead of failing the save that triggered it.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from jinja2 import Template
from jinja2.sandbox import ImmutableSandboxedEnvironment

log = logging.getLogger("metacrm.workflow")
# an empty value prints as nothing, not "None" (a message reads "Key lead: Bell Co (, east)", not "(None, east)")
_ENV = ImmutableSandboxedEnvironment(autoescape=False, trim_blocks=True, finalize=lambda v: "" if v is None else v)


def is_template(text: Any) -> bool:
    return isinstance(text, str) and ("{{" in text or "{%" in text)


@lru_cache(maxsize=1024)
def _compiled(text: str) -> Template:
    return _ENV.from_string(text)


def render(text: str, **context: Any) -> str:
    if not is_template(text):
        return text
    try:
        return _compiled(text).render(**context)
    except Exception as exc:  # noqa: BLE001 - a broken template must not block the save that fired it
        log.warning("template %r failed: %s", text[:80], exc)
        return f"{text} [template error: {exc}]"
