"""What a database error means, the same for every driver Django supports.

Django wraps driver errors (``django.db.utils.OperationalError`` with the driver's exception as
``__cause__``), and each driver names the server's code differently: psycopg 3 ``sqlstate``,
psycopg2 ``pgcode``, mysqlclient and PyMySQL ``args[0]``. Every classification goes through here.

Code that must survive a lost connection catches ``django.db.Error``, never only
``DatabaseError``: a connection closed under a driver surfaces as ``InterfaceError``, which is
not a ``DatabaseError``.
"""

from __future__ import annotations

from collections.abc import Iterator

#: PostgreSQL SQLSTATEs.
PG_LOCK_NOT_AVAILABLE = "55P03"
PG_QUERY_CANCELED = "57014"
PG_DEADLOCK_DETECTED = "40P01"
#: Class 08 (connection exceptions) and 57P01 to 57P05 (admin shutdown, terminated, idle timeouts).
PG_CONNECTION_LOST_PREFIXES = ("08", "57P")

#: MySQL/MariaDB error numbers.
MYSQL_LOCK_WAIT_TIMEOUT = 1205
MYSQL_QUERY_INTERRUPTED = 1317
MYSQL_LOCK_DEADLOCK = 1213
MYSQL_STATEMENT_TIMEOUT = (3024, 1969)  # MySQL max_execution_time, MariaDB max_statement_time
#: Server gone away, lost connection, connection killed (KILL), and the client errors for them.
MYSQL_CONNECTION_LOST = frozenset({2006, 2013, 2055, 1927, 4031, 1053})
#: SQLite's primary result code for "database is locked".
SQLITE_BUSY = 5

_MYSQL_MODULES = ("MySQLdb", "pymysql", "mysql.connector", "django.db")
#: psycopg 3 and psycopg2 (PyMySQL errors have a ``sqlstate`` too: MySQL's, such as "HY000").
_POSTGRESQL_MODULES = ("psycopg",)


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def sqlstate(error: BaseException | None) -> str | None:
    """The PostgreSQL SQLSTATE of ``error`` or of what caused it (psycopg 3 and psycopg2)."""
    for link in _chain(error):
        if not type(link).__module__.startswith(_POSTGRESQL_MODULES):
            continue
        code = getattr(link, "sqlstate", None) or getattr(link, "pgcode", None)
        if isinstance(code, str) and code:
            return code
    return None


def mysql_errno(error: BaseException | None) -> int | None:
    """The MySQL/MariaDB error number of ``error`` or its cause (mysqlclient and PyMySQL)."""
    for link in _chain(error):
        args = getattr(link, "args", ())
        if (
            args
            and isinstance(args[0], int)
            and not isinstance(args[0], bool)
            and type(link).__module__.startswith(_MYSQL_MODULES)
        ):
            return args[0]
    return None


def is_lock_timeout(error: BaseException | None) -> bool:
    """A statement that gave up waiting for a lock (``lock_timeout``, ``lock_wait_timeout``,
    SQLite's busy timeout), or that the server made give up to end a deadlock: either way its
    transaction holds nothing now, and trying again later is the cure."""
    return (
        sqlstate(error) == PG_LOCK_NOT_AVAILABLE
        or mysql_errno(error) == MYSQL_LOCK_WAIT_TIMEOUT
        or is_sqlite_busy(error)
        or is_deadlock(error)
    )


def is_deadlock(error: BaseException | None) -> bool:
    """The server ended a deadlock by failing this statement (and rolling its transaction
    back): with a migration, typically application traffic that locks the same two tables in
    the other order."""
    return sqlstate(error) == PG_DEADLOCK_DETECTED or mysql_errno(error) == MYSQL_LOCK_DEADLOCK


def is_sqlite_busy(error: BaseException | None) -> bool:
    """SQLite's "database is locked": another connection holds the write lock (SQLITE_BUSY and
    its extended codes, such as SQLITE_BUSY_SNAPSHOT)."""
    for link in _chain(error):
        if type(link).__module__ != "sqlite3":
            continue
        code = getattr(link, "sqlite_errorcode", None)
        if isinstance(code, int):
            return code & 0xFF == SQLITE_BUSY
        return "database is locked" in str(link)
    return False


def is_connection_lost(error: BaseException | None) -> bool:
    """The connection itself ended: terminated by an operator, timed out by the server, cut."""
    code = sqlstate(error)
    if code is not None:
        return code.startswith(PG_CONNECTION_LOST_PREFIXES)
    errno = mysql_errno(error)
    if errno == 0:
        # mysqlclient and PyMySQL: InterfaceError(0, "") is a connection already closed.
        return any(type(link).__name__ == "InterfaceError" for link in _chain(error))
    if errno is not None:
        return errno in MYSQL_CONNECTION_LOST
    for link in _chain(error):
        # psycopg reports a connection closed under it without a SQLSTATE.
        text = str(link).lower()
        if type(link).__name__ in ("InterfaceError", "OperationalError") and (
            "closed" in text or "terminat" in text or "lost" in text or "gone away" in text
        ):
            return True
    return False
