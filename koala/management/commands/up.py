"""`manage.py up`: the whole platform in one command.

Starts embedded PostgreSQL and Redis unless DATABASE_URL / REDIS_URL name real
ones, migrates, collects static files, creates the demo organization on the first
run, then runs gunicorn, a Celery worker and Celery beat as child processes and
forwards their output. Ctrl-C or SIGTERM stops everything and exits 0; if one
child dies, the others are stopped and the command exits 1.

Everything the platform writes lives in the data folder ($KOALA_DATA_DIR or
<repo>/.koala/): postgres/, redis/, static/, secret_key, demo.json and
celerybeat-schedule. A second run reuses all of it.
"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from koala import embedded

MANAGE_PY = embedded.ROOT / "manage.py"
STOP_TIMEOUT_SECONDS = 20
READY_TIMEOUT_SECONDS = 90


def _gunicorn_control_socket_off() -> list[str]:
    # gunicorn 25+ opens a control socket in ~/.gunicorn/, shared by every instance of the user.
    from gunicorn.config import Config

    return ["--no-control-socket"] if "control_socket_disable" in Config().settings else []


def _static_fingerprint(static_root: Path) -> str:
    """Names, sizes and times of every static source file: collectstatic re-runs only when one changed.

    (Post-processing every file for the compressed, hashed copies takes several seconds.)
    """
    from django.conf import settings
    from django.contrib.staticfiles.finders import get_finders

    digest = hashlib.sha256(f"{static_root}\0{settings.STORAGES['staticfiles']}\n".encode())
    for finder in get_finders():
        for path, storage in sorted(finder.list(["CVS", ".*", "*~"]), key=lambda item: item[0]):
            stat = os.stat(storage.path(path))
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class Stop(Exception):
    """Raised in the main thread by the first SIGINT or SIGTERM."""


class Child:
    """A platform process in its own process group, its output forwarded line by line."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], say):
        self.name, self.argv, self.env, self.say = name, argv, env, say
        self.process: subprocess.Popen | None = None
        self.reader: threading.Thread | None = None

    def start(self) -> None:
        # A process group of its own: a Ctrl-C in the terminal reaches only the launcher,
        # which then stops the children in order.
        self.process = subprocess.Popen(
            self.argv, env=self.env, cwd=embedded.ROOT, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
            start_new_session=True, preexec_fn=embedded.die_with_parent,
        )

    def forward_output(self) -> None:
        def pump():
            for line in self.process.stdout:
                self.say(f"{self.name} | {line.rstrip()}")

        self.reader = threading.Thread(target=pump, name=f"{self.name}-output", daemon=True)
        self.reader.start()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill_group(self) -> None:
        """SIGKILL whatever is left in the child's process group (workers of a killed master)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class Command(BaseCommand):
    help = ("Runs TrackingKoala: embedded PostgreSQL and Redis unless DATABASE_URL / REDIS_URL are set, "
            "migrations, the demo organization, the web server, a Celery worker and Celery beat.")
    # The launcher's own settings point at no database; the platform's processes use the right ones.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000),
                            help="web server port (default: $PORT or 8000)")
        parser.add_argument("--host", default="127.0.0.1", help="address the web server binds (default 127.0.0.1)")
        parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes (default 2)")

    def handle(self, **options):
        # Re-entrant: the signal handler may print while the main thread is printing.
        self._output_lock = threading.RLock()
        self.children: list[Child] = []
        folder = embedded.data_dir()
        try:
            self._lock = embedded.lock(folder, "up")
        except RuntimeError as error:
            raise CommandError(str(error)) from None
        host, port = options["host"], options["port"]
        if not embedded.port_is_free(port, host):
            raise CommandError(f"Port {port} on {host} is already in use; choose another with --port or PORT.")
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._interrupted)
        try:
            with embedded.services(folder, say=self.say) as urls:
                try:
                    self._run(folder, urls, options)
                finally:
                    self._calm_signals()
                    self._stop_children()
        except Stop:
            self.say("TrackingKoala stopped.")
        except (RuntimeError, subprocess.CalledProcessError) as error:  # an embedded service would not start
            raise CommandError(str(error)) from None

    # -- signals -------------------------------------------------------------

    def _interrupted(self, signum, frame):
        self._calm_signals()
        self.say(f"\n{signal.Signals(signum).name} received: stopping TrackingKoala ...")
        raise Stop

    def _calm_signals(self):
        def already_stopping(signum, frame):
            self.say(f"{signal.Signals(signum).name} received: already stopping, please wait ...")

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, already_stopping)

    # -- the run -------------------------------------------------------------

    def _run(self, folder: Path, urls: dict[str, str], options: dict) -> None:
        host, port = options["host"], options["port"]
        local_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/"
        env = self._environment(folder, urls, site_url=local_url.rstrip("/"))
        if "DATABASE_URL" not in urls:
            self._ensure_database(env["DATABASE_URL"])
        demo = self._prepare(env, folder)

        python = sys.executable
        self.children = [
            Child("web", [python, "-m", "gunicorn", "koala.wsgi:application", "--bind", f"{host}:{port}",
                          "--workers", str(options["workers"]), "--preload", "--graceful-timeout", "15",
                          "--access-logfile", "-", *_gunicorn_control_socket_off()], env, self.say),
            Child("worker", [python, "-m", "celery", "-A", "koala", "worker", "-l", "info",
                             "--concurrency", str(options["concurrency"])], env, self.say),
            Child("beat", [python, "-m", "celery", "-A", "koala", "beat", "-l", "info",
                           "-s", str(folder / "celerybeat-schedule")], env, self.say),
        ]
        # Every child is started before any output thread exists (preexec_fn and threads do not mix).
        for child in self.children:
            child.start()
        for child in self.children:
            child.forward_output()

        health = self._wait_until_serving(local_url)
        self._banner(local_url, folder, urls, demo, health)
        while True:
            for child in self.children:
                code = child.process.poll()
                if code is not None:
                    self.say(f"The {child.name} process exited unexpectedly (code {code}); stopping the others.")
                    raise CommandError(f"TrackingKoala stopped because the {child.name} process exited (code {code}).")
            time.sleep(0.25)

    def _environment(self, folder: Path, urls: dict[str, str], *, site_url: str) -> dict[str, str]:
        """The children's environment: the caller's, plus what the launcher decided."""
        env = {**os.environ, **urls}
        if not env.get("SECRET_KEY"):
            env["SECRET_KEY"] = embedded.secret_key(folder)
        env.setdefault("STATIC_ROOT", str(folder / "static"))
        env.setdefault("SITE_URL", site_url)
        env.setdefault("DJANGO_SETTINGS_MODULE", "koala.settings")
        env["KOALA_DATA_DIR"] = str(folder)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _prepare(self, env: dict[str, str], folder: Path) -> dict:
        """Migrations and the demo organization, while static files are collected alongside."""
        static_root = Path(env["STATIC_ROOT"])
        stamp, fingerprint = static_root / ".koala-collected", _static_fingerprint(static_root)
        collect = None
        if stamp.exists() and stamp.read_text() == fingerprint:
            self.say(f"Static files in {static_root} are up to date.")
        else:
            self.say(f"Collecting static files into {static_root} ...")
            collect = subprocess.Popen([sys.executable, str(MANAGE_PY), "collectstatic", "--noinput", "--verbosity",
                                        "0"], env=env, cwd=embedded.ROOT, stdin=subprocess.DEVNULL)
        try:
            demo = self._migrate_and_seed(env, folder)
            if collect is not None:
                if collect.wait() != 0:
                    raise CommandError(f"`manage.py collectstatic` failed (exit code {collect.returncode}).")
                stamp.write_text(fingerprint)
        finally:
            if collect is not None and collect.poll() is None:
                collect.kill()
                collect.wait()
        return demo

    def _ensure_database(self, url: str) -> None:
        """DATABASE_URL's database, created when missing and the user may; `migrate` reports other problems."""
        try:
            embedded.database_ensure(url)
        except Exception as error:
            self.say(f"Could not check or create the database of DATABASE_URL: {error}")

    def _migrate_and_seed(self, env: dict[str, str], folder: Path) -> dict:
        """Migrates, then ensures the demo organization, whose login and key are kept in demo.json."""
        # One Django start-up for both commands (each start-up costs seconds); stdout carries only the JSON.
        script = ("import sys; from django.core.management import call_command; "
                  "call_command('migrate', interactive=False, stdout=sys.stderr); call_command('seed_demo', json=True)")
        result = subprocess.run([sys.executable, str(MANAGE_PY), "shell", "--no-imports", "-c", script], env=env,
                                cwd=embedded.ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise CommandError(f"`migrate` or `seed_demo` failed (exit code {result.returncode}); see above.")
        line = next((text for text in reversed(result.stdout.splitlines()) if text.startswith("{")), "{}")
        demo = json.loads(line)
        saved = folder / "demo.json"
        if demo.get("created"):
            descriptor = os.open(saved, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(line + "\n")
            return {**demo, "reused": False}
        if saved.exists():
            return {**json.loads(saved.read_text()), "reused": True}
        return {**demo, "reused": True, "key": None, "password": None}

    def _wait_until_serving(self, url: str) -> dict:
        """Polls /healthz until the web server answers; returns its body."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            for child in self.children:
                if not child.running():
                    raise CommandError(f"The {child.name} process exited (code {child.process.returncode}) "
                                       "before the platform was ready; see its output above.")
            try:
                with opener.open(url + "healthz", timeout=2) as response:
                    return json.load(response)
            except urllib.error.HTTPError as error:  # 503: serving, but a service is unhealthy
                return json.load(error)
            except (urllib.error.URLError, OSError, ValueError):
                time.sleep(0.25)
        raise CommandError(f"The web server did not answer on {url} within {READY_TIMEOUT_SECONDS} s.")

    def _banner(self, url: str, folder: Path, urls: dict[str, str], demo: dict, health: dict) -> None:
        database = "embedded" if "DATABASE_URL" in urls else "from DATABASE_URL"
        broker = f"embedded, {urls['REDIS_URL']}" if "REDIS_URL" in urls else "from REDIS_URL"
        if demo["reused"]:
            origin = f"reused from an earlier run (saved in {folder / 'demo.json'})"
        else:
            origin = f"created now; login and key saved in {folder / 'demo.json'}"
        password = demo.get("password") or "(the password chosen when it was created)"
        key = demo.get("key") or "(shown only when the demo organization was created)"
        lines = [
            "",
            "=" * 72,
            f"TrackingKoala is running at {url}",
            f"  Admin:         {url}admin/",
            f"  API docs:      {url}api/docs/   (OpenAPI document: {url}api/schema/)",
            f"  Demo login:    {demo.get('email')} / {password}",
            f"  Demo API key:  {key}",
            f"  Demo organization '{demo.get('slug')}' {origin}",
            f"  Data folder:   {folder}   (PostgreSQL: {database}; Redis: {broker})",
        ]
        if health.get("status") != "ok":
            lines.append(f"  WARNING: /healthz says {health}")
        lines += ["Press Ctrl-C to stop.", "=" * 72, ""]
        self.say("\n".join(lines))

    def _stop_children(self) -> None:
        """SIGTERM to every child, a grace period, then SIGKILL to whatever remains."""
        running = [child for child in self.children if child.running()]
        if running:
            self.say(f"Stopping {', '.join(child.name for child in running)} ...")
        for child in running:
            child.process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for child in running:
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"The {child.name} process did not stop within {STOP_TIMEOUT_SECONDS} s; killing it.")
        for child in self.children:
            child.kill_group()
            if child.process is not None:
                child.process.wait()
            if child.reader is not None:
                child.reader.join(timeout=5)

    def say(self, text: str) -> None:
        with self._output_lock:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
