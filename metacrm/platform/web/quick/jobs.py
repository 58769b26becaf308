"""Mass-action runs: one result per record through the record service as the user, and the
job record (mc_mass_job) with its progress, run in this thread or a background one."""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

import sqlalchemy as sa

from ....metadata.model import ObjectDef
from ... import db
from ...clock import utcnow
from ...errors import CrmError, Forbidden, Locked, NotFound, ValidationFailed
from ...records import RecordService
from ...security import Access, Principal
from ...storage import UtcDateTime
from .. import display
from ..record_views import _visible_fields

log = logging.getLogger(__name__)

mass_jobs = sa.Table(
    "mc_mass_job",
    db.system_metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("object", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(32)),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("total", sa.Integer, nullable=False, default=0),
    sa.Column("done", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime),
    sa.Column("change", sa.JSON),
    sa.Column("result", sa.JSON),
    sa.Column("error", sa.Text),
)
_ready: set[int] = set()
_ready_lock = threading.Lock()
_threads: dict[str, threading.Thread] = {}


def ensure_table(engine: sa.Engine) -> None:
    with _ready_lock:
        if id(engine) in _ready:
            return
        try:
            mass_jobs.create(engine, checkfirst=True)
        except sa.exc.DatabaseError:  # another process created it meanwhile
            if not sa.inspect(engine).has_table(mass_jobs.name):
                raise
        _ready.add(id(engine))


def reason_of(exc: CrmError) -> str:
    if isinstance(exc, Locked) or exc.code == "record_locked" or exc.status == 423:
        return "lock"
    if isinstance(exc, ValidationFailed) or exc.status == 400:
        return "validation"
    if isinstance(exc, (Forbidden, NotFound)) or exc.status in (403, 404):
        return "permission"
    if exc.status == 409:
        return "conflict"
    return "error"


def titles_of(service: RecordService, obj: ObjectDef, ids: list[str]) -> dict[str, str]:
    visible = _visible_fields(service, obj)
    fields = [n for n in ([obj.name_field] if obj.name_field else []) if n in visible]
    out: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        try:
            items, _ = service.list(obj.name, filter={"id": {"in": chunk}}, fields=fields or None, limit=500)
        except CrmError:
            continue
        out.update({item["id"]: display.record_title(obj, item) for item in items})
    return out


def run_mass(rt, principal: Principal, object_name: str, ids: list[str], action: str, data: dict,
             progress=None, source: str = "web") -> dict:
    """Apply one action to each record through the record service; one result per record."""
    service = RecordService(rt, principal, source=source)
    obj = service.obj(object_name)
    titles = titles_of(service, obj, ids)
    results: list[dict] = []
    counts = {"done": 0, "refused": 0}
    for index, record_id in enumerate(ids, 1):
        entry: dict[str, Any] = {"id": record_id, "title": titles.get(record_id)}
        try:
            if action == "delete":
                service.delete(obj.name, record_id)
            else:
                service.update_record(obj.name, record_id, dict(data))
            entry["status"] = "done"
        except CrmError as exc:
            entry.update(status="refused", reason=reason_of(exc), code=exc.code, message=exc.message,
                         fields={k: [str(m) for m in (v if isinstance(v, list) else [v])]
                                 for k, v in (exc.fields or {}).items()})
        counts[entry["status"]] += 1
        results.append(entry)
        if progress is not None and (index % 25 == 0 or index == len(ids)):
            progress(index)
    return {"summary": counts, "results": results}


def start(rt, principal: Principal, obj: ObjectDef, ids: list[str], action: str, data: dict, *,
          background: bool, source: str = "web") -> str:
    """Record the job (mc_mass_job) and run it: in this thread, or in a background one."""
    ensure_table(rt.engine)
    job_id = uuid.uuid4().hex
    now = utcnow()
    with rt.transaction() as tx:
        tx.conn.execute(mass_jobs.insert().values(
            id=job_id, object=obj.name, user_id=principal.user_id, action=action, status="queued",
            total=len(ids), done=0, created_at=now, updated_at=now, change=data))

    def update(**values) -> None:
        with rt.transaction() as tx:
            tx.conn.execute(mass_jobs.update().where(mass_jobs.c.id == job_id).values(updated_at=utcnow(), **values))

    def work() -> None:
        try:
            update(status="running")
            report = run_mass(rt, principal, obj.name, ids, action, data,
                              progress=lambda done: update(done=done), source=source)
            update(status="done", done=len(ids), result=report, finished_at=utcnow())
        except CrmError as exc:
            update(status="failed", error=exc.message, finished_at=utcnow())
        except Exception as exc:  # a job must end in a state its page can show
            log.exception("mass job %s failed", job_id)
            update(status="failed", error=f"unexpected error: {exc}", finished_at=utcnow())
        finally:
            _threads.pop(job_id, None)

    if not background:
        work()
        return job_id
    thread = threading.Thread(target=work, name=f"metacrm-mass-{job_id[:8]}", daemon=True)
    _threads[job_id] = thread
    thread.start()
    return job_id


def wait_for(job_id: str, timeout: float | None = None) -> None:
    """Tests: wait until a job's thread has finished."""
    thread = _threads.get(job_id)
    if thread is not None:
        thread.join(timeout)


def load_job(rt, principal: Principal, job_id: str):
    ensure_table(rt.engine)
    with rt.engine.connect() as conn:
        row = conn.execute(sa.select(mass_jobs).where(mass_jobs.c.id == job_id[:32])).first()
    access = Access(rt.registry(), principal, rt.directory())
    if row is None or (row.user_id != principal.user_id and not access.is_admin):
        raise NotFound("No such job.", code="job_not_found")
    return row
