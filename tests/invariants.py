"""The promise, checked after a fault: one helper for tests/test_faults.py and the stress suite.

:func:`verify` looks at a database right after a trial (a holder killed, a connection cut),
runs the next ``automigrate`` as a deploy would, repairs and ``--mark-fixed`` when that run
refuses a half-applied migration, and checks, before and after:

* no (app, name) twice in ``django_migrations``;
* every faultapp (and django_automigrate) table and column exists iff the migration creating it
  is recorded, except a migration the history marks half-applied;
* no ``running`` history row is left once the next run ended;
* each history row's ``applied`` is recorded in ``django_migrations``, unless rolled back;
* the counter table has at most one row per data migration;
* the next run exits 0, or exits 1 refusing with ``--mark-fixed <id>`` of an interrupted row
  that is half-applied (only where the migration in flight was not transactional);
* the health check (``status.database_statuses()`` in a child process) agrees.

``python -m tests.invariants health`` prints ``database_statuses()`` as JSON (the child).
"""

from __future__ import annotations

import collections
import dataclasses
import importlib
import json
import pkgutil
import re
import subprocess
import sys
import time
from typing import Any

from tests.servers import FreshDatabase
from tests.utils import REPO, Result, child_env, run_command

FAULT_APP = "tests.faultapp"
HISTORY_TABLE = "django_automigrate_migrationrun"
#: Migrations that are transactional nowhere (``atomic = False``).
NON_ATOMIC = {"faultapp.0004_nonatomic"}
#: Data migrations counting themselves in faultapp_counter.
DATA_MIGRATIONS = ("0002_count_and_wait", "0003_count")
#: Apps whose tables and columns are checked against django_migrations.
CHECKED_APPS = {
    "faultapp": "tests.faultapp.migrations",
    "django_automigrate": "django_automigrate.migrations",
}


def env(**extra: str) -> dict[str, str]:
    """The environment of every process of a trial: faultapp installed."""
    return {"AUTOMIGRATE_TEST_EXTRA_APPS": FAULT_APP, **extra}


# --- what the migrations create -----------------------------------------------------------------

_schema_cache: dict[str, list[tuple[str, str | None]]] | None = None


def schema_objects() -> dict[str, list[tuple[str, str | None]]]:
    """``app.name`` → the (table, None) and (table, column) its operations create, read from the
    migration modules on disk (CreateModel, AddField), without the app registry."""
    global _schema_cache
    if _schema_cache is not None:
        return _schema_cache
    from django.db.migrations.operations import AddField, CreateModel

    found: dict[str, list[tuple[str, str | None]]] = {}
    tables: dict[tuple[str, str], str] = {}
    for app, package_name in CHECKED_APPS.items():
        package = importlib.import_module(package_name)
        names = sorted(
            m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")
        )
        for name in names:
            migration = importlib.import_module(f"{package_name}.{name}").Migration
            objects: list[tuple[str, str | None]] = []
            for operation in migration.operations:
                if isinstance(operation, CreateModel):
                    table = operation.options.get("db_table") or f"{app}_{operation.name.lower()}"
                    tables[(app, operation.name.lower())] = table
                    objects.append((table, None))
                elif isinstance(operation, AddField):
                    table = tables.get((app, operation.model_name.lower()))
                    if table is None:
                        table = f"{app}_{operation.model_name.lower()}"
                    field = operation.field
                    column = field.db_column or (
                        f"{operation.name}_id" if field.many_to_one else operation.name
                    )
                    objects.append((table, column))
            found[f"{app}.{name}"] = objects
    _schema_cache = found
    return found


# --- reading the database -----------------------------------------------------------------------


def _rows(db: FreshDatabase, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with db.connect() as connection:
        cursor = connection.cursor()
        try:
            cursor.execute(sql, *((params,) if params else ()))
            columns = [c[0] for c in cursor.description]
            return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
        finally:
            cursor.close()


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (bytes, str)):
        loaded: list[str] = json.loads(value)
        return loaded
    return list(value)


def history(db: FreshDatabase) -> list[dict[str, Any]]:
    """Every history row, oldest first; JSON fields as lists, flags as bools."""
    if HISTORY_TABLE not in db.tables():
        return []
    rows = _rows(db, f"SELECT * FROM {HISTORY_TABLE} ORDER BY id")
    for row in rows:
        for key in ("planned", "applied", "rolled_back"):
            if key in row:
                row[key] = _as_list(row[key])
        row["half_applied"] = bool(row.get("half_applied"))
    return rows


