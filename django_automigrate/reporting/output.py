"""Text renderings of results and history, for the command's people-facing output."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from django_automigrate.conf import AutomigrateSettings
from django_automigrate.models import FleetMember, MigrationRun
from django_automigrate.run.runner import (
    DATABASE_MISSING,
    LOCK_TIMEOUT,
    NEEDS_ATTENTION,
    NOT_RUN,
    NOTHING_TO_DO,
    DatabaseResult,
    Outcome,
)

if TYPE_CHECKING:
    from django_automigrate.run.contract import Waiting
    from django_automigrate.run.dryrun import DatabasePreview
    from django_automigrate.run.forecast import MigrationForecast


def format_result(result: DatabaseResult) -> str:
    alias = result.alias
    if result.status == NOTHING_TO_DO:
        if result.applied_by_another_process:
            return (
                f"{alias}: nothing to do: another process applied the migrations while this one "
                f"waited {result.lock_wait:.1f}s for the lock."
            )
        return f"{alias}: nothing to do, up to date."
    if result.status in (
        DATABASE_MISSING,
        NEEDS_ATTENTION,
        Outcome.TOO_DISRUPTIVE,
        Outcome.INCOMPATIBLE,
    ):
        return f"{alias}: {result.error}"
    if result.status == NOT_RUN:
        return f"{alias}: not run, because an earlier database failed."
    run = f" (run #{result.run_id})" if result.run_id else ""
    if result.status == LOCK_TIMEOUT:
        return f"{alias}: lock timeout: {result.error}"
    where = f" at {result.failed_migration}" if result.failed_migration else ""
    if result.status == "rolled_back":
        # The error says why it failed and how it was undone ("The run was one transaction,
        # rolled back: …"); the command prints this line once, then the traceback.
        return f"{alias}: failed{where} after {result.duration:.1f}s{run}: {result.error}"
    if result.status == "timed_out":
        return (
            f"{alias}: timed out{where}{run}: a statement gave up waiting for a table lock. "
            f"{result.error}"
        )
    if result.half_applied:
        return f"{alias}: failed{where}{run}, HALF-APPLIED: {result.error}"
    if result.exit_code:
        kept = (
            f" Applied before the failure and still applied: {', '.join(result.applied)}."
            if result.applied
            else ""
        )
        return f"{alias}: failed{where} after {result.duration:.1f}s{run}: {result.error}{kept}"
    if result.planned and all("#" in label for label in result.planned):
        return (
            f"{alias}: contract step: ran {len(result.applied)} deferred operation(s) in "
            f"{result.duration:.1f}s{run}."
        )
    deferred = (
        f" Deferred until older code is gone: {len(result.deferred)} operation(s) ("
        + "; ".join(f"{d['migration']} {d['description']}" for d in result.deferred)
        + ")."
        if result.deferred
        else ""
    )
    return (
        f"{alias}: applied {len(result.applied)} migration(s) in {result.duration:.1f}s "
        f"(lock wait {result.lock_wait:.1f}s){run}.{deferred}"
    )


def format_history(runs: Sequence[MigrationRun]) -> str:
    if not runs:
        return "No recorded runs."
    header = ("#", "started", "database", "trigger", "status", "applied", "duration", "host")
    rows = [header]
    for run in runs:
        rows.append(
            (
                str(run.pk),
                run.started_at.isoformat(sep=" ", timespec="seconds"),
                run.database,
                run.trigger,
                run.status,
                f"{len(run.applied)}/{len(run.planned)}",
                f"{run.duration.total_seconds():.1f}s" if run.duration is not None else "-",
                f"{run.host} pid {run.pid}" if run.pid else run.host,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    for run in runs:
        if run.error_summary:
            first_line = run.error_summary.splitlines()[0]
            lines.append(f"#{run.pk} {run.status}: {first_line}")
    return "\n".join(lines)


def format_dry_run(previews: Sequence[DatabasePreview]) -> str:
    lines: list[str] = []
    for preview in previews:
        lines.append(f"{preview.alias} ({preview.vendor}):")
        if not preview.lock_usable:
            lines.append(f"  lock: unavailable: {preview.lock}")
        else:
            held = f"held by {preview.lock_holder}" if preview.lock_holder else "free"
            lines.append(f"  lock: {preview.lock}: {held}")
        if preview.error:
            lines.append(f"  error: {preview.error}")
        elif not preview.database_exists and preview.may_create:
            lines.append(
                "  the database does not exist yet: a run would create it (CREATE_DATABASE is "
                "on), then apply (no SQL shown before it exists):"
            )
        elif not preview.database_exists:
            lines.append(
                "  the database does not exist yet, and CREATE_DATABASE is off: a run would stop "
                "with exit code 2. Once it exists, a run would apply:"
            )
        elif not preview.migrations and not preview.unrecorded_squashes:
            lines.append("  nothing to apply")
        for squash in preview.unrecorded_squashes:
            lines.append(
                f"  would record squashed migration {squash} "
                "(already applied through the migrations it replaces)"
            )
        if preview.incompatible:
            lines.append(f"  a run would refuse: {preview.incompatible}")
        elif preview.deferred:
            lines.append(
                f"  {len(preview.deferred)} operation(s) would be deferred while "
                f"{preview.waiting_for} serves:"
            )
            lines.extend(
                f"    {item['migration']} #{item['operation']}: {item['reason']}"
                for item in preview.deferred
            )
        for number, migration in enumerate(preview.migrations, start=1):
            lines.append(f"  {number}. {migration.migration}")
            lines.extend(f"     - {operation}" for operation in migration.operations)
            lines.extend(
                f"     ! {warning.code}: {warning.operation}: {warning.message}"
                for warning in migration.warnings
            )
            if migration.forecast is not None:
                lines.extend(_forecast_lines(migration.forecast))
            if migration.sql is not None:
                statements = migration.sql
                if migration.transaction and statements:
                    statements = ["BEGIN;", *statements, "COMMIT;"]
                lines.extend(
                    f"       {line}" for statement in statements for line in statement.splitlines()
                )
            elif migration.sql_error and preview.database_exists:  # else said once, above
                lines.append(f"       (no SQL: {migration.sql_error})")
    lines.append(
        "Summary: "
        + "; ".join(
            f"{p.alias}: {len(p.migrations)} migration(s), {p.warning_count} warning(s)"
            for p in previews
        )
    )
    return "\n".join(lines)


def _forecast_lines(forecast: MigrationForecast) -> list[str]:
    """The verdict, then one line per statement that locks an existing table (or that cannot
    be judged): its lock, the table's size and rows, and who would block it now."""
    lines = [f"     forecast: {forecast.verdict}: {forecast.message}"]
    for statement in forecast.statements:
        if not statement.locks_something:
            continue
        existing = [table for table in statement.tables if table.exists]
        if not existing:
            lines.append(f"       [{statement.verdict}] {statement.action}: {statement.message}")
            continue
        facts = []
        for table in existing:
            flags = {"rewrites": "rewrites", "scans": "scans", "row_locks": "row locks"}
            what = [word for flag, word in flags.items() if getattr(table, flag)]
            facts.append(table.describe() + (f", {' and '.join(what)}" if what else ""))
        line = f"       [{statement.verdict}] {statement.action}: {'; '.join(facts)}"
        if forecast.blockers_checked:
            sessions = [s for table in existing for s in table.blockers_now]
            unique = list({session.id: session for session in sessions}.values())
            line += (
                "; blocked now by " + "; ".join(session.describe() for session in unique)
                if unique
                else "; no blocker now"
            )
        lines.append(line)
    return lines


