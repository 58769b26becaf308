"""Admin → Layouts: the layout designer (issue 15).

- draft.py: the designer's form as a draft (sections, related lists, list columns, who it is
  for), the edit operations the keyboard / no-script buttons post, the checks and the layout
  document the draft becomes;
- pages.py: /admin/layouts (every object's layouts, and a new one) and /admin/layouts/<name>
  (the designer: drag and drop with static/layout_designer.js, buttons without it, a preview at
  desktop and phone width on a sample record, review → diff → apply through apply_change).
"""

from __future__ import annotations

from pathlib import Path

from ...platform.features import Feature
from . import pages

HERE = Path(__file__).resolve().parent
FEATURE = Feature("studio_layouts", pages=pages.routes, nav=pages.NAV, templates=HERE / "templates",
                  messages=HERE / "messages")


def register(runtime) -> None:
    runtime.features.add(FEATURE)
