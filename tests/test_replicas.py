"""Many replicas, killed holders and lost locks: real processes against real servers."""

from __future__ import annotations

import collections
import json
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.servers import FreshDatabase
from tests.utils import finish, run_command, start_command

pytestmark = pytest.mark.drivers

#: Migrations of the test project on disk (testapp 22, otherapp 2, squashapp 4 + 1 squash,
#: django_automigrate 1, and Django's own contrib apps): at least 20 pending on a fresh database.
SLOW = "0010_checkpoint"
BEFORE_SLOW = ("testapp", "0009_book_title_index")


def wait_until(predicate: object, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def test_eight_replicas_started_together_apply_each_migration_once(database: FreshDatabase) -> None:
    replicas = [
        start_command(
            database.url, "automigrate", "--format", "json", AUTOMIGRATE_TEST_SLOW=f"{SLOW}:2"
        )
        for _ in range(8)
    ]

    results = [finish(replica) for replica in replicas]

    assert [r.returncode for r in results] == [0] * 8, [r.err for r in results if r.returncode]
    reports = [r.json()["databases"][0] for r in results]
    appliers = [report for report in reports if report["applied"]]
    assert len(appliers) == 1
    assert len(appliers[0]["applied"]) >= 20
    assert all(r["status"] == "nothing_to_do" for r in reports if r is not appliers[0])
    rows = database.migration_rows()
    duplicates = [row for row, count in collections.Counter(rows).items() if count > 1]
    assert duplicates == []
    assert {f"{app}.{name}" for app, name in rows} >= set(appliers[0]["applied"])
    history = database.history_rows()
    assert len(history) == 1
    assert history[0]["status"] == "succeeded"
    assert history[0]["id"] == appliers[0]["run_id"]
    assert len(_as_list(history[0]["applied"])) == len(appliers[0]["applied"])


def test_a_killed_lock_holder_blocks_nobody(database: FreshDatabase) -> None:
    # With the history table in place, the killed run leaves a "running" row behind.
    assert run_command(database.url, "migrate", "django_automigrate").returncode == 0
    holder = start_command(database.url, "automigrate", AUTOMIGRATE_TEST_SLOW=f"{SLOW}:120")
    wait_for_lock_holder(database)

    waiting = run_command(database.url, "automigrate", "--lock-timeout", "2")
    holder.send_signal(signal.SIGKILL)
    finish(holder)
    started = time.monotonic()
    successor = run_command(database.url, "automigrate", "--format", "json", "--lock-timeout", "30")
    took = time.monotonic() - started
    if database.vendor == "mysql":
        # No DDL is transactional there, and Django records a migration after committing it:
        # killed inside one, it may be half-applied. The successor says so and which run to
        # mark fixed; a person checks (here: a RunPython that only slept) and marks it.
        refusal = successor.json()["databases"][0]
        assert successor.returncode == 1
        assert refusal["status"] == "needs_attention"
        assert f"--mark-fixed {refusal['run_id']}" in refusal["error"]
        marked = run_command(database.url, "automigrate", "--mark-fixed", str(refusal["run_id"]))
        assert marked.returncode == 0, marked.err
        successor = run_command(database.url, "automigrate", "--format", "json")

    assert waiting.returncode == 3
    assert "Could not get the migration lock" in waiting.err
    assert "held by" in waiting.err
    # The holder is named: PostgreSQL and SQLite by host and pid, MySQL by its connection.
    expected_holder = "connection" if database.vendor == "mysql" else f"pid {holder.pid}"
    assert expected_holder in waiting.err
    assert successor.returncode == 0, successor.err
    report = successor.json()["databases"][0]
    assert report["status"] == "succeeded"
    assert report["lock_wait"] < 5
    assert took < 60
    assert "testapp.0010_checkpoint" in report["applied"]
    statuses = [row["status"] for row in database.history_rows()]
    # The killed run's row was written while it held the lock; its successor closes it out:
    # inside a RunPython of its own transaction, so nothing was left half-done.
    assert statuses == ["interrupted", "succeeded"]
    assert database.history_rows()[0]["error_summary"].startswith("interrupted")


@pytest.mark.parametrize("server", ["postgresql", "mysql"], indirect=True)
def test_a_run_that_loses_its_lock_stops_before_the_next_migration(
    database: FreshDatabase,
) -> None:
    run = start_command(
        database.url, "automigrate", "--format", "json", AUTOMIGRATE_TEST_SLOW=f"{SLOW}:5"
    )
    wait_for_lock_holder(database)

    _kill_lock_connections(database)
    result = finish(run)

    assert result.returncode == 1
    report = result.json()["databases"][0]
    assert "Lost the migration lock" in report["error"]
    assert ("testapp", "0011_tag") not in database.migration_rows()
    if database.vendor == "postgresql":
        # One transaction: it rolled back whole, with the lock or without.
        assert report["status"] == "rolled_back"
        assert not [row for row in database.migration_rows() if row[0] == "testapp"]
    else:
        # The lock was on the migrating session: the kill stopped the migration in flight
        # (its record could not be written), and nothing is reversed.
        assert report["status"] == "failed"
        rows = database.migration_rows()
        applied = {tuple(label.split(".", 1)) for label in report["applied"]}
        assert {key for key in applied if key[0] == "testapp"} <= set(rows)
        assert ("testapp", "0010_checkpoint") not in rows
        assert "Nothing was reversed, since the lock is lost" in report["error"]
    assert database.history_rows()[-1]["status"] == report["status"]


def wait_for_lock_holder(database: FreshDatabase) -> None:
    """Until a run holds the migration lock, then a moment more: it is in the slow migration."""
    from tests.test_locks import lockctl_output

    wait_until(lambda: lockctl_output(database, "holder") != "none", what="the lock holder")
    time.sleep(2)


def _kill_lock_connections(database: FreshDatabase) -> None:
    if database.vendor == "postgresql":
        database.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name LIKE 'django-automigrate %%'",
            (database.name,),
        )
        return
    from django_automigrate.locks.mysql import lock_name

    rows = database.query("SELECT IS_USED_LOCK(%s)", (lock_name(database.name),))
    assert rows[0][0] is not None
    database.execute(f"KILL {int(rows[0][0])}")


