"""Receivers of django-automigrate's signals that append one JSON line per signal to the file
named by ``AUTOMIGRATE_TEST_SIGNAL_LOG``: what real processes sent, for the tests to read."""

from __future__ import annotations

import json
import os
from typing import Any

from django.apps import AppConfig


def _write(name: str, **kwargs: Any) -> None:
    result = kwargs.pop("result", None)
    record = {
        "signal": name,
        "pid": os.getpid(),
        "alias": kwargs["alias"],
        "trigger": kwargs["trigger"],
        "run_id": kwargs["run_id"],
        "planned": kwargs.get("planned"),
        "status": getattr(result, "status", None),
        "applied": getattr(result, "applied", None),
        "error": kwargs.get("error"),
    }
    with open(os.environ["AUTOMIGRATE_TEST_SIGNAL_LOG"], "a") as log:
        log.write(json.dumps(record) + "\n")  # one short write: lines never interleave


class SignalAppConfig(AppConfig):
    name = "tests.signalapp"

    def ready(self) -> None:
        from django_automigrate import signals

        for name in ("run_started", "run_finished", "run_failed"):

            def receiver(sender: Any, name: str = name, **kwargs: Any) -> None:
                _write(name, **kwargs)

            getattr(signals, name).connect(receiver, weak=False, dispatch_uid=f"test-{name}")
