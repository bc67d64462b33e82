"""Real parts for the budgets tests: an SMTP server (aiosmtpd), Celery worker
processes on the real Redis broker, and a private redis-server that a test may stop."""
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path

from aiosmtpd.controller import Controller
from django.conf import settings
from django.db import connection

from koala.embedded import ROOT, free_port


@dataclass
class Mailbox:
    """What the SMTP server accepted; `refuse` > 0 answers that many deliveries 451."""

    messages: list = field(default_factory=list)
    refused: int = 0
    refuse: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if self.refuse > 0:
                self.refuse -= 1
                self.refused += 1
                return "451 4.3.0 Mail server busy; try again later"
            self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def subjects(self) -> list[str]:
        with self.lock:
            return [str(message["Subject"]).replace("\n", "").replace("\r", "") for message in self.messages]

    def wait_for(self, count: int, timeout: float = 60) -> float:
        """Seconds until `count` messages have arrived; fails after `timeout`."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if len(self.messages) >= count:
                return time.monotonic() - started
            time.sleep(0.05)
        raise AssertionError(f"{len(self.messages)} of {count} emails arrived in {timeout} s: {self.subjects()}")


class SmtpServer:
    def __init__(self):
        self.mailbox = Mailbox()
        self.port = free_port()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> "SmtpServer":
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


def database_url_of_this_test() -> str:
    """The URL of the database this test process uses (pytest-django's test_<name>)."""
    database = connection.settings_dict
    user = database["USER"] or "postgres"
    password = f":{database['PASSWORD']}" if database["PASSWORD"] else ""
    return f"postgres://{user}{password}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/" \
           f"{database['NAME']}"


class Worker:
    """`celery -A koala worker` processes consuming one queue of their own."""

    def __init__(self, *, smtp_port: int, concurrency: int = 4, log: Path):
        self.queue = f"budgets-test-{uuid.uuid4().hex[:12]}"
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.budgets.worker_settings",
                   DATABASE_URL=database_url_of_this_test(), REDIS_URL=settings.REDIS_URL, EMAIL_HOST="127.0.0.1",
                   EMAIL_PORT=str(smtp_port), KOALA_TEST_QUEUE=self.queue, PYTHONUNBUFFERED="1",
                   DATABASE_CONN_MAX_AGE="0")
        self.log = log
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "koala", "worker", "-Q", self.queue, "-c", str(concurrency),
             "-n", f"{self.queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-l", "INFO"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
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


class PrivateRedis:
    """A redis-server of this test alone, on a free port, that the test may stop and start."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        import redis

        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=0.2).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
