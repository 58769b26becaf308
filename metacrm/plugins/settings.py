"""Plugin settings: declared in the manifest, stored in the database or taken from the
environment."""

from __future__ import annotations

import logging
from typing import Any

from ..platform.errors import BadRequest, CrmError
from . import loader, store
from .plan import _rows

log = logging.getLogger("metacrm.plugins")


def _manifest_settings(runtime: Any, name: str) -> dict:
    row = _rows(runtime).get(name)
    candidate = loader.find(name)
    if candidate is not None:
        try:
            return dict(candidate.load().raw_manifest.get("settings") or {})
        except (CrmError, TypeError, AttributeError):
            log.debug("plugin %s: cannot read its settings from the code", name, exc_info=True)
    return dict((row.manifest if row else {}).get("settings") or {})


def settings(runtime: Any, name: str) -> dict:
    """Declared settings with their values (secrets masked) and where each value comes from."""
    import os

    spec = _manifest_settings(runtime, name)
    with runtime.reading() as conn:
        stored = store.get_settings(conn, name)
    out = {}
    for key in sorted(set(spec) | set(stored)):
        s = spec.get(key) or {}
        env = s.get("env")
        if env and os.environ.get(env):
            value, source = os.environ[env], f"env {env}"
        elif key in stored:
            value, source = stored[key], "stored"
        else:
            value, source = s.get("default"), "default"
        if s.get("secret") and value not in (None, ""):
            value = "********"
        out[key] = {"value": value, "source": source, "label": s.get("label") or key, "env": env,
                    "secret": bool(s.get("secret"))}
    return out


def set_settings(runtime: Any, name: str, values: dict) -> dict:
    spec = _manifest_settings(runtime, name)
    unknown = sorted(set(values) - set(spec))
    if unknown:
        raise BadRequest(f"Plugin {name!r} has no setting {', '.join(map(repr, unknown))}"
                         + (f" (it has: {', '.join(sorted(spec))})" if spec else ""),
                         code="unknown_setting", fields={k: ["Unknown setting."] for k in unknown})
    with runtime.transaction() as tx:
        for key, value in values.items():
            store.set_setting(tx.conn, name, key, value)
    return settings(runtime, name)
