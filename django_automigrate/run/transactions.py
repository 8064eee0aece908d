"""Transactions around migrations where the backend has transactional DDL (PostgreSQL, SQLite)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.migration import Migration

from django_automigrate.run.plan import Plan


class RollBack(Exception):
    """Raised inside :func:`one_transaction` to leave it so that it rolls back whole."""


def transactional(connection: BaseDatabaseWrapper, migration: Migration) -> bool:
    """Whether ``migration`` runs, record included, in one transaction of ours on this backend."""
    return bool(connection.features.can_rollback_ddl and migration.atomic)


def runs_in_one_transaction(connection: BaseDatabaseWrapper, plan: Plan) -> bool:
    """Whether the plan can run all-or-nothing on this backend."""
    return bool(connection.features.can_rollback_ddl) and all(m.atomic for m, _ in plan)


@contextlib.contextmanager
def one_transaction(connection: BaseDatabaseWrapper) -> Iterator[None]:
    """The whole run in one transaction; on SQLite, with foreign-key checks deferred to its end
    (SQLite cannot turn them off inside a transaction, and its schema editor needs them off)."""
    if connection.vendor != "sqlite":
        with transaction.atomic(using=connection.alias):
            yield
        return
    with connection.constraint_checks_disabled(), transaction.atomic(using=connection.alias):
        yield
        connection.check_constraints()
