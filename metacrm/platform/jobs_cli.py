"""`metacrm worker`: dispatches the outbox and runs the periodic jobs.

With METACRM_REDIS_URL: an rq worker on the metacrm queue (SimpleWorker by default: our
jobs are coarse batches, so forking per job would only cost time) plus rq's cron
scheduler, which queues the `tick` job every few seconds (re-dispatch what a lost kick
left pending; run the sweeps once per METACRM_SWEEP_INTERVAL period across all workers and
servers, by the period lease in sweeps.py: each worker's scheduler ticks, the first tick of
a period wins it). Without Redis: the same work in this process, on a loop.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

import click

log = logging.getLogger("metacrm.worker")
TICK_SECONDS = 5


def start_cron(connection, queue_name: str, interval: int) -> threading.Event:
    """rq's CronScheduler, driven from a thread (its own start() wants the main thread's signals)."""
    from rq.cron import CronScheduler

    from .outbox import rq_tick

    cron = CronScheduler(connection=connection, name=f"metacrm-{queue_name}-{time.time_ns()}")
    cron.register(rq_tick, queue_name, args=(queue_name,), interval=interval, job_timeout=600, result_ttl=0)
    stop = threading.Event()

    def loop():
        cron.register_birth()
        try:
            while not stop.is_set():
                try:
                    if cron.enqueue_jobs():
                        cron.save()
                    cron.heartbeat()
                except Exception:
                    log.exception("the periodic scheduler failed; retrying")
                stop.wait(min(max(cron.calculate_sleep_interval(), 0.2), 1.0))
        finally:
            try:
                cron.register_death()
            except Exception:  # Redis gone at shutdown
                log.debug("could not deregister the scheduler", exc_info=True)

    threading.Thread(target=loop, name="metacrm-cron", daemon=True).start()
    return stop


def run_rq_worker(runtime, redis_url: str, queue_name: str, burst: bool = False, fork: bool = False,
                  interval: int = TICK_SECONDS) -> bool:
    """Work the queue (with `burst`: what is there now, then return); True if any job ran."""
    from rq import Queue, SimpleWorker, Worker

    from .outbox import outbox, rq_tick, set_worker_runtime

    box = outbox(runtime)
    box.use_redis(redis_url, queue_name)
    set_worker_runtime(runtime, queue_name)
    connection = box.redis()
    queue = Queue(queue_name, connection=connection)
    stop = None
    if burst:
        queue.enqueue(rq_tick, queue_name, result_ttl=0)  # one pass over leftovers and sweeps
    else:
        # at least one tick per sweep period, or periods would go by without a sweep
        interval = max(1, min(interval, runtime.config.sweep_interval))
        stop = start_cron(connection, queue_name, interval)
    worker_cls = Worker if fork else SimpleWorker
    worker = worker_cls([queue], connection=connection)
    try:
        return worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
    finally:
        if stop is not None:
            stop.set()


def run_embedded(runtime, burst: bool, interval: int) -> None:
    from .outbox import outbox
    from .sweeps import run_all, run_periodic

    box = outbox(runtime)
    box.embedded_thread = False
    interval = max(1, min(interval, runtime.config.sweep_interval))
    while True:
        result = box.drain(max_seconds=60)
        if result.claimed:
            click.echo(f"outbox: {result}")
        lines = run_all(runtime, skip=("outbox",))[0] if burst else run_periodic(runtime, skip=("outbox",))
        for line in lines or []:
            click.echo(line)
        if burst:
            return
        time.sleep(interval)


def register_cli(main: click.Group) -> None:
    @main.command()
    @click.option("--burst", is_flag=True, help="Process what is queued now, then exit (tests, cron).")
    @click.option("--queue", "queue_name", default=None, help="rq queue name (METACRM_RQ_QUEUE, default metacrm).")
    @click.option("--fork", is_flag=True, help="Use rq's forking Worker instead of SimpleWorker.")
    @click.option("--interval", default=TICK_SECONDS, show_default=True, type=int,
                  help="Seconds between periodic ticks.")
    def worker(burst: bool, queue_name: str | None, fork: bool, interval: int) -> None:
        """Dispatch the outbox (webhooks, notifications, email) and run periodic jobs."""
        from .config import Config
        from .outbox import outbox
        from .setup import build_runtime

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        config = Config.from_env()
        runtime = build_runtime(config)
        if config.redis_url:
            try:
                run_rq_worker(runtime, config.redis_url, queue_name or outbox(runtime).queue_name, burst, fork,
                              interval)
            except Exception as exc:
                log.exception("worker failed")
                click.echo(f"worker failed: {exc}", err=True)
                sys.exit(1)
            return
        click.echo("METACRM_REDIS_URL is not set: dispatching in this process")
        run_embedded(runtime, burst, interval)