def replaces(label: str) -> list[str]:
    """The ``app.name`` labels a squashing migration replaces (empty for any other)."""
    from django.db.migrations.loader import MigrationLoader

    app, name = label.split(".", 1)
    package = CHECKED_APPS.get(app)
    try:
        if package is None:
            package = MigrationLoader.migrations_module(app)[0]
        migration = importlib.import_module(f"{package}.{name}").Migration
    except Exception:  # not an app of this process, or no such module
        return []
    return [f"{a}.{n}" for a, n in getattr(migration, "replaces", [])]


def recorded(db: FreshDatabase) -> list[str]:
    if "django_migrations" not in db.tables():
        return []
    return [f"{app}.{name}" for app, name in db.migration_rows()]


def columns(db: FreshDatabase) -> set[tuple[str, str | None]]:
    """Every (table, None) and (table, column) of the database."""
    found: set[tuple[str, str | None]] = set()
    if db.vendor == "sqlite":
        for table in db.tables():
            found.add((table, None))
            for row in db.query(f'PRAGMA table_info("{table}")'):
                found.add((table, row[1]))
        return found
    if db.vendor == "postgresql":
        rows = db.query(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public'"
        )
    else:
        rows = db.query(
            "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s",
            (db.name,),
        )
    for table, column in rows:
        found.add((table, None))
        found.add((table, column))
    for table in db.tables():
        found.add((table, None))
    return found


def counter_rows(db: FreshDatabase) -> list[str]:
    if "faultapp_counter" not in db.tables():
        return []
    return [row[0] for row in db.query("SELECT migration FROM faultapp_counter")]


# --- the checks ---------------------------------------------------------------------------------


def check_state(db: FreshDatabase, *, settled: bool) -> list[str]:
    """The invariants that hold at any moment (``settled``: and once a run has ended well)."""
    violations: list[str] = []
    labels = recorded(db)
    duplicates = sorted(label for label, n in collections.Counter(labels).items() if n > 1)
    if duplicates:
        violations.append(f"django_migrations holds duplicates: {', '.join(duplicates)}")
    done = set(labels)
    # Django records a squashing migration as its replaced ones, and its own name only at the
    # end of ``migrate`` (check_replacements): applied when all the replaced ones are recorded.
    for label in {m for run in history(db) for m in run["applied"]} - done:
        replaced = replaces(label)
        if replaced and all(r in done for r in replaced):
            done.add(label)
    runs = history(db)
    for label, n in collections.Counter(counter_rows(db)).items():
        if n > 1:
            violations.append(f"data migration {label} ran {n} times (faultapp_counter)")
    for run in runs:
        if run["status"] == "rolled_back":
            continue
        missing = [m for m in run["applied"] if m not in done and m not in run["rolled_back"]]
        if missing:
            violations.append(
                f"run #{run['id']} ({run['status']}) says it applied {', '.join(missing)}, "
                "which django_migrations does not hold"
            )
    if not settled:
        return violations
    for run in runs:
        if run["status"] == "running":
            violations.append(f"run #{run['id']} is still 'running' after the next run ended")
    half = {run["failed_migration"] for run in runs if run["half_applied"]}
    present = columns(db)
    for label, objects in schema_objects().items():
        if label in half:
            continue
        for obj in objects:
            exists = obj in present
            if exists != (label in done):
                what = f"table {obj[0]}" if obj[1] is None else f"column {obj[0]}.{obj[1]}"
                state = "exists" if exists else "is missing"
                violations.append(
                    f"{what} {state} although {label} is "
                    + ("not recorded" if exists else "recorded")
                )
    return violations