@pytest.mark.parametrize("server", ["postgresql"], indirect=True)
def test_a_non_atomic_concurrent_index_migration_runs_under_the_lock(
    database: FreshDatabase,
) -> None:
    replicas = [
        start_command(database.url, "automigrate", AUTOMIGRATE_TEST_EXTRA_APPS="tests.pgapp")
        for _ in range(3)
    ]

    results = [finish(replica, timeout=120) for replica in replicas]

    assert [r.returncode for r in results] == [0, 0, 0], [r.err for r in results]
    indexes = database.query("SELECT indexname FROM pg_indexes WHERE tablename = 'pgapp_event'")
    assert ("pgapp_event_name_idx",) in indexes
    assert ("pgapp", "0001_initial") in database.migration_rows()


def _as_list(value: object) -> list[object]:
    if isinstance(value, str):
        loaded: list[object] = json.loads(value)
        return loaded
    assert isinstance(value, list)
    return value


def test_replicas_started_together_signal_one_run_once(
    database: FreshDatabase, tmp_path: Path
) -> None:
    log = tmp_path / "signals.jsonl"
    env = {
        "AUTOMIGRATE_TEST_EXTRA_APPS": "tests.signalapp",
        "AUTOMIGRATE_TEST_SIGNAL_LOG": str(log),
        "AUTOMIGRATE_TEST_SLOW": f"{SLOW}:1",
    }
    replicas = [start_command(database.url, "automigrate", **env) for _ in range(4)]
    results = [finish(replica) for replica in replicas]
    assert [r.returncode for r in results] == [0] * 4, [r.err for r in results if r.returncode]

    sent = [json.loads(line) for line in log.read_text().splitlines()]
    assert [s["signal"] for s in sent] == ["run_started", "run_finished"]
    started, finished = sent
    (row,) = database.history_rows()
    assert started["pid"] == finished["pid"]
    assert started["run_id"] == finished["run_id"] == row["id"]
    assert started["planned"] == _as_list(row["planned"])
    assert (finished["alias"], finished["trigger"], finished["status"]) == (
        "default",
        "command",
        "succeeded",
    )
    assert finished["applied"] == _as_list(row["applied"])


#: Replicas in the connection test: enough that "one connection each" would show.
WAITERS = 12


def _waiter_connections(database: FreshDatabase) -> int:
    """Connections to the database now, except the lock holder's and the asking one."""
    if database.vendor == "postgresql":
        sql = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
            "AND pid <> pg_backend_pid() AND application_name NOT LIKE 'django-automigrate %%'"
        )
        return int(database.query(sql, (database.name,))[0][0])
    holders = database.query("SELECT IS_USED_LOCK(%s)", (f"django_automigrate:{database.name}",))
    holder = holders[0][0] or 0
    sql = (
        "SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = %s "
        "AND ID <> CONNECTION_ID() AND ID <> %s"
    )
    return int(database.query(sql, (database.name, holder))[0][0])


@pytest.mark.parametrize("server", ["postgresql", "mysql"], indirect=True)
def test_waiting_replicas_hold_no_connection_while_they_wait(database: FreshDatabase) -> None:
    """Hundreds of replicas must fit a default server's max_connections: a waiter closes its
    connection between its tries, so the server sees a few at a time, not one per waiter."""
    holder = start_command(database.url, "automigrate", AUTOMIGRATE_TEST_SLOW=f"{SLOW}:120")
    wait_for_lock_holder(database)
    waiters = [
        start_command(
            database.url,
            "automigrate",
            "--format",
            "json",
            "--lock-timeout",
            "300",
            AUTOMIGRATE_TEST_LOG_LEVEL="DEBUG",
        )
        for _ in range(WAITERS)
    ]
    logs: list[list[str]] = [[] for _ in waiters]
    readers = [
        threading.Thread(target=log.extend, args=(p.stderr,), daemon=True)
        for p, log in zip(waiters, logs, strict=True)
    ]
    for reader in readers:
        reader.start()
    # Handshake: every waiter has planned and said it waits for the lock.
    wait_until(
        lambda: all(any("waiting for the migration lock" in line for line in log) for log in logs),
        timeout=120,
        what="every replica to wait for the lock",
    )
    samples = [_waiter_connections(database) for _ in range(100)]
    holder.send_signal(signal.SIGKILL)
    finish(holder)
    results = []
    for waiter, reader in zip(waiters, readers, strict=True):
        waiter.wait(timeout=300)
        reader.join(timeout=30)
        assert waiter.stdout is not None
        assert waiter.stderr is not None
        results.append((waiter.returncode, waiter.stdout.read()))
        waiter.stdout.close()
        waiter.stderr.close()

    print("connections held by the waiters, sampled:", collections.Counter(samples))
    # Before: each waiter held its planning connection (and more) the whole time.
    assert max(samples) <= WAITERS // 3, samples
    if database.vendor == "mysql":
        return  # the killed holder left a half-applied migration: the refusal is tested above
    assert [code for code, _ in results] == [0] * WAITERS, logs
    statuses = [json.loads(out)["databases"][0]["status"] for _, out in results]
    assert statuses.count("succeeded") == 1, statuses
    assert set(statuses) == {"succeeded", "nothing_to_do"}, statuses
