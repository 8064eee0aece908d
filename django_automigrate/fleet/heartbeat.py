"""This process's membership of the fleet: its row, renewed by a light timer thread.

One thread per process, asleep between beats. Each beat opens a connection, renews the row
(one UPDATE), asks whether deferred work waits (one indexed SELECT), and closes the connection
again: hundreds of replicas beating every 15 seconds cost the server a few queries a second and
no idle connections. When deferred work waits and no older code has been seen for the grace
period, the beat runs the contract step (under the migration lock, without waiting for it: a
process already holding it is doing the work). A process that forks (gunicorn ``--preload``)
starts a beat of its own in each child, which is a member of its own; a uWSGI master starts
none, only its workers do (see :func:`join`).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import threading
from typing import Any

from django.db import Error, connections

from django_automigrate.conf import AutomigrateSettings, get_settings
from django_automigrate.db_errors import is_lock_timeout
from django_automigrate.exceptions import AutomigrateError
from django_automigrate.fleet import registry

logger = logging.getLogger("django_automigrate")

#: Every this many beats, rows of long-gone processes are deleted.
PRUNE_EVERY = 40
#: How long stopping waits for a beat in flight, in seconds.
STOP_WAIT = 10.0


class Heartbeat:
    """The beat of one process (``kind``: web, worker, cron …)."""

    def __init__(self, kind: str, *, after: threading.Event | None = None) -> None:
        self.kind = kind
        self.identity = registry.Identity.current(kind)
        self._after = after
        self._stop = threading.Event()
        #: Held through each beat: stop() waits for one in flight, whose UPDATE would otherwise
        #: land after the row was marked stopped and mark it live again.
        self._beating = threading.Lock()
        self._beats = 0
        #: Set once a beat has renewed this process's row everywhere: it is registered.
        self.registered = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(
            target=self._loop, name="django-automigrate-fleet", daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        """Stop beating and mark the row stopped (at exit, or by hand)."""
        if self._stop.is_set():
            return
        self._stop.set()
        # A beat in flight ends first (it is one or two short statements; waiting for SQLite's
        # write lock, at most its busy timeout): no beat starts once _stop is set.
        acquired = self._beating.acquire(timeout=STOP_WAIT)
        try:
            conf = get_settings()
            for using in _places(conf):
                _leave(self.identity, using)
        except (AutomigrateError, Error) as exc:
            logger.debug("automigrate: fleet: could not mark this process stopped: %s", exc)
        finally:
            if acquired:
                self._beating.release()
            _close()

    def _loop(self) -> None:
        if self._after is not None:
            self._after.wait()  # the startup run first: it may create the fleet's table
        while not self._stop.is_set():
            interval = 15.0
            with self._beating:
                if self._stop.is_set():
                    break
                try:
                    conf = get_settings()
                    interval = conf.fleet_heartbeat
                    self.beat(conf)
                except Exception as exc:  # a beat must never take the process down
                    logger.warning("automigrate: fleet heartbeat failed: %s", exc)
                finally:
                    _close()
            self._stop.wait(interval)

    def beat(self, conf: AutomigrateSettings) -> None:
        """One beat: renew the row; run the contract step when it may run."""
        self._beats += 1
        beaten = True
        for using in _places(conf):
            try:
                registry.beat(self.identity, using)
                if self._beats % PRUNE_EVERY == 1:
                    registry.prune(using)
            except Error as exc:
                # The table is missing until the app's migrations are applied.
                beaten = False
                logger.debug("automigrate: fleet: no beat on %s: %s", using, exc)
        if beaten:
            self.registered.set()
        if conf.defer_incompatible:
            self._contract_when_ready(conf)

    def _contract_when_ready(self, conf: AutomigrateSettings) -> None:
        from django_automigrate.run import contract, runner

        for alias in conf.aliases():
            found = contract.waiting(alias, conf)  # [] (one query) when nothing waits
            self._warn_if_old(alias, found, conf)
            if not any(w.ready for w in found):
                continue
            # Without waiting for the lock: whoever holds it is migrating or contracting.
            result = runner.contract([alias], lock_timeout=0, verbosity=0, background=True)
            for database in result.databases:
                if database.exit_code:
                    logger.error(
                        "automigrate: %s: the contract step failed: %s",
                        alias,
                        database.error,
                        extra={"database": alias},
                    )

    def _warn_if_old(self, alias: str, found: list[Any], conf: AutomigrateSettings) -> None:
        from django_automigrate.run import deferral

        for item in found:
            age = deferral.waited_since(item.row).total_seconds()
            if age >= conf.deferred_warning_age:
                logger.warning(
                    "automigrate: %s: %s has waited %.0f h for older code to go (%s); run "
                    "'manage.py automigrate --contract' once it is gone for sure.",
                    alias,
                    item.label(),
                    age / 3600,
                    deferral.describe_members(item.older) or "none seen now",
                    extra={"database": alias, "migration": item.row.migration},
                )


def _leave(identity: registry.Identity, using: str) -> None:
    """Mark the row stopped; once more if the database was busy (SQLite's write lock, taken by
    the many processes of a deploy that stop at once)."""
    try:
        registry.leave(identity, using)
    except Error as exc:
        if not is_lock_timeout(exc):
            raise
        registry.leave(identity, using)


def _places(conf: AutomigrateSettings) -> list[str]:
    """The databases that hold the fleet: where each migrated database keeps its history."""
    from django_automigrate.run.history import history_alias

    return list(dict.fromkeys(history_alias(alias) for alias in conf.aliases()))


def _close() -> None:
    """This thread's connections, closed between beats."""
    for connection in connections.all(initialized_only=True):
        with contextlib.suppress(Error):  # a broken connection is closed all the same
            connection.close()


