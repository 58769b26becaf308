"""`metacrm plugin list | show | install | upgrade | uninstall | set` (loaded by platform/cli.py).

Exit codes: 0 ok, 1 refused or failed (nothing applied), 2 usage.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..platform.config import Config
from ..platform.errors import CrmError, MetadataInvalid


def _runtime() -> Any:
    from ..platform.setup import build_runtime

    return build_runtime(Config.from_env())


def _fail(exc: CrmError) -> None:
    click.echo(f"error: {exc.message}", err=True)
    for issue in getattr(exc, "issues", None) or []:
        click.echo(f"  {issue.source}: {issue.path or '/'}: {issue.message}", err=True)
    sys.exit(1)


def _run(fn, *args, **kwargs) -> Any:
    try:
        return fn(*args, **kwargs)
    except MetadataInvalid as exc:
        click.echo("error: the plugin's metadata is not valid; nothing was applied", err=True)
        for issue in exc.issues:
            click.echo(f"  {issue}", err=True)
        sys.exit(1)
    except CrmError as exc:
        _fail(exc)


def describe(result: dict) -> list[str]:
    """A plan or outcome as lines for people."""
    lines = []
    verb = {"install": "install", "upgrade": "upgrade", "uninstall": "uninstall"}[result["action"]]
    head = f"{verb} {result['plugin']}"
    if result.get("from_version") and result.get("version") and result["action"] == "upgrade":
        head += f" {result['from_version']} -> {result['version']}"
    elif result.get("version"):
        head += f" {result['version']}"
    lines.append(head)
    docs = (result.get("diff") or {}).get("documents") or {}
    for sign, key in (("+", "added"), ("~", "changed"), ("-", "removed")):
        for item in docs.get(key, []):
            lines.append(f"  {sign} {item}")
    storage = (result.get("diff") or {}).get("storage") or {}
    for table in storage.get("new_tables", []):
        lines.append(f"  + table {table}")
    for col in storage.get("new_columns", []):
        lines.append(f"  + column {col['table']}.{col['column']} {col['type']}")
    for col in storage.get("restored_columns", []):
        lines.append(f"  ^ column {col['table']}.{col['column']} (restored, with its data)")
    for col in storage.get("archived_columns", []):
        lines.append(f"  - column {col['table']}.{col['column']} (archived: the data stays)")
    registers = result.get("registers") or {}
    for event, objects in (registers.get("hooks") or {}).items():
        lines.append(f"  hook {event} on {', '.join(objects)}")
    for kind in ("record_actions", "workflow_actions", "jobs", "tables"):
        if registers.get(kind):
            lines.append(f"  {kind.replace('_', ' ')}: {', '.join(registers[kind])}")
    if registers.get("blueprint"):
        lines.append(f"  routes under /api/v1/x/{result['plugin']}/")
    perms = result.get("permissions")
    if perms and perms.get("requested"):
        lines.append(f"  asks for: {', '.join(perms['requested'])}; granted: {', '.join(perms['granted']) or 'none'}")
    purge = result.get("purge") or {}
    for table in purge.get("tables", []):
        lines.append(f"  DROP table {table}")
    for table, columns in (purge.get("columns") or {}).items():
        lines.append(f"  DROP columns {table}: {', '.join(columns)}")
    for warning in result.get("warnings") or []:
        lines.append(f"  warning: {warning}")
    return lines


def _echo(result: dict, as_json: bool, done: str) -> None:
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False, default=str))
        return
    for line in describe(result):
        click.echo(line)
    if result["dry_run"]:
        click.echo("dry run: nothing was applied")
    else:
        click.echo(f"{done} (metadata version {result['metadata_version']})")


def register_cli(main: click.Group) -> None:
    @main.group()
    def plugin() -> None:
        """List, install, upgrade and remove plugins."""

    @plugin.command("list")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def plugin_list(as_json: bool) -> None:
        """Installed, archived and available plugins."""
        from .listing import list_plugins

        items = _run(list_plugins, _runtime())
        if as_json:
            click.echo(json.dumps(items, indent=2, ensure_ascii=False, default=str))
            return
        if not items:
            click.echo("no plugins installed or available")
        for item in items:
            version = item["installed_version"] or item["available_version"] or "?"
            extra = ""
            if item["status"] == "installed" and item["available_version"] \
                    and item["available_version"] != item["installed_version"]:
                extra = f" (code is {item['available_version']}: run `metacrm plugin upgrade {item['name']}`)"
            if item.get("error"):
                extra += f" [problem: {item['error']}]"
            granted = f" granted: {', '.join(item['granted'])}" if item.get("granted") else ""
            click.echo(f"{item['name']:<24} {version:<10} {item['status']:<10} {item.get('source') or ''}"
                       f"{granted}{extra}")

    @plugin.command("show")
    @click.argument("name")
    def plugin_show(name: str) -> None:
        """Everything about one plugin, as JSON."""
        from .listing import show

        click.echo(json.dumps(_run(show, _runtime(), name), indent=2, ensure_ascii=False, default=str))

    @plugin.command("install")
    @click.argument("name")
    @click.option("--grant", "grants", multiple=True, help="Grant a permission the plugin asks for (repeatable).")
    @click.option("--dry-run", is_flag=True, help="Check and show the changes; apply nothing.")
    @click.option("--json", "as_json", is_flag=True)
    def plugin_install(name: str, grants: tuple, dry_run: bool, as_json: bool) -> None:
        """Validate, show the diff and install a plugin, all or nothing."""
        from .install import install

        result = _run(install, _runtime(), name, grant=list(grants), dry_run=dry_run)
        _echo(result, as_json, f"installed {name} {result.get('version')}")

    @plugin.command("upgrade")
    @click.argument("name")
    @click.option("--grant", "grants", multiple=True, help="Grant a permission the new version asks for.")
    @click.option("--dry-run", is_flag=True)
    @click.option("--json", "as_json", is_flag=True)
    def plugin_upgrade(name: str, grants: tuple, dry_run: bool, as_json: bool) -> None:
        """Apply the difference between the installed version and the plugin's code."""
        from .install import upgrade

        result = _run(upgrade, _runtime(), name, grant=list(grants), dry_run=dry_run)
        _echo(result, as_json, f"upgraded {name} to {result.get('version')}")

    @plugin.command("uninstall")
    @click.argument("name")
    @click.option("--purge", is_flag=True, help="Also drop its tables and columns (the data is lost).")
    @click.option("--dry-run", is_flag=True)
    @click.option("--yes", is_flag=True, help="Do not ask before purging.")
    @click.option("--json", "as_json", is_flag=True)
    def plugin_uninstall(name: str, purge: bool, dry_run: bool, yes: bool, as_json: bool) -> None:
        """Remove a plugin's metadata and hooks; its data is kept (archived) unless --purge."""
        from .uninstall import uninstall

        runtime = _runtime()
        if purge and not dry_run and not yes:
            plan = _run(uninstall, runtime, name, purge=True, dry_run=True)
            for line in describe(plan):
                click.echo(line)
            click.confirm(f"Drop {name}'s tables and columns and their data for good?", abort=True)
        result = _run(uninstall, runtime, name, purge=purge, dry_run=dry_run)
        _echo(result, as_json, f"uninstalled {name}" + (" and purged its data" if purge else
                                                        " (its data is archived; reinstall restores it)"))

    @plugin.command("set")
    @click.argument("name")
    @click.argument("assignments", nargs=-1, required=True)
    def plugin_set(name: str, assignments: tuple) -> None:
        """Store settings: metacrm plugin set NAME KEY=VALUE ... (KEY= clears one)."""
        from .settings import set_settings

        values = {}
        for item in assignments:
            key, sep, value = item.partition("=")
            if not sep:
                raise click.UsageError(f"{item!r} is not KEY=VALUE")
            values[key] = value if value != "" else None
        for key, info in _run(set_settings, _runtime(), name, values).items():
            click.echo(f"{key} = {info['value']!r} ({info['source']})")

    _wrap_init(main)


def _wrap_init(main: click.Group) -> None:
    """`metacrm init` also installs the built-in plugins (before seeding the demo, which may
    use them). Redundant, and harmless, once setup.initialise() calls install_builtins."""
    command = main.commands.get("init")
    if command is None or getattr(command.callback, "_installs_plugins", False):
        return
    original = command.callback

    def init(*args: Any, demo: bool = False, **kwargs: Any) -> None:
        original(*args, demo=False, **kwargs)
        from .install import install_builtins

        runtime = _runtime()
        try:
            for line in install_builtins(runtime):
                click.echo(line)
        except CrmError as exc:
            click.echo(f"init failed: built-in plugin: {exc.message}", err=True)
            sys.exit(1)
        if demo:
            try:
                from .lead_to_cash.demo import seed_demo
            except ImportError:
                from ..platform.demo import seed_demo
            click.echo(seed_demo(runtime))

    init._installs_plugins = True  # type: ignore[attr-defined]
    command.callback = init
