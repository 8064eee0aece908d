"""Run a callback the moment Django's app registry is complete, in the thread that loads Django.

Why not somewhere cleaner: ``AppConfig.ready()`` is the only documented hook, and it is too early
(Django warns about queries made there, and apps listed after ours have not connected their
``post_migrate`` receivers yet). Django sends no signal once every app is ready, and
``request_started`` is too late (the server already listens). What ``Apps.populate()`` does
offer is this: right after ``self.ready = True``, still holding the registry lock, it calls
``self.ready_event.set()``. So ``apps.ready_event`` is replaced by an event that runs the
callback when it is set, and Django's own event is put back first thing.

That contract is pinned by ``tests/test_hook.py`` on every Django version we support. Should a
Django release break it (no ``ready_event``, or a ``populate()`` that no longer sets it), a
watchdog thread notices once ``populate()`` has returned without calling us, says so at
WARNING, and runs the callback itself: the run still happens, only later than the process's
first request may be served. When the contract holds, the hook ends the watchdog before
``populate()`` returns: no thread of ours is alive when a server forks its workers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.apps import apps
from django.apps.registry import Apps

logger = logging.getLogger("django_automigrate")

#: What the watchdog says when Django's start-up did not call the hook.
CONTRACT_BROKEN = (
    "automigrate: cannot hook into this Django version's start-up (Apps.populate() did not "
    "call apps.ready_event.set()); the startup run goes on in a background thread, so this "
    "process may serve before it ends. Please report this with your Django version."
)
_POLL = 0.05


class _AppsReadyHook(threading.Event):
    """Stands in for ``registry.ready_event`` until ``populate()`` sets it."""

    def __init__(self, registry: Apps, original: threading.Event, callback: Callable[[], None]):
        super().__init__()
        self._registry = registry
        self._original = original
        self._callback = callback
        self.fired = threading.Event()
        self.watchdog: threading.Thread | None = None

    def set(self) -> None:
        self.fired.set()
        self._registry.ready_event = self._original  # Django's own event back before anything
        self._original.set()
        super().set()
        if self.watchdog is not None:
            # No thread of ours may outlive populate(): a server that forks from C without
            # Python's fork hooks (uWSGI) hands its children the GIL that thread may hold, and
            # they hang before their first request.
            self.watchdog.join()
        self._callback()


def when_apps_ready(
    callback: Callable[[], None], fallback: Callable[[], None], registry: Apps = apps
) -> None:
    """Call ``callback`` in the thread that loads Django, once every app's ``ready()`` ran.

    Call from ``AppConfig.ready()``. If this Django does not keep the contract above,
    ``fallback`` is called instead, from a thread of its own once the registry is ready.
    """
    original = getattr(registry, "ready_event", None)
    if not isinstance(original, threading.Event) or original.is_set() or registry.ready:
        logger.warning(CONTRACT_BROKEN)
        _watch(registry, None, fallback, warn=False)
        return
    hook = _AppsReadyHook(registry, original, callback)
    registry.ready_event = hook
    _watch(registry, hook, fallback, warn=True)


def wait_until_ready(registry: Apps = apps) -> None:
    """Return once every app's ``ready()`` ran. Polled: it must not rely on ``ready_event``,
    the very contract that may have broken."""
    while not registry.ready:
        time.sleep(_POLL)


def _watch(
    registry: Apps, hook: _AppsReadyHook | None, fallback: Callable[[], None], *, warn: bool
) -> None:
    def populated() -> bool:
        # populate() sets ready, then the event, holding its lock throughout (the callback runs
        # inside it too): once the lock is free, populate() has returned, and the hook either
        # fired or never will. Never blocking on the lock: set() joins this thread holding it.
        if not registry.ready:
            return False
        lock = getattr(registry, "_lock", None)
        if lock is None:
            return True
        if not lock.acquire(blocking=False):
            return False
        lock.release()
        return True

    def watchdog() -> None:
        while not populated():
            if hook is None:
                time.sleep(_POLL)
            elif hook.fired.wait(_POLL):
                return  # the contract held: set() is joining this thread
        if hook is not None and hook.fired.is_set():
            return
        if hook is not None and registry.ready_event is hook:
            registry.ready_event = hook._original
        if warn:
            logger.warning(CONTRACT_BROKEN)
        fallback()

    thread = threading.Thread(target=watchdog, name="django-automigrate-hook", daemon=True)
    if hook is not None:
        hook.watchdog = thread
    thread.start()
