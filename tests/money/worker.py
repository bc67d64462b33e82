"""A real `celery -A koala worker` process for the money tests, on the real Redis
broker, consuming a queue of its own so parallel test processes never share tasks."""
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
    password = f":{database['PASSWORD']}" if database["PASSWORD"] else ""
    return (f"postgres://{database['USER'] or 'postgres'}{password}@{database['HOST'] or '127.0.0.1'}:"
            f"{database['PORT'] or 5432}/{database['NAME']}")


class Worker:
    def __init__(self, *, log: Path):
        self.queue = f"money-test-{uuid.uuid4().hex[:12]}"
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="koala.settings.test", DATABASE_URL=database_url_of_this_test(),
                   REDIS_URL=settings.REDIS_URL, PYTHONUNBUFFERED="1")
        self.lines: list[str] = []
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "koala", "worker", "-Q", self.queue, "-c", "1", "--pool", "solo",
             "-n", f"{self.queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            errors="replace")
        threading.Thread(target=self._read, daemon=True).start()
        started = time.monotonic()
        while not any(" ready." in line for line in self.lines):
            if self.process.poll() is not None or time.monotonic() - started > 60:
                self.stop()
                raise AssertionError("the Celery worker did not start:\n" + "\n".join(self.lines[-40:]))
            time.sleep(0.1)

    def _read(self):
        with self.log.open("a") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                self.lines.append(line.rstrip("\n"))

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
