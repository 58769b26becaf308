"""The `metacrm` command. Exit codes: 0 ok, 1 failed, 2 usage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..metadata.bundle import load_bundle
from ..metadata.validate import validate_change
from .config import Config
from .errors import CrmError, MetadataInvalid


def _runtime():
    from .setup import build_runtime

    return build_runtime(Config.from_env())


def _fail(message: str) -> None:
    click.echo(message, err=True)
    sys.exit(1)


@click.group()
@click.version_option(package_name="metacrm")
@click.pass_context
def main(ctx: click.Context) -> None:
    """metacrm: a metadata-driven CRM platform."""
    from .changelog import acting

    ctx.with_resource(acting(via="cli"))  # metadata changes made by any command are logged as "cli"


@main.command()
@click.option("--demo", is_flag=True, help="Also seed a demo company.")
def init(demo: bool) -> None:
    """Create the database, apply the default metadata, create the first admin."""
    from .setup import initialise

    config = Config.from_env()
    runtime = _runtime()
    try:
        created, generated = initialise(runtime, config.admin_password)
    except CrmError as exc:
        _fail(f"init failed: {exc.message}")
    click.echo(f"database ready: {runtime.engine.url.render_as_string(hide_password=True)}")
    if created:
        if generated:
            click.echo(f"admin user created: username 'admin', password: {generated}")
            click.echo("(printed once; set METACRM_ADMIN_PASSWORD to choose it)")
        else:
            click.echo("admin user created: username 'admin', password from METACRM_ADMIN_PASSWORD")
    if demo:
        seeders = [feature.demo for feature in runtime.features if feature.demo is not None]
        if not seeders:
            _fail("no feature ships a demo company")
        for seed in seeders:
            click.echo(seed(runtime))


@main.command()
@click.option("--host", default=None, help="Address to listen on (METACRM_HOST, default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (METACRM_PORT, default 5000).")
@click.option("--workers", default=1, show_default=True, type=int, help="Worker processes.")
@click.option("--threads", default=16, show_default=True, type=int, help="Threads per worker.")
@click.option("--no-timer", is_flag=True, help="Do not run periodic sweeps in this process (scaled mode).")
def serve(host: str | None, port: int | None, workers: int, threads: int, no_timer: bool) -> None:
    """Serve the web UI and REST API (gunicorn)."""
    from gunicorn.app.base import BaseApplication

    config = Config.from_env()
    bind = f"{host or config.host}:{port or config.port}"

    class Server(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", bind)
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", threads)
            self.cfg.set("timeout", 120)
            self.cfg.set("accesslog", "-")
            self.cfg.set("when_ready", on_ready)
            self.cfg.set("post_worker_init", on_worker)
            if "control_socket_disable" in self.cfg.settings:
                # recent gunicorn opens a control socket at one path per user ($HOME/.gunicorn):
                # several servers on one host would take it from each other; metacrm does not use it
                self.cfg.set("control_socket_disable", True)

        def load(self):
            from .app import create_app

            return create_app(Config.from_env())

    def on_ready(server):
        server.log.info("metacrm listening on http://%s", bind)
        if config.redis_url:
            server.log.info("scaled mode: the outbox and the periodic jobs run in `metacrm worker` processes")
        elif no_timer:
            server.log.info("periodic jobs are off in this server (--no-timer)")

    def on_worker(worker):
        # Embedded mode: periodic sweeps on a timer in the worker (never in the master:
        # a thread there would be forked into the workers mid-import).
        if not no_timer and not config.redis_url:
            from .sweeps import start_timer

            start_timer(worker.wsgi.extensions["metacrm"], config.sweep_interval)

    Server().run()


@main.command()
def sweep() -> None:
    """Run every periodic job once and print what it did."""
    from .sweeps import run_all

    lines, failed = run_all(_runtime())
    for line in lines:
        click.echo(line)
    sys.exit(1 if failed else 0)


@main.group()
def metadata() -> None:
    """Validate, diff, apply and export metadata bundles."""


def _load(path: str):
    bundle = load_bundle(path)
    if bundle.issues:
        for issue in bundle.issues:
            click.echo(str(issue), err=True)
        _fail(f"{len(bundle.issues)} problem(s); nothing applied")
    return bundle


def _print_issues(exc: MetadataInvalid) -> None:
    for issue in exc.issues:
        click.echo(str(issue), err=True)


@metadata.command("validate")
@click.argument("path", type=click.Path())
def metadata_validate(path: str) -> None:
    """Check a bundle (schemas and references, against the live metadata if there is a database)."""
    from ..metadata.registry import Registry
    from .setup import SYSTEM_BUNDLE

    bundle = load_bundle(path)
    issues = list(bundle.issues)
    if not issues:
        base = _live_registry_or_none()
        if base is None:
            system = load_bundle(SYSTEM_BUNDLE)
            base = Registry().with_changes(system.documents)
        _, problems = validate_change(base, bundle.documents, [], bundle.sources)
        issues.extend(problems)
    for issue in issues:
        click.echo(str(issue))
    if issues:
        click.echo(f"{len(issues)} problem(s) in {path}")
        sys.exit(1)
    click.echo(f"ok: {len(bundle.documents)} document(s) in {path} are valid")


def _live_registry_or_none():
    try:
        runtime = _runtime()
        return runtime.registry()
    except Exception:  # noqa: BLE001 - no database here: validate against the system bundle
        return None


@metadata.command("diff")
@click.argument("path", type=click.Path())
def metadata_diff(path: str) -> None:
    """Show what applying the bundle would change (tables, columns, indexes, documents)."""
    from .apply import apply_change

    bundle = _load(path)
    try:
        result = apply_change(_runtime(), bundle, dry_run=True)
    except MetadataInvalid as exc:
        _print_issues(exc)
        _fail("the bundle is not valid; nothing would be applied")
    click.echo(json.dumps(result.diff, indent=2, ensure_ascii=False))


@metadata.command("apply")
@click.argument("path", type=click.Path())
def metadata_apply(path: str) -> None:
    """Apply the bundle: all of it or none of it."""
    from .apply import apply_change

    bundle = _load(path)
    try:
        result = apply_change(_runtime(), bundle)
    except MetadataInvalid as exc:
        _print_issues(exc)
        _fail("the bundle is not valid; nothing was applied")
    click.echo(json.dumps(result.diff, indent=2, ensure_ascii=False))
    click.echo(f"applied: metadata version {result.version}")


@metadata.command("export")
@click.argument("path", type=click.Path())
def metadata_export(path: str) -> None:
    """Write the live metadata as a bundle folder (kind/name.json)."""
    registry = _runtime().registry()
    root = Path(path)
    for (kind, name), doc in sorted(registry.documents.items()):
        target = root / kind / f"{name}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    click.echo(f"exported {len(registry.documents)} document(s) to {root}")


@main.group()
def user() -> None:
    """Manage users."""


@user.command("create")
@click.option("--username", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--role", "roles", multiple=True, required=True, help="Role name (repeatable).")
@click.option("--display-name", default=None)
@click.option("--email", default=None)
def user_create(username: str, password: str, roles: tuple, display_name: str | None, email: str | None) -> None:
    """Create a user."""
    from .records import RecordService
    from .security import Principal

    values = {"username": username, "password": password, "roles": list(roles),
              "display_name": display_name or username}
    if email:
        values["email"] = email
    try:
        created = RecordService(_runtime(), Principal.system(), source="cli").create("user", values)
    except CrmError as exc:
        details = "; ".join(f"{k}: {', '.join(v)}" for k, v in exc.fields.items())
        _fail(f"cannot create the user: {exc.message} {details}")
    click.echo(f"user {username} created (id {created['id']})")


def _add_commands() -> None:
    """The worker commands (core), then each built-in feature's (FEATURE.cli)."""
    from . import jobs_cli
    from .setup import feature_modules

    jobs_cli.register_cli(main)
    for module in feature_modules():
        if module.FEATURE.cli is not None:
            module.FEATURE.cli(main)


_add_commands()

if __name__ == "__main__":
    main()
