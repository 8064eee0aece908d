"""The SQLite lock belongs to the database file, however ``NAME`` reaches it: a symlinked release
folder, a symlinked file, a relative path, a ``file:`` URI. In-memory URIs take the in-process
lock. Real processes hold and wait, as replicas do."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db.backends.sqlite3.base import DatabaseWrapper

from django_automigrate.conf import read_settings
from django_automigrate.exceptions import ConfigurationError
from django_automigrate.locks import lock_for
from django_automigrate.locks.sqlite import (
    InMemoryLock,
    SQLiteFileLock,
    database_file,
    database_identity,
    lock_path,
)
from django_automigrate.run.database import database_exists, ensure_database
from tests.servers import FreshDatabase, Server
from tests.utils import (
    REPO,
    Result,
    finish,
    run_command,
    start_command,
    start_lock_holder,
    try_lock,
)

pytestmark = pytest.mark.drivers


def sqlite_connection(name: str | os.PathLike[str]) -> DatabaseWrapper:
    """A connection object for ``NAME`` (never connected)."""
    return DatabaseWrapper({"ENGINE": "django.db.backends.sqlite3", "NAME": name, "OPTIONS": {}})


# --- reading NAME ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("db.sqlite3", "db.sqlite3"),
        ("/srv/app/db.sqlite3", "/srv/app/db.sqlite3"),
        (Path("/srv/app/db.sqlite3"), "/srv/app/db.sqlite3"),
        ("file:db.sqlite3", "db.sqlite3"),
        ("file:/srv/app/db.sqlite3?mode=rwc", "/srv/app/db.sqlite3"),
        ("file:///srv/app/db.sqlite3?cache=shared", "/srv/app/db.sqlite3"),
        ("file://localhost/srv/app/db.sqlite3", "/srv/app/db.sqlite3"),
        ("file:/srv/my%20app/db.sqlite3?mode=ro#part", "/srv/my app/db.sqlite3"),
        ("file:/srv/app/db.sqlite3#part?mode=memory", "/srv/app/db.sqlite3"),  # a fragment
        ("FILE:db.sqlite3", "FILE:db.sqlite3"),  # SQLite's scheme is lower case
    ],
)
def test_the_file_a_name_opens(name: str, path: str) -> None:
    assert database_file(name) == Path(path)


@pytest.mark.parametrize(
    "name",
    [
        ":memory:",
        "file::memory:",
        "file::memory:?cache=shared",
        "file:memorydb_default?mode=memory&cache=shared",  # Django's test database
        "file:db?mode=%6Demory",  # percent-escaped, as SQLite decodes it
        "file:",  # a temporary database, private to its connection
        "file:?cache=private",
    ],
)
def test_in_memory_names_take_the_in_process_lock(name: str) -> None:
    connection = sqlite_connection(name)

    assert database_file(name) is None
    assert type(lock_for(connection, read_settings({})[0], use_lock=True)) is InMemoryLock
    assert database_exists(connection)  # nothing to create, and no file looked for


def test_a_uri_naming_another_host_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"names the host 'db\.example\.com'"):
        database_file("file://db.example.com/srv/app/db.sqlite3")


# --- one file, one lock -------------------------------------------------------------------------


@dataclass
class Tree:
    """A release layout (as Capistrano makes it): the database file in ``shared/``, a symlink to
    it in ``releases/42/``, and ``current`` a symlink to ``releases/42``."""

    database: FreshDatabase
    real: Path  # shared/<name>.sqlite3
    linked: Path  # current/<name>.sqlite3: a symlinked folder, then a symlinked file

    @property
    def lock(self) -> Path:
        return self.real.with_name(self.real.name + ".automigrate.lock")


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    base = tmp_path.resolve()
    shared, release = base / "shared", base / "releases" / "42"
    shared.mkdir()
    release.mkdir(parents=True)
    database = Server("sqlite", folder=shared).create_database()
    # database.path is "//tmp/…" (from the URL "sqlite:////tmp/…"): the same file, spelt so.
    real = shared / database.path.name
    (release / real.name).symlink_to(real)
    (base / "current").symlink_to(release, target_is_directory=True)
    (base / "shared-link").symlink_to(shared, target_is_directory=True)
    return Tree(database, real, base / "current" / real.name)


def other_spellings(tree: Tree) -> dict[str, str]:
    """NAMEs (AUTOMIGRATE_TEST_SQLITE_NAME) of ``tree``'s database other than its real path."""
    base = tree.real.parent.parent
    relative = os.path.relpath(tree.linked, REPO)  # from the children's working directory
    return {
        "release": str(tree.linked),
        "symlinked-folder": str(base / "shared-link" / tree.real.name),
        "symlinked-file": str(base / "releases" / "42" / tree.real.name),
        "relative": relative,
        "dotted": f"{base}/current/../42/./{tree.real.name}",
        "uri-path": f"file:{tree.linked}?mode=rwc",
        "uri-relative": f"file:{relative}",
        "uri-authority": f"file://{tree.linked}?cache=shared",
        "uri-localhost": f"file://localhost{tree.linked}",
    }


