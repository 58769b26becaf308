"""Working fast in lists and records: inline edit of one field (inline.py), selection and mass
actions on list pages (mass.py), and the records a user opened lately (recent.py). Every write
goes through RecordService as the logged-in user, with its field access, row scope, approval
locks and version checks. Docs: docs/web.md ("Inline edit, mass actions, recent items")."""

from __future__ import annotations

from pathlib import Path

from ..core import template_folders
from ..i18n import load_messages

HERE = Path(__file__).resolve().parent
load_messages(HERE / "messages")
if HERE / "templates" not in template_folders:
    template_folders.append(HERE / "templates")

from . import inline, mass, recent  # noqa: F401  (pages)
