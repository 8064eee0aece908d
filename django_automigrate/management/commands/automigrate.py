"""``manage.py automigrate``: the same run as at startup, in the foreground.

Exit codes: 0 success or nothing to do; 1 a migration failed (with ``--check``: something is
pending); 2 bad usage or configuration, or a missing database that CREATE_DATABASE does not
allow creating; 3 the migration lock could not be had in time; 4 a statement timed out waiting
for a table lock (STATEMENT_LOCK_TIMEOUT), retries included.
"""

from __future__ import annotations

import io
import json
import sys
from argparse import ArgumentParser, ArgumentTypeError
from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandError, SystemCheckError
from django.db import DatabaseError, connections

from django_automigrate.conf import AutomigrateSettings, get_settings
from django_automigrate.exceptions import AutomigrateError, ConfigurationError
from django_automigrate.models import MigrationRun, Trigger
from django_automigrate.reporting.output import format_dry_run, format_history, format_result
from django_automigrate.run import dryrun, runner
from django_automigrate.run import rollback as undo_run
from django_automigrate.run.database import database_exists
from django_automigrate.run.history import history_alias, history_table_exists, mark_fixed
from django_automigrate.run.plan import full_plan_labels, migration_label, pending_plan

#: Version of the ``--format json`` documents; bumped on any incompatible change.
JSON_SCHEMA_VERSION = 1
DEFAULT_HISTORY_COUNT = 10


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 <= seconds < float("inf"):
        raise ArgumentTypeError(f"{value!r} must be 0 or more seconds")
    return seconds


def _count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise ArgumentTypeError(f"{value!r} is not a whole number") from None
    if count < 1:
        raise ArgumentTypeError(f"{value!r} must be 1 or more")
    return count


