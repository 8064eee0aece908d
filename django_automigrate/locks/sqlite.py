"""SQLite: an OS file lock (``flock``) on a file beside the database file.

SQLite's own locks cannot serve: holding a write transaction on a second connection blocks
Django's migration writes. ``flock`` is released by the kernel when the holder dies.
In-memory databases are private to their process and need no cross-process lock.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import threading
from pathlib import Path

from django.db.backends.base.base import BaseDatabaseWrapper
from filelock import FileLock, Timeout

from django_automigrate.exceptions import ConfigurationError, LockLost
from django_automigrate.locks.base import MigrationLock, process_identity

LOCK_SUFFIX = ".automigrate.lock"
OWNER_SUFFIX = ".automigrate.owner"


def lock_path(database_path: str | os.PathLike[str]) -> Path:
    """``<database file>.automigrate.lock``; its holder names itself in ``….automigrate.owner``."""
    return Path(f"{os.fspath(database_path)}{LOCK_SUFFIX}")


class SQLiteFileLock(MigrationLock):
    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        super().__init__(connection)
        self.path = lock_path(connection.settings_dict["NAME"])
        self.owner_path = Path(f"{os.fspath(connection.settings_dict['NAME'])}{OWNER_SUFFIX}")
        self._lock = FileLock(self.path)

    @property
    def name(self) -> str:
        return f"file lock {str(self.path)!r}"

    def try_acquire(self, wait: float) -> bool:
        if not self.path.parent.is_dir():
            raise ConfigurationError(
                f"Cannot lock SQLite database {self.alias!r}: folder {str(self.path.parent)!r} "
                "does not exist."
            )
        try:
            self._lock.acquire(timeout=wait, poll_interval=0.05)
        except Timeout:
            return False
        # Written after the lock is ours; read by waiters only while the lock is held.
        now = datetime.datetime.now(datetime.timezone.utc)
        tmp = self.owner_path.with_name(self.owner_path.name + f".{os.getpid()}.tmp")
        tmp.write_text(f"{process_identity()}, since {now:%Y-%m-%d %H:%M:%S} UTC\n")
        tmp.replace(self.owner_path)
        return True

    def verify(self) -> None:
        if not self._lock.is_locked:
            raise LockLost(self.alias, self.name, "this process no longer holds it")
        if not self.path.exists():
            raise LockLost(self.alias, self.name, "the lock file was deleted")

    def holder(self) -> str | None:
        if not self.path.exists():
            return None  # never locked here: asking must not create the file
        probe = FileLock(self.path)
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
        if self._lock.is_locked:
            with contextlib.suppress(OSError):
                self.owner_path.unlink()
            self._lock.release()


class InMemoryLock(MigrationLock):
    """A process-local lock for in-memory SQLite databases (nothing to share across processes)."""

    _lock = threading.Lock()

    @property
    def name(self) -> str:
        return "in-process lock (in-memory SQLite)"

    _held = False

    def try_acquire(self, wait: float) -> bool:
        acquired = (
            self._lock.acquire(timeout=wait) if wait > 0 else self._lock.acquire(blocking=False)
        )
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
