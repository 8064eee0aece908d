"""The promise under faults: a deploy never applies a migration twice and never loses data.

One fast trial per fault, with real processes, real SIGKILL, real ``pg_terminate_backend`` /
``KILL`` from a separate admin connection and real server idle timeouts. The migrating process
stops at handshakes of ``tests.faultapp`` (marker files), never at a guessed moment. After each
trial, ``tests.invariants.verify`` runs the next ``automigrate`` and checks the invariants.
The stress suite (``make stress``) runs the same faults at random moments, many times.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.faultapp import control
from tests.invariants import Verdict, automigrate, health, history, verify
from tests.servers import FreshDatabase
from tests.utils import Result, finish

pytestmark = pytest.mark.drivers

SERVERS = ["postgresql", "mysql"]
#: A lease short enough for a fast trial, long enough for a busy machine.
LEASE = "6"


def assert_kept(verdict: Verdict) -> None:
    assert verdict.violations == [], str(verdict)


def kill(process: subprocess.Popen[str]) -> Result:
    process.send_signal(signal.SIGKILL)
    return finish(process)


def release(markers: Path, point: str, process: subprocess.Popen[str]) -> Result:
    control.go(markers, point)
    return finish(process)


def says_lost(result: Result) -> bool:
    return bool(re.search(r"\blost\b", result.out + result.err, re.IGNORECASE))


@pytest.mark.parametrize("server", SERVERS, indirect=True)
def test_terminating_the_lock_session_stops_the_work_with_it(
    database: FreshDatabase, tmp_path: Path
) -> None:
    holder = control.start_holder(database, tmp_path, "0002")
    control.wait_at(tmp_path, "0002", holder)
    sessions = control.lock_sessions(database)
    assert sessions, "nobody holds the migration lock"

    control.terminate(database, sessions)
    control.wait_until_gone(database, sessions)
    # Another replica comes, finds the lock free, and brings the database up to date.
    during = verify(database)
    holder_result = release(tmp_path, "0002", holder)
    after = verify(database)

    assert_kept(during)
    assert_kept(after)
    assert holder_result.returncode == 1, holder_result.err[-2000:]
    assert says_lost(holder_result), holder_result.out + holder_result.err[-2000:]


@pytest.mark.parametrize("server", SERVERS, indirect=True)
@pytest.mark.serial  # lowers MariaDB's global wait_timeout: no other test may run meanwhile
def test_a_server_idle_timeout_cannot_take_the_lock_from_a_working_holder(
    database: FreshDatabase, tmp_path: Path
) -> None:
    with control.idle_timeout(database, 2):
        holder = control.start_holder(database, tmp_path, "0002")
        control.wait_at(tmp_path, "0002", holder)
        # The holder keeps its session busy; any other session of it idles past the timeout.
        waiting = automigrate(database, "--format", "json", "--lock-timeout", "6")
        holder_result = release(tmp_path, "0002", holder)
    verdict = verify(database)

    assert_kept(verdict)
    assert waiting.returncode == 3, waiting.out[-2000:] + waiting.err[-2000:]
    assert holder_result.returncode == 0, holder_result.err[-3000:]


@pytest.mark.parametrize("server", SERVERS, indirect=True)
def test_a_holder_whose_connections_are_all_cut_reverses_nothing(
    database: FreshDatabase, tmp_path: Path
) -> None:
    holder = control.start_holder(database, tmp_path, "0002")
    control.wait_at(tmp_path, "0002", holder)
    cut = control.sessions(database)

    control.terminate(database, cut)
    control.wait_until_gone(database, cut)
    during = verify(database)  # another replica takes the lock and applies the rest
    recorded = set(database.migration_rows())
    holder_result = release(tmp_path, "0002", holder)
    after = verify(database)

    assert_kept(during)
    assert_kept(after)
    assert holder_result.returncode == 1, holder_result.err[-2000:]
    assert says_lost(holder_result), holder_result.out + holder_result.err[-2000:]
    assert set(database.migration_rows()) == recorded, "the cut holder changed django_migrations"


@pytest.mark.parametrize("server", ["sqlite", *SERVERS], indirect=True)
def test_a_holder_killed_inside_a_non_atomic_migration_is_refused_until_marked_fixed(
    database: FreshDatabase, tmp_path: Path
) -> None:
    holder = control.start_holder(database, tmp_path, "0004")
    control.wait_at(tmp_path, "0004", holder)

    kill(holder)
    verdict = verify(database)

    assert_kept(verdict)
    assert verdict.refused is not None, str(verdict)
    (row,) = [row for row in history(database) if row["id"] == verdict.refused]
    assert (row["status"], row["failed_migration"], row["half_applied"]) == (
        "interrupted",
        "faultapp.0004_nonatomic",
        True,
    )
    assert row["resolved_at"] is not None


@pytest.mark.parametrize("server", ["sqlite", *SERVERS], indirect=True)
def test_a_holder_killed_inside_a_data_migration_is_closed_as_interrupted(
    database: FreshDatabase, tmp_path: Path
) -> None:
    holder = control.start_holder(database, tmp_path, "0002")
    control.wait_at(tmp_path, "0002", holder)
    (killed_row,) = [row for row in history(database) if row["status"] == "running"]

    kill(holder)
    verdict = verify(database)

    assert_kept(verdict)
    row = next(row for row in history(database) if row["id"] == killed_row["id"])
    assert row["status"] == "interrupted"
    assert row.get("in_flight", "") in ("", "faultapp.0002_count_and_wait")
    # Transactional there: nothing to repair, the next run proceeds. MySQL: no DDL or data
    # migration is transactional for the tool, so a person must look.
    assert (verdict.refused is not None) == (database.vendor == "mysql"), str(verdict)


FIRST_RUN_POINTS = [
    ("sqlite", "record:django_automigrate.0001_initial"),
    ("postgresql", "record:django_automigrate.0001_initial"),
    ("mysql", "record:django_automigrate.0001_initial"),
    ("mysql", "stmt:django_automigrate.0001_initial:2"),
    ("mysql", "stmt:django_automigrate.0002_rollback:2"),
]


@pytest.mark.parametrize(("server", "point"), FIRST_RUN_POINTS, indirect=["server"])
def test_a_first_run_killed_while_the_history_tables_are_created_leaves_them_usable(
    database: FreshDatabase, tmp_path: Path, point: str
) -> None:
    holder = control.start_holder(database, tmp_path, point)
    control.wait_at(tmp_path, point, holder)

    kill(holder)
    verdict = verify(database)

    assert_kept(verdict)
    assert verdict.refused is None, str(verdict)
    assert verdict.steps[0][1] == 0, str(verdict)


@pytest.mark.parametrize("server", ["sqlite", *SERVERS], indirect=True)
def test_a_holder_killed_after_its_last_migration_leaves_no_running_row(
    database: FreshDatabase, tmp_path: Path
) -> None:
    holder = control.start_holder(database, tmp_path, "post_migrate")
    control.wait_at(tmp_path, "post_migrate", holder)

    kill(holder)
    verdict = verify(database)

    assert_kept(verdict)
    assert [row["status"] for row in history(database)] == ["interrupted"]


def _health_reason(database: FreshDatabase, **extra: str) -> str:
    (status,) = health(database, **extra)
    return str(status["reason"])


@pytest.mark.parametrize("server", SERVERS, indirect=True)
def test_a_dead_lease_holder_is_not_reported_in_progress(
    database: FreshDatabase, tmp_path: Path
) -> None:
    lease = {"AUTOMIGRATE_LOCK_BACKEND": "table", "AUTOMIGRATE_LOCK_LEASE": LEASE}
    holder = control.start_holder(database, tmp_path, "0002", extra=lease)
    control.wait_at(tmp_path, "0002", holder)
    assert "in progress" in _health_reason(database, **lease)

    kill(holder)
    deadline = time.monotonic() + float(LEASE) + 15
    reason = _health_reason(database, **lease)
    while "in progress" in reason and time.monotonic() < deadline:
        reason = _health_reason(database, **lease)
    verdict = verify(database, lease)

    assert "in progress" not in reason, reason
    assert_kept(verdict)


@pytest.mark.parametrize("server", SERVERS, indirect=True)
@pytest.mark.parametrize("renewals", ["failing", "blocked"])
def test_a_lease_holder_that_cannot_renew_stops_well_before_the_lease_expires(
    database: FreshDatabase, tmp_path: Path, renewals: str
) -> None:
    lease = {"AUTOMIGRATE_LOCK_BACKEND": "table", "AUTOMIGRATE_LOCK_LEASE": LEASE}
    holder = control.start_holder(database, tmp_path, "0002", extra=lease)
    control.wait_at(tmp_path, "0002", holder)
    # Renewals get an error at once (failing), or hang on the row (blocked: a stalled pooler).
    cut_off = (
        control.lease_renewals_refused(database)
        if renewals == "failing"
        else control.lease_row_locked(database)
    )

    with cut_off:
        blocked = time.monotonic()
        # By the server's clock; the holder must stop a second before, at the latest.
        deadline = blocked + control.lease_remaining(database) - 1.0
        stopped = control.lost(tmp_path, "0002")
        while not stopped.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        stopped_after = time.monotonic() - blocked
        was_stopped = stopped.exists()
    holder_result = release(tmp_path, "0002", holder)
    verdict = verify(database, lease)

    assert was_stopped, f"the holder still ran {stopped_after:.1f}s after its renewals stopped"
    assert holder_result.returncode == 1, holder_result.err[-2000:]
    assert_kept(verdict)
