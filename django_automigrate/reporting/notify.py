"""``MAIL_ADMINS_ON_FAILURE``: one mail to ``settings.ADMINS`` for each failed run.

A receiver of :data:`~django_automigrate.signals.run_failed`, connected by the app's ``ready()``;
it reads the setting on every failure, so turning it on or off needs no restart of the
receiver. Mail that cannot be sent is logged; it never changes the run.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from django.core.mail import mail_admins
from django.db import Error

from django_automigrate.conf import get_settings
from django_automigrate.exceptions import AutomigrateError
from django_automigrate.models import MigrationRun
from django_automigrate.run.history import history_alias, release_label

logger = logging.getLogger("django_automigrate")


def mail_admins_on_failure(
    sender: Any, *, alias: str, trigger: str, run_id: int | None, result: Any, error: str,
    **kwargs: Any,
) -> None:  # fmt: skip
    try:
        if not get_settings().mail_admins_on_failure:
            return
    except AutomigrateError:
        return  # invalid settings: the system checks say so; no mail on a guess
    host = socket.gethostname()
    run = f"run #{run_id}" if run_id is not None else "a run"
    subject = f"automigrate: {run} on {alias} {result.status} ({host})"
    lines = [
        f"Database: {alias}",
        f"Status: {result.status}",
        f"Run: {run_id if run_id is not None else 'not recorded'} (trigger {trigger})",
        f"Host: {host} (pid {os.getpid()})",
        f"Release: {release_label() or 'not set'}",
    ]
    failed_migration = getattr(result, "failed_migration", "")
    if failed_migration:
        lines.append(f"Failed migration: {failed_migration}")
    for title, labels in (
        ("Applied and kept", getattr(result, "applied", [])),
        ("Rolled back", getattr(result, "rolled_back", [])),
    ):
        if labels:
            lines.append(f"{title}: {', '.join(labels)}")
    lines += ["", "Error:", error]
    trace = _traceback(alias, run_id)
    if trace:
        lines += ["", trace]
    lines += ["", f"Details: manage.py automigrate --history --database {alias}"]
    try:
        mail_admins(subject, "\n".join(lines))
    except Exception as exc:
        logger.error(
            "automigrate: %s: could not mail the admins about the failed run: %s: %s",
            alias,
            type(exc).__name__,
            exc,
            extra={"database": alias, "run_id": run_id},
        )


def _traceback(alias: str, run_id: int | None) -> str:
    if run_id is None:
        return ""
    try:
        run = MigrationRun.objects.using(history_alias(alias)).filter(pk=run_id).first()
    except Error:
        return ""
    return run.traceback if run is not None else ""