class Command(BaseCommand):
    help = (
        "Apply pending migrations under a database lock, exactly once across processes, and "
        "record the run. Exit codes: 0 done or nothing to do, 1 a migration failed (--check: "
        "something is pending), 2 bad usage, configuration or a missing database, 3 the lock was "
        "not had in time, 4 a statement timed out waiting for a table lock."
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
            type=_seconds,
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
            type=_count,
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
            type=_count,
            metavar="RUN_ID",
            help="Record that what run RUN_ID left half-applied was fixed by hand, so that "
            "runs (at startup too) may migrate that database again.",
        )
        mode.add_argument(
            "--history",
            nargs="?",
            type=_count,
            const=DEFAULT_HISTORY_COUNT,
            metavar="N",
            help=f"Show the last N recorded runs (default {DEFAULT_HISTORY_COUNT}).",
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

    def handle(
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
        format: str,
        verbosity: int,
        skip_checks: bool = False,
        **options: Any,
    ) -> None:
        self.json = format == "json"
        try:
            conf = get_settings()
            aliases = runner.resolve_aliases(databases, conf)
            if not skip_checks:
                # Database checks need the database: one that does not exist yet is created (or
                # reported missing) by the run itself, so it is left out of them here.
                self.check(databases=[alias for alias in aliases if _exists(alias)])
        except (ConfigurationError, SystemCheckError) as exc:
            self._fail(str(exc), 2)
        if dry_run and (check or history is not None or mark_fixed is not None):
            self._fail("--dry-run combines only with a run or --rollback.", 2)
        if rollback is not None:
            self._rollback(
                rollback or None,
                aliases,
                conf,
                dry_run=dry_run,
                use_lock=not no_lock,
                lock_timeout=conf.lock_timeout if lock_timeout is None else lock_timeout,
            )
        elif check:
            self._check(aliases)
        elif dry_run:
            self._dry_run(aliases, conf)
        elif mark_fixed is not None:
            self._mark_fixed(mark_fixed, aliases)
        elif history is not None:
            self._history(aliases, history)
        else:
            self._run(aliases, use_lock=not no_lock, lock_timeout=lock_timeout, verbosity=verbosity)

    # --- modes -------------------------------------------------------------------------------

    def _run(
        self, aliases: list[str], *, use_lock: bool, lock_timeout: float | None, verbosity: int
    ) -> None:
        # The raw stream: migrate wraps what it is given in an OutputWrapper of its own.
        django_output: TextIO = (
            io.StringIO() if self.json or verbosity < 1 else cast(TextIO, self.stdout._out)
        )
        if not use_lock and not self.json and verbosity:
            self.stderr.write("Running without the migration lock (--no-lock).")
        try:
            result = runner.migrate(
                aliases,
                trigger=Trigger.COMMAND,
                use_lock=use_lock,
                lock_timeout=lock_timeout,
                stdout=django_output,
                verbosity=verbosity,
            )
        except ConfigurationError as exc:
            self._fail(str(exc), 2)
        if self.json:
            self._emit({"command": "run", **result.to_dict()}, result.exit_code)
            return
        for database in result.databases:
            line = format_result(database)
            if database.exit_code:
                self.stderr.write(line)
            elif verbosity:
                self.stdout.write(line)
        if result.exit_code:
            failed = next(r for r in result.databases if r.exit_code)
            raise CommandError(failed.error, returncode=result.exit_code)

    def _check(self, aliases: list[str]) -> None:
        pending: dict[str, list[str]] = {}
        missing: list[str] = []
        for alias in aliases:
            try:
                if not database_exists(connections[alias]):
                    # Connecting would create a SQLite file: say what a run would do instead.
                    missing.append(alias)
                    pending[alias] = full_plan_labels()
                    continue
                pending[alias] = [migration_label(m) for m, _ in pending_plan(connections[alias])]
            except (AutomigrateError, DatabaseError) as exc:
                self._fail(f"Cannot read the migration state of {alias!r}: {exc}", 1)
        exit_code = 1 if any(pending.values()) else 0
        if self.json:
            document = {"pending": pending, "missing_databases": missing, "ok": not exit_code}
            self._emit({"command": "check", **document}, exit_code)
            return
        for alias, labels in pending.items():
            if alias in missing:
                self.stdout.write(f"{alias}: no database yet, so all {len(labels)} are pending")
            elif labels:
                self.stdout.write(f"{alias}: {len(labels)} pending:")
                self.stdout.write("\n".join(f"  {label}" for label in labels))
            else:
                self.stdout.write(f"{alias}: up to date")
        if exit_code:
            sys.exit(exit_code)

    def _dry_run(self, aliases: list[str], conf: AutomigrateSettings) -> None:
        previews = dryrun.preview(aliases, conf)
        exit_code = 1 if any(p.error for p in previews) else 0
        if self.json:
            document = {
                "ok": not exit_code,
                "databases": [p.to_dict() for p in previews],
                "summary": {
                    "migrations": sum(len(p.migrations) for p in previews),
                    "warnings": sum(p.warning_count for p in previews),
                },
            }
            self._emit({"command": "dry-run", **document}, exit_code)
            return
        self.stdout.write(format_dry_run(previews))
        if exit_code:
            sys.exit(exit_code)

    def _rollback(
        self,
        run_id: int | None,
        aliases: list[str],
        conf: AutomigrateSettings,
        *,
        dry_run: bool,
        use_lock: bool,
        lock_timeout: float,
    ) -> None:
        try:
            target = undo_run.plan_rollback(undo_run.find_run(run_id, aliases))
        except ConfigurationError as exc:
            self._fail(str(exc), 2)
        except (AutomigrateError, DatabaseError) as exc:
            self._fail(str(exc), 1)
        if dry_run:
            previews = undo_run.preview_sql(target)
            if self.json:
                document = {
                    "ok": True,
                    "run": target.run.pk,
                    "database": target.alias,
                    "migrations": [{"migration": m, "sql": sql} for m, sql in previews],
                }
                self._emit({"command": "rollback-dry-run", **document}, 0)
                return
            self.stdout.write(
                f"{target.alias}: rolling back run #{target.run.pk} would unapply, in order:"
            )
            for label, statements in previews:
                self.stdout.write(f"  {label}")
                if statements:
                    self.stdout.write("\n".join(f"       {line}" for line in statements))
            return
        result = undo_run.roll_back(target, conf, use_lock=use_lock, lock_timeout=lock_timeout)
        if self.json:
            self._emit({"command": "rollback", "ok": not result.exit_code, **result.to_dict()},
                       result.exit_code)  # fmt: skip
            return
        if result.exit_code:
            raise CommandError(result.error, returncode=result.exit_code)
        recorded = f" (run #{result.run_id})" if result.run_id else ""
        self.stdout.write(
            f"{result.alias}: rolled back run #{target.run.pk}: unapplied "
            f"{', '.join(result.rolled_back)}{recorded}."
        )

    def _mark_fixed(self, run_id: int, aliases: list[str]) -> None:
        try:
            run = mark_fixed(run_id, aliases)
        except ConfigurationError as exc:
            self._fail(str(exc), 2)
        except DatabaseError as exc:
            self._fail(f"Cannot update the history: {exc}", 1)
        message = (
            f"Run #{run.pk} on {run.database!r} ({run.failed_migration}) is marked fixed by hand "
            f"at {run.resolved_at:%Y-%m-%d %H:%M:%S}; runs may migrate {run.database!r} again."
        )
        if self.json:
            self._emit({"command": "mark-fixed", "ok": True, "run": _run_dict(run)}, 0)
            return
        self.stdout.write(message)

    def _history(self, aliases: list[str], count: int) -> None:
        runs: list[MigrationRun] = []
        missing: list[str] = []
        for alias in aliases:
            using = history_alias(alias)
            try:
                if not history_table_exists(using):
                    missing.append(alias)
                    continue
                runs.extend(MigrationRun.objects.using(using).filter(database=alias)[:count])
            except DatabaseError as exc:
                self._fail(f"Cannot read the history of {alias!r}: {exc}", 1)
        runs.sort(key=lambda run: (run.started_at, run.pk), reverse=True)
        runs = runs[:count]
        if self.json:
            document = {"runs": [_run_dict(r) for r in runs], "no_history": missing}
            self._emit({"command": "history", **document}, 0)
            return
        for alias in missing:
            self.stdout.write(f"{alias}: no history yet (run 'manage.py automigrate' first)")
        self.stdout.write(format_history(runs))

    # --- output ------------------------------------------------------------------------------

    def _emit(self, document: dict[str, Any], exit_code: int) -> None:
        document = {"schema_version": JSON_SCHEMA_VERSION, **document}
        self.stdout.write(json.dumps(document, indent=2, default=str))
        if exit_code:
            sys.exit(exit_code)

    def _fail(self, message: str, exit_code: int) -> Any:
        if self.json:
            self._emit({"ok": False, "exit_code": exit_code, "error": message}, exit_code)
        raise CommandError(message, returncode=exit_code)


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
        "rollback": run.rollback,
        "rolled_back": run.rolled_back,
        "half_applied": run.half_applied,
        "resolved_at": run.resolved_at.isoformat() if run.resolved_at else None,
        "error_summary": run.error_summary,
        "host": run.host,
        "pid": run.pid,
        "django_version": run.django_version,
        "release": run.release,
    }


def _exists(alias: str) -> bool:
    try:
        return database_exists(connections[alias])
    except (AutomigrateError, DatabaseError):
        return False  # unreachable: the run reports it, with its own message
