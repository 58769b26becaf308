"""The metacrm test fixtures (both databases), reused: this example lives in the metacrm
repository and runs in its CI. A plugin kept elsewhere would write its own."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
if (ROOT / "tests" / "conftest.py").exists() and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.conftest import (  # noqa: F401  (fixtures)
    ADMIN_PASSWORD,
    admin,
    admin_headers,
    app,
    client,
    engine,
    make_user,
    pg_template,
    runtime,
    sqlite_template,
)