def health(db: FreshDatabase, **extra: str) -> list[dict[str, Any]]:
    """``status.database_statuses()`` as a fresh process sees it."""
    process = subprocess.run(
        [sys.executable, "-m", "tests.invariants", "health"],
        cwd=REPO,
        env=child_env(db.url, **env(**extra)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if process.returncode != 0:
        return [
            {
                "alias": "default",
                "healthy": False,
                "reason": f"health child failed: {process.stderr[-500:]}",
            }
        ]
    statuses: list[dict[str, Any]] = json.loads(process.stdout)
    return statuses


def automigrate(db: FreshDatabase, *args: str, **extra: str) -> Result:
    return run_command(db.url, "automigrate", *args, timeout=300, **env(**extra))


def report_of(result: Result) -> dict[str, Any]:
    try:
        document: dict[str, Any] = result.json()
        return dict(document["databases"][0])
    except (ValueError, KeyError, IndexError, TypeError):
        return {"status": "unparsable", "error": (result.out + result.err)[-2000:]}


def repair(db: FreshDatabase, label: str) -> None:
    """What a person would do before ``--mark-fixed``: undo what ``label`` left behind."""
    present = columns(db)
    for table, column in reversed(schema_objects().get(label, [])):
        if (table, column) not in present:
            continue
        if column is None:
            db.execute(f"DROP TABLE {table}")
        elif db.vendor == "mysql":
            db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        else:
            db.execute(f'ALTER TABLE {table} DROP COLUMN "{column}"')
    app, name = label.split(".", 1)
    if app not in CHECKED_APPS:
        # Another app's migration (MySQL: none is transactional): undo it through Django.
        process = subprocess.run(
            [sys.executable, "-m", "tests.invariants", "repair", label],
            cwd=REPO,
            env=child_env(db.url, **env()),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if process.returncode != 0:
            raise RuntimeError(f"repair {label} failed: {process.stderr[-1500:]}")
        return
    if name in DATA_MIGRATIONS and "faultapp_counter" in db.tables():
        placeholder = "?" if db.vendor == "sqlite" else "%s"
        db.execute(f"DELETE FROM faultapp_counter WHERE migration = {placeholder}", (name,))


@dataclasses.dataclass
class Verdict:
    violations: list[str]
    #: Seconds from the start of :func:`verify` until a run succeeded (refusal, repair and
    #: --mark-fixed included).
    recovery: float
    #: What the next runs did: (what, exit code, status, error).
    steps: list[tuple[str, int, str, str]]
    #: The run id a refusal named, if one did.
    refused: int | None = None

    def __str__(self) -> str:
        steps = "\n".join(
            f"  {what}: exit {code} {status} {error[:300]}"
            for what, code, status, error in self.steps
        )
        return "\n".join(self.violations) + "\nsteps:\n" + steps


def verify(
    db: FreshDatabase, extra: dict[str, str] | None = None, *, check_health: bool = True
) -> Verdict:
    """Check the invariants now, run the next ``automigrate`` (and ``--mark-fixed`` if it
    refuses a half-applied migration), check them again; ``extra``: the trial's environment."""
    extra = extra or {}
    started = time.monotonic()
    violations = check_state(db, settled=False)
    steps: list[tuple[str, int, str, str]] = []
    refused: int | None = None
    for attempt in range(3):
        result = automigrate(db, "--format", "json", **extra)
        report = report_of(result)
        steps.append(
            ("automigrate", result.returncode, report.get("status", ""), report.get("error") or "")
        )
        if result.returncode == 0:
            break
        error = report.get("error") or ""
        match = re.search(r"--mark-fixed (\d+)", error)
        if result.returncode != 1 or report.get("status") != "needs_attention" or not match:
            violations.append(
                f"the next run exited {result.returncode} ({report.get('status')}), neither 0 "
                f"nor a refusal naming --mark-fixed: {error[:500] or result.err[-1500:]}"
            )
            return Verdict(violations, time.monotonic() - started, steps)
        if attempt:
            violations.append("the run refused again after --mark-fixed")
            return Verdict(violations, time.monotonic() - started, steps)
        refused = int(match.group(1))
        rows = {row["id"]: row for row in history(db)}
        row = rows.get(refused)
        label = report.get("failed_migration") or (row or {}).get("failed_migration", "")
        if row is None or not row["half_applied"]:
            violations.append(f"the refusal names run #{refused}, not a half-applied row")
        elif row["status"] != "interrupted":
            violations.append(
                f"run #{refused} is half-applied but {row['status']}, not interrupted"
            )
        if label and label not in error:
            violations.append(f"the refusal does not name the migration {label}")
        if not (db.vendor == "mysql" or label in NON_ATOMIC):
            violations.append(f"refused over {label}, which was transactional on {db.vendor}")
        if label.startswith("django_automigrate."):
            violations.append(f"refused over {label}: the tool's own tables must survive a kill")
        if check_health:
            statuses = health(db, **extra)
            if statuses[0]["healthy"] or f"--mark-fixed {refused}" not in statuses[0]["reason"]:
                violations.append(
                    f"the health check does not ask for --mark-fixed {refused}: {statuses}"
                )
        repair(db, label)
        fixed = automigrate(db, "--mark-fixed", str(refused), **extra)
        steps.append(("--mark-fixed", fixed.returncode, "", fixed.err[-300:]))
        if fixed.returncode != 0:
            violations.append(
                f"--mark-fixed {refused} exited {fixed.returncode}: {fixed.err[-500:]}"
            )
            return Verdict(violations, time.monotonic() - started, steps, refused)
    recovery = time.monotonic() - started
    violations += check_state(db, settled=True)
    if check_health:
        statuses = health(db, **extra)
        if not all(status["healthy"] for status in statuses):
            violations.append(f"the health check is red after a successful run: {statuses}")
    return Verdict(violations, recovery, steps, refused)


def _repair(label: str) -> int:
    """Undo by hand what a half-applied migration of any app may have left: drop the tables,
    columns, indexes and constraints it adds, rename back the fields it renames and restore the
    columns it removes, each only where the database shows it (its data migrations of the test
    apps are idempotent; its AlterField operations are left, a rerun repeats them)."""
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader
    from django.db.migrations.operations import RenameField

    app, name = label.split(".", 1)
    loader = MigrationLoader(connection)
    node = (app, name)
    forget: list[tuple[str, str]] = []
    if node in loader.graph.nodes:
        migration = loader.graph.nodes[node]
        before = loader.project_state(node, at_end=False)
        after = loader.project_state(node, at_end=True)
    else:
        # A squashing migration killed while Django recorded the migrations it replaces (one
        # row each, outside any transaction on MySQL): some are recorded, so the graph holds
        # those instead. Undo all of it, and forget the rows recorded so far.
        migration = loader.disk_migrations.get(node)
        replaced = [tuple(r) for r in getattr(migration, "replaces", [])]
        if not replaced or not all(r in loader.graph.nodes for r in replaced):
            print(f"{label} is not in the migration graph", file=sys.stderr)
            return 1
        before = loader.project_state(replaced[0], at_end=False)
        after = loader.project_state(replaced[-1], at_end=True)
        forget = [node, *replaced]
    introspection = connection.introspection

    def tables() -> set[str]:
        with connection.cursor() as cursor:
            return set(introspection.table_names(cursor))

    def columns(table: str) -> set[str]:
        with connection.cursor() as cursor:
            return {c.name for c in introspection.get_table_description(cursor, table)}

    def constraints(table: str) -> set[str]:
        with connection.cursor() as cursor:
            return set(introspection.get_constraints(cursor, table))

    with connection.schema_editor(atomic=False) as editor:
        if connection.vendor == "mysql":
            editor.execute("SET FOREIGN_KEY_CHECKS = 0")

        def drop_table(table: str) -> None:
            if table in tables():
                editor.execute(editor.sql_delete_table % {"table": editor.quote_name(table)})

        for key in after.models:
            new = after.apps.get_model(*key)
            if key not in before.models:
                for field in new._meta.local_many_to_many:
                    if field.remote_field.through._meta.auto_created:
                        drop_table(field.remote_field.through._meta.db_table)
                drop_table(new._meta.db_table)
                continue
            old = before.apps.get_model(*key)
            table = old._meta.db_table
            if table not in tables():
                continue
            old_names = {f.name for f in old._meta.get_fields()}
            new_names = {f.name for f in new._meta.get_fields()}
            present = constraints(table)
            for index in new._meta.indexes:
                if index.name not in {i.name for i in old._meta.indexes} and index.name in present:
                    editor.remove_index(new, index)
            for constraint in new._meta.constraints:
                if constraint.name not in {
                    c.name for c in old._meta.constraints
                } and constraint.name in constraints(table):
                    editor.remove_constraint(new, constraint)
            renamed = {
                op.new_name: op.old_name
                for op in migration.operations
                if isinstance(op, RenameField) and op.model_name_lower == key[1]
            }
            for field in new._meta.local_many_to_many:
                if field.name not in old_names and field.remote_field.through._meta.auto_created:
                    drop_table(field.remote_field.through._meta.db_table)
            for field in new._meta.local_fields:
                if field.name in renamed:
                    previous = old._meta.get_field(renamed[field.name])
                    here = columns(table)
                    if field.column in here and previous.column not in here:
                        editor.alter_field(new, field, previous)
                elif field.name not in old_names and field.column in columns(table):
                    editor.remove_field(new, field)
            for field in old._meta.local_fields:
                if (
                    field.name not in new_names
                    and field.name not in renamed.values()
                    and field.column not in columns(table)
                ):
                    editor.add_field(old, field)
        if connection.vendor == "mysql":
            editor.execute("SET FOREIGN_KEY_CHECKS = 1")
    if forget:
        from django.db.migrations.recorder import MigrationRecorder

        recorder = MigrationRecorder(connection)
        for app_label, migration_name in forget:
            recorder.record_unapplied(app_label, migration_name)
    return 0


def _main(action: str, *args: str) -> int:
    import django

    django.setup()
    if action == "repair":
        return _repair(*args)
    if action == "health":
        from django_automigrate.status import database_statuses

        print(json.dumps([dataclasses.asdict(s) for s in database_statuses()], default=list))
        return 0
    raise SystemExit(f"unknown action {action!r}")


if __name__ == "__main__":
    sys.exit(_main(*sys.argv[1:]))
