"""Migrating when the process starts: the ``AppConfig.ready()`` hook and its state.

Migrations must not run inside ``ready()`` itself: Django warns about any query made before every
app is ready, and apps listed after ours have not connected their ``post_migrate`` receivers yet
(no content types, no permissions). So the run starts the moment the app registry is complete:

* ``MODE = "blocking"``: in the thread that loads Django, right after the registry is ready and
  before ``django.setup()`` returns. The server (gunicorn worker, uvicorn, runserver's child, a
  ``--preload`` master) therefore serves only once the run ended, and its worker-boot watchdogs
  (which start after the app is loaded) cannot kill a long run. Django offers no public hook at
  that point, so ``apps.ready_event`` (the event ``populate()`` sets right after
  ``apps.ready = True``) is wrapped for that one call and put back first thing.
* ``MODE = "background"``: in a thread of its own that waits for ``apps.ready_event``; the
  process serves meanwhile, and :func:`state` says how the run is going. A process that forks
  (``--preload``, uWSGI) waits for the run to end before forking, so no child inherits a
  connection in use.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.db import connections
from django.utils import timezone

from django_automigrate.conf import AutomigrateSettings, get_settings
from django_automigrate.exceptions import AutomigrateError, StartupFailed
from django_automigrate.models import Trigger
from django_automigrate.startup.gating import Decision, Process, decide

logger = logging.getLogger("django_automigrate")

NOT_STARTED = "not_started"
SKIPPED = "skipped"
IN_PROGRESS = "in_progress"
SUCCEEDED = "succeeded"
FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class StartupState:
    """How this process's startup run is going (what a health check reads)."""

    #: ``not_started``, ``skipped``, ``in_progress``, ``succeeded`` or ``failed``.
    status: str
    reason: str = ""
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None
    #: The runner's result (:class:`~django_automigrate.run.runner.RunResult`) once the run ended.
    result: Any = None
    error: str = ""


_state = StartupState(NOT_STARTED)
_state_lock = threading.Lock()
_finished = threading.Event()
_hooked = False


def state() -> StartupState:
    """The state of this process's startup run."""
    with _state_lock:
        return _state


def wait(timeout: float | None = None) -> bool:
    """Wait until the startup run (if any) ended; False when ``timeout`` passed first."""
    return _finished.wait(timeout)


def _set_state(**changes: Any) -> None:
    global _state
    with _state_lock:
        _state = dataclasses.replace(_state, **changes)


def on_ready() -> Decision | None:
    """Called by ``AutomigrateConfig.ready()``: decide, log the decision, schedule the run.

    Touches no database. Returns the decision (None when the settings are invalid: the system
    checks report those, and no run is attempted).
    """
    global _hooked
    try:
        conf = get_settings()
    except AutomigrateError as exc:
        logger.error("automigrate: skipped at startup: %s", exc)
        _set_state(status=SKIPPED, reason="invalid settings")
        _finished.set()
        return None
    decision = decide(conf, Process.current())
    logger.info(decision.message(), extra={"decision": decision.run, "reason": decision.reason})
    if not decision.run:
        _set_state(status=SKIPPED, reason=decision.reason)
        _finished.set()
        return decision
    if _hooked:  # ready() runs once per registry; never schedule two runs in one process
        return decision
    _hooked = True
    _set_state(status=IN_PROGRESS, reason=decision.reason)
    if conf.mode == "background":
        _start_thread(lambda: _run(conf, may_stop=False))
    else:
        _run_when_apps_ready(conf)
    return decision


class _AppsReadyHook(threading.Event):
    """Stands in for ``apps.ready_event`` until ``populate()`` sets it, then runs ``callback``.

    ``populate()`` calls ``apps.ready_event.set()`` right after ``apps.ready = True``, in the
    thread that loads Django: the callback runs there, once every ``ready()`` has run.
    """

    def __init__(self, original: threading.Event, callback: Callable[[], None]) -> None:
        super().__init__()
        self._original = original
        self._callback = callback

    def set(self) -> None:
        apps.ready_event = self._original  # put Django's own event back before anything else
        self._original.set()
        super().set()
        self._callback()


