"""``manage.py automigrate``: the same run as at startup, in the foreground.

Exit codes: 0 success or nothing to do; 1 a migration failed (with ``--check``: something is
pending); 2 bad usage or configuration, or a missing database that CREATE_DATABASE does not
allow creating; 3 the migration lock could not be had in time; 4 a statement timed out waiting
for a table lock (STATEMENT_LOCK_TIMEOUT), retries included; 5 the plan's lock forecast is worse
than MAX_LOCK_IMPACT (or --max-lock-impact) allows: nothing was applied.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import sys
from argparse import ArgumentParser, ArgumentTypeError
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandError, SystemCheckError
from django.db import Error, connections

from django_automigrate.conf import (
    FLAG_BOUNDS,
    LOCK_IMPACT_LEVELS,
    AutomigrateSettings,
    InvalidValue,
    get_settings,
    parse_number,
    shown,
)
from django_automigrate.exceptions import AutomigrateError, ConfigurationError
from django_automigrate.locks.base import close_unless_in_transaction
from django_automigrate.models import MigrationRun, Trigger
from django_automigrate.reporting.output import (
    fleet_member_dict,
    format_deferred,
    format_dry_run,
    format_fleet,
    format_history,
    format_result,
)
from django_automigrate.reporting.runlog import printed_by_command
from django_automigrate.run import runner
from django_automigrate.run.database import database_exists
from django_automigrate.run.history import history_alias, history_table_exists, mark_fixed
from django_automigrate.run.plan import (
    applied_without_file_warning,
    full_plan_labels,
    migration_label,
    nothing_pending,
    pending_work,
)
from django_automigrate.run.results import DatabaseResult

if TYPE_CHECKING:
    from django_automigrate.run import rollback as undo_run

#: Version of the ``--format json`` documents; bumped on any incompatible change.
JSON_SCHEMA_VERSION = 1
DEFAULT_HISTORY_COUNT = 10


def _flag(option: str) -> Callable[[str], Any]:
    """The argument type of a numeric flag: a number within its bounds (``conf.FLAG_BOUNDS``),
    or a usage error (exit code 2) saying what is allowed."""
    bounds = FLAG_BOUNDS[option]

    def parse(value: str) -> int | float:
        try:
            return parse_number(value, bounds)
        except InvalidValue as exc:
            raise ArgumentTypeError(f"{shown(value)} is not {exc.allowed}") from None

    parse.__name__ = option.lstrip("-").replace("-", "_")
    return parse


class Command(BaseCommand):
    help = (
        "Apply pending migrations under a database lock, exactly once across processes, and "
        "record the run. Exit codes: 0 done or nothing to do, 1 a migration failed (--check: "
        "something is pending), 2 bad usage, configuration or a missing database, 3 the lock was "
        "not had in time, 4 a statement timed out waiting for a table lock, 5 the lock forecast "
        "is worse than --max-lock-impact or MAX_LOCK_IMPACT."
    )
    # Checks run in handle(), so that a failing one exits 2 like any configuration error.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--database",
            action="append",
            dest="databases",
            metavar="ALIAS",
            help="Database alias to migrate (repeatable). Default: AUTOMIGRATE['DATABASES'].",
        )
        parser.add_argument(
            "--no-lock",
            action="store_true",
            help="Do not take the migration lock (unsafe when other processes may migrate).",
        )
        parser.add_argument(
            "--lock-timeout",
            type=_flag("--lock-timeout"),
            metavar="SECONDS",
            help="Seconds to wait for the lock before exiting with code 3. Default: LOCK_TIMEOUT.",
        )
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--check",
            action="store_true",
            help="Exit 1 if any migration is pending, 0 if none. Writes nothing, takes no lock.",
        )
        mode.add_argument(
            "--rollback",
            nargs="?",
            type=_flag("--rollback"),
            const=0,
            metavar="RUN_ID",
            help="Undo what run RUN_ID applied (default: the latest run that applied "
            "something), under the lock; refused when a migration is irreversible or later "
            "runs depend on it. With --dry-run: show the backwards plan and its SQL.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Show what a run (or --rollback) would do: migrations, SQL, warnings, lock "
            "holder. Writes nothing, takes no lock.",
        )
        mode.add_argument(
            "--mark-fixed",
            type=_flag("--mark-fixed"),
            metavar="RUN_ID",
            help="Record that what run RUN_ID left half-applied was fixed by hand, so that "
            "runs (at startup too) may migrate that database again.",
        )
        mode.add_argument(
            "--history",
            nargs="?",
            type=_flag("--history"),
            const=DEFAULT_HISTORY_COUNT,
            metavar="N",
            help=f"Show the last N recorded runs (default {DEFAULT_HISTORY_COUNT}).",
        )
        mode.add_argument(
            "--contract",
            action="store_true",
            help="Run the deferred work of earlier runs now, under the lock, without waiting "
            "for older code to go (it may still be serving: check --fleet first).",
        )
        mode.add_argument(
            "--fleet",
            action="store_true",
            help="List the processes registered in the fleet, by release and migration graph, "
            "and when each was last seen.",
        )
        parser.add_argument(
            "--no-defer",
            action="store_true",
            help="Apply every operation now, even those older serving code cannot run beside "
            "(DEFER_INCOMPATIBLE off for this run).",
        )
        parser.add_argument(
            "--max-lock-impact",
            choices=LOCK_IMPACT_LEVELS,
            metavar="LEVEL",
            help="Refuse (exit 5) a plan whose lock forecast is worse than LEVEL: "
            f"{', '.join(LOCK_IMPACT_LEVELS)}. With --dry-run, a CI gate. Default: "
            "MAX_LOCK_IMPACT.",
        )
        parser.add_argument(
            "--no-input",
            "--noinput",
            action="store_false",
            dest="interactive",
            help="Do not ask before --rollback unapplies migrations (for scripts).",
        )
        parser.add_argument(
            "--skip-checks",
            action="store_true",
            help="Skip the system checks (which otherwise run first and exit 2 on an error).",
        )
        parser.add_argument(
            "--format",
            choices=("text", "json"),
            default="text",
            help="text for people, json for pipelines (one JSON document on stdout).",
        )

    def handle(self, *, format: str, **options: Any) -> None:
        """Parse → call → render: every mode returns a :class:`Report`, and :meth:`_finish` is
        the one way out."""
        self.json = format == "json"
        try:
            report = self._dispatch(**options)
        except _Refused as refused:
            message, code = str(refused), refused.exit_code
            report = Report(code, {"ok": False, "exit_code": code, "error": message}, message)
        self._finish(report)

    def _dispatch(
        self,
        *,
        databases: list[str] | None,
        no_lock: bool,
        lock_timeout: float | None,
        check: bool,
        dry_run: bool,
        rollback: int | None,
        mark_fixed: int | None,
        history: int | None,
        verbosity: int,
        interactive: bool = True,
        skip_checks: bool = False,
        max_lock_impact: str | None = None,
        contract: bool = False,
        fleet: bool = False,
        no_defer: bool = False,
        **django_options: Any,
    ) -> Report:
        try:
            conf = get_settings()
            aliases = runner.resolve_aliases(databases, conf)
            # The system checks guard what a run writes: a run or --check that finds every
            # database up to date writes nothing, so it skips them (they cost more than the
            # rest of such a run). --dry-run, --rollback and the rest always run them.
            other_mode = (
                dry_run
                or contract
                or fleet
                or any(v is not None for v in (rollback, history, mark_fixed))
            )
            if not skip_checks and (other_mode or not _up_to_date(aliases)):
                self._system_checks(aliases)
        except (ConfigurationError, SystemCheckError) as exc:
            raise _Refused(str(exc), 2) from exc
        except Error as exc:  # a database check could not reach its server
            raise _Refused(f"Cannot check the databases: {type(exc).__name__}: {exc}", 1) from exc
        if dry_run and (check or history is not None or mark_fixed is not None):
            raise _Refused("--dry-run combines only with a run or --rollback.", 2)
        if max_lock_impact is not None and (
            rollback is not None or check or history is not None or mark_fixed is not None
        ):
            raise _Refused("--max-lock-impact combines only with a run or its --dry-run.", 2)
        if no_defer and (
            check
            or fleet
            or contract
            or rollback is not None
            or history is not None
            or mark_fixed is not None
        ):
            raise _Refused("--no-defer combines only with a run or its --dry-run.", 2)
        if fleet:
            return self._fleet(aliases, conf)
        if contract:
            return self._contract(
                aliases,
                dry_run=dry_run,
                use_lock=not no_lock,
                lock_timeout=lock_timeout,
                verbosity=verbosity,
            )
        if rollback is not None:
            return self._rollback(
                rollback or None,
                aliases,
                conf,
                dry_run=dry_run,
                interactive=interactive,
                use_lock=not no_lock,
                lock_timeout=conf.lock_timeout if lock_timeout is None else lock_timeout,
            )
        if check:
            return self._check(aliases)
        if dry_run:
            if no_defer:
                conf = dataclasses.replace(conf, defer_incompatible=False)
            return self._dry_run(aliases, conf, max_lock_impact or conf.max_lock_impact)
        if mark_fixed is not None:
            return self._mark_fixed(mark_fixed, aliases)
        if history is not None:
            return self._history(aliases, history)
        return self._run(
            aliases,
            use_lock=not no_lock,
            lock_timeout=lock_timeout,
            verbosity=verbosity,
            max_lock_impact=max_lock_impact,
            defer=False if no_defer else None,
        )

    def _system_checks(self, aliases: list[str]) -> None:
        """Django's checks, as ``migrate`` runs them. Database checks need the database: one
        that does not exist yet is created (or reported missing) by the run itself, so it is
        left out of them. No connection stays open through them: replicas that start together
        all check at once, and only one of them will migrate."""
        existing = [alias for alias in aliases if _exists(alias)]
        try:
            for alias in aliases:
                close_unless_in_transaction(connections[alias])
            self.check(databases=existing)
        finally:
            for alias in aliases:
                close_unless_in_transaction(connections[alias])

    # --- modes -------------------------------------------------------------------------------

    def _run(
        self,
        aliases: list[str],
        *,
        use_lock: bool,
        lock_timeout: float | None,
        verbosity: int,
        max_lock_impact: str | None,
        defer: bool | None,
    ) -> Report:
        # The raw stream: migrate wraps what it is given in an OutputWrapper of its own.
        django_output: TextIO = (
            io.StringIO() if self.json or verbosity < 1 else cast(TextIO, self.stdout._out)
        )
        if not use_lock and not self.json and verbosity:
            self.stderr.write("Running without the migration lock (--no-lock).")
        # Text output with progress: this command prints each fact itself, so the log records
        # of the same facts go at DEBUG (one clean stream with the recommended LOGGING).
        printing = not self.json and verbosity >= 1
        try:
            with printed_by_command() if printing else contextlib.nullcontext():
                result = runner.migrate(
                    aliases,
                    trigger=Trigger.COMMAND,
                    use_lock=use_lock,
                    lock_timeout=lock_timeout,
                    stdout=django_output,
                    verbosity=verbosity,
                    max_lock_impact=max_lock_impact,
                    defer=defer,
                )
        except ConfigurationError as exc:
            raise _Refused(str(exc), 2) from exc
        return self._results("run", result, verbosity)

    def _results(self, command: str, result: runner.RunResult, verbosity: int) -> Report:
        if self.json:
            return Report(result.exit_code, {"command": command, **result.to_dict()})
        for database in result.databases:
            line = format_result(database)
            if database.exit_code:
                self.stderr.write(line)
                self._write_traceback(database)
            elif verbosity:
                self.stdout.write(line)
        return Report(result.exit_code)  # each failure was written above, once

    def _contract(
        self,
        aliases: list[str],
        *,
        dry_run: bool,
        use_lock: bool,
        lock_timeout: float | None,
        verbosity: int,
    ) -> Report:
        from django_automigrate.run import contract

        if dry_run:
            conf = get_settings()
            found = {alias: contract.waiting(alias, conf) for alias in aliases}
            if self.json:
                document = {a: [w.to_dict() for w in items] for a, items in found.items()}
                return Report(0, {"command": "contract-dry-run", "deferred": document})
            self.stdout.write(format_deferred(found))
            return Report()
        result = runner.contract(
            aliases, force=True, use_lock=use_lock, lock_timeout=lock_timeout, verbosity=verbosity
        )
        return self._results("contract", result, verbosity)

    def _fleet(self, aliases: list[str], conf: AutomigrateSettings) -> Report:
        from django_automigrate.fleet import registry
        from django_automigrate.fleet.heartbeat import _places

        places = _places(dataclasses.replace(conf, databases=tuple(aliases)))
        members = {}
        for using in places:
            try:
                members[using] = registry.members(using) if registry.table_exists(using) else []
            except Error as exc:
                raise _Refused(f"Cannot read the fleet on {using!r}: {exc}", 1) from exc
        if self.json:
            document = {
                "expiry": conf.fleet_expiry,
                "fleets": {
                    using: [fleet_member_dict(m, conf) for m in found]
                    for using, found in members.items()
                },
            }
            return Report(0, {"command": "fleet", **document})
        self.stdout.write(format_fleet(members, conf))
        return Report()

    def _check(self, aliases: list[str]) -> Report:
        pending: dict[str, list[str]] = {}
        without_file: dict[str, list[str]] = {}
        warnings: list[str] = []
        missing: list[str] = []
        for alias in aliases:
            try:
                if not database_exists(connections[alias]):
                    # Connecting would create a SQLite file: say what a run would do instead.
                    missing.append(alias)
                    pending[alias] = full_plan_labels()
                    continue
                if nothing_pending(connections[alias]):
                    pending[alias] = without_file[alias] = []
                    continue
                work = pending_work(connections[alias])
                pending[alias] = [migration_label(m) for m, _ in work.plan]
                without_file[alias] = work.applied_without_file
                if work.applied_without_file:
                    warnings.append(applied_without_file_warning(alias, work))
            except (AutomigrateError, Error) as exc:
                raise _Refused(f"Cannot read the migration state of {alias!r}: {exc}", 1) from exc
        from django_automigrate.run.deferral import pending as deferred_work

        deferred = {
            alias: [f"{row.migration} #{row.operation_index}" for row in deferred_work(alias)]
            for alias in aliases
            if alias not in missing
        }
        exit_code = 1 if any(pending.values()) else 0
        if self.json:
            document = {
                "pending": pending,
                "deferred": deferred,
                "missing_databases": missing,
                "applied_without_file": without_file,
                "ok": not exit_code,
            }
            return Report(exit_code, {"command": "check", **document})
        for warning in warnings:
            self.stderr.write(warning.removeprefix("automigrate: "))
        for alias, labels in pending.items():
            if alias in missing:
                self.stdout.write(f"{alias}: no database yet, so all {len(labels)} are pending")
            elif labels:
                self.stdout.write(f"{alias}: {len(labels)} pending:")
                self.stdout.write("\n".join(f"  {label}" for label in labels))
            else:
                self.stdout.write(f"{alias}: up to date")
            if deferred.get(alias):
                # Normal during a rolling deploy: not pending, and no reason to fail the check.
                self.stdout.write(
                    f"{alias}: {len(deferred[alias])} deferred operation(s) wait for older code "
                    "to go (see --contract --dry-run)"
                )
        return Report(exit_code)

    def _dry_run(
        self, aliases: list[str], conf: AutomigrateSettings, max_lock_impact: str | None
    ) -> Report:
        from django_automigrate.run import dryrun, impact

        previews = dryrun.preview(aliases, conf)
        over = {
            p.alias: impact.over_limit([(m.migration, m.forecast) for m in p.migrations], limit)
            if (limit := max_lock_impact) is not None
            else []
            for p in previews
        }
        failed = any(p.error for p in previews)
        # Exit 1 (no plan) before 5 (over the limit): a plan not computed was not judged.
        exit_code = 1 if failed else 5 if any(over.values()) else 0
        if self.json:
            document = {
                "ok": not failed,
                "max_lock_impact": max_lock_impact,
                "databases": [
                    {**p.to_dict(), "over_max_lock_impact": [o.migration for o in over[p.alias]]}
                    for p in previews
                ],
                "summary": {
                    "migrations": sum(len(p.migrations) for p in previews),
                    "warnings": sum(p.warning_count for p in previews),
                },
            }
            return Report(exit_code, {"command": "dry-run", **document})
        self.stdout.write(format_dry_run(previews))
        refusals = [
            f"{alias}: a run would apply nothing: {impact.refusal(items, max_lock_impact)}"
            for alias, items in over.items()
            if items and max_lock_impact is not None
        ]
        return Report(exit_code, error="\n".join(refusals))

    def _rollback(
        self,
        run_id: int | None,
        aliases: list[str],
        conf: AutomigrateSettings,
        *,
        dry_run: bool,
        interactive: bool,
        use_lock: bool,
        lock_timeout: float,
    ) -> Report:
        # Imported by the modes that use them: a run with nothing to do never needs them.
        from django_automigrate.run import rollback as undo_run

        try:
            target = undo_run.plan_rollback(undo_run.find_run(run_id, aliases))
        except ConfigurationError as exc:
            raise _Refused(str(exc), 2) from exc
        except (AutomigrateError, Error) as exc:
            raise _Refused(str(exc), 1) from exc
        if dry_run:
            previews = undo_run.preview_sql(target)
            if self.json:
                document = {
                    "ok": True,
                    "run": target.run.pk,
                    "database": target.alias,
                    "migrations": [{"migration": m, "sql": sql} for m, sql in previews],
                }
                return Report(0, {"command": "rollback-dry-run", **document})
            self.stdout.write(
                f"{target.alias}: rolling back run #{target.run.pk} would unapply, in order:"
            )
            for label, statements in previews:
                self.stdout.write(f"  {label}")
                if statements:
                    self.stdout.write("\n".join(f"       {line}" for line in statements))
            return Report()
        if interactive and not self._confirmed(target):
            self.stdout.write("Rollback cancelled; nothing was changed.")
            return Report()
        result = undo_run.roll_back(target, conf, use_lock=use_lock, lock_timeout=lock_timeout)
        if self.json:
            document = {"command": "rollback", "ok": not result.exit_code, **result.to_dict()}
            return Report(result.exit_code, document)
        if result.exit_code:
            self.stderr.write(format_result(result))
            self._write_traceback(result)
            return Report(result.exit_code)
        recorded = f" (run #{result.run_id})" if result.run_id else ""
        self.stdout.write(
            f"{result.alias}: rolled back run #{target.run.pk}: unapplied "
            f"{', '.join(result.rolled_back)}{recorded}."
        )
        return Report()

    def _confirmed(self, target: undo_run.RollbackPlan) -> bool:
        """Ask, as ``flush`` does, listing what goes; refuse (exit 2) where nobody can answer."""
        from django_automigrate.run import rollback as undo_run

        gone = undo_run.losses(target)
        count = len(target.labels)
        what = f"unapply {count} migration(s) of run #{target.run.pk} on {target.alias!r}"
        if gone.tables or gone.columns:
            what += f", dropping {len(gone.tables)} table(s) and {len(gone.columns)} column(s)"
        if self.json or not sys.stdin.isatty():
            raise _Refused(
                f"--rollback would {what}. Nobody can confirm here (no terminal"
                f"{', JSON output' if self.json else ''}): pass --no-input to go ahead, or "
                f"see the list with --rollback {target.run.pk} --dry-run.",
                2,
            )
        lines = [f"This will {what}:", *(f"  {label}" for label in target.labels)]
        if gone.tables:
            lines += ["Tables dropped, with their data:", *(f"  {t}" for t in gone.tables)]
        if gone.columns:
            lines += ["Columns dropped, with their data:", *(f"  {c}" for c in gone.columns)]
        self.stdout.write("\n".join(lines))
        answer = input("Type 'yes' to continue, or 'no' to cancel: ")
        return answer.strip().lower() == "yes"

    def _mark_fixed(self, run_id: int, aliases: list[str]) -> Report:
        try:
            run = mark_fixed(run_id, aliases)
        except ConfigurationError as exc:
            raise _Refused(str(exc), 2) from exc
        except Error as exc:
            raise _Refused(f"Cannot update the history: {exc}", 1) from exc
        message = (
            f"Run #{run.pk} on {run.database!r} ({run.failed_migration}) is marked fixed by hand "
            f"at {run.resolved_at:%Y-%m-%d %H:%M:%S}; runs may migrate {run.database!r} again."
        )
        if self.json:
            return Report(0, {"command": "mark-fixed", "ok": True, "run": _run_dict(run)})
        self.stdout.write(message)
        return Report()

    def _history(self, aliases: list[str], count: int) -> Report:
        runs: list[MigrationRun] = []
        missing: list[str] = []
        for alias in aliases:
            using = history_alias(alias)
            try:
                if not history_table_exists(using):
                    missing.append(alias)
                    continue
                runs.extend(MigrationRun.objects.using(using).filter(database=alias)[:count])
            except Error as exc:
                raise _Refused(f"Cannot read the history of {alias!r}: {exc}", 1) from exc
        runs.sort(key=lambda run: (run.started_at, run.pk), reverse=True)
        runs = runs[:count]
        if self.json:
            document = {"runs": [_run_dict(r) for r in runs], "no_history": missing}
            return Report(0, {"command": "history", **document})
        for alias in missing:
            self.stdout.write(f"{alias}: no history yet (run 'manage.py automigrate' first)")
        self.stdout.write(format_history(runs))
        return Report()

    # --- output ------------------------------------------------------------------------------

    def _write_traceback(self, result: DatabaseResult) -> None:
        """A failed migration's traceback, on stderr where CI and ``kubectl logs`` read it."""
        if result.traceback:
            name = result.failed_migration or "the failed step"
            self.stderr.write(f"Traceback of {name}:\n{result.traceback.rstrip()}")

    def _finish(self, report: Report) -> None:
        """The one way out: the JSON document (in JSON mode), then the exit code; in text mode
        a failure's message goes to stderr as Django prints a ``CommandError``."""
        if self.json and report.document is not None:
            document = {"schema_version": JSON_SCHEMA_VERSION, **report.document}
            self.stdout.write(json.dumps(document, indent=2, default=str))
        if not report.exit_code:
            return
        if report.error and not self.json:
            raise CommandError(report.error, returncode=report.exit_code)
        sys.exit(report.exit_code)


