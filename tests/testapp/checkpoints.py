"""A RunPython operation that tests steer through the environment, in real processes.

``AUTOMIGRATE_TEST_SLOW="0010_checkpoint:5"`` makes that migration sleep 5 seconds;
``AUTOMIGRATE_TEST_FAIL="0020_checkpoint"`` makes it raise. Unset, it does nothing.
"""

from __future__ import annotations

import os
import time
from typing import Any

from django.db import migrations


def _seconds_for(name: str) -> float:
    for item in os.environ.get("AUTOMIGRATE_TEST_SLOW", "").split(","):
        label, _, seconds = item.partition(":")
        if label.strip() == name and seconds:
            return float(seconds)
    return 0.0


def pause_or_fail(name: str) -> None:
    """Sleep and/or raise as the environment says for ``name``."""
    time.sleep(_seconds_for(name))
    if name in os.environ.get("AUTOMIGRATE_TEST_FAIL", "").split(","):
        raise RuntimeError(f"injected failure in {name}")


def checkpoint(name: str) -> migrations.RunPython:
    def forward(apps: Any, schema_editor: Any) -> None:
        pause_or_fail(name)

    return migrations.RunPython(forward, migrations.RunPython.noop)
