"""Reading the plugins: installed, archived and available, with what this process loaded."""

from __future__ import annotations

from typing import Any

from ..platform.errors import CrmError, NotFound
from . import loader
from .manifest import parse_manifest
from .plan import _rows
from .settings import settings


def list_plugins(runtime: Any) -> list[dict]:
    """Installed, archived and available plugins, with what this process has loaded."""
    rows = _rows(runtime)
    candidates = loader.discover()
    st = loader.state(runtime)
    items = []
    for name in sorted(set(rows) | set(candidates)):
        row, candidate = rows.get(name), candidates.get(name)
        item: dict[str, Any] = {
            "name": name,
            "status": row.status if row else "available",
            "installed_version": row.version if row else None,
            "available_version": None,
            "enabled": row.enabled if row else None,
            "granted": row.granted if row else [],
            "origin": candidate.origin if candidate else None,
            "source": candidate.source if candidate else (row.origin if row else None),
            "loaded": name in st.loaded,
            "error": st.errors.get(name),
        }
        manifest = row.manifest if row else {}
        if candidate is not None:
            try:
                parsed = parse_manifest(candidate.load().raw_manifest, expected_name=name)
                manifest = parsed.raw
                item["available_version"] = str(parsed.version)
                item["compatible"] = parsed.supports()
            except (CrmError, TypeError, AttributeError) as exc:  # the list shows broken packages
                item["error"] = item["error"] or getattr(exc, "message", str(exc))
        elif row is not None:
            item["error"] = item["error"] or "its package is not installed any more"
        item.update(label=manifest.get("label") or name, description=manifest.get("description"),
                    permissions=list(manifest.get("permissions") or []),
                    depends=list(manifest.get("depends") or []), metacrm=manifest.get("metacrm"))
        items.append(item)
    return items


def show(runtime: Any, name: str) -> dict:
    for item in list_plugins(runtime):
        if item["name"] == name:
            row = _rows(runtime).get(name)
            item["settings"] = settings(runtime, name)
            item["installed_at"] = row.installed_at.isoformat() + "Z" if row else None
            item["applied"] = row.applied if row else {}
            return item
    raise NotFound(f"No plugin named {name!r}.", code="unknown_plugin", plugin=name)
