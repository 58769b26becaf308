"""Web-to-lead: public forms as `web_form` metadata.

- tokens.py: the signed, time-limited, single-use form token (instead of the session's CSRF token);
- store.py: submissions per form (mc_web_form_submission), the replay guard;
- public.py: /f/<name> (the form, embeddable), its POST (throttle, honeypot, size limits, the
  record service as the form's system principal), /f/<name>/thanks;
- api.py: /api/v1/web_forms (counts) and /api/v1/web_forms/<name>/submissions, for admins;
- admin.py: Admin → Web forms: the list with submission counts, a form's submissions and embed
  snippet, and the editor (dry-run diff, then apply).
"""

from __future__ import annotations

from pathlib import Path

from ..features import Feature
from . import api, pages

HERE = Path(__file__).resolve().parent

FEATURE = Feature("webforms", api=api.routes, openapi=api.openapi_paths, pages=pages.routes, nav=pages.NAV,
                  templates=HERE / "templates", messages=HERE / "messages")


def register(runtime) -> None:
    runtime.features.add(FEATURE)
