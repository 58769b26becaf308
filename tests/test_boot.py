"""Servers starting at once on a fresh database all boot: the secret key and the other boot rows
are created insert-or-ignore then read, and initialising is serialised across processes."""

from __future__ import annotations

import threading
import uuid

import pytest
import sqlalchemy as sa

from metacrm.platform import db, setup
from metacrm.platform.app import create_app
from metacrm.platform.config import Config
from metacrm.platform.db import make_engine
from metacrm.platform.setup import build_runtime, initialise, secret_key
from tests.conftest import PG_URL, require_pg


def _runtime(engine):
    config = Config(database_url=engine.url.render_as_string(hide_password=False), testing=True)
    return build_runtime(config, engine)


def test_a_secret_key_stored_meanwhile_by_another_server_is_the_one_used(engine, monkeypatch):
    """Server A generates a key while server B stores its own: A must use B's, not fail."""
    runtime = _runtime(engine)
    with runtime.transaction() as tx:
        tx.conn.execute(db.setting.delete().where(db.setting.c.key == "secret_key"))
    other: dict = {}
    real = setup.secrets.token_hex

    def racing_token_hex(n):
        if not other:
            other["started"] = True
            thread = threading.Thread(target=lambda: other.update(value=secret_key(_runtime(engine))))
            thread.start()
            thread.join(timeout=30)
            assert not thread.is_alive(), "server B waited on server A"
        return real(n)

    monkeypatch.setattr(setup.secrets, "token_hex", racing_token_hex)
    mine = secret_key(runtime)
    assert other.get("value") and mine == other["value"]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(db.setting)
                            .where(db.setting.c.key == "secret_key")).scalar() == 1


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    require_pg()
    name = f"fresh_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_two_servers_starting_at_once_on_a_fresh_database_both_boot(fresh_url):
    barrier = threading.Barrier(2)
    results: list = [None, None]
    engines = [make_engine(fresh_url) for _ in range(2)]

    def boot(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            runtime = _runtime(engines[index])
            initialise(runtime, "boot-pass-12345")
            results[index] = create_app(runtime.config, runtime).config["SECRET_KEY"]
        except Exception as exc:  # noqa: BLE001 - reported below
            results[index] = exc

    threads = [threading.Thread(target=boot, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    try:
        assert all(isinstance(r, str) for r in results), results
        assert results[0] == results[1]
        runtime = _runtime(engines[0])
        runtime.compiled(force=True)
        users = runtime.compiled().tables["user"]
        with engines[0].connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(users)
                                .where(users.c.username == "admin")).scalar() == 1
            assert conn.execute(sa.select(db.meta_state.c.version)).scalar() >= 1
    finally:
        for engine in engines:
            engine.dispose()


def test_a_server_of_a_newer_release_adds_the_system_tables_the_older_database_lacks(engine):
    """A database made before the metadata change log existed: starting the new code creates the
    missing tables (nothing else touched), so the first metadata apply works instead of failing."""
    runtime = _runtime(engine)
    initialise(runtime, "admin-pass-123")
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE mc_meta_change_document"))
        conn.execute(sa.text("DROP TABLE mc_meta_change"))
        users_before = conn.execute(sa.text("SELECT count(*) FROM rec_user")).scalar()
    again = _runtime(engine)  # a newer server starting
    with engine.connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
        assert {"mc_meta_change", "mc_meta_change_document"} <= names
        assert conn.execute(sa.text("SELECT count(*) FROM rec_user")).scalar() == users_before
    from metacrm.metadata.bundle import documents_bundle
    from metacrm.platform.apply import apply_change

    doc = dict(again.registry().get("app", "sales"))
    doc["order"] = int(doc.get("order", 0)) + 1
    apply_change(again, documents_bundle([doc]))
    assert db.ensure_system_tables(engine) == []  # nothing missing any more: one catalogue read
