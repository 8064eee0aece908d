"""The start-up hook's contract with Django (``Apps.populate()`` sets ``ready_event`` once every
app is ready, in the loading thread, holding the registry lock), and the fallback when a Django
version breaks it."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from typing import Any

import pytest
from django.apps import AppConfig
from django.apps.registry import Apps

from django_automigrate.startup import hook
from tests.hookapps.apps import FirstConfig
from tests.servers import FreshDatabase
from tests.utils import REPO, child_env

INSTALLED = ["tests.hookapps.apps.FirstConfig", "tests.hookapps.apps.LastConfig"]


@pytest.fixture
def events() -> Any:
    FirstConfig.events.clear()
    yield FirstConfig.events
    FirstConfig.install = None


def _install(events: list[str], callback: Any = None) -> threading.Event:
    fell_back = threading.Event()

    def fallback() -> None:
        events.append("fallback")
        fell_back.set()

    def install(config: AppConfig) -> None:
        assert config.apps is not None
        hook.when_apps_ready(
            callback or (lambda: events.append("callback")), fallback, registry=config.apps
        )

    FirstConfig.install = staticmethod(install)
    return fell_back


def _unpopulated(registry_class: type[Apps] = Apps) -> Apps:
    """A registry as Django's own is before ``django.setup()``: only the main registry may be
    created unpopulated, so an empty one is populated, then reset."""
    registry = registry_class(installed_apps=())
    registry.app_configs = {}
    registry.apps_ready = registry.models_ready = registry.ready = registry.loading = False
    registry.ready_event = threading.Event()
    if isinstance(registry, _IgnoresSwaps):
        registry._own_event = threading.Event()
    return registry


def _join_watchdogs() -> None:
    for thread in threading.enumerate():
        if thread.name == "django-automigrate-hook":
            thread.join(timeout=30)
            assert not thread.is_alive()


def test_the_callback_runs_once_after_every_ready_in_the_loading_thread_under_the_lock(
    events: list[str],
) -> None:
    registry = _unpopulated()
    original = registry.ready_event
    seen: dict[str, Any] = {}

    def callback() -> None:
        events.append("callback")
        seen["ready"] = registry.ready
        seen["thread"] = threading.get_ident()
        seen["event_restored"] = registry.ready_event is original and original.is_set()
        # The registry lock is held: another thread cannot get it meanwhile.
        seen["lock_free_elsewhere"] = _lock_free_in_another_thread(registry)

    _install(events, callback)
    registry.populate(INSTALLED)
    _join_watchdogs()

    assert events == ["first.ready", "last.ready", "callback"]
    assert seen == {
        "ready": True,
        "thread": threading.get_ident(),
        "event_restored": True,
        "lock_free_elsewhere": False,
    }
    assert registry.ready_event is original


def _lock_free_in_another_thread(registry: Apps) -> bool:
    result: list[bool] = []

    def probe() -> None:
        got = registry._lock.acquire(timeout=0.2)  # type: ignore[attr-defined]
        if got:
            registry._lock.release()  # type: ignore[attr-defined]
        result.append(got)

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return result[0]


class _IgnoresSwaps(Apps):
    """A Django whose ``populate()`` sets an event of its own, not ``ready_event``'s value."""

    def __init__(self, installed_apps: Any = ()) -> None:
        self._own_event = threading.Event()
        super().__init__(installed_apps=installed_apps)

    @property
    def ready_event(self) -> threading.Event:
        return self._own_event

    @ready_event.setter
    def ready_event(self, value: threading.Event) -> None:
        pass  # a swap has no effect


class _NoReadyEvent(Apps):
    """A Django without ``ready_event``."""

    def __init__(self, installed_apps: Any = ()) -> None:
        super().__init__(installed_apps=installed_apps)
        self.ready_event = _Quiet()  # type: ignore[assignment]


class _Quiet:
    def set(self) -> None:
        pass


@pytest.mark.parametrize("registry_class", [_IgnoresSwaps, _NoReadyEvent])
def test_a_broken_contract_warns_and_falls_back_to_a_thread_once_ready(
    registry_class: type[Apps], events: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    registry = _unpopulated(registry_class)
    if registry_class is _NoReadyEvent:
        registry.ready_event = _Quiet()  # type: ignore[assignment]
    fell_back = _install(events)
    with caplog.at_level(logging.WARNING, logger="django_automigrate"):
        registry.populate(INSTALLED)
        assert fell_back.wait(timeout=30)
        _join_watchdogs()

    assert events == ["first.ready", "last.ready", "fallback"]
    assert [r.getMessage() for r in caplog.records] == [hook.CONTRACT_BROKEN]


BROKEN_START = """
import django, django.apps
class Quiet:
    def set(self):
        pass
django.apps.apps.ready_event = Quiet()  # as a Django without the event would behave
django.setup()
from django_automigrate import startup
assert startup.wait(120)
print(startup.state().status)
"""


@pytest.mark.parametrize("server", ["sqlite", "postgresql"], indirect=True)
def test_a_process_whose_django_breaks_the_contract_still_migrates_and_says_so(
    database: FreshDatabase,
) -> None:
    process = subprocess.run(
        [sys.executable, "-c", BROKEN_START],
        cwd=REPO,
        env=child_env(
            database.url, AUTOMIGRATE_ON_STARTUP="true", AUTOMIGRATE_ENVIRONMENT="development"
        ),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip() == "succeeded"
    assert "cannot hook into this Django version's start-up" in process.stderr
    assert ("testapp", "0022_seed_tags") in database.migration_rows()
