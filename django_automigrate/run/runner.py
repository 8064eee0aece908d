"""The run over every database, in order: :func:`migrate`, the public API that the command and
the startup hook use. Each database is one :class:`~django_automigrate.run.session.DatabaseRun`;
what it returns is in ``results.py`` (re-exported here).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Sequence
from typing import TextIO

from django.conf import settings
from django.db import connections

from django_automigrate.conf import LOCK_IMPACT_LEVELS, AutomigrateSettings, get_settings
from django_automigrate.exceptions import ConfigurationError
from django_automigrate.locks import lock_for
from django_automigrate.models import Trigger
from django_automigrate.run.results import (
    DATABASE_MISSING,
    LOCK_TIMEOUT,
    NEEDS_ATTENTION,
    NOT_RUN,
    NOTHING_TO_DO,
    DatabaseResult,
    Outcome,
    RunResult,
)
from django_automigrate.run.session import ApplyPending, DatabaseRun, RunOptions, Work

__all__ = [
    "DATABASE_MISSING",
    "LOCK_TIMEOUT",
    "NEEDS_ATTENTION",
    "NOTHING_TO_DO",
    "NOT_RUN",
    "DatabaseResult",
    "Outcome",
    "RunResult",
    "contract",
    "migrate",
    "resolve_aliases",
]


def resolve_aliases(databases: Sequence[str] | None, conf: AutomigrateSettings) -> list[str]:
    """The aliases to run, in order; raises :class:`ConfigurationError` for an unknown one."""
    aliases = list(dict.fromkeys(databases or conf.aliases()))
    unknown = [alias for alias in aliases if alias not in settings.DATABASES]
    if unknown:
        raise ConfigurationError(
            f"Unknown database alias {unknown[0]!r}. Known aliases: "
            + ", ".join(repr(alias) for alias in settings.DATABASES)
            + "."
        )
    return aliases


def migrate(
    databases: Sequence[str] | None = None,
    *,
    trigger: str = Trigger.COMMAND,
    use_lock: bool | None = None,
    lock_timeout: float | None = None,
    create_database: bool | None = None,
    stdout: TextIO | None = None,
    verbosity: int = 1,
    max_lock_impact: str | None = None,
    defer: bool | None = None,
) -> RunResult:
    """Bring ``databases`` (default: the ``DATABASES`` setting) up to date, one after another.

    Each database: compute the plan; if nothing is pending, return at once (no lock, no write);
    else take the lock, compute the plan again, apply it with Django's ``migrate`` machinery,
    record the run and release the lock. A database that fails stops the run: the ones after it
    are reported ``not_run``. Configuration errors raise :class:`ConfigurationError`; lock
    timeouts and failed migrations are reported in the result, see :attr:`RunResult.exit_code`.

    A database that does not exist is created first when ``create_database`` (default: the
    ``CREATE_DATABASE`` setting) allows, else reported ``database_missing``.

    ``stdout`` receives Django's usual ``migrate`` output (``Applying …  OK``) when given.

    ``max_lock_impact`` replaces the ``MAX_LOCK_IMPACT`` setting for this run (in any
    environment): a plan whose lock forecast is worse is refused with ``too_disruptive``.

    ``defer`` replaces ``DEFER_INCOMPATIBLE``: False applies everything now, beside older code.
    """
    conf = get_settings()
    if max_lock_impact is not None:
        if max_lock_impact not in LOCK_IMPACT_LEVELS:
            raise ConfigurationError(
                f"Unknown lock impact {max_lock_impact!r}: expected one of "
                f"{', '.join(LOCK_IMPACT_LEVELS)}."
            )
        conf = dataclasses.replace(conf, max_lock_impact=max_lock_impact)
    if defer is not None:
        conf = dataclasses.replace(conf, defer_incompatible=defer)
    aliases = resolve_aliases(databases, conf)
    if lock_timeout is not None and not 0 <= lock_timeout < float("inf"):
        raise ConfigurationError(
            f"The lock timeout must be 0 or more seconds (and finite), not {lock_timeout!r}."
        )
    options = RunOptions(
        conf=conf,
        trigger=str(trigger),
        use_lock=conf.use_lock if use_lock is None else use_lock,
        lock_timeout=conf.lock_timeout if lock_timeout is None else lock_timeout,
        stdout=stdout if stdout is not None else io.StringIO(),
        verbosity=verbosity,
        create_database=conf.create_database if create_database is None else create_database,
    )
    return _each(aliases, options, lambda: ApplyPending(options.trigger, conf))


def contract(
    databases: Sequence[str] | None = None,
    *,
    force: bool = False,
    use_lock: bool | None = None,
    lock_timeout: float | None = None,
    verbosity: int = 1,
    background: bool = False,
) -> RunResult:
    """Run the deferred work of earlier runs that may run now: every operation whose older
    code has not been seen for ``CONTRACT_GRACE`` (every one, with ``force``). The same run
    session as :func:`migrate`, recorded with the trigger ``contract``. ``background``: a
    heartbeat's try, which a lock held elsewhere turns into "nothing to do"."""
    from django_automigrate.run.contract import ContractDeferred

    conf = get_settings()
    aliases = resolve_aliases(databases, conf)
    options = RunOptions(
        conf=conf,
        trigger=str(Trigger.CONTRACT),
        use_lock=conf.use_lock if use_lock is None else use_lock,
        lock_timeout=conf.lock_timeout if lock_timeout is None else lock_timeout,
        stdout=io.StringIO(),
        verbosity=verbosity,
        create_database=False,
    )
    return _each(
        aliases, options, lambda: ContractDeferred(conf, force=force, background=background)
    )


def _each(aliases: Sequence[str], options: RunOptions, work: Callable[[], Work]) -> RunResult:
    """One session per database, in order; a failure leaves the ones after it ``not_run``."""
    # Every lock is chosen before any database is touched: a backend without a lock is a
    # configuration error, reported before the first migration rather than halfway.
    locks = {
        alias: lock_for(connections[alias], options.conf, use_lock=options.use_lock)
        for alias in aliases
    }
    results: list[DatabaseResult] = []
    for alias in aliases:
        if any(r.exit_code for r in results):
            results.append(DatabaseResult(alias=alias, status=Outcome.NOT_RUN))
            continue
        results.append(DatabaseRun(alias, locks[alias], work(), options).run())
    return RunResult(results)
