"""Migrating when the process starts: the ``AppConfig.ready()`` hook and its state.

Migrations must not run inside ``ready()`` itself: Django warns about any query made before every
app is ready, and apps listed after ours have not connected their ``post_migrate`` receivers yet
(no content types, no permissions). So the run starts the moment the app registry is complete:

* ``MODE = "blocking"``: in the thread that loads Django, right after the registry is ready and
  before ``django.setup()`` returns (:mod:`.hook` says how). The server (gunicorn worker,
  uvicorn, runserver's child, a ``--preload`` master) therefore serves only once the run ended,
  and its worker-boot watchdogs (which start after the app is loaded) cannot kill a long run.
  Inside an event loop (an ASGI server loading the app) the run goes to a thread of its own
  and the loading thread waits for it.
* ``MODE = "background"``: in a thread of its own that waits for the registry; the
  process serves meanwhile, and :func:`state` says how the run is going. A process that forks
  (``--preload``, uWSGI) waits for the run to end before forking, so no child inherits a
  connection in use.

:func:`run_at_startup` is the same run, called by the project itself (``wsgi.py``, ``asgi.py``,
a server hook) instead of by ``ready()``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import connections
from django.utils import timezone

from django_automigrate.conf import AutomigrateSettings, get_settings
from django_automigrate.exceptions import AutomigrateError, StartupFailed
from django_automigrate.models import Trigger
from django_automigrate.startup import hook
from django_automigrate.startup.gating import (
    RUNSERVER_COMMANDS,
    Decision,
    Process,
    decide,
    joins_fleet,
)

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
    decided = _decide(explicit=False)
    if decided is not None and joins_fleet(decided[0], decided[2]):
        from django_automigrate.fleet import heartbeat  # only serving processes beat

        # After the startup run, if any: it may create the fleet's table.
        heartbeat.join("web", after=_finished)
    if decided is None or not decided[1].run:
        _finished.set()
        return decided[1] if decided else None
    conf, decision, _process = decided
    with _state_lock:
        if _hooked:  # ready() runs once per registry; never schedule two runs in one process
            return decision
        _hooked = True
    _set_state(status=IN_PROGRESS, reason=decision.reason)
    if conf.mode == "background":
        _start_thread(lambda: _run(conf, may_stop=False))
    else:
        _run_when_apps_ready(conf)
    return decision


def run_at_startup() -> StartupState:
    """The startup run, called explicitly (``wsgi.py``, ``asgi.py``, a server's start hook).

    Django is set up already (``django_automigrate.run_at_startup`` sees to it). The call is the
    decision: it runs whatever ``ON_STARTUP``, ``IN_PRODUCTION`` and the kind of process say,
    unless ``ENABLED`` is off or this is a test run. In a process whose automatic startup run
    already ran (or runs), it runs nothing more. Blocking mode returns once the run ended; with
    ``ON_FAILURE = "raise"`` a failure raises
    :class:`~django_automigrate.exceptions.StartupFailed`.
    """
    global _hooked
    with _state_lock:
        ran = _hooked
        _hooked = True
    if ran:  # in blocking mode it ended in this thread already; in background mode it goes on
        return state()
    decided = _decide(explicit=True)
    if decided is None or not decided[1].run:
        return state()
    conf, decision, _process = decided
    _finished.clear()
    _set_state(status=IN_PROGRESS, reason=decision.reason)
    if conf.mode == "background":
        _start_thread(lambda: _run(conf, may_stop=False))
    else:
        _run(conf, may_stop=True)
    return state()


def _decide(*, explicit: bool) -> tuple[AutomigrateSettings, Decision, Process] | None:
    """Read the settings and decide, logging the decision; a decision not to run (or invalid
    settings: None) leaves the state ``skipped``."""
    process = Process.current()
    try:
        conf = get_settings()
    except AutomigrateError as exc:
        # A management command reports it through its system checks; a server says it here.
        quiet = not explicit and process.command not in (None, *RUNSERVER_COMMANDS)
        logger.log(
            logging.DEBUG if quiet else logging.ERROR, "automigrate: skipped at startup: %s", exc
        )
        _set_state(status=SKIPPED, reason="invalid settings")
        return None
    decision = decide(conf, process, explicit=explicit)
    # Skipping is the common case (every management command): worth a line only at DEBUG.
    logger.log(
        logging.INFO if decision.run else logging.DEBUG,
        decision.message(),
        extra={"decision": decision.run, "reason": decision.reason},
    )
    if not decision.run:
        _set_state(status=SKIPPED, reason=decision.reason)
    return conf, decision, process


def _run_when_apps_ready(conf: AutomigrateSettings) -> None:
    hook.when_apps_ready(
        lambda: _run(conf, may_stop=True),
        fallback=lambda: _start_thread(lambda: _run(conf, may_stop=False)),
    )


def _after_ready(callback: Callable[[], None]) -> None:
    hook.wait_until_ready()
    callback()


def _start_thread(callback: Callable[[], None]) -> None:
    # What the run imports is imported here, before any fork: a module imported by the thread
    # while the process forks can register fork handlers halfway (filelock does).
    import filelock  # noqa: F401

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
    _set_state(status=IN_PROGRESS, started_at=timezone.now())
    result, error = _outside_event_loop(lambda: _attempt(conf))
    _finish(conf, result, error, may_stop=may_stop)


_T = TypeVar("_T")


def _outside_event_loop(work: Callable[[], _T]) -> _T:
    """``work()``, in a thread of its own when this thread runs an asyncio event loop.

    ASGI servers (uvicorn's workers, daphne, hypercorn) load the app inside their event loop,
    where Django refuses database queries (``SynchronousOnlyOperation``). The loop has nothing
    to serve yet, so blocking it until the run ends is what the blocking mode means anyway.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return work()
    outcome: list[_T] = []
    thread = threading.Thread(
        target=lambda: outcome.append(work()), name="django-automigrate-startup"
    )
    thread.start()
    thread.join()
    return outcome[0]


def _attempt(conf: AutomigrateSettings) -> tuple[Any, str]:
    """Run until the run ended (waiting on while another process holds the lock): (the
    runner's result or None, the error or "")."""
    from django_automigrate.run import runner

    try:
        result = runner.migrate(trigger=Trigger.STARTUP, verbosity=0)
        while any(r.status == runner.LOCK_TIMEOUT for r in result.databases):
            # Another process holds the lock, so it is migrating. Giving up would not help (a
            # restart waits again) and can hurt: a gunicorn worker that fails to boot stops its
            # master, and with it the sibling that holds the lock, halfway through a migration.
            # So a startup run keeps waiting, saying so loudly every LOCK_TIMEOUT seconds.
            waited = next(r for r in result.databases if r.status == runner.LOCK_TIMEOUT)
            logger.error(
                "automigrate: still waiting at startup: %s This process keeps waiting, and "
                "serves once that run ends.",
                waited.error,
                extra={"database": waited.alias, "lock_wait": waited.lock_wait},
            )
            if conf.lock_timeout < 1:
                time.sleep(1)
            result = runner.migrate(trigger=Trigger.STARTUP, verbosity=0)
    except AutomigrateError as exc:
        return None, str(exc)
    except Exception as exc:
        logger.exception("automigrate: startup run crashed")
        return None, f"{type(exc).__name__}: {exc}"
    finally:
        # This thread's connections must not outlive the run: a forking server would share
        # them, and a thread of our own would leave them open.
        connections.close_all()
    failed = next((r for r in result.databases if r.exit_code), None)
    return result, failed.error if failed else ""


def _finish(conf: AutomigrateSettings, result: Any, error: str, *, may_stop: bool) -> None:
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
