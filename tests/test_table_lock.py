"""LOCK_BACKEND = "table": a lease row with a heartbeat, taken over only once its holder died."""

from __future__ import annotations

import collections
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.servers import FreshDatabase
from tests.test_locks import kill
from tests.utils import finish, start_command, start_lock_holder, try_lock

TABLE = {"AUTOMIGRATE_LOCK_BACKEND": "table"}

# SQLite refuses the table lock (check automigrate.E010): its file lock is the right one there.
pytestmark = [
    pytest.mark.parametrize("server", ["postgresql", "mysql"], indirect=True),
    pytest.mark.drivers,
]


def start_lease_holder(
    database: FreshDatabase, seconds: float, lease: str
) -> subprocess.Popen[str]:
    return start_lock_holder(database.url, seconds, AUTOMIGRATE_LOCK_LEASE=lease, **TABLE)


def try_lease(database: FreshDatabase, wait: str, lease: str = "2") -> dict[str, object]:
    return try_lock(database.url, wait, AUTOMIGRATE_LOCK_LEASE=lease, **TABLE)


def test_a_live_holders_lease_is_never_taken_over(database: FreshDatabase) -> None:
    # A 2 s lease, held while five attempts (several lease periods) come and go: only the
    # heartbeat keeps it; every attempt must fail.
    holder = start_lease_holder(database, 120, lease="2")
    try:
        attempts = []
        for _ in range(5):
            attempts.append(try_lease(database, "0.5"))
            time.sleep(0.5)
    finally:
        kill(holder)

    assert [a["acquired"] for a in attempts] == [False] * 5
    assert "token" in str(attempts[0]["holder"])
    assert "lease expires in" in str(attempts[0]["holder"])


def test_a_killed_holders_lease_is_taken_over_after_it_expires(database: FreshDatabase) -> None:
    holder = start_lease_holder(database, 60, lease="2")

    kill(holder)
    started = time.monotonic()
    report = try_lease(database, "15")
    took = time.monotonic() - started

    assert report["acquired"] is True
    assert took < 10
    assert "took over the expired migration lease" in str(report["log"])


def test_eight_replicas_with_the_table_lock_apply_once(database: FreshDatabase) -> None:
    replicas = [
        start_command(
            database.url,
            "automigrate",
            "--format",
            "json",
            AUTOMIGRATE_TEST_SLOW="0010_checkpoint:2",
            **TABLE,
        )
        for _ in range(8)
    ]

    results = [finish(replica) for replica in replicas]

    assert [r.returncode for r in results] == [0] * 8, [r.err for r in results if r.returncode]
    appliers = [r for r in results if r.json()["databases"][0]["applied"]]
    assert len(appliers) == 1
    rows = database.migration_rows()
    assert [row for row, n in collections.Counter(rows).items() if n > 1] == []
    assert len(database.history_rows()) == 1
    assert database.query("SELECT COUNT(*) FROM django_automigrate_lease")[0][0] == 0


def test_a_lease_held_through_a_long_migration_is_never_taken_over(
    database: FreshDatabase,
) -> None:
    # A 4 s lease and a 12 s migration: only the heartbeat (every second) keeps the lease alive
    # meanwhile. The holder stops after 2 s without a confirmed renewal, a margin that a loaded
    # CI machine (two test processes on two cores) needs; a 2 s lease once ran out there.
    run = start_command(
        database.url,
        "automigrate",
        "--format",
        "json",
        AUTOMIGRATE_LOCK_LEASE="4",
        AUTOMIGRATE_TEST_SLOW="0010_checkpoint:12",
        **TABLE,
    )
    # Handshake: probe until the run holds the lease (a probe that gets it lets it go at once).
    deadline = time.monotonic() + 60
    while try_lease(database, "0")["acquired"]:
        assert time.monotonic() < deadline, "the run never took the lease"
        assert run.poll() is None, finish(run).err
    attempts = [try_lease(database, "1") for _ in range(6)]  # about 6 s of the migration
    result = finish(run)

    assert [a["acquired"] for a in attempts] == [False] * 6
    assert result.returncode == 0, result.err
    assert result.json()["databases"][0]["status"] == "succeeded"


def test_a_health_probe_creates_no_lease_table(database: FreshDatabase) -> None:
    assert finish(start_command(database.url, "migrate")).returncode == 0
    assert finish(start_command(database.url, "migrate", "testapp", "0021")).returncode == 0

    # A row a killed run left: the probe asks the lock whether that run is still on.
    running = (
        "from django.utils import timezone; "
        "from django_automigrate.models import MigrationRun; "
        "from django_automigrate.locks.table import LEASE_NAME, TABLE; "
        "MigrationRun.objects.create(database='default', trigger='command', status='running', "
        "started_at=timezone.now(), lock=f'lease row {LEASE_NAME!r} in table {TABLE}')"
    )
    assert finish(start_command(database.url, "shell", "-c", running)).returncode == 0

    probe = finish(start_command(database.url, "shell", "-c", HEALTH, **TABLE))

    assert probe.returncode == 0, probe.err
    assert "stopped before it finished" in probe.out, probe.out
    assert "django_automigrate_lease" not in database.tables()


HEALTH = (
    "from django_automigrate.status import database_statuses; print(database_statuses()[0].reason)"
)


def test_work_done_under_a_lost_lease_never_commits(
    database: FreshDatabase, django_connect: Callable[[FreshDatabase], Any]
) -> None:
    """The lease is lost while a data migration's transaction is open, and the KILL that would
    end the session does not come (no session to kill, as when the killer cannot connect): the
    transaction's COMMIT is refused and rolled back, autocommit on after it commits nothing."""
    from django_automigrate.exceptions import LockLost
    from django_automigrate.locks.table import TableLeaseLock

    database.execute("CREATE TABLE counted (id int PRIMARY KEY)")
    connection = django_connect(database)
    lock = TableLeaseLock(connection, lease_seconds=30)
    assert lock.try_acquire()
    lock._work_session = None  # no KILL: only the guard stands between the work and a commit
    try:
        with lock.guard():
            connection.set_autocommit(False)
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO counted VALUES (1)")
            lock._lose("the test took the lease away")
            with pytest.raises(LockLost, match="the test took the lease away"):
                connection.commit()
            connection.set_autocommit(True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")  # the guard is gone with its block: statements run again
    finally:
        lock.release()

    assert database.query("SELECT COUNT(*) FROM counted")[0][0] == 0
