"""`python3 manage.py up` on a machine with nothing running: the README's first command.

The launcher is started the way a newcomer starts it, without DATABASE_URL or
REDIS_URL, so it brings up its own PostgreSQL and Redis in a fresh data folder;
then it is started again on the same folder.
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import psutil
import pytest

from koala.embedded import ROOT, free_port

pytestmark = pytest.mark.slow

READY_TIMEOUT_SECONDS = 120  # the first run also runs initdb and every migration
STOP_TIMEOUT_SECONDS = 30
# What the test process itself was given; the launcher must not see any of it.
NOT_INHERITED = ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "STATIC_ROOT", "SITE_URL",
                 "PORT", "ALLOWED_HOSTS")


class Launcher:
    """`manage.py up` as a child process, its output collected line by line."""

    def __init__(self, data_dir: Path, port: int, log: Path):
        env = {name: value for name, value in os.environ.items() if name not in NOT_INHERITED}
        # This interpreter, not a second virtual environment.
        env.update(KOALA_DATA_DIR=str(data_dir), KOALA_NO_VENV="1", PYTHONUNBUFFERED="1")
        self.log = log
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "up", "--port", str(port)], env=env, cwd=ROOT,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        with self.log.open("a") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                with self._changed:
                    self.lines.append(line.rstrip("\n"))
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        """The first output line matching `pattern`, waiting for it up to `timeout` seconds."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if match := regex.search(line):
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    pytest.fail(f"`manage.py up` never printed {pattern!r}; its output:\n{self.tail()}")
                self._changed.wait(min(remaining, 1.0))

    def tail(self, lines: int = 80) -> str:
        with self._changed:
            return "\n".join(self.lines[-lines:])

    def interrupt(self) -> int:
        """Ctrl-C; returns the exit code, failing if the launcher takes too long."""
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`manage.py up` did not stop within {STOP_TIMEOUT_SECONDS} s of SIGINT:\n{self.tail()}")
        self._reader.join(10)
        return code

    def kill(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def processes_using(data_dir: Path) -> list[str]:
    """Every process started for this data folder: it is in their command line or environment."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "environ"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        environ = process.info["environ"] or {}
        if str(data_dir) in cmdline or environ.get("KOALA_DATA_DIR") == str(data_dir):
            found.append(f"{process.info['pid']}: {cmdline}")
    return found


def no_process_left(data_dir: Path, grace: float = 5.0) -> list[str]:
    deadline = time.monotonic() + grace
    while (left := processes_using(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def fetch(opener, url: str, *, data: dict | None = None, headers: dict | None = None):
    """(status, final url, body text) of one request; HTTP errors are answers too."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with opener.open(request, timeout=15) as response:
            return response.status, response.geturl(), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.geturl(), error.read().decode()


def new_opener(*handlers):
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), *handlers)  # never a proxy for 127.0.0.1


def read_banner(launcher: Launcher) -> dict:
    url = launcher.wait_for(r"TrackingKoala is running at (http://\S+/)", READY_TIMEOUT_SECONDS).group(1)
    email, password = launcher.wait_for(r"Demo login:\s+(\S+@\S+) / (\S+)", 5).groups()
    key = launcher.wait_for(r"Demo API key:\s+(tk_\S+)", 5).group(1)
    origin = launcher.wait_for(r"Demo organization '\S+' (created|reused)", 5).group(1)
    return {"url": url, "email": email, "password": password, "key": key, "origin": origin}


def api_key_works(url: str, key: str) -> dict:
    status, _, body = fetch(new_opener(), url + "api/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert status == 200, body
    return json.loads(body)


@pytest.fixture
def data_dir(tmp_path):
    folder = tmp_path / "koala-data"
    yield folder
    # Whatever happened, nothing started for this folder outlives the test.
    for line in processes_using(folder):
        try:
            psutil.Process(int(line.split(":")[0])).kill()
        except psutil.NoSuchProcess:
            pass


def test_up_runs_the_platform_on_a_bare_machine_and_again_on_the_same_data(data_dir, tmp_path):
    port = free_port()
    started = time.monotonic()
    first = Launcher(data_dir, port, tmp_path / "first-run.log")
    try:
        banner = read_banner(first)
        ready_after = time.monotonic() - started
        url = banner["url"]
        assert url == f"http://127.0.0.1:{port}/"
        assert banner["origin"] == "created"
        assert f"{url}admin/" in first.output and f"{url}api/docs/" in first.output

        status, _, body = fetch(new_opener(), url + "healthz")
        assert status == 200, body
        health = json.loads(body)
        assert (health["status"], health["database"], health["broker"]) == ("ok", "ok", "ok")

        # The printed login opens the admin.
        browser = new_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        status, _, page = fetch(browser, url + "admin/login/?next=/admin/")
        assert status == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        status, landed, page = fetch(browser, url + "admin/login/?next=/admin/", data={
            "csrfmiddlewaretoken": token, "username": banner["email"], "password": banner["password"],
            "next": "/admin/",
        }, headers={"Referer": url + "admin/login/"})
        assert (status, landed) == (200, url + "admin/"), page[:2000]
        assert 'name="password"' not in page and "Log out" in page

        # The printed key answers the API.
        assert api_key_works(url, banner["key"])["organization"] == "demo"

        # The worker is up (its banner line), and the launcher forwards its output with a prefix.
        first.wait_for(r"^worker \| .*celery@\S+ ready\.", 60)
        assert re.search(r"^web \| ", first.output, re.MULTILINE)
        assert re.search(r"^beat \| ", first.output, re.MULTILINE)

        assert first.interrupt() == 0, first.tail()
    finally:
        first.kill()
    assert "TrackingKoala stopped." in first.output
    assert no_process_left(data_dir) == []
    saved = json.loads((data_dir / "demo.json").read_text())
    assert saved["key"] == banner["key"] and saved["created"] is True

    # Second run on the same folder: same database, the same demo organization and key.
    started = time.monotonic()
    second = Launcher(data_dir, port, tmp_path / "second-run.log")
    try:
        again = read_banner(second)
        second_ready_after = time.monotonic() - started
        assert again["origin"] == "reused"
        assert again["key"] == banner["key"] and again["email"] == banner["email"]
        assert "Applying " not in second.output  # the migrations ran on the first run only
        assert api_key_works(again["url"], saved["key"])["organization"] == "demo"
        second.process.send_signal(signal.SIGTERM)  # a service manager's stop works like Ctrl-C
        assert second.process.wait(STOP_TIMEOUT_SECONDS) == 0, second.tail()
    finally:
        second.kill()
    assert no_process_left(data_dir) == []
    print(f"manage.py up was ready after {ready_after:.1f} s (first run) and {second_ready_after:.1f} s (second run)")
