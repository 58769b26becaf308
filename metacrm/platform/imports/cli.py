"""`metacrm import OBJECT FILE`: bulk import from the command line, with a progress bar."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import CrmError
from ..security import Principal
from .parsing import parse
from .run import import_parsed

MAX_LISTED = 20


def register_cli(main: click.Group) -> None:
    @main.command("import")
    @click.argument("object_name", metavar="OBJECT")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False))
    @click.option("--key", default=None, help="Upsert: update the record whose FIELD has the row's value.")
    @click.option("--dry-run", is_flag=True, help="Check and report, write nothing.")
    @click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 10000))
    @click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default=None,
                  help="Default: from the file name, else from its content.")
    @click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None,
                  help="Write the full JSON report to this file.")
    def import_command(object_name: str, file: str, key: str | None, dry_run: bool, batch_size: int,
                       fmt: str | None, report_path: str | None) -> None:
        """Import a CSV (with a header) or JSON array of OBJECT records, as the platform itself."""
        # not at the top: platform/cli registers the features' commands while it is being imported
        from ..cli import _runtime

        path = Path(file)
        if fmt is None and path.suffix.lower() in (".csv", ".json", ".tsv"):
            fmt = "json" if path.suffix.lower() == ".json" else "csv"
        runtime = _runtime()
        principal = Principal.system()
        try:
            parsed = parse(path.read_bytes(), fmt)
            with click.progressbar(length=max(len(parsed.rows), 1), label=f"importing {object_name}",
                                   file=sys.stderr, show_pos=True) as bar:
                seen = [0]

                def progress(done: int, total: int) -> None:
                    bar.update(done - seen[0])
                    seen[0] = done

                report = import_parsed(runtime, principal, object_name, parsed, key=key,
                                       dry_run=dry_run, batch_size=batch_size, progress=progress)
        except CrmError as exc:
            details = "; ".join(f"{name}: {', '.join(map(str, msgs))}" for name, msgs in exc.fields.items())
            click.echo(f"import failed: {exc.message}" + (f" ({details})" if details else ""), err=True)
            sys.exit(1)
        summary = report["summary"]
        problems = [row for row in report["rows"] if row["status"] in ("error", "duplicate")]
        for row in problems[:MAX_LISTED]:
            what = row.get("message") or row.get("code") or row["status"]
            fields = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in (row.get("fields") or {}).items())
            click.echo(f"row {row['row']}: {row['status']}: {what}" + (f" ({fields})" if fields else ""))
        if len(problems) > MAX_LISTED:
            click.echo(f"... and {len(problems) - MAX_LISTED} more (see --report)")
        if report_path:
            Path(report_path).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
        click.echo(
            ("dry run: " if dry_run else "")
            + f"{summary['created']} created, {summary['updated']} updated, {summary['duplicate']} duplicate, "
            f"{summary['error']} error(s) of {summary['total']} row(s)"
        )
        sys.exit(1 if summary["error"] else 0)
