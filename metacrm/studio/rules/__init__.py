"""Admin studio → Rules (issue 15): a form for pools and one for duplicate rules, so an admin
never types their JSON. Both build the metadata document, show the dry-run diff and apply it
through `apply_change` (the version the form loaded checked: a change applied in between is a
409 with the live document shown). The duplicate-rule form tests the unsaved rule on the
existing data first.

- index.py: /admin/rules, every pool and duplicate rule, and "new" for either;
- pool_form.py: /admin/rules/pools/new?object=…, /admin/rules/pools/<name>;
- dedup_form.py: /admin/rules/duplicates/new?object=…, /admin/rules/duplicates/<name>;
- common.py: people pickers, number inputs, issues beside their input, review → diff → apply.
"""

from __future__ import annotations

from pathlib import Path

from ...platform.features import Feature
from . import dedup_form, index, pool_form  # noqa: F401 - each adds its pages to routes
from .pages import routes

HERE = Path(__file__).resolve().parent
FEATURE = Feature("studio_rules", pages=routes, nav=index.NAV, templates=HERE / "templates",
                  messages=HERE / "messages", on_app=index.on_app)


def register(runtime) -> None:
    runtime.features.add(FEATURE)