def _run_when_apps_ready(conf: AutomigrateSettings) -> None:
    original = apps.ready_event
    if not isinstance(original, threading.Event) or apps.ready:
        # Not the registry this was written against: fall back to a thread, never to running
        # inside ready(). Say so: the process may then serve before the run ended.
        logger.warning(
            "automigrate: cannot run before the app registry reports ready in this Django "
            "version; the startup run continues in a background thread instead"
        )
        _start_thread(lambda: _run(conf, may_stop=False))
        return
    apps.ready_event = _AppsReadyHook(original, lambda: _run(conf, may_stop=True))


def _after_ready(callback: Callable[[], None]) -> None:
    apps.ready_event.wait()
    callback()


def _start_thread(callback: Callable[[], None]) -> None:
    # What the run imports is imported here, before any fork: a module imported by the thread
    # while the process forks can register fork handlers halfway (filelock does).
    from django_automigrate.locks import sqlite  # noqa: F401
    from django_automigrate.run import runner  # noqa: F401

    thread = threading.Thread(
        target=_after_ready, args=(callback,), name="django-automigrate", daemon=True
    )
    # A process that forks while the run holds connections would hand them to its children:
    # a forking server (gunicorn --preload, uWSGI with its fork hooks on) waits for the run.
    os.register_at_fork(before=lambda: _finished.wait())
    thread.start()


def _run(conf: AutomigrateSettings, *, may_stop: bool) -> None:
    """The startup run. ``may_stop``: it runs in the thread that loads Django, so raising
    stops the process (a thread of its own cannot)."""
    from django_automigrate.run import runner

    _set_state(status=IN_PROGRESS, started_at=timezone.now())
    try:
        result = runner.migrate(trigger=Trigger.STARTUP, verbosity=0)
        while any(r.status == runner.LOCK_TIMEOUT for r in result.databases):
            # Another process holds the lock, so it is migrating. Giving up would not help (a
            # restart waits again) and can hurt: a gunicorn worker that fails to boot stops its
            # master, and with it the sibling that holds the lock, halfway through a migration.
            # So a startup run keeps waiting, saying so loudly every LOCK_TIMEOUT seconds.
            waited = next(r for r in result.databases if r.status == runner.LOCK_TIMEOUT)
            logger.error(
                "automigrate: still waiting at startup: %s Waiting on; this process serves "
                "once the run ends.",
                waited.error,
                extra={"database": waited.alias, "lock_wait": waited.lock_wait},
            )
            if conf.lock_timeout < 1:
                time.sleep(1)
            result = runner.migrate(trigger=Trigger.STARTUP, verbosity=0)
    except AutomigrateError as exc:
        _finish(conf, None, str(exc), may_stop=may_stop)
        return
    except Exception as exc:
        logger.exception("automigrate: startup run crashed")
        _finish(conf, None, f"{type(exc).__name__}: {exc}", may_stop=may_stop)
        return
    failed = next((r for r in result.databases if r.exit_code), None)
    _finish(conf, result, failed.error if failed else "", may_stop=may_stop)


def _finish(conf: AutomigrateSettings, result: Any, error: str, *, may_stop: bool) -> None:
    # This thread's connections must not outlive the run: a forking server would share them.
    connections.close_all()
    _set_state(
        status=FAILED if error else SUCCEEDED,
        finished_at=timezone.now(),
        result=result,
        error=error,
    )
    _finished.set()
    if not error:
        return
    if conf.on_failure == "raise" and may_stop:
        raise StartupFailed(
            f"automigrate: the startup run failed, so this process stops (ON_FAILURE='raise'): "
            f"{error}"
        )
    logger.error(
        "automigrate: the startup run failed; serving anyway (ON_FAILURE=%r, MODE=%r): %s",
        conf.on_failure,
        conf.mode,
        error,
    )
