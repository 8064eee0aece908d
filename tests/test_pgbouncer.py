"""Behind PgBouncer in transaction pooling, where session locks do not hold: the table lease lock
applies once; the advisory lock is caught failing (and says so) rather than double-applying."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import FreshDatabase, Server, unavailable
from tests.test_locks import kill
from tests.utils import finish, free_port, start_command, start_lock_holder, try_lock

pytestmark = [pytest.mark.parametrize("server", ["postgresql"], indirect=True), pytest.mark.drivers]

CONFIG = """[databases]
* = host={host} port={port}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
auth_type = trust
auth_file = {folder}/userlist.txt
pool_mode = transaction
max_client_conn = 200
default_pool_size = {pool_size}
unix_socket_dir =
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
ignore_startup_parameters = extra_float_digits,options
"""


@pytest.fixture
def pool_size() -> int:
    return 4


@pytest.fixture
def pgbouncer(server: Server, pool_size: int) -> Iterator[int]:
    """A PgBouncer in transaction pooling in front of the test server; yields its port."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        unavailable("pgbouncer", "the pgbouncer program is not installed")
    from urllib.parse import urlsplit

    upstream = urlsplit(server.url)
    user = upstream.username or "postgres"
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "pgbouncer.ini").write_text(
            CONFIG.format(
                host=upstream.hostname or "127.0.0.1",
                port=upstream.port or 5432,
                listen=port,
                folder=folder,
                pool_size=pool_size,
            )
        )
        Path(folder, "userlist.txt").write_text(f'"{user}" ""\n')
        command = [binary, f"{folder}/pgbouncer.ini"]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            shutil.chown(folder, "postgres")
            for name in ("pgbouncer.ini", "userlist.txt"):
                shutil.chown(Path(folder, name), "postgres")
            command = ["runuser", "-u", "postgres", "--", *command]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                time.sleep(0.1)
            else:
                unavailable("pgbouncer", "pgbouncer did not start listening")
            yield port
        finally:
            process.terminate()
            process.communicate(timeout=15)


def through(database: FreshDatabase, port: int) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(database.url)
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def race(url: str, **env: str) -> list[dict[str, object]]:
    replicas = [
        start_command(
            url,
            "automigrate",
            "--format",
            "json",
            AUTOMIGRATE_TEST_PGBOUNCER="true",
            AUTOMIGRATE_TEST_SLOW="0010_checkpoint:2",
            **env,
        )
        for _ in range(8)
    ]
    results = [finish(replica) for replica in replicas]
    return [{"rc": r.returncode, **r.json()["databases"][0]} for r in results]


def test_the_table_lock_applies_once_behind_pgbouncer(
    database: FreshDatabase, pgbouncer: int
) -> None:
    reports = race(through(database, pgbouncer), AUTOMIGRATE_LOCK_BACKEND="table")

    assert [r["rc"] for r in reports] == [0] * 8, [r["error"] for r in reports]
    assert len([r for r in reports if r["applied"]]) == 1
    rows = database.migration_rows()
    assert [row for row, n in collections.Counter(rows).items() if n > 1] == []
    assert [row["status"] for row in database.history_rows()] == ["succeeded"]


@pytest.mark.parametrize("pool_size", [1])
def test_the_advisory_lock_does_not_exclude_behind_pgbouncer(
    database: FreshDatabase, pgbouncer: int
) -> None:
    # What goes wrong, made certain with one server connection in the pool: a session lock
    # lives on a server connection, not on the client's; the pooler hands the next client the
    # same server connection, and PostgreSQL lets that session take its own lock again.
    # So two processes "hold" the advisory lock at once. The table lease is not fooled.
    url = through(database, pgbouncer)
    env = {"AUTOMIGRATE_TEST_PGBOUNCER": "true"}

    advisory_holder = _holder(url, env)
    try:
        advisory = _acquire(url, env)
    finally:
        kill(advisory_holder)
    lease_holder = _holder(url, {**env, "AUTOMIGRATE_LOCK_BACKEND": "table"})
    try:
        lease = _acquire(url, {**env, "AUTOMIGRATE_LOCK_BACKEND": "table"})
    finally:
        kill(lease_holder)

    assert advisory["acquired"] is True  # the danger: a second holder
    assert lease["acquired"] is False
    assert "token" in str(lease["holder"])


def _holder(url: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return start_lock_holder(url, 60, **env)


def _acquire(url: str, env: dict[str, str]) -> dict[str, object]:
    return try_lock(url, "1", **env)


def test_the_runs_lock_timeout_never_reaches_other_clients_of_the_pool(
    database: FreshDatabase, pgbouncer: int
) -> None:
    """Behind a transaction pooler a session setting lands on whichever server connection
    answers, and stays there for the next client: the run's limit is set per transaction."""
    url = through(database, pgbouncer)
    pooled = dataclasses.replace(database, url=url)  # the driver the tests run with
    seen: collections.Counter[str] = collections.Counter()
    stop = threading.Event()

    def unprepared(connection: Any) -> Any:
        if hasattr(connection, "prepare_threshold"):  # psycopg 3: no prepared statements
            connection.prepare_threshold = None
        return connection

    def watch() -> None:
        with pooled.connect() as client:
            cursor = unprepared(client).cursor()
            while not stop.is_set():
                cursor.execute("SHOW lock_timeout")
                row = cursor.fetchone()
                seen[str(row[0]) if row else "?"] += 1

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    run = finish(
        start_command(
            url, "automigrate", "--format", "json",
            AUTOMIGRATE_TEST_PGBOUNCER="true", AUTOMIGRATE_TEST_SLOW="0010_checkpoint:2",
            AUTOMIGRATE_LOCK_BACKEND="table", AUTOMIGRATE_ENVIRONMENT="production",
        )
    )  # fmt: skip
    stop.set()
    watcher.join(timeout=30)
    # Every server connection of the pool at once, each held by a transaction of its own.
    after = []
    with contextlib.ExitStack() as clients:
        for _ in range(4):
            client = unprepared(clients.enter_context(pooled.connect()))
            client.autocommit = False
            cursor = client.cursor()
            cursor.execute("SHOW lock_timeout")
            after.append(str(cursor.fetchone()[0]))

    assert run.returncode == 0, run.err
    assert sum(seen.values()) > 0
    assert set(seen) == {"0"}, seen
    assert set(after) == {"0"}, after
