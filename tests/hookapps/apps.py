from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from django.apps import AppConfig


class FirstConfig(AppConfig):
    """Listed first: installs the hook from its ``ready()``, as django_automigrate does."""

    name = "tests.hookapps"
    label = "hook_first"
    events: ClassVar[list[str]] = []
    install: ClassVar[Callable[[AppConfig], None] | None] = None

    def ready(self) -> None:
        self.events.append("first.ready")
        if FirstConfig.install is not None:
            FirstConfig.install(self)


class LastConfig(AppConfig):
    """Listed last: its ``ready()`` must have run before the hook's callback."""

    name = "tests.hookapps.apps"  # app names must differ too
    label = "hook_last"

    def ready(self) -> None:
        FirstConfig.events.append("last.ready")
