"""Real parts for the budgets tests: an SMTP server (aiosmtpd), Celery worker
processes on the real Redis broker (tests/celery_worker.py), and a private
redis-server that a test may stop."""
import subprocess
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path

from aiosmtpd.controller import Controller

from koala.embedded import free_port
from tests.celery_worker import Worker


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


def budgets_worker(*, smtp_port: int, concurrency: int = 4, log: Path) -> Worker:
    """Worker processes with the budgets test settings, sending to the test's SMTP server."""
    return Worker(name="budgets", log=log, settings_module="tests.budgets.worker_settings", concurrency=concurrency,
                  env={"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp_port), "DATABASE_CONN_MAX_AGE": "0"})


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
