"""Periodic jobs: `metacrm sweep` runs them once; timers and worker ticks run them each period.

Several processes may tick (gunicorn workers in embedded mode, every `metacrm worker` in
scaled mode): time is cut into periods of METACRM_SWEEP_INTERVAL seconds (aligned to the
epoch), and the process whose INSERT of the period's row into `mc_sweep_run` succeeds runs
the sweep for that period; the others find the row and skip. The primary key is the lease,
so a period runs once, never once per process, without any read-then-write race, and the
table doubles as the run log (who ran which period, when, with what summary).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from datetime import datetime, timedelta

import sqlalchemy as sa

from . import db
from .clock import utcnow
from .storage import UtcDateTime

log = logging.getLogger("metacrm.sweep")
KEEP_RUNS = timedelta(days=2)  # the run log keeps this much history (at least 100 periods)

sweep_run = sa.Table(
    "mc_sweep_run",
    db.system_metadata,
    sa.Column("slot", UtcDateTime, primary_key=True),  # start of the period: the lease
    sa.Column("interval", sa.Integer, nullable=False),
    sa.Column("owner", sa.String(200), nullable=False),  # host:pid of the process that ran it
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime),
    sa.Column("failed", sa.Boolean),
    sa.Column("summary", sa.Text),
)

_ENSURED: weakref.WeakSet = weakref.WeakSet()


def run_all(runtime, skip: tuple[str, ...] = ()) -> tuple[list[str], bool]:
    """Run every registered periodic job (except those named in `skip`); returns (lines, failed)."""
    lines, failed = [], False
    for name, fn in runtime.sweeps:
        if name in skip:
            continue
        try:
            lines.append(f"{name}: {fn(runtime)}")
        except Exception as exc:  # report and go on with the other jobs
            failed = True
            log.exception("periodic job %s failed", name)
            lines.append(f"{name}: FAILED: {exc}")
    return lines or ["no periodic jobs are registered"], failed


def owner_name() -> str:
    return f"{os.uname().nodename}:{os.getpid()}"


def period_start(now: datetime, interval: int) -> datetime:
    """The start of the period `now` falls in (periods are aligned to the Unix epoch)."""
    interval = max(int(interval), 1)
    seconds = int((now - datetime(1970, 1, 1)).total_seconds())
    return datetime(1970, 1, 1) + timedelta(seconds=seconds - seconds % interval)


def ensure_table(engine: sa.Engine) -> None:
    """Create mc_sweep_run on a database initialised before it existed (once per engine)."""
    if engine in _ENSURED:
        return
    try:
        with engine.begin() as conn:
            db.system_metadata.create_all(conn, tables=[sweep_run], checkfirst=True)
    except sa.exc.DBAPIError:  # another process created it at the same moment
        log.debug("mc_sweep_run was created concurrently", exc_info=True)
    _ENSURED.add(engine)


def _insert(conn: sa.Connection):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(sweep_run).on_conflict_do_nothing(index_elements=["slot"])


def take_lease(runtime, interval: int, now: datetime | None = None) -> datetime | None:
    """The current period's start if this process won it (and must run the sweep), else None."""
    ensure_table(runtime.engine)
    now = now or utcnow()
    slot = period_start(now, interval)
    with runtime.transaction() as tx:
        won = tx.conn.execute(
            _insert(tx.conn).values(slot=slot, interval=int(interval), owner=owner_name(), started_at=now)
            .returning(sweep_run.c.slot)
        ).first() is not None
        if won:
            keep = max(KEEP_RUNS, timedelta(seconds=100 * max(int(interval), 1)))
            tx.conn.execute(sweep_run.delete().where(sweep_run.c.slot < slot - keep))
    return slot if won else None


def finish_run(runtime, slot: datetime, lines: list[str], failed: bool) -> None:
    with runtime.transaction() as tx:
        tx.conn.execute(sweep_run.update().where(sweep_run.c.slot == slot).values(
            finished_at=utcnow(), failed=failed, summary="\n".join(lines)[:20000]))


def run_periodic(runtime, interval: int | None = None, skip: tuple[str, ...] = ()) -> list[str] | None:
    """Run the sweeps if this process wins the current period; the lines it ran, or None."""
    interval = interval or runtime.config.sweep_interval
    slot = take_lease(runtime, interval)
    if slot is None:
        return None
    lines, failed = run_all(runtime, skip)
    log.info("periodic jobs of the period %sZ (every %ss) ran in %s: %s", slot.isoformat(), interval,
             owner_name(), "; ".join(lines))
    try:
        finish_run(runtime, slot, lines, failed)
    except Exception:  # the sweep ran; only its log entry is incomplete
        log.exception("could not record the sweep run of %s", slot)
    return lines


def seconds_to_next_period(interval: int, now: float | None = None) -> float:
    now = time.time() if now is None else now
    interval = max(int(interval), 1)
    return interval - now % interval


def start_timer(runtime, interval: int) -> threading.Thread:
    """Embedded mode: wake just after each period starts and try to run its sweep."""
    stop = threading.Event()

    def loop():
        while not stop.wait(seconds_to_next_period(interval) + 0.05):
            try:
                for line in run_periodic(runtime, interval) or []:
                    log.info(line)
            except Exception:
                log.exception("sweep timer failed")

    thread = threading.Thread(target=loop, name="metacrm-sweep", daemon=True)
    thread.stop = stop  # type: ignore[attr-defined]
    thread.start()
    return thread
