"""The driving side of the handshakes, and server-side faults (for tests and the stress suite).

Everything here acts from outside the migrating process: marker files, and separate admin
connections that terminate sessions or set server idle timeouts.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.faultapp.handshake import DIR_VARIABLE, PAUSE_VARIABLE, marker_name
from tests.invariants import env
from tests.servers import FreshDatabase
from tests.utils import start_command


class HandshakeFailed(AssertionError):
    pass


def start_holder(
    db: FreshDatabase, markers: Path, *points: str, extra: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """``automigrate --format json`` that stops at ``points`` (see faultapp.handshake);
    ``extra``: more environment (``AUTOMIGRATE_LOCK_BACKEND`` …)."""
    variables = {DIR_VARIABLE: str(markers), PAUSE_VARIABLE: ",".join(points), **(extra or {})}
    return start_command(db.url, "automigrate", "--format", "json", **env(**variables))


def wait_for_file(
    path: Path, process: subprocess.Popen[str] | None = None, timeout: float = 90
) -> None:
    """Poll until ``path`` exists; fail early when ``process`` ended first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process is not None and process.poll() is not None:
            out, err = process.communicate()
            raise HandshakeFailed(
                f"process exited {process.returncode} before {path.name}:\n{out[-2000:]}\n"
                f"{err[-3000:]}"
            )
        if time.monotonic() > deadline:
            raise HandshakeFailed(f"{path.name} did not appear within {timeout}s")
        time.sleep(0.01)


def wait_at(markers: Path, point: str, process: subprocess.Popen[str]) -> None:
    wait_for_file(markers / marker_name("at", point), process)


def migration_session(markers: Path, point: str) -> int | None:
    """The server session running the migration paused at ``point`` (None: none was given)."""
    found = markers / marker_name("session", point)
    return int(found.read_text()) if found.exists() else None


def go(markers: Path, point: str) -> None:
    (markers / marker_name("go", point)).write_text("go")


def lost(markers: Path, point: str) -> Path:
    return markers / marker_name("lost", point)


# --- sessions on the server ---------------------------------------------------------------------


@contextlib.contextmanager
def admin_cursor(db: FreshDatabase) -> Iterator[Any]:
    with db.server.admin_connection() as connection:
        cursor = connection.cursor()
        try:
            yield cursor
        finally:
            cursor.close()


def mysql_lock_name(db: FreshDatabase) -> str:
    return "django_automigrate:" + db.name


def lock_sessions(db: FreshDatabase) -> list[int]:
    """The server sessions holding the migration lock of ``db`` (advisory lock / GET_LOCK)."""
    with admin_cursor(db) as cursor:
        if db.vendor == "postgresql":
            cursor.execute(
                "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = %s",
                [db.name],
            )
        else:
            cursor.execute("SELECT IS_USED_LOCK(%s)", [mysql_lock_name(db)])
        return [int(row[0]) for row in cursor.fetchall() if row[0] is not None]


def sessions(db: FreshDatabase) -> list[int]:
    """Every server session connected to ``db`` (the admin's own is on another database)."""
    with admin_cursor(db) as cursor:
        if db.vendor == "postgresql":
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [db.name],
            )
        else:
            cursor.execute(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s "
                "AND ID <> CONNECTION_ID()",
                [db.name],
            )
        return [int(row[0]) for row in cursor.fetchall()]


def terminate(db: FreshDatabase, session_ids: list[int]) -> None:
    """``pg_terminate_backend`` / ``KILL`` each session, from a separate admin connection."""
    with admin_cursor(db) as cursor:
        for session in session_ids:
            if db.vendor == "postgresql":
                cursor.execute("SELECT pg_terminate_backend(%s)", [session])
            else:
                with contextlib.suppress(Exception):  # it may have ended meanwhile
                    cursor.execute(f"KILL {int(session)}")