_current: Heartbeat | None = None
_lock = threading.Lock()


def join(kind: str, *, after: threading.Event | None = None) -> Heartbeat | None:
    """Make this process a fleet member (once; a second call returns the same beat).

    A uWSGI master that loads the app before forking gets no thread (None): uWSGI forks from C
    without Python's fork hooks, so a child forked while our thread holds the GIL hangs for
    good. Each of its workers joins instead, once forked.
    """
    global _current
    master = _uwsgi_master()
    if master is not None:
        _join_in_each_worker(master, kind)
        return None
    with _lock:
        if _current is not None and _current.identity.pid == os.getpid():
            return _current
        beat = Heartbeat(kind, after=after)
        _current = beat
    beat.start()
    return beat


def current() -> Heartbeat | None:
    return _current


def _uwsgi_master() -> Any | None:
    """uWSGI's module, in a master that loaded the app and forks workers from it."""
    try:
        uwsgi = importlib.import_module("uwsgi")  # exists only inside uWSGI
    except ImportError:
        return None
    return uwsgi if uwsgi.worker_id() == 0 else None


_forked_kinds: set[str] = set()


def _join_in_each_worker(uwsgi: Any, kind: str) -> None:
    if kind in _forked_kinds:
        return
    _forked_kinds.add(kind)

    def in_worker() -> None:
        join(kind)

    try:
        # uwsgidecorators' chain, so that the project's own @postfork functions run too (its
        # import sets uwsgi.post_fork_hook to that chain, replacing any hook set by hand).
        decorators = importlib.import_module("uwsgidecorators")
    except Exception:  # it refuses to load without a master; chain the hook by hand then
        previous = getattr(uwsgi, "post_fork_hook", None)

        def chained() -> None:
            if callable(previous):
                previous()
            in_worker()

        uwsgi.post_fork_hook = chained
    else:
        decorators.postfork(in_worker)


def _rejoin_in_child() -> None:
    """After a fork: the child is a process of its own, with a beat of its own."""
    global _current
    parent, _current = _current, None
    if parent is not None:
        join(parent.kind)


def _leave_at_exit() -> None:
    if _current is not None and _current.identity.pid == os.getpid():
        _current.stop()


os.register_at_fork(after_in_child=_rejoin_in_child)
atexit.register(_leave_at_exit)
