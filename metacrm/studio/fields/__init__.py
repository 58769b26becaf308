"""Admin studio → fields: edit and remove fields of every type, type-specific editors (formula with
a syntax check and a live preview, rollup with the condition rows, autonumber with the next value,
lookup, picklists with ordered values in both locales, decimals), record types and "activities can
be logged on this object". Every save shows the dry-run diff first (admin._run) and applies with the
versions the form loaded (a change applied in between is a 409).

- editor.py: the field document from the posted form (errors per input), and back;
- formula.py: the syntax check with positions, the function list, the preview on a sample record;
- pages.py: the pages and the formula-check endpoint.
"""

from __future__ import annotations

from pathlib import Path

from ...platform.features import Feature
from . import pages

HERE = Path(__file__).resolve().parent
FEATURE = Feature("studio_fields", pages=pages.routes, templates=HERE / "templates", messages=HERE / "messages")


def register(runtime) -> None:
    runtime.features.add(FEATURE)
