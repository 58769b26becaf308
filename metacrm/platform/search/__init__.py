"""Global search: the header's search box across every object with searchable fields.

register(runtime) creates the index (index.py), keeps it current from the one write path (an
after_save hook: create, update, delete, restore, imports, workflow and approval writes alike)
and adds the `search_reindex` sweep that rebuilds an object whose searchable fields changed.
query.search() answers a query through the record service, so row scope and field access
decide what is found (query.py). REST: GET /api/v1/search (api.py); web: /search (pages.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa

from .. import db
from ..features import Feature
from . import api, index, pages
from .query import search  # noqa: F401 - for other features

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
KEY = "search.sig."


def _after_save(ctx) -> None:
    fields = index.searchable_fields(ctx.obj)
    if not fields:
        return
    if ctx.op == "delete":
        index.remove(ctx.conn, ctx.obj.name, ctx.record["id"])
    elif index.changed_searchable(ctx, fields):
        index.write(ctx.conn, ctx.obj, ctx.record, fresh=ctx.op == "create")


def reindex(runtime, *, only_stale: bool = True, objects: list[str] | None = None) -> dict[str, int]:
    """Rebuild the entries of every object whose searchable fields changed since it was last
    indexed (or of `objects`, or of all). Returns {object: records indexed}."""
    compiled = runtime.compiled()
    done: dict[str, int] = {}
    for obj in compiled.registry.objects.values():
        if objects is not None and obj.name not in objects:
            continue
        sig = index.signature(obj)
        key = (KEY + obj.name)[:64]
        with runtime.transaction() as tx:
            query = sa.select(db.setting.c.value).where(db.setting.c.key == key)
            if tx.conn.dialect.name == "postgresql":
                query = query.with_for_update()
            stored = tx.conn.execute(query).scalar()
            if only_stale and stored == sig:
                continue
            done[obj.name] = index.reindex_object(tx.conn, obj, compiled.tables[obj.name])
            # Insert-or-ignore then update: two servers indexing a fresh database at once both succeed.
            if stored is None and db.insert_ignore(tx.conn, db.setting, {"key": key, "value": sig}, ["key"]):
                continue
            tx.conn.execute(db.setting.update().where(db.setting.c.key == key).values(value=sig))
    return done


def ensure_current(runtime) -> None:
    """Once per metadata version per process: reindex objects whose searchable fields changed,
    so a field an admin marks searchable is found at once, not at the next sweep."""
    version = runtime.compiled().registry.version
    if runtime.extensions.get("search.version") == version:
        return
    reindex(runtime)
    runtime.extensions["search.version"] = version


def _sweep(runtime) -> str:
    done = reindex(runtime)
    return ", ".join(f"{o} {n}" for o, n in done.items()) if done else "index current"


def register_cli(main) -> None:
    import click

    @main.group("search")
    def search_group() -> None:
        """The global search index."""

    @search_group.command("reindex")
    @click.option("--all", "everything", is_flag=True, help="Rebuild every object, not only changed ones.")
    def reindex_command(everything: bool) -> None:
        """Rebuild the search index of objects whose searchable fields changed (or all)."""
        from ..cli import _runtime

        done = reindex(_runtime(), only_stale=not everything)
        for name, count in done.items():
            click.echo(f"{name}: {count} records")
        if not done:
            click.echo("index current")


FEATURE = Feature("search", api=api.routes, pages=pages.routes, nav=pages.NAV, templates=HERE / "templates",
                  messages=HERE / "messages", openapi=api.openapi_paths, cli=register_cli)


def register(runtime) -> None:
    try:
        with db.boot_lock(runtime.engine):  # servers starting at once must not race the DDL
            index.ensure(runtime.engine)
    except sa.exc.OperationalError:  # no database yet (`metacrm metadata validate`): init creates it
        log.debug("search index not created", exc_info=True)
    runtime.hooks.register("after_save", _after_save, name="search.index", order=40)
    if not any(name == "search_reindex" for name, _ in runtime.sweeps):
        runtime.sweeps.append(("search_reindex", _sweep))
    runtime.features.add(FEATURE)
