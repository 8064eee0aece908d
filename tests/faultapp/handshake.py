"""Handshakes between a migrating process and the test that drives it, through files.

``AUTOMIGRATE_TEST_FAULT_DIR``: the folder of the marker files (unset: no handshake at all).
``AUTOMIGRATE_TEST_FAULT_PAUSE``: comma-separated points where this process stops and waits:

* ``0002``, ``0004``: inside those faultapp migrations (see their modules);
* ``record:<app>.<name>``: the migration's operations are done, it is not recorded yet;
* ``stmt:<app>.<name>:<n>``: before the n-th schema statement of that migration;
* ``post_migrate``: every migration of the run is applied and recorded, the run not ended.

At a point the process writes ``session-<point>`` (the server session id of the connection it
was given, if any), then ``at-<point>`` (its pid inside), then waits, at most
``WAIT_SECONDS``, for ``go-<point>`` (or to be killed). While it waits it keeps its database
connection busy (``pg_sleep``/``SLEEP`` in short steps): like a long statement, it is never idle,
so only a lock held on *another* connection can be cut by an idle timeout. When the connection
fails (terminated, cancelled) it writes ``lost-<point>`` and waits on without it; a MySQL
``SLEEP`` ended by ``KILL QUERY`` raises instead, as any other interrupted statement would.

Whatever the pause list, the first ``pre_migrate`` of the process writes ``locked-<pid>``:
``migrate`` runs under the migration lock, so the lock is held from then on.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

DIR_VARIABLE = "AUTOMIGRATE_TEST_FAULT_DIR"
PAUSE_VARIABLE = "AUTOMIGRATE_TEST_FAULT_PAUSE"
WAIT_SECONDS = 60.0
#: faultapp's last migration: ``post_migrate`` pauses only in the run that applied it.
LAST = ("faultapp", "0005_partial_note")

_state = threading.local()
_done: set[str] = set()


def marker_name(kind: str, point: str) -> str:
    return f"{kind}-" + point.replace(":", "_").replace("/", "_").replace(".", "_")


def folder() -> Path | None:
    value = os.environ.get(DIR_VARIABLE)
    return Path(value) if value else None


def requested() -> set[str]:
    return {p.strip() for p in os.environ.get(PAUSE_VARIABLE, "").split(",") if p.strip()}


def _ping(connection: Any) -> bool:
    """Keep ``connection`` busy for a moment; False when the statement was interrupted."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_sleep(0.2)")
        elif connection.vendor == "mysql":
            cursor.execute("SELECT SLEEP(0.2)")
            row = cursor.fetchone()
            if row and row[0] == 1:  # KILL QUERY ends SLEEP early with 1, not an error
                return False
        else:
            cursor.execute("SELECT 1")
            time.sleep(0.05)
    return True


def pause(point: str, connection: Any = None) -> None:
    """Stop at ``point`` when the environment asks for it (once per process and point)."""
    where = folder()
    if where is None or point not in requested() or point in _done:
        return
    _done.add(point)
    if connection is not None and connection.vendor in ("postgresql", "mysql"):
        # Which server session runs the migration: the process has others (the lock-wait
        # watcher's, a separate lock's), and a test that cuts "the migration's" must cut this.
        with connection.cursor() as cursor:
            pg = connection.vendor == "postgresql"
            cursor.execute("SELECT pg_backend_pid()" if pg else "SELECT CONNECTION_ID()")
            (where / marker_name("session", point)).write_text(str(cursor.fetchone()[0]))
    (where / marker_name("at", point)).write_text(str(os.getpid()))
    go = where / marker_name("go", point)
    deadline = time.monotonic() + WAIT_SECONDS
    busy = connection is not None
    while not go.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"handshake {point!r}: no go within {WAIT_SECONDS:.0f}s")
        if busy:
            try:
                busy = _ping(connection)
            except Exception as exc:
                busy = False
                (where / marker_name("lost", point)).write_text(f"{type(exc).__name__}: {exc}")
            else:
                if not busy:
                    # MySQL ends an interrupted SLEEP with 1 where any other statement raises:
                    # raise as they would (AUTOMIGRATE_TEST_FAULT_SWALLOW=1: carry on instead,
                    # like a migration that catches the error).
                    (where / marker_name("lost", point)).write_text("statement interrupted")
                    if not os.environ.get("AUTOMIGRATE_TEST_FAULT_SWALLOW"):
                        raise RuntimeError(f"handshake {point!r}: the statement was interrupted")
        else:
            time.sleep(0.02)


def install() -> None:
    """Hook the points into Django (called from the app's ``ready()``)."""
    if folder() is None:
        return
    from django.db.backends.base.schema import BaseDatabaseSchemaEditor
    from django.db.migrations.migration import Migration
    from django.db.migrations.recorder import MigrationRecorder
    from django.db.models.signals import post_migrate, pre_migrate

    points = requested()

    def on_pre_migrate(sender: Any, **kwargs: Any) -> None:
        where = folder()
        if where is not None and "locked" not in _done:
            _done.add("locked")
            (where / f"locked-{os.getpid()}").write_text(str(time.time()))

    pre_migrate.connect(on_pre_migrate, dispatch_uid="faultapp-locked", weak=False)

    if "post_migrate" in points:

        def on_post_migrate(
            sender: Any, plan: Any = None, using: str = "default", **kw: Any
        ) -> None:
            from django.db import connections

            labels = {(m.app_label, m.name) for m, backwards in plan or () if not backwards}
            if LAST in labels:
                pause("post_migrate", connections[using])

        post_migrate.connect(on_post_migrate, dispatch_uid="faultapp-post", weak=False)

    if any(p.startswith("record:") for p in points):
        record_applied = MigrationRecorder.record_applied

        def record(self: MigrationRecorder, app: str, name: str) -> None:
            pause(f"record:{app}.{name}", self.connection)
            record_applied(self, app, name)

        MigrationRecorder.record_applied = record  # type: ignore[method-assign]

    if any(p.startswith("stmt:") for p in points):
        apply = Migration.apply
        execute = BaseDatabaseSchemaEditor.execute

        def apply_migration(self: Migration, *args: Any, **kwargs: Any) -> Any:
            _state.label, _state.count = f"{self.app_label}.{self.name}", 0
            return apply(self, *args, **kwargs)

        def execute_statement(self: BaseDatabaseSchemaEditor, *args: Any, **kwargs: Any) -> Any:
            label = getattr(_state, "label", "")
            if label:
                _state.count += 1
                pause(f"stmt:{label}:{_state.count}", self.connection)
            return execute(self, *args, **kwargs)

        Migration.apply = apply_migration  # type: ignore[method-assign]
        BaseDatabaseSchemaEditor.execute = execute_statement  # type: ignore[method-assign]
