"""The fast "nothing pending" answer against Django's own plan.

The property: whenever :func:`uptodate.check` says up to date, Django's plan (the one
``migrate`` makes) is empty, with no squash to record and no applied migration without a file.
Hypothesis generates projects (chains, cross-app dependencies, conflicts, squashes with or
without their replaced files, unusual files, ``MIGRATION_MODULES``) and database states
(any subset of rows, rows of deleted files, no table at all), and compares the two answers.
"""

from __future__ import annotations

import dataclasses
import importlib
import py_compile
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.db import connection, connections, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.db.utils import ConnectionHandler
from django.test import override_settings
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from django_automigrate.exceptions import PlanError
from django_automigrate.run import uptodate
from django_automigrate.run.plan import pending_work

APPS = ("uqa", "uqb", "uqc")
ALIAS = "uptodate"

MIGRATION = """from django.db import migrations


class Migration(migrations.Migration):
    dependencies = {dependencies!r}
    replaces = {replaces!r}
    operations = []
"""


@dataclasses.dataclass
class MigrationFile:
    name: str
    dependencies: list[tuple[str, str]]
    replaces: list[tuple[str, str]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class AppLayout:
    #: None: no migrations package at all (an unmigrated app).
    migrations: list[MigrationFile] | None
    #: Files beside the migrations that the loader must skip or that make the answer unsure.
    extras: list[str] = dataclasses.field(default_factory=list)
    #: A migration shipped as a sourceless ``.pyc`` (its ``.py`` removed).
    sourceless: str | None = None


@dataclasses.dataclass
class Case:
    layouts: dict[str, AppLayout]
    rows: set[tuple[str, str]]
    table: bool
    migration_modules: dict[str, str | None]


def one_in(draw: st.DrawFn, n: int) -> bool:
    """True about once in ``n`` draws (a bare ``integers() == 0`` is drawn far more often)."""
    return bool(draw(st.sampled_from([False] * (n - 1) + [True])))


@st.composite
def cases(draw: st.DrawFn) -> Case:
    layouts: dict[str, AppLayout] = {}
    every_name: list[tuple[str, str]] = []
    for index, app in enumerate(APPS):
        if one_in(draw, 10):
            layouts[app] = AppLayout(None)
            continue
        count = draw(st.integers(0, 5))
        files: list[MigrationFile] = []
        for number in range(1, count + 1):
            dependencies: list[tuple[str, str]] = [(app, files[-1].name)] if files else []
            earlier = [key for key in every_name if key[0] in APPS[:index]]
            if earlier and bool(draw(st.booleans())):
                dependencies.append(draw(st.sampled_from(earlier)))
            files.append(MigrationFile(f"{number:04d}_m", dependencies))
        if len(files) >= 2 and one_in(draw, 5):
            # A conflict: a second leaf beside the last migration.
            files.append(MigrationFile(f"{len(files):04d}_other", [(app, files[-2].name)]))
        if len(files) >= 2 and draw(st.booleans()):
            upto = draw(st.integers(2, len(files)))
            replaced = files[:upto]
            external = sorted({d for f in replaced for d in f.dependencies if d[0] != app})
            squash = MigrationFile(
                f"0001_squashed_{upto:04d}_m",
                external,
                replaces=[(app, f.name) for f in replaced],
            )
            # With the replaced files removed (the squash's second step), later migrations
            # still name them, which Django remaps to the squash.
            removed = draw(st.booleans())
            files = [squash, *files[upto:]] if removed else [*files, squash]
        extras = draw(
            st.lists(
                st.sampled_from(
                    ["_helpers.py", "~draft.py", "README.txt", "sql/", "pkg/__init__.py"]
                ),
                unique=True,
            )
        )
        sourceless = None
        if files and one_in(draw, 6):
            sourceless = draw(st.sampled_from([f.name for f in files]))
        layouts[app] = AppLayout(files, extras, sourceless)
        every_name.extend((app, f.name) for f in files)
    # Rows: any subset of the names the project ever had, plus rows of files never here.
    replaced_names = {
        key for lay in layouts.values() for f in lay.migrations or [] for key in f.replaces
    }
    never_here = {(app, "0099_gone") for app in APPS} | {("uqz", "0001_initial")}
    candidates = sorted({*every_name} | replaced_names | never_here)
    # Most often everything on disk is applied (the state to answer fast), else nearly so,
    # or any subset at all.
    mode = draw(st.sampled_from(["all", "all and more", "all but one", "any"]))
    chosen = set(every_name) if mode != "any" else draw(st.sets(st.sampled_from(candidates)))
    if mode == "all and more":
        chosen |= draw(st.sets(st.sampled_from(candidates), max_size=3))
    if mode == "all but one" and chosen:
        chosen.discard(draw(st.sampled_from(sorted(chosen))))
    # Django records a squash only after every migration it replaces (record_migration, then
    # check_replacements), so a squash's row comes with theirs: the one rule of Django's
    # bookkeeping the fast answer trusts (only rows deleted by hand break it).
    for layout in layouts.values():
        for migration in layout.migrations or []:
            if migration.replaces and (migration.replaces[0][0], migration.name) in chosen:
                chosen |= set(migration.replaces)
    overrides: dict[str, str | None] = {}
    if one_in(draw, 7):
        app = draw(st.sampled_from(APPS))
        overrides[app] = draw(st.sampled_from([f"{app}.migrations", None]))
    return Case(layouts, chosen, not one_in(draw, 10), overrides)


def write_project(root: Path, case: Case) -> None:
    for app, layout in case.layouts.items():
        package = root / app
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        if layout.migrations is None:
            continue
        migrations = package / "migrations"
        migrations.mkdir()
        (migrations / "__init__.py").write_text("")
        for migration in layout.migrations:
            source = MIGRATION.format(
                dependencies=migration.dependencies, replaces=migration.replaces
            )
            (migrations / f"{migration.name}.py").write_text(source)
        for extra in layout.extras:
            path = migrations / extra
            if extra.endswith("/"):
                path.mkdir()
            else:
                path.parent.mkdir(exist_ok=True)
                path.write_text("")
        if layout.sourceless:
            source_file = migrations / f"{layout.sourceless}.py"
            py_compile.compile(str(source_file), cfile=str(source_file.with_suffix(".pyc")))
            source_file.unlink()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no stale bytecode between examples
    yield tmp_path
    _forget_modules()


def _forget_modules() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in APPS:
            del sys.modules[name]
    importlib.invalidate_caches()


@dataclasses.dataclass
class Answers:
    fast: uptodate.Answer
    #: Django's plan is empty, with nothing to record and no applied migration without a file;
    #: None when Django raises on this state.
    django_up_to_date: bool | None
    django_error: str = ""


def answers(root: Path, case: Case) -> Answers:
    write_project(root, case)
    sys.path.insert(0, str(root))
    apps.set_installed_apps(list(case.layouts))
    # An alias of its own, known to django.db.connections: the recorder's queries go by alias.
    config = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(root / "db.sqlite3")}
    database = ConnectionHandler({"default": config, ALIAS: config})[ALIAS]
    connections[ALIAS] = database
    try:
        if case.table:
            MigrationRecorder(database).ensure_schema()
            for app, name in sorted(case.rows):
                MigrationRecorder(database).record_applied(app, name)
        with override_settings(MIGRATION_MODULES=case.migration_modules):
            fast = uptodate.check(database)
            try:
                pending = pending_work(database)
            except Exception as exc:  # what migrate would refuse or crash on
                return Answers(fast, None, f"{type(exc).__name__}: {exc}")
        django = pending.empty and not pending.applied_without_file
        return Answers(fast, django, "" if django else repr(pending))
    finally:
        database.close()
        del connections[ALIAS]
        apps.unset_installed_apps()
        sys.path.remove(str(root))
        _forget_modules()


