"""A real `celery -A koala worker` process for tests, on the real Redis broker,
consuming a queue of its own so parallel test processes never share tasks."""
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.db import connection

from koala.embedded import ROOT


def database_url_of_this_test() -> str:
    """The URL of the database this test process uses (pytest-django's test_<name>)."""
    database = connection.settings_dict
    user = database["USER"] or "postgres"
    password = f":{database['PASSWORD']}" if database["PASSWORD"] else ""
    return f"postgres://{user}{password}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/" \
           f"{database['NAME']}"


class Worker:
    """The worker's output goes to `log` and stays readable in `lines`; `queue` is its own
    (also given to the worker as KOALA_TEST_QUEUE)."""

    def __init__(self, *, name: str, log: Path, settings_module: str = "koala.settings.test", concurrency: int = 1,
                 pool: str | None = None, env: dict | None = None):
        self.queue = f"{name}-test-{uuid.uuid4().hex[:12]}"
        environment = dict(os.environ, DJANGO_SETTINGS_MODULE=settings_module, DATABASE_URL=database_url_of_this_test(),
                           REDIS_URL=settings.REDIS_URL, KOALA_TEST_QUEUE=self.queue, PYTHONUNBUFFERED="1",
                           **(env or {}))
        self.log = log
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "koala", "worker", "-Q", self.queue, "-c", str(concurrency),
             *(["--pool", pool] if pool else []), "-n", f"{self.queue}@%h", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "-l", "INFO"],
            cwd=ROOT, env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="replace")
        threading.Thread(target=self._read, daemon=True).start()
        self._wait_ready()

    def _read(self):
        with self.log.open("a") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                self.lines.append(line.rstrip("\n"))

    def _wait_ready(self, timeout: float = 60):
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if any(" ready." in line for line in self.lines):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise AssertionError("the Celery worker did not start:\n" + "\n".join(self.lines[-40:]))

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
