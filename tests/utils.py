"""Running manage.py commands in real processes, as users and replicas do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    returncode: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def child_env(database_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a child process: ours, minus pytest's markers (a child is a real
    process, not a test run), plus the database URL and any overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "AUTOMIGRATE_"))}
    env.update({k: v for k, v in os.environ.items() if k.startswith("AUTOMIGRATE_TEST_")})
    env["PYTHONPATH"] = str(REPO)
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["PYTHONUNBUFFERED"] = "1"
    if database_url is not None:
        env["AUTOMIGRATE_TEST_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def manage_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "django", *args]


def start_command(database_url: str | None, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        manage_args(*args),
        cwd=REPO,
        env=child_env(database_url, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 180) -> Result:
    out, err = process.communicate(timeout=timeout)
    return Result(process.returncode, out, err)


def run_command(database_url: str | None, *args: str, timeout: float = 180, **env: str) -> Result:
    """``python -m django <args>`` in a new process; returns (returncode, stdout, stderr)."""
    return finish(start_command(database_url, *args, **env), timeout=timeout)
