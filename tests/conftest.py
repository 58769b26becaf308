"""Shared fixtures. Every storage test runs on SQLite and PostgreSQL (parametrised `db_url`).

PostgreSQL: METACRM_TEST_DATABASE_URL (default: the local server's `test` database). Each
test gets its own database, copied from a template initialised once per run. Unreachable PostgreSQL
fails the run when CI is set, and skips those cases otherwise.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from metacrm.platform.config import Config
from metacrm.platform.db import make_engine
from metacrm.platform.records import RecordService
from metacrm.platform.security import Principal
from metacrm.platform.setup import build_runtime, initialise

PG_URL = os.environ.get("METACRM_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ADMIN_PASSWORD = "admin-pass-123"
_pg_problem: list[str] = []


def pg_available() -> str | None:
    """None if PostgreSQL answers, else the reason (checked once per run)."""
    if not _pg_problem:
        try:
            engine = sa.create_engine(PG_URL)
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            engine.dispose()
            _pg_problem.append("")
        except Exception as exc:  # noqa: BLE001 - any failure means "not available"
            _pg_problem.append(f"PostgreSQL at {PG_URL} is unreachable: {exc}")
    return _pg_problem[0] or None


def require_pg() -> None:
    problem = pg_available()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)


def _initialise(engine) -> None:
    config = Config(database_url=str(engine.url), secret_key="test-secret", testing=True)
    initialise(build_runtime(config, engine), ADMIN_PASSWORD)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """An initialised SQLite file, built once per run and copied for each test."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    eng = make_engine(f"sqlite:///{path}")
    _initialise(eng)
    eng.dispose()  # the last connection closing checkpoints the WAL into the main file
    return path


@pytest.fixture(scope="session")
def pg_template():
    """An initialised PostgreSQL database, built once per run; tests get copies (CREATE DATABASE
    ... TEMPLATE), which is much faster than applying the default metadata each time."""
    require_pg()
    name = f"metacrm_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    eng = make_engine(sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False))
    _initialise(eng)
    eng.dispose()
    yield name
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    """A fresh database on each backend, already initialised: system + default metadata and the
    user `admin` (password ADMIN_PASSWORD)."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        template = request.getfixturevalue("sqlite_template")
        shutil.copyfile(template, path)
        if Path(f"{template}-wal").exists():
            shutil.copyfile(f"{template}-wal", f"{path}-wal")
        eng = make_engine(f"sqlite:///{path}")
        yield eng
        eng.dispose()
        return
    template = request.getfixturevalue("pg_template")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    eng = make_engine(sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False))
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def runtime(engine):
    """A runtime on the initialised database."""
    config = Config(database_url=engine.url.render_as_string(hide_password=False), secret_key="test-secret",
                    testing=True)
    rt = build_runtime(config, engine)
    rt.compiled(force=True)
    return rt


@pytest.fixture
def admin(runtime) -> RecordService:
    return RecordService(runtime, Principal.system(), source="test")


@pytest.fixture
def app(runtime):
    from metacrm.platform.app import create_app

    application = create_app(runtime.config, runtime)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app):
    return app.test_client()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for servers a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class User:
    id: str
    username: str
    password: str
    principal: Principal
    headers: dict


def make_user(runtime, client, username: str, roles: list[str], department: str | None = None,
              manager: str | None = None, password: str = "user-pass-123") -> User:
    """Create a user through the record service and log in over the API."""
    values = {"username": username, "display_name": username.title(), "roles": roles, "password": password}
    if department:
        values["department"] = department
    if manager:
        values["manager"] = manager
    created = RecordService(runtime, Principal.system()).create("user", values)
    runtime.directory_changed()
    token = client.post("/api/v1/auth/token", json={"username": username, "password": password}).get_json()["token"]
    principal = Principal(user_id=created["id"], username=username, roles=frozenset(roles), department=department,
                          manager=manager)
    return User(created["id"], username, password, principal, {"Authorization": f"Bearer {token}"})


@pytest.fixture
def admin_headers(client) -> dict:
    token = client.post("/api/v1/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD}).get_json()["token"]
    return {"Authorization": f"Bearer {token}"}
