"""SQLite: an OS file lock (``flock``) on a file beside the database file.

SQLite's own locks cannot serve: holding a write transaction on a second connection blocks
Django's migration writes. ``flock`` is released by the kernel when the holder dies.
In-memory databases are private to their process and need no cross-process lock.

The lock belongs to the database *file*, not to the spelling of ``NAME``: ``./db.sqlite3``, an
absolute path, a path through a symlinked release folder and a ``file:`` URI that all open one
file take one lock, kept beside the file's real path (every symlink resolved).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from django.db.backends.base.base import BaseDatabaseWrapper

from django_automigrate.exceptions import ConfigurationError, LockLost
from django_automigrate.locks.base import MigrationLock, process_identity

if TYPE_CHECKING:
    from filelock import FileLock

LOCK_SUFFIX = ".automigrate.lock"
OWNER_SUFFIX = ".automigrate.owner"


def database_file(name: str | os.PathLike[str]) -> Path | None:
    """The file a SQLite ``NAME`` opens, read as SQLite reads it; None when it opens no shared
    file (``:memory:``, an in-memory or temporary URI database).

    Django opens every SQLite database with ``uri=True``, so a ``NAME`` that starts with
    ``file:`` is a URI (https://sqlite.org/uri.html): ``file:db.sqlite3`` (relative),
    ``file:/abs/db.sqlite3``, ``file:///abs/db.sqlite3``, ``file://localhost/abs/db.sqlite3``,
    percent-escapes decoded, the query (``?mode=rwc&cache=shared``) and fragment left out. As
    in SQLite, ``file:`` is lower case: ``FILE:x`` is a file of that name. A relative path is
    relative to the working directory, as SQLite opens it.
    """
    text = os.fspath(name)
    if text == ":memory:":
        return None
    if not text.startswith("file:"):
        return Path(text)
    rest = text[len("file:") :].partition("#")[0]
    rest, _, query = rest.partition("?")
    if rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        if authority not in ("", "localhost"):
            raise ConfigurationError(
                f"SQLite database URI {text!r} names the host {authority!r}; SQLite opens local "
                "files only (file:/path, file:///path or file://localhost/path)."
            )
        rest = slash + path
    path = unquote(rest)
    parameters = {
        unquote(key): unquote(value)
        for key, _, value in (item.partition("=") for item in query.split("&") if item)
    }
    if path in ("", ":memory:") or parameters.get("mode") == "memory":
        return None  # in memory, or a temporary file private to its connection
    return Path(path)


def database_identity(name: str | os.PathLike[str]) -> Path | None:
    """:func:`database_file`, with every symlink resolved: the same for every way to the file
    (None when the database is in memory)."""
    path = database_file(name)
    if path is None:
        return None
    real = os.path.realpath(path)
    if os.name == "posix" and real.startswith("//"):
        # POSIX leaves a leading "//" to the system and realpath() keeps it, but on Linux and
        # macOS it is "/" (a URL "sqlite:////srv/db.sqlite3" gives NAME "//srv/db.sqlite3").
        real = "/" + real.lstrip("/")
    return Path(real)


def is_in_memory(connection: BaseDatabaseWrapper) -> bool:
    """Whether the SQLite database opens no shared file (Django's own test says no to
    ``file::memory:``, which SQLite opens in memory)."""
    return bool(
        connection.is_in_memory_db()  # type: ignore[attr-defined]
        or database_file(connection.settings_dict["NAME"]) is None
    )


def lock_path(database_path: str | os.PathLike[str]) -> Path:
    """``<database file's real path>.automigrate.lock``; its holder names itself in
    ``….automigrate.owner`` beside it. ``database_path`` is a path, not a ``file:`` URI."""
    identity = database_identity(os.fspath(database_path))
    assert identity is not None, database_path
    return Path(f"{identity}{LOCK_SUFFIX}")


def sqlite_lock(connection: BaseDatabaseWrapper) -> MigrationLock:
    """The lock of a SQLite database: a file lock, or a process-local one when in memory."""
    if is_in_memory(connection):
        return InMemoryLock(connection)
    return SQLiteFileLock(connection)


class SQLiteFileLock(MigrationLock):
    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        super().__init__(connection)
        self._name = connection.settings_dict["NAME"]
        self._lock: FileLock | None = None
        self._held_path: Path | None = None

    @property
    def path(self) -> Path:
        """The lock file. Resolved again until the lock is taken: the database's folder, or a
        symlink on the way to it, may be created after this object (``CREATE_DATABASE``)."""
        if self._held_path is not None:
            return self._held_path
        identity = database_identity(self._name)
        if identity is None:
            raise ConfigurationError(
                f"SQLite database {self.alias!r} is in memory: it has no file to lock."
            )
        return Path(f"{identity}{LOCK_SUFFIX}")

    @property
    def owner_path(self) -> Path:
        path = self.path
        return path.with_name(path.name[: -len(LOCK_SUFFIX)] + OWNER_SUFFIX)

    @property
    def name(self) -> str:
        return f"file lock {str(self.path)!r}"

    def try_acquire(self) -> bool:
        path = self.path
        if not path.parent.is_dir():
            raise ConfigurationError(
                f"Cannot lock SQLite database {self.alias!r}: folder {str(path.parent)!r} "
                "does not exist."
            )
        # Imported when a lock is wanted: a start that finds nothing to do never needs it.
        from filelock import FileLock, Timeout

        if self._lock is None or Path(self._lock.lock_file) != path:
            self._lock = FileLock(path)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        self._held_path = path
        # Written after the lock is ours; read by waiters only while the lock is held.
        now = datetime.datetime.now(datetime.timezone.utc)
        owner = self.owner_path
        tmp = owner.with_name(owner.name + f".{os.getpid()}.tmp")
        tmp.write_text(f"{process_identity()}, since {now:%Y-%m-%d %H:%M:%S} UTC\n")
        tmp.replace(owner)
        return True

    def verify(self) -> None:
        if self._lock is None or not self._lock.is_locked:
            raise LockLost(self.alias, self.name, "this process no longer holds it")
        if not self.path.exists():
            raise LockLost(self.alias, self.name, "the lock file was deleted")

    def holder(self) -> str | None:
        path = self.path
        if not path.exists():
            return None  # never locked here: asking must not create the file
        from filelock import FileLock, Timeout

        probe = FileLock(path)
        try:
            probe.acquire(timeout=0)
        except Timeout:
            try:
                return self.owner_path.read_text().strip() or "another process"
            except OSError:
                return "another process"
        probe.release()
        return None

    def release(self) -> None:
        if self._lock is not None and self._lock.is_locked:
            with contextlib.suppress(OSError):
                self.owner_path.unlink()
            self._lock.release()
        if self._lock is None or not self._lock.is_locked:
            self._held_path = None


class InMemoryLock(MigrationLock):
    """A process-local lock for in-memory SQLite databases (nothing to share across processes)."""

    _lock = threading.Lock()

    @property
    def name(self) -> str:
        return "in-process lock (in-memory SQLite)"

    _held = False

    def try_acquire(self) -> bool:
        acquired = self._lock.acquire(blocking=False)
        self._held = self._held or acquired
        return acquired

    def release(self) -> None:
        # Only what this object took: the lock is shared by the whole process, and a
        # threading.Lock can be released by anyone.
        if self._held:
            self._held = False
            with contextlib.suppress(RuntimeError):
                self._lock.release()

    def verify(self) -> None:
        pass

    def holder(self) -> str | None:
        return "this process" if self._lock.locked() else None
