"""Building a runtime with every built-in module's hooks, and initialising a database."""

from __future__ import annotations

import importlib
import logging
import secrets
from pathlib import Path

import sqlalchemy as sa

from ..metadata.bundle import Bundle, load_bundle
from . import changelog, computed, db, outbox
from .apply import apply_change
from .clock import utcnow
from .config import Config
from .records import RecordService
from .runtime import Runtime
from .security import Principal

log = logging.getLogger(__name__)
PACKAGE = Path(__file__).resolve().parent.parent
SYSTEM_BUNDLE = PACKAGE / "metadata" / "system"
DEFAULT_BUNDLE = PACKAGE / "default_schemas"

# The built-in features, in registration order: each is a package with register(runtime) and
# FEATURE (metacrm.platform.features). The one list of them; nothing else names a feature.
FEATURES = (
    "metacrm.platform.notifications",
    "metacrm.platform.dedup",
    "metacrm.platform.pools",
    "metacrm.platform.imports",
    "metacrm.platform.reports",
    "metacrm.platform.search",
    "metacrm.platform.webforms",
    "metacrm.workflow",
    "metacrm.approval",
    "metacrm.studio.fields",
    "metacrm.studio.automation",
    "metacrm.studio.layouts",
    "metacrm.plugins",
    "metacrm.studio.rules",
)


def feature_modules() -> list:
    return [importlib.import_module(name) for name in FEATURES]


def build_runtime(config: Config, engine: sa.Engine | None = None) -> Runtime:
    runtime = Runtime(config, engine)
    computed.register(runtime.hooks)
    outbox.register(runtime)
    _register_core_sweeps(runtime)
    for module in feature_modules():
        module.register(runtime)
    db.ensure_system_tables(runtime.engine)  # an upgrade's new system tables, before any request
    return runtime


def _register_core_sweeps(runtime: Runtime) -> None:
    """The core's own clean-ups: old Idempotency-Key answers, old login failure counts."""
    from . import sessions
    from .api import idempotency
    from .throttle import LoginThrottle

    sessions.register(runtime)
    names = {name for name, _ in runtime.sweeps}
    if "idempotency_keys" not in names:
        runtime.sweeps.append(("idempotency_keys", idempotency.sweep))
    if "login_failures" not in names:
        runtime.sweeps.append(("login_failures",
                               lambda rt: f"{LoginThrottle(rt.engine).forget_old()} old login failure count(s) removed"))


def secret_key(runtime: Runtime) -> str:
    """A per-installation secret kept in the database when METACRM_SECRET_KEY is not set.

    Insert-or-ignore, then read: servers starting at once on a fresh database all end up with
    the one key the first of them stored (a session one signed is valid on every other)."""
    candidate = secrets.token_hex(32)
    with runtime.transaction() as tx:
        db.insert_ignore(tx.conn, db.setting, {"key": "secret_key", "value": candidate}, ["key"])
        return tx.conn.execute(sa.select(db.setting.c.value).where(db.setting.c.key == "secret_key")).scalar_one()


def merge_bundles(*bundles: Bundle) -> Bundle:
    merged = Bundle()
    for bundle in bundles:
        merged.documents.extend(bundle.documents)
        merged.sources.update(bundle.sources)
        merged.issues.extend(bundle.issues)
    return merged


def initialise(runtime: Runtime, admin_password: str | None = None, with_defaults: bool = True) -> tuple[bool, str | None]:
    """Create the platform tables, apply the system (and default) metadata, create `admin`.

    Returns (created_admin, generated_password). Safe to run again, and at the same time from
    several processes (serialised by db.boot_lock): nothing is duplicated.
    """
    with db.boot_lock(runtime.engine):
        return _initialise(runtime, admin_password, with_defaults)


def _initialise(runtime: Runtime, admin_password: str | None, with_defaults: bool) -> tuple[bool, str | None]:
    db.create_system_tables(runtime.engine)
    with runtime.transaction() as tx:
        db.insert_ignore(tx.conn, db.meta_state, {"id": 1, "version": 0, "updated_at": utcnow()}, ["id"])
    bundles = [load_bundle(SYSTEM_BUNDLE)]
    if with_defaults:
        bundles.append(load_bundle(DEFAULT_BUNDLE))
    with changelog.acting(user=changelog.SYSTEM, via="boot"):
        apply_change(runtime, merge_bundles(*bundles))
    runtime.compiled(force=True)
    users = runtime.compiled().tables["user"]
    with runtime.engine.connect() as conn:
        exists = conn.execute(sa.select(users.c.id).where(users.c.username == "admin")).first()
    if exists:
        return False, None
    generated = None
    if not admin_password:
        admin_password = generated = secrets.token_urlsafe(12)
    service = RecordService(runtime, Principal.system(), source="init")
    service.create("user", {"username": "admin", "display_name": "Administrator", "roles": ["admin"],
                            "password": admin_password, "locale": "en"})
    return True, generated