@dataclasses.dataclass(frozen=True)
class Report:
    """What a mode ends with: its exit code, its JSON document, its one-line error."""

    exit_code: int = 0
    document: dict[str, Any] | None = None
    error: str = ""


class _Refused(Exception):
    """A mode cannot go on: its message and exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _run_dict(run: MigrationRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "database": run.database,
        "trigger": run.trigger,
        "status": run.status,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration": run.duration.total_seconds() if run.duration is not None else None,
        "lock_wait": run.lock_wait.total_seconds() if run.lock_wait is not None else None,
        "planned": run.planned,
        "applied": run.applied,
        "failed_migration": run.failed_migration,
        "in_flight": run.in_flight,
        "rollback": run.rollback,
        "rolled_back": run.rolled_back,
        "half_applied": run.half_applied,
        "resolved_at": run.resolved_at.isoformat() if run.resolved_at else None,
        "error_summary": run.error_summary,
        "traceback": run.traceback,
        "host": run.host,
        "pid": run.pid,
        "django_version": run.django_version,
        "release": run.release,
        "deferred": run.deferred,
    }


def _up_to_date(aliases: list[str]) -> bool:
    """Every database exists and is proven up to date without Django's plan."""
    try:
        return all(
            database_exists(connections[alias]) and nothing_pending(connections[alias])
            for alias in aliases
        )
    except (AutomigrateError, Error):
        return False  # the run itself reports it, with its own message


def _exists(alias: str) -> bool:
    try:
        return database_exists(connections[alias])
    except (AutomigrateError, Error):
        return False  # unreachable: the run reports it, with its own message
