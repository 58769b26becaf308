"""What is installed, in the database: `mc_plugin` (one row per plugin) and plugin settings.

Every change to the installed set bumps the metadata version in the same transaction, so
every process (which re-reads its registry when the version moves) re-syncs its plugin
hooks from this table: hooks are per process, the truth is here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..platform import db, metastore
from ..platform.clock import utcnow
from ..platform.storage import UtcDateTime

INSTALLED, ARCHIVED = "installed", "archived"

plugin_table = sa.Table(
    "mc_plugin",
    db.system_metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # installed | archived (uninstalled, data kept)
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    sa.Column("origin", sa.String(200)),  # the package (distribution) or module it came from
    sa.Column("installed_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("granted", sa.JSON, nullable=False),  # permissions the admin granted
    sa.Column("manifest", sa.JSON, nullable=False),  # the manifest as installed
    sa.Column("applied", sa.JSON, nullable=False),  # documents, extension fields, tables, action names
)


@dataclass
class PluginRow:
    name: str
    version: str
    status: str
    enabled: bool
    origin: str | None
    installed_at: datetime
    updated_at: datetime
    granted: list[str]
    manifest: dict
    applied: dict = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status == INSTALLED and self.enabled

    @property
    def documents(self) -> list[tuple[str, str]]:
        return [tuple(k) for k in self.applied.get("documents", [])]

    @property
    def fields(self) -> dict[str, list[str]]:
        return dict(self.applied.get("fields", {}))

    @property
    def tables(self) -> list[str]:
        return list(self.applied.get("tables", []))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _row(row: Any) -> PluginRow:
    return PluginRow(row.name, row.version, row.status, bool(row.enabled), row.origin, row.installed_at,
                     row.updated_at, list(_json(row.granted) or []), dict(_json(row.manifest) or {}),
                     dict(_json(row.applied) or {}))


def ensure_table(engine_or_conn: Any) -> None:
    plugin_table.create(engine_or_conn, checkfirst=True)


def read_all(conn: sa.Connection) -> dict[str, PluginRow]:
    if not sa.inspect(conn).has_table(plugin_table.name):
        return {}
    return {r.name: _row(r) for r in conn.execute(sa.select(plugin_table).order_by(plugin_table.c.name))}


def read_one(conn: sa.Connection, name: str) -> PluginRow | None:
    row = conn.execute(sa.select(plugin_table).where(plugin_table.c.name == name)).first()
    return _row(row) if row is not None else None


def write(conn: sa.Connection, row: PluginRow, *, expect_version: str | None = None, new: bool = False) -> bool:
    """Insert or update a row and bump the metadata version (so other processes re-sync)."""
    values = {"version": row.version, "status": row.status, "enabled": row.enabled, "origin": row.origin,
              "installed_at": row.installed_at, "updated_at": utcnow(), "granted": list(row.granted),
              "manifest": row.manifest, "applied": row.applied}
    if new:
        conn.execute(plugin_table.insert().values(name=row.name, **values))
    else:
        query = plugin_table.update().where(plugin_table.c.name == row.name)
        if expect_version is not None:
            query = query.where(plugin_table.c.version == expect_version)
        if conn.execute(query.values(**values)).rowcount != 1:
            return False
    bump(conn)
    return True


def delete(conn: sa.Connection, name: str) -> None:
    conn.execute(plugin_table.delete().where(plugin_table.c.name == name))
    bump(conn)


def bump(conn: sa.Connection) -> int:
    """A new metadata version with no document change: every process re-reads and re-syncs."""
    return metastore.write_documents(conn, [], [])


# --- settings (mc_setting, key plugin:<name>:<key>) -----------------------------------------


def setting_key(plugin: str, key: str) -> str:
    return f"plugin:{plugin}:{key}"


def get_setting(conn: sa.Connection, plugin: str, key: str) -> Any:
    value = conn.execute(sa.select(db.setting.c.value).where(db.setting.c.key == setting_key(plugin, key))).scalar()
    return json.loads(value) if value is not None else None


def get_settings(conn: sa.Connection, plugin: str) -> dict[str, Any]:
    prefix = setting_key(plugin, "")
    rows = conn.execute(sa.select(db.setting.c.key, db.setting.c.value).where(db.setting.c.key.startswith(prefix, autoescape=True)))
    return {r.key[len(prefix):]: json.loads(r.value) for r in rows}


def set_setting(conn: sa.Connection, plugin: str, key: str, value: Any) -> None:
    full = setting_key(plugin, key)
    conn.execute(db.setting.delete().where(db.setting.c.key == full))
    if value is not None:
        conn.execute(db.setting.insert().values(key=full, value=json.dumps(value)))


def delete_settings(conn: sa.Connection, plugin: str) -> None:
    conn.execute(db.setting.delete().where(db.setting.c.key.startswith(setting_key(plugin, ""), autoescape=True)))