def wait_until_gone(db: FreshDatabase, session_ids: list[int], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while set(session_ids) & set(sessions(db)):
        if time.monotonic() > deadline:
            raise HandshakeFailed(f"sessions {session_ids} still there after {timeout}s")
        time.sleep(0.02)


#: MariaDB's own default ``wait_timeout``: what a leftover is restored to.
SANE_WAIT_TIMEOUT = 28800
#: A global ``wait_timeout`` below this is a leftover of a lowered one (an interrupted test or
#: stress run lowers it to a few seconds), never a value to keep or restore.
LEFTOVER_BELOW = 60


def mysql_wait_timeout(server: Any) -> int:
    """MariaDB's ``@@GLOBAL.wait_timeout`` (``server``: a tests.servers.Server)."""
    with server.admin_connection() as connection:
        cursor = connection.cursor()
        try:
            cursor.execute("SELECT @@GLOBAL.wait_timeout")
            return int(cursor.fetchone()[0])
        finally:
            cursor.close()


def _set_mysql_wait_timeout(server: Any, seconds: int) -> None:
    with server.admin_connection() as connection:
        cursor = connection.cursor()
        try:
            cursor.execute(f"SET GLOBAL wait_timeout = {int(seconds)}")
        finally:
            cursor.close()


def reset_mysql_wait_timeout(server: Any) -> int | None:
    """Restore a leftover global ``wait_timeout`` (below ``LEFTOVER_BELOW``) to
    ``SANE_WAIT_TIMEOUT``; returns the leftover value it replaced, None when it was sane."""
    current = mysql_wait_timeout(server)
    if current >= LEFTOVER_BELOW:
        return None
    _set_mysql_wait_timeout(server, SANE_WAIT_TIMEOUT)
    return current


@contextlib.contextmanager
def idle_timeout(db: FreshDatabase, seconds: int) -> Iterator[None]:
    """Sessions idle ``seconds`` are ended by the server: PostgreSQL ``idle_session_timeout``
    on this database only; MariaDB ``wait_timeout``, which is global: restored afterwards (and
    it reaches sessions opened meanwhile only). A value read below ``LEFTOVER_BELOW`` is what an
    interrupted run left, not the server's own: ``SANE_WAIT_TIMEOUT`` is restored instead."""
    if db.vendor == "postgresql":
        with admin_cursor(db) as cursor:
            cursor.execute(f"ALTER DATABASE \"{db.name}\" SET idle_session_timeout = '{seconds}s'")
        try:
            yield
        finally:
            with admin_cursor(db) as cursor:
                cursor.execute(f'ALTER DATABASE "{db.name}" RESET idle_session_timeout')
        return
    previous = mysql_wait_timeout(db.server)
    if previous < LEFTOVER_BELOW:
        previous = SANE_WAIT_TIMEOUT
    try:
        _set_mysql_wait_timeout(db.server, seconds)
        yield
    finally:
        try:
            _set_mysql_wait_timeout(db.server, previous)
        except Exception:
            # One retry on a new connection: never leave the lowered value behind.
            time.sleep(0.5)
            _set_mysql_wait_timeout(db.server, previous)


@contextlib.contextmanager
def lease_row_locked(db: FreshDatabase) -> Iterator[None]:
    """Hold the lease row (``SELECT … FOR UPDATE`` in an open transaction): the holder's
    heartbeat cannot renew it while this lasts."""
    with db.connect() as connection:
        cursor = connection.cursor()
        try:
            cursor.execute("BEGIN" if db.vendor == "postgresql" else "START TRANSACTION")
            cursor.execute("SELECT * FROM django_automigrate_lease FOR UPDATE")
            cursor.fetchall()
            yield
        finally:
            with contextlib.suppress(Exception):
                cursor.execute("ROLLBACK")
            cursor.close()


def lease_remaining(db: FreshDatabase) -> float:
    """Seconds until the lease row expires, by the server's clock."""
    now = (
        "extract(epoch from clock_timestamp())"
        if db.vendor == "postgresql"
        else "UNIX_TIMESTAMP(NOW(6))"
    )
    rows = db.query(f"SELECT expires_at - {now} FROM django_automigrate_lease")
    return float(rows[0][0])


@contextlib.contextmanager
def lease_renewals_refused(db: FreshDatabase) -> Iterator[None]:
    """A trigger makes every UPDATE of the lease row fail: renewals get an error at once."""
    if db.vendor == "postgresql":
        db.execute(
            "CREATE FUNCTION faultapp_refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'renewals refused'; END $$"
        )
        db.execute(
            "CREATE TRIGGER faultapp_refuse BEFORE UPDATE ON django_automigrate_lease "
            "FOR EACH ROW EXECUTE FUNCTION faultapp_refuse()"
        )
    else:
        db.execute(
            "CREATE TRIGGER faultapp_refuse BEFORE UPDATE ON django_automigrate_lease "
            "FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'renewals refused'"
        )
    try:
        yield
    finally:
        if db.vendor == "postgresql":
            db.execute("DROP TRIGGER faultapp_refuse ON django_automigrate_lease")
            db.execute("DROP FUNCTION faultapp_refuse()")
        else:
            db.execute("DROP TRIGGER faultapp_refuse")
