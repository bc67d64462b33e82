"""`manage.py test [pytest args...]`: the test suite, with pytest, on real services.

Replaces Django's own `test` command (an app's command of the same name wins).
Every argument goes to pytest unchanged (`manage.py test -k budgets -x`). When
DATABASE_URL is unset, embedded PostgreSQL and Redis are started in
<data folder>/test-services and their URLs exported to pytest; when REDIS_URL is
unset, an embedded Redis likewise. The exit code is pytest's.
"""
import argparse
import os
import signal
import subprocess
import sys

from django.core.management.base import BaseCommand, CommandError

from koala import embedded


def _wants_own_workers(pytest_args: list[str]) -> bool:
    """Whether the caller already chose pytest-xdist's process count, or turned xdist off."""
    for argument in pytest_args:
        if argument == "--":
            break
        if argument.startswith(("-n", "--numprocesses")) or argument in ("no:xdist", "-pno:xdist"):
            return True
    return False


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Command(BaseCommand):
    help = ("Runs the test suite with pytest (in parallel with -n auto on a multi-core machine) against real "
            "PostgreSQL and Redis: DATABASE_URL / REDIS_URL, or embedded ones. Arguments go to pytest.")
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="passed to pytest unchanged")

    def run_from_argv(self, argv):
        # Django's parser would reject pytest's options (-k, -x, --lf); hand them over untouched.
        sys.exit(self.run_pytest(argv[2:]))

    def handle(self, *args, **options):  # call_command("test", ...)
        code = self.run_pytest(list(options.get("pytest_args") or []))
        if code != 0:
            raise CommandError(f"pytest exited with code {code}.", returncode=code)

    def run_pytest(self, pytest_args: list[str]) -> int:
        arguments = list(pytest_args)
        if _cpu_count() > 1 and not _wants_own_workers(arguments):
            arguments = ["-n", "auto", *arguments]
        folder = embedded.data_dir() / "test-services"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            lock = embedded.lock(folder, "test")
        except RuntimeError as error:
            raise CommandError(f"{error} Wait for it, or set KOALA_DATA_DIR to another folder.") from None
        with lock, embedded.services(folder, say=lambda text: print(text, file=sys.stderr, flush=True)) as urls:
            env = {**os.environ, **urls, "DJANGO_SETTINGS_MODULE": "koala.settings.test"}
            if "DATABASE_URL" not in urls:
                self._ensure_database(env["DATABASE_URL"])
            process = subprocess.Popen([sys.executable, "-m", "pytest", *arguments], env=env, cwd=embedded.ROOT)
            # A SIGTERM (a CI timeout) goes on to pytest; the services stop once it has finished.
            signal.signal(signal.SIGTERM, lambda signum, frame: process.terminate())
            while True:
                try:
                    return process.wait()
                except KeyboardInterrupt:
                    # pytest got the same Ctrl-C and is finishing; wait for it, then stop the services.
                    continue

    def _ensure_database(self, url: str) -> None:
        """Creates the configured database when it is missing, if the server allows; pytest reports otherwise."""
        try:
            embedded.database_ensure(url)
        except Exception as error:  # the session start check names the problem properly
            print(f"Could not check or create the database of DATABASE_URL: {error}", file=sys.stderr)
