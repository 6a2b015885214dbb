"""Real ``celery worker`` subprocesses of the checkout, for the tests and for ``bench/``, and
the client app that sends them tasks. No Django settings needed: the benchmarks import this
module."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
from celery import Celery

from tests.support.commands import BASE_DIR, project_env

WORKER_START_TIMEOUT = 60.0
REDIS_OPTIONS = {"polling_interval": 0.1}


def worker_argv(
    app: str,
    *,
    queue: str,
    node: str,
    pool: str,
    concurrency: int,
    loglevel: str = "INFO",
    quiet: bool = False,
) -> list[str]:
    """``celery -A app worker`` consuming ``queue`` alone under its own node name, without
    the cluster chatter (gossip, mingle, heartbeat) that slows a start and a stop."""
    argv = [sys.executable, "-m", "celery", *(["-q"] if quiet else []), "-A", app, "worker"]
    argv += ["-l", loglevel, "-P", pool, "-c", str(concurrency), "-Q", queue, "-n", node]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return argv


@contextmanager
def worker_process(
    argv: list[str], env: dict[str, str], output: int | IO[str], stop_timeout: float = 30.0
) -> Iterator[subprocess.Popen[str]]:
    """Run ``argv`` from the checkout, its output to ``output``, in a process group of its
    own. Afterwards a warm shutdown; past ``stop_timeout`` seconds, and for whatever is left
    of the group (pool children of a worker killed mid-flight), SIGKILL."""
    process = subprocess.Popen(
        argv,
        cwd=BASE_DIR,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(stop_timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


@dataclass
class Worker:
    """A real ``celery worker`` subprocess of the demo project."""

    process: subprocess.Popen[str]
    queue: str
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.lines)


@contextmanager
def running_worker(
    tmp_path: Path,
    *,
    result_url: str,
    broker_url: str,
    pool: str = "prefork",
    concurrency: int = 2,
    app: str = "project",
    queue: str | None = None,
    **variables: str,
) -> Iterator[Worker]:
    """Start ``celery -A project worker`` (or another ``app``) on its own queue (or on
    ``queue``, a stopped worker's); stop it warm afterwards."""
    queue = queue or f"test-{uuid.uuid4().hex[:12]}"
    if broker_url.startswith("redis"):
        # kombu's Redis consumer blocks reading for up to its polling interval, and a warm
        # shutdown waits for that read: 0.1 s instead of 1 s stops each worker a second
        # sooner.
        variables.setdefault("CELERY_BROKER_TRANSPORT_OPTIONS", json.dumps(REDIS_OPTIONS))
    env = project_env(
        tmp_path,
        DATABASE_URL=f"sqlite:///{tmp_path / 'django.sqlite3'}",
        CELERY_BROKER_URL=broker_url,
        CELERY_RESULT_BACKEND=result_url,
        CELERY_TASK_DEFAULT_QUEUE=queue,
        **variables,
    )
    argv = worker_argv(app, queue=queue, node=f"{queue}@%h", pool=pool, concurrency=concurrency)
    with worker_process(argv, env, subprocess.PIPE) as process:
        worker = Worker(process=process, queue=queue)
        ready = threading.Event()

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                worker.lines.append(line)
                if " ready." in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while not ready.wait(0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the worker did not start:\n{worker.output}")
        yield worker


def producer(broker_url: str, result_url: str) -> Celery:
    """A Celery app in the test process that sends tasks by name, as any client would."""
    app = Celery("producer", broker=broker_url, backend=result_url, set_as_current=False)
    app.conf.result_extended = True
    if broker_url.startswith("sqla+sqlite"):
        app.conf.broker_transport_options = {"connect_args": {"timeout": 30}}
    return app


def pool_answers(
    app: Celery, worker: Worker, processes: int, timeout: float
) -> dict[int, dict[str, Any]]:
    """Each worker process's answer to ``pool_status`` (tests/support/worker_tasks.py: its
    SessionTask engine used, its connections checked out) by pid, asked until ``processes``
    processes have answered."""
    answers: dict[int, dict[str, Any]] = {}
    for _ in range(20):
        probes = [
            app.send_task("tests.support.worker_tasks.pool_status", queue=worker.queue)
            for _ in range(8)
        ]
        for probe in probes:
            answer = probe.get(timeout=timeout)
            answers[answer["pid"]] = answer
        if len(answers) >= processes:
            return answers
    pytest.fail(f"only {len(answers)} of {processes} worker processes answered")
