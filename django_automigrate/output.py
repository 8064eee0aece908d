"""Text renderings of results and history, for the command's people-facing output."""

from __future__ import annotations

from collections.abc import Sequence

from django_automigrate.models import MigrationRun
from django_automigrate.runner import LOCK_TIMEOUT, NOT_RUN, NOTHING_TO_DO, DatabaseResult


def format_result(result: DatabaseResult) -> str:
    alias = result.alias
    if result.status == NOTHING_TO_DO:
        if result.applied_by_another_process:
            return (
                f"{alias}: nothing to do: another process applied the migrations while this one "
                f"waited {result.lock_wait:.1f}s for the lock."
            )
        return f"{alias}: nothing to do, up to date."
    if result.status == NOT_RUN:
        return f"{alias}: not run, because an earlier database failed."
    run = f" (run #{result.run_id})" if result.run_id else ""
    if result.status == LOCK_TIMEOUT:
        return f"{alias}: lock timeout: {result.error}"
    if result.exit_code:
        where = f" at {result.failed_migration}" if result.failed_migration else ""
        kept = (
            f" Applied before the failure and still applied: {', '.join(result.applied)}."
            if result.applied
            else ""
        )
        return f"{alias}: failed{where} after {result.duration:.1f}s{run}.{kept}"
    return (
        f"{alias}: applied {len(result.applied)} migration(s) in {result.duration:.1f}s "
        f"(lock wait {result.lock_wait:.1f}s){run}."
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