#: Errors Django raises while loading files that are all applied: the fast answer cannot see
#: them (it imports no migration), and the next run with work reports them.
UNSEEN_ERRORS = ("Conflicting migrations", "NodeNotFoundError")


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
def test_up_to_date_only_when_djangos_plan_agrees(
    project: Path, case: Case, django_db_blocker: Any
) -> None:
    root = project / f"p{len(list(project.iterdir()))}"
    with django_db_blocker.unblock():
        result = answers(root, case)
    event(f"fast: {result.fast.up_to_date}, django: {result.django_up_to_date}")
    if result.fast.up_to_date:
        if result.django_up_to_date is None:
            assert result.django_error.startswith(UNSEEN_ERRORS) or any(
                kind in result.django_error for kind in UNSEEN_ERRORS
            ), result.django_error
        else:
            assert result.django_up_to_date, result
    ordinary = (
        case.table
        and not case.migration_modules
        and all(layout.sourceless is None for layout in case.layouts.values())
        and "pkg/__init__.py" not in {e for lay in case.layouts.values() for e in lay.extras}
    )
    on_disk = {
        (app, m.name) for app, layout in case.layouts.items() for m in layout.migrations or []
    }
    migrated = {app for app, layout in case.layouts.items() if layout.migrations is not None}
    if ordinary and {row for row in case.rows if row[0] in migrated} == on_disk:
        # Not needlessly slow: an ordinary project with every file applied is answered fast.
        assert result.fast.up_to_date, result.fast.reason


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_test_projects_own_apps_agree(data: st.DataObject) -> None:
    """The same property on the real apps of this suite (squashes, data migrations, contrib
    apps), with any of their rows forgotten."""
    rows = sorted(MigrationRecorder(connection).applied_migrations())
    assert uptodate.check(connection).up_to_date  # the test database is fully migrated
    forgotten = data.draw(st.sets(st.sampled_from(rows), max_size=5))
    with transaction.atomic():
        for app, name in forgotten:
            MigrationRecorder(connection).migration_qs.filter(app=app, name=name).delete()
        fast = uptodate.check(connection)
        try:
            pending = pending_work(connection)
        except PlanError:  # a row forgotten before its dependents': inconsistent history
            pending = None
        transaction.set_rollback(True)
    if fast.up_to_date:
        assert pending is not None
        assert pending.empty
        assert not pending.applied_without_file
    if forgotten:
        assert not fast.up_to_date  # every row of this project has its file


