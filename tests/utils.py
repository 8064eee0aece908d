"""Running manage.py commands in real processes, as users and replicas do."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
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
    """``python -m django ARGS``; stdin is no terminal (a developer's terminal must not answer
    the command's questions)."""
    return subprocess.Popen(
        manage_args(*args),
        cwd=REPO,
        env=child_env(database_url, **env),
        stdin=subprocess.DEVNULL,
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


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(database_url: str | None, *server_args: str, **env: str) -> subprocess.Popen[str]:
    """A web server process running the test project (``gunicorn …`` or ``runserver …``)."""
    if server_args[0] == "gunicorn":
        args = [sys.executable, "-m", "gunicorn", "tests.wsgi", *server_args[1:]]
    else:
        args = manage_args(*server_args)
    return subprocess.Popen(
        args,
        cwd=REPO,
        env=child_env(database_url, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so that stop() reaches runserver's child and gunicorn's workers
    )


def stop(process: subprocess.Popen[str], timeout: float = 30) -> Result:
    """Stop a server and its children (SIGTERM to the group, then SIGKILL); collect its output."""
    import signal

    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate(timeout=timeout)
    else:
        out, err = process.communicate(timeout=timeout)
    return Result(process.returncode, out, err)


def get(url: str, timeout: float = 10) -> tuple[int, str]:
    """GET a URL; (status, body). Connection errors raise OSError."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for(url: str, process: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    """Poll ``url`` until it answers; fail early if the server process ended."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            result = stop(process)
            errors = [
                line
                for line in (result.err or result.out).splitlines()  # stderr may go to stdout
                if "rror" in line or "failed" in line
            ]
            raise AssertionError(
                f"server exited with {result.returncode}: " + "\n".join(errors[-30:])
            )
        try:
            return get(url, timeout=5)
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def start_lockctl(database_url: str, *args: str, **env: str) -> subprocess.Popen[str]:
    """``python -m tests.lockctl ARGS`` in a new process (see tests/lockctl.py)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.lockctl", *args],
        cwd=REPO,
        env=child_env(database_url, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_lock_holder(database_url: str, seconds: float = 60, **env: str) -> subprocess.Popen[str]:
    """A process that holds the migration lock for ``seconds``; returns once it holds it."""
    holder = start_lockctl(database_url, "hold", str(seconds), **env)
    assert holder.stdout is not None
    line = holder.stdout.readline()
    assert line.startswith("held"), holder.stderr.read() if holder.stderr else line
    return holder


def try_lock(database_url: str, wait: str, **env: str) -> dict[str, Any]:
    """``lockctl acquire WAIT``: its JSON report, plus its log under ``"log"``."""
    process = start_lockctl(database_url, "acquire", wait, **env)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    report: dict[str, Any] = json.loads(out)
    report["log"] = err
    return report


def serve_once(
    database_url: str | None, server: str, path: str, *args: str, **env: str
) -> tuple[int, str, str]:
    """Start ``runserver`` or ``gunicorn`` on a free port (``args``: more of their arguments),
    GET ``path`` once it answers, stop the server; (status, body, the server's stderr)."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    bind = (address,) if server == "runserver" else ("--bind", address)
    process = start_server(database_url, server, *bind, *args, **env)
    try:
        # Returns as soon as the server answers; the time allows for a startup run first.
        status, body = wait_for(f"http://127.0.0.1:{port}{path}", process, timeout=90)
    finally:
        log = stop(process).err
    return status, body, log


#: Rows that testapp.0022_seed_tags puts in the table ``/tags/`` reads.
SERVED_TAGS = 3


def pids_serving(port: int, workers: int, deadline: float = 60) -> set[int]:
    """The worker processes seen answering ``/tags/`` (a migrated table): overlapping slow
    requests until each of ``workers`` processes answered, or the deadline passed."""
    import concurrent.futures
    import time

    def request(_: int) -> int:
        status, body = get(f"http://127.0.0.1:{port}/tags/?sleep=0.2", timeout=30)
        assert status == 200, body
        assert json.loads(body)["tags"] == SERVED_TAGS
        pid: int = json.loads(body)["pid"]
        return pid

    seen: set[int] = set()
    end = time.monotonic() + deadline
    with concurrent.futures.ThreadPoolExecutor(max_workers=4 * workers) as pool:
        while len(seen) < workers and time.monotonic() < end:
            seen |= set(pool.map(request, range(4 * workers)))
    return seen


def stderr_lines(process: subprocess.Popen[str], seconds: float = 150) -> Iterator[str]:
    """The lines ``process`` writes to stderr, for a handshake on one of them; the process is
    killed after ``seconds`` (then the lines end), so that a run that never says it fails the
    test instead of hanging it."""
    assert process.stderr is not None
    watchdog = threading.Timer(seconds, process.kill)
    watchdog.start()
    try:
        # Not ``yield from``: closing this generator (a handshake's ``break``) would close the
        # pipe too, and ``communicate()`` could no longer read the rest.
        for line in process.stderr:  # noqa: UP028
            yield line
    finally:
        watchdog.cancel()
