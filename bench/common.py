"""Shared bench helpers: fresh databases on both backends, timing, the results table."""

from __future__ import annotations

import os
import platform
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import sqlalchemy as sa

PG_URL = os.environ.get("METACRM_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


@contextmanager
def fresh_database(backend: str, workdir: Path) -> Iterator[str]:
    """A URL for an empty database (a SQLite file, or a new PostgreSQL schema dropped afterwards)."""
    if backend == "sqlite":
        path = workdir / f"bench-{uuid.uuid4().hex[:8]}.db"
        yield f"sqlite:///{path}"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    return f"{platform.node()} ({os.cpu_count()} cores, Python {platform.python_version()})"


def record(title: str, header: list[str], rows: list[list[str]], notes: str = "") -> None:
    """Append a dated table to bench/RESULTS.md."""
    lines = [f"\n## {title} — {date.today().isoformat()} on {machine()}\n", "| " + " | ".join(header) + " |",
             "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if notes:
        lines.append(f"\n{notes}\n")
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nEach table compares metacrm with the same work on the raw stack "
                           "in the same run (ratios: metacrm throughput / raw throughput).\n")
    with RESULTS.open("a") as out:
        out.write("\n".join(lines) + "\n")