def test_every_spelling_of_one_file_has_one_lock_beside_the_real_file(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # what the relative spellings are relative to

    names = {
        SQLiteFileLock(sqlite_connection(name)).name
        for name in [str(tree.real), *other_spellings(tree).values()]
    }

    assert names == {f"file lock {str(tree.lock)!r}"}
    assert lock_path(tree.linked) == tree.lock


@pytest.mark.parametrize(
    "spelling",
    [
        "release",
        "symlinked-folder",
        "symlinked-file",
        "relative",
        "dotted",
        "uri-path",
        "uri-relative",
        "uri-authority",
        "uri-localhost",
    ],
)
def test_a_lock_held_through_one_path_is_held_for_every_other(tree: Tree, spelling: str) -> None:
    name = other_spellings(tree)[spelling]
    holder = start_lock_holder(tree.database.url, seconds=120)
    try:
        report = try_lock(tree.database.url, "0.2", AUTOMIGRATE_TEST_SQLITE_NAME=name)
    finally:
        holder.kill()
        holder.communicate()

    assert report["acquired"] is False, report
    assert report["exit_code"] == 3
    assert f"pid {holder.pid}," in report["holder"]
    assert report["name"] == f"file lock {str(tree.lock)!r}"


def test_the_lock_is_free_through_every_path_once_its_holder_died(tree: Tree) -> None:
    holder = start_lock_holder(tree.database.url, seconds=120)
    holder.kill()
    holder.communicate()

    report = try_lock(tree.database.url, "0", AUTOMIGRATE_TEST_SQLITE_NAME=str(tree.linked))

    assert report["acquired"] is True, report


def _read_until(process: subprocess.Popen[str], text: str) -> str:
    """The process's stderr up to the first line with ``text``; fails if it ends first."""
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if text in line:
            return "".join(seen)
    process.wait()
    raise AssertionError(f"the process ended without saying {text!r}:\n{''.join(seen)}")


def test_two_runs_through_two_paths_apply_once(tree: Tree) -> None:
    holder = start_lock_holder(tree.database.url, seconds=120)
    runs = []
    try:
        for name in (str(tree.real), str(tree.linked)):
            runs.append(
                start_command(
                    None,
                    "automigrate",
                    "--lock-timeout",
                    "120",
                    AUTOMIGRATE_TEST_SQLITE_NAME=name,
                )
            )
        # Both wait for the one lock (the handshake: each says so), then the holder goes.
        waited = [_read_until(run, "waiting for the migration lock") for run in runs]
    finally:
        holder.kill()
        holder.communicate()
        results = [finish(run) for run in runs]

    assert [result.returncode for result in results] == [0, 0], [r.err for r in results]
    for log in waited:
        assert f"held by {_host()} pid {holder.pid}," in log
        assert f"file lock {str(tree.lock)!r}" in log
    history = tree.database.history_rows()
    applying = [row for row in history if json.loads(row["applied"])]
    assert len(applying) == 1, history
    migrations = tree.database.migration_rows()
    assert migrations
    assert len(migrations) == len(set(migrations))


def _host() -> str:
    import socket

    return socket.gethostname()


# --- file: URIs, relative paths and symlinks, end to end ------------------------------------------


@pytest.mark.parametrize(
    "spelling", ["uri-path", "uri-relative", "uri-authority", "uri-localhost", "relative"]
)
def test_the_command_runs_on_a_name_given_as_a_uri_or_relative_path(
    tree: Tree, spelling: str
) -> None:
    name = other_spellings(tree)[spelling]

    def automigrate(*args: str) -> Result:
        return run_command(None, "automigrate", *args, AUTOMIGRATE_TEST_SQLITE_NAME=name)

    applied = automigrate("--format", "json")
    check = automigrate("--check")
    history = automigrate("--history", "--format", "json")
    dry_run = automigrate("--dry-run", "--format", "json")

    assert applied.returncode == 0, applied.err
    (database,) = applied.json()["databases"]
    assert (database["status"], database["lock"]) == ("succeeded", f"file lock {str(tree.lock)!r}")
    assert (check.returncode, check.out) == (0, "default: up to date\n")
    assert [run["status"] for run in history.json()["runs"]] == ["succeeded"]
    assert dry_run.returncode == 0, dry_run.err
    assert dry_run.json()["databases"][0]["database_exists"] is True
    rows = tree.database.history_rows()
    assert [row["status"] for row in rows] == ["succeeded"]
    assert tree.lock.exists()
    assert not [entry for entry in os.listdir(REPO) if entry.startswith("file:")]


@pytest.mark.parametrize(
    "name", ["file::memory:", "file:automigrate_memdb?mode=memory&cache=shared", "file:"]
)
def test_the_command_runs_on_an_in_memory_uri(name: str) -> None:
    result = run_command(None, "automigrate", "--format", "json", AUTOMIGRATE_TEST_SQLITE_NAME=name)

    assert result.returncode == 0, result.err
    (database,) = result.json()["databases"]
    assert (database["status"], database["lock"]) == (
        "succeeded",
        "in-process lock (in-memory SQLite)",
    )
    assert not [entry for entry in os.listdir(REPO) if "memdb" in entry or "memory" in entry]


def test_a_missing_database_behind_a_dangling_symlink_is_created_where_it_points(
    tmp_path: Path,
) -> None:
    base = tmp_path.resolve()
    (base / "current").symlink_to(base / "shared", target_is_directory=True)  # not there yet
    name = f"file:{base / 'current' / 'db.sqlite3'}?mode=rwc"

    result = run_command(
        None,
        "automigrate",
        AUTOMIGRATE_TEST_SQLITE_NAME=name,
        AUTOMIGRATE_CREATE_DATABASE="true",
    )

    assert result.returncode == 0, result.err
    assert (base / "shared" / "db.sqlite3").is_file()
    assert (base / "shared" / "db.sqlite3.automigrate.lock").exists()


def test_ensure_database_creates_the_real_folder(tmp_path: Path) -> None:
    base = tmp_path.resolve()
    (base / "current").symlink_to(base / "shared", target_is_directory=True)
    connection = sqlite_connection(base / "current" / "data" / "db.sqlite3")

    assert ensure_database(connection, create=True) is True
    assert (base / "shared" / "data").is_dir()
    assert database_identity(connection.settings_dict["NAME"]) == (
        base / "shared" / "data" / "db.sqlite3"
    )
