"""The health check and the metrics through a real gunicorn, at the URLs a user configures, while
real processes migrate, fail and wait for the lock on a real database."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from pathlib import Path

from tests.servers import FreshDatabase
from tests.utils import (
    finish,
    free_port,
    get,
    run_command,
    start_command,
    start_lock_holder,
    start_server,
    stop,
    wait_for,
)

PASSWORD = "s3cret-pw-4711"
#: An "other" database nobody can reach, with credentials in its URL: they must not leak.
UNREACHABLE = f"postgres://deploy:{PASSWORD}@127.0.0.1:1/app"
#: What must never be in a health response.
LEAKS = re.compile(
    r"Traceback|injected failure|RuntimeError|SELECT |INSERT |ALTER |CREATE |DROP |"
    + re.escape(PASSWORD)
    + r"|deploy@|port 1\b|[Cc]onnection refused|connection to server",
)


def _health(base: str, path: str = "health/ready/") -> tuple[int, str]:
    """(status, the check's message) from the JSON format; the HTML and text formats of the
    same request are checked for leaks too."""
    status, body = get(f"{base}/{path}?format=json")
    for fmt in ("text", ""):
        _, other = get(f"{base}/{path}?format={fmt}" if fmt else f"{base}/{path}")
        assert not LEAKS.search(other), other
    assert not LEAKS.search(body), body
    (message,) = json.loads(body).values()
    return status, message


def _wait_for_health(base: str, pattern: str, timeout: float = 60) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        status, seen = _health(base)
        if re.search(pattern, seen):
            return status, seen
        time.sleep(0.2)
    raise AssertionError(f"health never matched {pattern!r}; last: {seen!r}")


def _metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        metric, _, value = line.rpartition(" ")
        found = dict(re.findall(r'(\w+)="([^"]*)"', metric))
        if metric.split("{")[0] == name and all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return None


def test_health_and_metrics_follow_pending_in_progress_failed_and_succeeded_runs(
    database: FreshDatabase, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = {
        "AUTOMIGRATE_TEST_OTHER_DATABASE_URL": UNREACHABLE,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "AUTOMIGRATE_RELEASE": "1.4.2",
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The server does not migrate: deploy jobs (real processes) do, as in a Kubernetes Job.
    server = start_server(
        database.url, "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}",
        AUTOMIGRATE_ENABLED="false", **env,
    )  # fmt: skip
    try:
        status, _ = wait_for(f"{base}/health/live/", server)
        assert status == 200  # alive, whatever the migrations

        # 1. Nothing applied yet: every migration is pending.
        status, message = _health(base)
        assert status == 500
        assert re.fullmatch(r"Unavailable: \d+ migrations pending on default", message), message

        # 2. A deploy job is migrating (slowly), and will fail.
        failing = start_command(
            database.url, "automigrate",
            AUTOMIGRATE_TEST_SLOW="0010_checkpoint:4", AUTOMIGRATE_TEST_FAIL="0020_checkpoint",
            **env,
        )  # fmt: skip
        status, message = _wait_for_health(base, "in progress")
        assert status == 500
        host = re.escape(socket.gethostname())
        assert re.fullmatch(
            r"Unavailable: migration in progress on default since \d\d:\d\d:\d\d \w+ "
            rf"\(run #\d+, host {host}\); \d+ migrations pending",
            message,
        ), message
        failed = finish(failing)
        assert failed.returncode == 1, failed.err
        rows = database.history_rows()
        assert rows[-1]["status"] in ("rolled_back", "failed")

        # 3. After the failed run: its number, and what is still pending.
        status, message = _health(base)
        assert status == 500
        assert re.fullmatch(
            rf"Unavailable: last run #{rows[-1]['id']} on default failed( and was rolled back)?; "
            r"\d+ migrations? pending",
            message,
        ), message

        # 4. The next deploy waits for the lock (held by another process), then succeeds.
        holder = start_lock_holder(database.url, 6, **env)
        succeeded = finish(start_command(database.url, "automigrate", **env))
        finish(holder)
        assert succeeded.returncode == 0, succeeded.err
        status, message = _health(base)
        assert (status, message) == (200, "OK")

        # The unreachable database: its error's class, and nothing of its URL.
        status, message = _health(base, "health/other/")
        assert status == 500
        assert message == (
            "Unavailable: cannot read the migration state of other (OperationalError)"
        )

        # 5. Metrics, added up over the gunicorn workers and the deploy jobs' processes.
        status, text = get(f"{base}/metrics/")
        assert status == 200
        runs = "automigrate_runs_total"
        assert _metric(text, runs, database="default", status="succeeded", trigger="command") == 1
        failed_status = rows[-1]["status"]
        assert _metric(text, runs, database="default", status=failed_status) == 1
        wait_count = _metric(text, "automigrate_lock_wait_seconds_count", database="default")
        wait_sum = _metric(text, "automigrate_lock_wait_seconds_sum", database="default")
        assert wait_count == 2  # both jobs took the lock; the second waited for it
        assert wait_sum is not None
        assert wait_sum >= 1.5, text
        assert _metric(text, "automigrate_pending_migrations", database="default") == 0
        last_success = _metric(
            text, "automigrate_last_success_timestamp_seconds", database="default"
        )
        assert last_success is not None
        assert abs(last_success - time.time()) < 120
        duration = _metric(
            text, "automigrate_run_duration_seconds_count", database="default", status="succeeded"
        )
        assert duration == 1
    finally:
        result = stop(server)
    # django-health-check logs each failed check with its traceback (server-side only); a check
    # that crashed instead of answering would show as this:
    assert "Unexpected exception during health check" not in result.err, result.err[-3000:]


def test_metrics_show_the_pending_count_a_health_check_saw(
    database: FreshDatabase, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(
        database.url, "gunicorn", "--bind", f"127.0.0.1:{port}",
        AUTOMIGRATE_ENABLED="false", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )  # fmt: skip
    try:
        wait_for(f"{base}/health/live/", server)
        _, message = _health(base)
        pending = int(re.search(r"(\d+) migrations pending", message).group(1))  # type: ignore[union-attr]
        _, text = get(f"{base}/metrics/")
        assert _metric(text, "automigrate_pending_migrations", database="default") == pending
    finally:
        stop(server)


def test_a_killed_run_reads_as_stopped_not_as_in_progress(database: FreshDatabase) -> None:
    # `manage.py health_check NAME --no-http`: django-health-check's own command, in process.
    def health() -> tuple[int, str]:
        result = run_command(database.url, "health_check", "health-ready", "--no-http")
        assert not LEAKS.search(result.out), result.out
        return result.returncode, result.out.strip()

    assert run_command(database.url, "migrate", "django_automigrate").returncode == 0
    holder = start_command(database.url, "automigrate", AUTOMIGRATE_TEST_SLOW="0010_checkpoint:120")
    try:
        deadline = time.monotonic() + 60
        while not any(row["status"] == "running" for row in database.history_rows()):
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.2)
        code, out = health()
        assert code == 1
        assert "Unavailable: migration in progress on default since" in out, out
    finally:
        holder.send_signal(signal.SIGKILL)  # as the OOM killer or a node failure would
        holder.communicate(timeout=30)

    (row,) = database.history_rows()
    code, out = health()
    assert code == 1
    assert re.search(
        rf"Unavailable: run #{row['id']} on default stopped before it finished \(host .+, "
        r"started \d\d:\d\d:\d\d \w+\): the next run closes it as interrupted and takes over; "
        r"\d+ migrations pending",
        out,
    ), out
