"""Periodic jobs: `metacrm sweep` runs them once; timers run them every interval.

Several processes may run timers (gunicorn workers, several servers): a lease row in
the database makes one of them run each period, so a sweep happens once, not once per
process.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import timedelta

import sqlalchemy as sa

from . import db
from .clock import utcnow

log = logging.getLogger("metacrm.sweep")
LEASE_KEY = "sweep_lease"


def run_all(runtime) -> tuple[list[str], bool]:
    """Run every registered periodic job; returns (lines, failed)."""
    lines, failed = [], False
    for name, fn in runtime.sweeps:
        try:
            lines.append(f"{name}: {fn(runtime)}")
        except Exception as exc:  # report and go on with the other jobs
            failed = True
            log.exception("periodic job %s failed", name)
            lines.append(f"{name}: FAILED: {exc}")
    return lines or ["no periodic jobs are registered"], failed


def take_lease(runtime, interval: int) -> bool:
    """True if this process may run the sweep for the current period."""
    owner = f"{os.uname().nodename}:{os.getpid()}"
    now = utcnow()
    until = (now + timedelta(seconds=max(interval - 1, 1))).isoformat()
    with runtime.transaction() as tx:
        row = tx.conn.execute(sa.select(db.setting.c.value).where(db.setting.c.key == LEASE_KEY)).scalar()
        if row is None:
            tx.conn.execute(db.setting.insert().values(key=LEASE_KEY, value=f"{until}|{owner}"))
            return True
        expires = row.split("|", 1)[0]
        if expires > now.isoformat():
            return False
        result = tx.conn.execute(
            db.setting.update().where(db.setting.c.key == LEASE_KEY, db.setting.c.value == row)
            .values(value=f"{until}|{owner}")
        )
        return result.rowcount == 1


def start_timer(runtime, interval: int) -> threading.Thread:
    stop = threading.Event()

    def loop():
        while not stop.wait(interval):
            try:
                if take_lease(runtime, interval):
                    for line in run_all(runtime)[0]:
                        log.info(line)
            except Exception:
                log.exception("sweep timer failed")

    thread = threading.Thread(target=loop, name="metacrm-sweep", daemon=True)
    thread.stop = stop  # type: ignore[attr-defined]
    thread.start()
    return thread
