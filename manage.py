#!/usr/bin/env python3
"""TrackingKoala's command line.

`python3 manage.py <command>` works on a fresh machine with only Python 3.11+:
the first run creates `.venv/`, installs the project into it, and re-runs the
command with the virtual environment's Python. Later runs reinstall only when
pyproject.toml has changed.
"""
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
INSTALL_STAMP = VENV / ".koala-installed"


def _pyproject_digest() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def _ensure_virtualenv() -> None:
    """Create and fill .venv when needed, then re-exec inside it."""
    in_our_venv = Path(sys.prefix).resolve() == VENV.resolve()
    if os.environ.get("KOALA_NO_VENV") == "1":
        return  # an environment someone else manages (a container image, a CI cache)
    if not VENV_PYTHON.exists():
        print("manage.py: creating the virtual environment in .venv/ ...", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = _pyproject_digest()
    if not INSTALL_STAMP.exists() or INSTALL_STAMP.read_text().strip() != digest:
        print("manage.py: installing TrackingKoala and its dependencies ...", file=sys.stderr)
        subprocess.run(
            [str(VENV_PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "-e", f"{ROOT}[dev]"],
            check=True,
        )
        INSTALL_STAMP.write_text(digest)
    if not in_our_venv:
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(ROOT / "manage.py"), *sys.argv[1:]])


def main() -> None:
    _ensure_virtualenv()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "koala.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