def _ago(moment: datetime.datetime) -> str:
    seconds = max(0.0, (timezone.now() - moment).total_seconds())
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def fleet_member_dict(member: FleetMember, conf: AutomigrateSettings) -> dict[str, Any]:
    from django_automigrate.fleet import registry

    return registry.as_dict(member, conf.fleet_expiry)


def format_fleet(members: dict[str, list[FleetMember]], conf: AutomigrateSettings) -> str:
    """What is serving, by release and graph, each process with when it was last seen."""
    from django_automigrate.fleet import registry

    lines = []
    now = timezone.now()
    for using, found in members.items():
        live = [m for m in found if registry.is_live(m, now, conf.fleet_expiry)]
        lines.append(f"{using}: {len(live)} live process(es), {len(found) - len(live)} gone")
        groups: dict[tuple[str, str], list[FleetMember]] = {}
        for member in found:
            groups.setdefault((member.release, member.graph), []).append(member)
        for (release, graph), group in groups.items():
            alive = sum(1 for m in group if registry.is_live(m, now, conf.fleet_expiry))
            name = f"release {release}" if release else "no release label"
            lines.append(f"  {name}, graph {graph}: {alive} live of {len(group)}")
            for member in group:
                state = (
                    "live"
                    if registry.is_live(member, now, conf.fleet_expiry)
                    else "stopped"
                    if member.stopped_at
                    else "gone (no heartbeat)"
                )
                lines.append(
                    f"    {member.kind} {member.host} pid {member.pid}: {state}, "
                    f"last seen {_ago(member.last_seen)}"
                )
    return "\n".join(lines) if lines else "No fleet registered."


def format_deferred(found: dict[str, list[Waiting]]) -> str:
    """The deferred work of each database, and what each operation waits for."""
    from django_automigrate.run.deferral import describe_members

    lines = []
    for alias, items in found.items():
        if not items:
            lines.append(f"{alias}: no deferred work")
            continue
        lines.append(f"{alias}: {len(items)} deferred operation(s):")
        for item in items:
            if item.ready:
                when = "may run now"
            elif item.older:
                when = f"waits for {describe_members(item.older)}"
            else:
                when = "waits for the grace period"
            if item.not_before is not None:
                when += f", not before {item.not_before:%H:%M:%S}"
            lines.append(f"  {item.label()}: deferred {_ago(item.row.deferred_at)}, {when}")
    return "\n".join(lines)
