"""The outbox on Redis: rq workers in burst mode dispatch coalesced batches; a Redis outage
or a worker killed mid-batch loses and duplicates nothing; `metacrm worker --burst` and
rq's periodic scheduler.

Needs Redis (METACRM_TEST_REDIS_URL, default redis://127.0.0.1:6379/0): unreachable, the
tests fail when CI is set and skip otherwise. Each test uses its own queue name and removes
its keys afterwards.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import timedelta

import pytest
from click.testing import CliRunner

from metacrm.platform import db
from metacrm.platform.clock import utcnow
from metacrm.platform.jobs_cli import run_rq_worker, start_cron
from metacrm.platform.notifications import handle_notify
from metacrm.platform.outbox import enqueue, outbox, set_worker_runtime
from tests.test_outbox import installation

REDIS_URL = os.environ.get("METACRM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
_redis_problem: list[str] = []


def require_redis():
    if not _redis_problem:
        try:
            import redis

            redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
            _redis_problem.append("")
        except Exception as exc:  # noqa: BLE001 - any failure means "not available"
            _redis_problem.append(f"Redis at {REDIS_URL} is unreachable: {exc}")
    if _redis_problem[0]:
        if os.environ.get("CI"):
            pytest.fail(_redis_problem[0])
        pytest.skip(_redis_problem[0])


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def inst(request, tmp_path_factory):
    require_redis()
    with installation(request.param, tmp_path_factory.mktemp(request.param)) as env:
        env.reader = env.user("jobs_reader", ["sales_rep"])
        yield env


@pytest.fixture
def queue_name(inst):
    """A queue of this test's own, pointed at by the runtime's dispatcher, cleaned up after."""
    import redis

    name = f"mctest-{uuid.uuid4().hex[:10]}"
    box = outbox(inst.runtime)
    box.use_redis(REDIS_URL, name)
    box.max_attempts, box.backoff_base = 3, 0.0
    set_worker_runtime(inst.runtime, name)
    yield name
    box.use_redis(None)
    connection = redis.Redis.from_url(REDIS_URL)
    keys = list(connection.scan_iter(f"*{name}*"))
    if keys:
        connection.delete(*keys)


def queue_of(name):
    import redis
    from rq import Queue

    return Queue(name, connection=redis.Redis.from_url(REDIS_URL))


def notify(inst, body: str, key: str | None = None, users=None):
    with inst.runtime.transaction() as tx:
        enqueue(tx, "notify", {"users": users or [inst.reader.id], "body": body},
                key=key or f"jobs-{uuid.uuid4().hex}", runtime=inst.runtime)


def bodies(inst) -> list[str]:
    return [n.body for n in inst.notifications_of(inst.reader.id)]


def test_commits_queue_one_coalesced_job_and_a_burst_worker_dispatches_the_batch(inst, queue_name):
    tag = uuid.uuid4().hex[:6]
    for i in range(25):
        notify(inst, f"{tag}-{i}")
    assert queue_of(queue_name).count == 1  # one rq job for all waiting rows, not one per save
    assert not [b for b in bodies(inst) if b.startswith(tag)]  # nothing ran in the saving process
    from rq import SimpleWorker

    worker = SimpleWorker([queue_of(queue_name)], connection=queue_of(queue_name).connection)
    assert worker.work(burst=True)  # the one job drains every waiting row
    assert sorted(b for b in bodies(inst) if b.startswith(tag)) == sorted(f"{tag}-{i}" for i in range(25))
    assert queue_of(queue_name).count == 0
    assert all(r.status == "done" for r in inst.rows(topic="notify") if r.payload["body"].startswith(tag))


def test_redis_outage_loses_nothing(inst, queue_name):
    box = outbox(inst.runtime)
    box.use_redis("redis://127.0.0.1:1/0", queue_name)  # nothing listens there
    key = f"jobs-{uuid.uuid4().hex}"
    started = time.monotonic()
    notify(inst, "kept while Redis was down", key=key)  # the save commits all the same
    assert time.monotonic() - started < 5
    assert inst.rows(key=key)[0].status == "pending"
    run_rq_worker(inst.runtime, REDIS_URL, queue_name, burst=True)  # Redis is back: the tick finds it
    assert inst.rows(key=key)[0].status == "done"
    assert bodies(inst).count("kept while Redis was down") == 1


def test_worker_killed_mid_batch_does_not_duplicate_the_effect(inst, queue_name):
    box = outbox(inst.runtime)
    key = f"jobs-{uuid.uuid4().hex}"
    with inst.runtime.transaction() as tx:  # written without a kick: as if the kick was lost too
        enqueue(tx.conn, "notify", {"users": [inst.reader.id], "body": "exactly once"}, key=key)
    claimed = box.claim()
    assert [item.key for item in claimed] == [key]
    handle_notify(inst.runtime, claimed)  # the effect happened, then the worker died before recording it
    run_rq_worker(inst.runtime, REDIS_URL, queue_name, burst=True)
    assert inst.rows(key=key)[0].status == "running"  # still leased: nobody else runs it
    with inst.runtime.transaction() as tx:  # the lease runs out
        tx.conn.execute(db.outbox.update().where(db.outbox.c.key == key)
                        .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    run_rq_worker(inst.runtime, REDIS_URL, queue_name, burst=True)
    row = inst.rows(key=key)[0]
    assert row.status == "done" and row.attempts == 2
    assert bodies(inst).count("exactly once") == 1


def test_metacrm_worker_burst_command(inst, queue_name):
    from metacrm.platform.cli import main

    key = f"jobs-{uuid.uuid4().hex}"
    with inst.runtime.transaction() as tx:
        enqueue(tx.conn, "notify", {"users": [inst.reader.id], "body": "from the CLI worker"}, key=key)
    env = {"METACRM_DATABASE_URL": inst.database_url, "METACRM_REDIS_URL": REDIS_URL}
    result = CliRunner().invoke(main, ["worker", "--burst", "--queue", queue_name], env=env,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert inst.rows(key=key)[0].status == "done"
    assert "from the CLI worker" in bodies(inst)
    set_worker_runtime(inst.runtime, queue_name)  # the command replaced it for this queue


def test_rq_scheduler_queues_the_periodic_tick(inst, queue_name):
    import redis

    stop = start_cron(redis.Redis.from_url(REDIS_URL), queue_name, interval=1)
    try:
        deadline = time.monotonic() + 5
        while queue_of(queue_name).count == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
    jobs = queue_of(queue_name).get_jobs()
    assert jobs and jobs[0].func_name == "metacrm.platform.outbox.rq_tick"
    key = f"jobs-{uuid.uuid4().hex}"
    with inst.runtime.transaction() as tx:
        enqueue(tx.conn, "notify", {"users": [inst.reader.id], "body": "ticked"}, key=key)
    run_rq_worker(inst.runtime, REDIS_URL, queue_name, burst=True)
    assert inst.rows(key=key)[0].status == "done"