def test_files_it_does_not_read_make_it_unsure(project: Path, django_db_blocker: Any) -> None:
    case = Case(
        {"uqa": AppLayout([MigrationFile("0001_m", [])], sourceless="0001_m")},
        {("uqa", "0001_m")},
        table=True,
        migration_modules={},
    )
    with django_db_blocker.unblock():
        result = answers(project / "p", case)
    assert not result.fast.up_to_date
    assert "0001_m.pyc" in result.fast.reason
    assert result.django_up_to_date is True  # Django reads it: only the fast answer is unsure


def test_no_table_is_unsure_not_an_error(project: Path, django_db_blocker: Any) -> None:
    case = Case({"uqa": AppLayout([MigrationFile("0001_m", [])])}, set(), False, {})
    with django_db_blocker.unblock():
        result = answers(project / "p", case)
    assert not result.fast.up_to_date
    assert "django_migrations" in result.fast.reason


@pytest.mark.django_db(transaction=True)
def test_a_waiter_sees_the_database_become_up_to_date() -> None:
    from django.core.management import call_command

    watch = uptodate.Watch()
    assert watch.up_to_date(connection)  # the test database is fully migrated
    call_command("migrate", "testapp", "0022", verbosity=0)
    assert not watch.up_to_date(connection)
    call_command("migrate", verbosity=0)
    assert watch.up_to_date(connection)


def test_a_waiter_stops_waiting_once_its_work_is_done_elsewhere() -> None:
    from django_automigrate.locks.base import NoLongerNeeded
    from django_automigrate.locks.sqlite import sqlite_lock

    holder, waiter = sqlite_lock(connection), sqlite_lock(connection)  # in-memory: in-process
    assert holder.try_acquire()
    asked: list[int] = []

    def unneeded() -> bool:
        asked.append(1)
        return len(asked) >= 2  # done elsewhere by the second failed try

    try:
        with pytest.raises(NoLongerNeeded):
            waiter.acquire(60, unneeded=unneeded)
        assert not waiter.try_acquire()  # it never took the lock
    finally:
        holder.release()
    assert len(asked) == 2
