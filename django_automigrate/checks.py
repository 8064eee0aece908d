"""System checks for the ``AUTOMIGRATE`` settings. IDs are stable and never reused:

* ``automigrate.E001`` AUTOMIGRATE is not a dict
* ``automigrate.E002`` unknown key
* ``automigrate.E003`` wrong type
* ``automigrate.E004`` unknown choice
* ``automigrate.E005`` unknown database alias
* ``automigrate.E006`` invalid ``AUTOMIGRATE_<KEY>`` environment variable
* ``automigrate.E007`` number out of range
* ``automigrate.E008`` a migrated database's backend has no migration lock
* ``automigrate.E009`` retired (it refused ``LOCK_BACKEND = "table"`` before the lease lock)
* ``automigrate.E010`` ``LOCK_BACKEND = "table"`` on a SQLite database
* ``automigrate.W001`` locking is off: several processes may migrate at once
* ``automigrate.W002`` an ``AUTOMIGRATE_*`` environment variable looks like a misspelt setting
* ``automigrate.W003`` ``ON_FAILURE = "raise"`` with ``MODE = "background"``: a failure cannot stop
  a process that is already serving
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, Warning, register
from django.db import connections

from django_automigrate.conf import read_settings
from django_automigrate.locks import NATIVE_LOCK_VENDORS


@register()
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Report every invalid or risky ``AUTOMIGRATE`` value (runs with every ``manage.py check``)."""
    return _check_settings()


def _check_settings() -> list[CheckMessage]:
    conf, problems = read_settings()
    messages: list[CheckMessage] = []
    for problem in problems:
        level = Error if problem.id.startswith("automigrate.E") else Warning
        messages.append(level(problem.msg, hint=problem.hint, id=problem.id))
    if not conf.use_lock:
        messages.append(
            Warning(
                "AUTOMIGRATE['USE_LOCK'] is False: processes that start together may apply the "
                "same migrations at the same time.",
                hint="Leave USE_LOCK on unless exactly one process ever migrates.",
                id="automigrate.W001",
            )
        )
    if conf.mode == "background" and conf.on_failure == "raise":
        messages.append(
            Warning(
                "AUTOMIGRATE['ON_FAILURE'] is 'raise' but MODE is 'background': the process is "
                "already serving when a background run fails, so it keeps serving (health check "
                "red) instead of stopping.",
                hint="Set ON_FAILURE 'continue' to say so, or MODE 'blocking' to stop on failure.",
                id="automigrate.W003",
            )
        )
    if (
        conf.use_lock
        and conf.lock_backend == "table"
        and not any(p.id == "automigrate.E005" for p in problems)
    ):
        messages.extend(
            Error(
                f"AUTOMIGRATE['LOCK_BACKEND'] is 'table', but database {alias!r} is SQLite: a "
                "run's own writes lock the whole file, so the lease could not be renewed.",
                hint="Use LOCK_BACKEND 'auto' for SQLite (a file lock beside the database).",
                id="automigrate.E010",
            )
            for alias in conf.aliases()
            if connections[alias].vendor == "sqlite"
        )
    if (
        conf.use_lock
        and conf.lock_backend == "auto"
        and not any(p.id == "automigrate.E005" for p in problems)
    ):
        for alias in conf.aliases():
            connection = connections[alias]
            if connection.vendor not in NATIVE_LOCK_VENDORS:
                engine = connection.settings_dict.get("ENGINE")
                messages.append(
                    Error(
                        f"Database {alias!r} uses {engine!r} (vendor {connection.vendor!r}), "
                        "which has no native migration lock.",
                        hint="Supported natively: PostgreSQL, MySQL/MariaDB, SQLite. Set "
                        "LOCK_BACKEND 'table' (a lease row in a table of ours), or remove the "
                        "alias from AUTOMIGRATE['DATABASES'].",
                        id="automigrate.E008",
                    )
                )
    return messages
