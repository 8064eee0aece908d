"""Is a database up to date? Answered from the migration files' names and the rows of
``django_migrations``, without importing a single migration module.

Most process starts find nothing to migrate, and Django's plan imports every migration module
to find that out (hundreds of milliseconds and megabytes on a large project). The question has
a cheaper answer when the project is ordinary: every migration file on disk has its row, and
every row of a migrated app has its file. Then every node of Django's graph is applied (its
nodes are a subset of the files), so the plan is empty; no squash waits to be recorded (the
squash's own file has its row); and no applied migration lacks a file.

The answer is one-sided: :func:`check` says "up to date" only in that case, and "not sure" (with
the reason) whenever anything is unusual, and the caller then asks Django's full plan. What
this path cannot see is an error Django would raise while loading files that are all applied
(a migration without a ``Migration`` class, a conflict among applied migrations, a dependency on
an app that is gone): the next run that has work, or ``manage.py migrate``, reports it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
from importlib import import_module

from django.apps import apps
from django.conf import settings
from django.db import Error, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.recorder import MigrationRecorder

#: The name of every app's migrations package, as Django's loader spells it.
MIGRATIONS_PACKAGE = "migrations"


@dataclasses.dataclass(frozen=True)
class Answer:
    """``up_to_date`` is True only when certain; otherwise ``reason`` says what was unusual."""

    up_to_date: bool
    reason: str = ""
    #: A migration file has no row (or nothing is recorded yet): Django's plan has work for
    #: sure (or refuses the state), so a run may take the lock before making it.
    certainly_pending: bool = False


class _NotSure(Exception):
    def __init__(self, reason: str, *, table_missing: bool = False) -> None:
        super().__init__(reason)
        self.table_missing = table_missing


def check(connection: BaseDatabaseWrapper) -> Answer:
    """Whether nothing is pending on ``connection``'s database, decided without Django's plan.

    One query (``SELECT app, name FROM django_migrations``); never creates or writes anything.
    """
    return Watch().answer(connection)


def _compare(on_disk: dict[str, set[str]], applied: dict[str, set[str]]) -> Answer:
    for app_label, names in on_disk.items():
        recorded = applied.get(app_label, set())
        missing = names - recorded
        if missing:
            # A file without its row is pending, or makes what it replaces pending, or is a
            # squash waiting to be recorded: work in every case (Django's graph says which).
            return Answer(
                False,
                f"{app_label}.{min(missing)} has no row in django_migrations",
                certainly_pending=True,
            )
        without_file = recorded - names
        if without_file:
            # A squash replaces it, or it was applied from elsewhere: the full plan tells which.
            return Answer(False, f"{app_label}.{min(without_file)} is applied but has no file")
    return Answer(True)


class Watch:
    """The same answer asked again and again, cheaply, by a process waiting for the lock: did
    another process bring the database up to date meanwhile? The files are listed once; the
    rows are read only once there are enough of them (one ``COUNT(*)`` before)."""

    def __init__(self) -> None:
        self._unsure = ""
        try:
            self._on_disk: dict[str, set[str]] | None = disk_migration_names()
        except _NotSure as unsure:
            self._on_disk = None  # the fast answer cannot tell here: a waiter waits on
            self._unsure = str(unsure)
        self._needed = sum(map(len, (self._on_disk or {}).values()))

    def answer(self, connection: BaseDatabaseWrapper) -> Answer:
        """:func:`check`, with the files listed when this watch was made (before connecting:
        the connection is then held for one query)."""
        if self._on_disk is None:
            return Answer(False, self._unsure)
        try:
            applied = applied_names(connection)
        except _NotSure as unsure:
            nothing_recorded = unsure.table_missing and any(self._on_disk.values())
            return Answer(False, str(unsure), certainly_pending=nothing_recorded)
        return _compare(self._on_disk, applied)

    def up_to_date(self, connection: BaseDatabaseWrapper) -> bool:
        if self._on_disk is None or connection.in_atomic_block:
            return False
        table = connection.ops.quote_name(MigrationRecorder.Migration._meta.db_table)
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT COUNT(*) FROM {table}")
                row = cursor.fetchone()
            if row is None or row[0] < self._needed:
                return False
            return _compare(self._on_disk, applied_names(connection)).up_to_date
        except (Error, _NotSure):
            return False


def disk_migration_names() -> dict[str, set[str]]:
    """Each migrated app's migration names, as Django's loader would find them on disk.

    Imports each app's ``migrations`` package (as the loader does), never a migration module.
    Raises :class:`_NotSure` for anything Django's loader might read otherwise.
    """
    overrides = getattr(settings, "MIGRATION_MODULES", None) or {}
    found: dict[str, set[str]] = {}
    for app_config in apps.get_app_configs():
        if app_config.label in overrides:
            raise _NotSure(f"MIGRATION_MODULES sets the migrations of {app_config.label!r}")
        package_name = f"{app_config.name}.{MIGRATIONS_PACKAGE}"
        try:
            package = import_module(package_name)
        except ModuleNotFoundError as exc:
            if exc.name == package_name:
                continue  # no migrations package: an unmigrated app, as Django decides too
            raise _NotSure(f"importing {package_name} failed: {exc}") from exc
        except Exception as exc:
            raise _NotSure(f"importing {package_name} failed: {exc}") from exc
        paths = getattr(package, "__path__", None)
        if getattr(package, "__file__", None) is None or not isinstance(paths, list):
            raise _NotSure(f"{package_name} is not a regular package")
        found[app_config.label] = _names_in(package_name, paths)
    return found


def _names_in(package_name: str, paths: list[str]) -> set[str]:
    """The migration names in ``paths``: ``.py`` files, ``_``/``~`` names left out, as
    ``pkgutil.iter_modules`` and the loader would list them. Any other module file (a ``.pyc``
    without its source, an extension module), a zip import or a subpackage beside a module of
    the same name is not read here."""
    names: set[str] = set()
    for path in paths:
        try:
            entries = list(os.scandir(path))
        except OSError as exc:
            raise _NotSure(f"{package_name} is not a folder on disk ({path}): {exc}") from exc
        folders = set()
        for entry in entries:
            if entry.is_dir():
                folders.add(entry.name)
                continue
            name = entry.name
            # The common case first, without inspect (a 2,000-file project calls this 2,000 times).
            module = name[:-3] if name.endswith(".py") else inspect.getmodulename(name)
            if module is None or module == "__init__" or "." in module or module[0] in "_~":
                continue
            if not name.endswith(".py"):
                raise _NotSure(f"{package_name} holds {name!r}, not a .py source file")
            names.add(module)
        if folders & names:
            raise _NotSure(f"{package_name} has a folder named like a migration")
    return names


def applied_names(connection: BaseDatabaseWrapper) -> dict[str, set[str]]:
    """The rows of ``django_migrations``, by app. Raises :class:`_NotSure` when the table
    cannot be read (it does not exist yet, say)."""
    table = connection.ops.quote_name(MigrationRecorder.Migration._meta.db_table)
    # Inside a transaction (a view under ATOMIC_REQUESTS), a savepoint: a failing query must
    # not break the caller's transaction.
    savepoint = (
        transaction.atomic(using=connection.alias)
        if connection.in_atomic_block
        else contextlib.nullcontext()
    )
    try:
        with savepoint, connection.cursor() as cursor:
            cursor.execute(f"SELECT app, name FROM {table}")
            rows = cursor.fetchall()
    except Error as exc:
        missing = MigrationRecorder.Migration._meta.db_table not in _table_names(connection)
        raise _NotSure(f"cannot read django_migrations: {exc}", table_missing=missing) from exc
    applied: dict[str, set[str]] = {}
    for app_label, name in rows:
        applied.setdefault(app_label, set()).add(name)
    return applied


def _table_names(connection: BaseDatabaseWrapper) -> list[str]:
    try:
        with connection.cursor() as cursor:
            return list(connection.introspection.table_names(cursor))
    except Error:
        return [MigrationRecorder.Migration._meta.db_table]  # cannot tell: not "missing"
