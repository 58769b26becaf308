"""Background imports: a thread in this process per job, its state in the table mc_import_job,
which GET /api/v1/jobs/{id} reports (progress, then the report or the error)."""

from __future__ import annotations

import logging
import threading
import uuid

import sqlalchemy as sa

from .. import db
from ..clock import utcnow
from ..errors import CrmError, NotFound
from ..security import Access, Principal
from ..storage import UtcDateTime
from .parsing import Parsed
from .run import DEFAULT_BATCH, import_parsed

log = logging.getLogger(__package__)

ASYNC_THRESHOLD = 5000  # rows: a larger import runs as a job unless the caller asks otherwise


jobs = sa.Table(
    "mc_import_job",
    db.system_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("object", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(32)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("total", sa.Integer, nullable=False, default=0),
    sa.Column("done", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime),
    sa.Column("options", sa.JSON),
    sa.Column("result", sa.JSON),
    sa.Column("error", sa.Text),
)
_tables_ready: set[int] = set()
_tables_lock = threading.Lock()
_threads: dict[str, threading.Thread] = {}


def ensure_jobs_table(engine: sa.Engine) -> None:
    with _tables_lock:
        if id(engine) in _tables_ready:
            return
        try:
            jobs.create(engine, checkfirst=True)
        except sa.exc.DatabaseError:  # another process created it meanwhile
            if not sa.inspect(engine).has_table(jobs.name):
                raise
        _tables_ready.add(id(engine))


def start_job(runtime, principal: Principal, object_name: str, parsed: Parsed, *, key: str | None = None,
              dry_run: bool = False, batch_size: int = DEFAULT_BATCH, lookups: dict[str, str] | None = None,
              meta: dict | None = None) -> str:
    """Run an import in a background thread; returns the job id to poll."""
    ensure_jobs_table(runtime.engine)
    job_id = uuid.uuid4().hex
    now = utcnow()
    with runtime.transaction() as tx:
        tx.conn.execute(jobs.insert().values(
            id=job_id, kind="import", object=object_name, user_id=principal.user_id, status="queued",
            total=len(parsed.rows), done=0, created_at=now, updated_at=now,
            options={"key": key, "dry_run": dry_run, "batch_size": batch_size, "format": parsed.format,
                     "lookups": lookups or {}, **(meta or {})},
        ))

    def update(**values) -> None:
        with runtime.transaction() as tx:
            tx.conn.execute(jobs.update().where(jobs.c.id == job_id).values(updated_at=utcnow(), **values))

    def work() -> None:
        try:
            update(status="running")
            report = import_parsed(runtime, principal, object_name, parsed, key=key, dry_run=dry_run,
                                   batch_size=batch_size, progress=lambda done, total: update(done=done),
                                   lookups=lookups, counts=lambda summary: update(result={"counts": summary}))
            update(status="done", done=len(parsed.rows), result=report, finished_at=utcnow())
        except CrmError as exc:
            update(status="failed", error=exc.message, result={"error": exc.to_dict()}, finished_at=utcnow())
        except Exception as exc:  # a job must end in a state the caller can read
            log.exception("import job %s failed", job_id)
            update(status="failed", error=f"unexpected error: {exc}", finished_at=utcnow())
        finally:
            _threads.pop(job_id, None)

    thread = threading.Thread(target=work, name=f"metacrm-import-{job_id[:8]}", daemon=True)
    _threads[job_id] = thread
    thread.start()
    return job_id


def job_status(runtime, principal: Principal, job_id: str) -> dict:
    """A job as its owner (or an admin) sees it: progress, and the report once done."""
    ensure_jobs_table(runtime.engine)
    with runtime.engine.connect() as conn:
        row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
    access = Access(runtime.registry(), principal, runtime.directory())
    if row is None or (row.user_id != principal.user_id and not access.is_admin):
        raise NotFound("No such job.", code="job_not_found")
    body = {
        "id": row.id, "kind": row.kind, "object": row.object, "status": row.status,
        "progress": {"done": row.done, "total": row.total,
                     "percent": round(100.0 * row.done / row.total, 1) if row.total else 100.0},
        "created_at": row.created_at.isoformat() + "Z", "updated_at": row.updated_at.isoformat() + "Z",
        "finished_at": row.finished_at.isoformat() + "Z" if row.finished_at else None,
    }
    if (row.options or {}).get("filename"):
        body["filename"] = row.options["filename"]  # an import started from the web wizard
    counts = (row.result or {}).get("summary") or (row.result or {}).get("counts") or {}
    body["progress"]["errors"] = counts.get("error", 0)
    body["progress"]["duplicates"] = counts.get("duplicate", 0)
    if row.status == "done":
        body["result"] = row.result
        body.update(row.result or {})
    elif row.status == "failed":
        body["error"] = row.error
    return body


def wait_for(job_id: str, timeout: float | None = None) -> None:
    """Tests and the CLI: wait until a job's thread has finished."""
    thread = _threads.get(job_id)
    if thread is not None:
        thread.join(timeout)
