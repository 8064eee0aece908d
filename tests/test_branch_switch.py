"""Applied migrations whose file is gone (a branch switched back, an older release): said at
startup, by a run and by ``--check``, as a warning; never a failure."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.servers import FreshDatabase
from tests.utils import REPO, child_env, run_command

GONE = "branchapp.0002_branch_only"
HINT = "'manage.py migrate branchapp 0001_initial'"


@pytest.fixture
def switched_back(database: FreshDatabase, tmp_path: Path) -> dict[str, Any]:
    """The environment of a project whose branchapp.0002 was applied, then its file removed."""
    shutil.copytree(REPO / "tests" / "branchapp", tmp_path / "branchapp")
    env: dict[str, Any] = {
        "PYTHONPATH": f"{REPO}:{tmp_path}",
        "AUTOMIGRATE_TEST_EXTRA_APPS": "branchapp",
    }
    applied = run_command(database.url, "automigrate", **env)
    assert applied.returncode == 0, applied.err
    assert ("branchapp", "0002_branch_only") in database.migration_rows()
    (tmp_path / "branchapp" / "migrations" / "0002_branch_only.py").unlink()
    shutil.rmtree(tmp_path / "branchapp" / "migrations" / "__pycache__", ignore_errors=True)
    return env


@pytest.mark.parametrize("server", ["sqlite", "postgresql"], indirect=True)
def test_check_says_up_to_date_and_names_the_migration_without_file(
    database: FreshDatabase, switched_back: dict[str, Any]
) -> None:
    text = run_command(database.url, "automigrate", "--check", **switched_back)
    document = run_command(
        database.url, "automigrate", "--check", "--format", "json", **switched_back
    ).json()

    assert text.returncode == 0, text.err
    assert "default: up to date" in text.out
    assert f"have no file here: {GONE}" in text.err
    assert HINT in text.err
    assert "'manage.py migrate --prune branchapp'" in text.err
    assert document["ok"] is True
    assert document["applied_without_file"] == {"default": [GONE]}


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
def test_a_run_and_a_startup_run_warn_and_succeed(
    database: FreshDatabase, switched_back: dict[str, Any]
) -> None:
    run = run_command(database.url, "automigrate", "--format", "json", **switched_back)
    startup = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO,
        env=child_env(
            database.url,
            AUTOMIGRATE_ON_STARTUP="true",
            AUTOMIGRATE_ENVIRONMENT="development",
            **switched_back,
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == 0, run.err
    assert run.json()["databases"][0]["applied_without_file"] == [GONE]
    assert run.json()["databases"][0]["status"] == "nothing_to_do"
    assert f"have no file here: {GONE}" in run.err
    assert startup.returncode == 0, startup.stderr
    warnings = [
        line for line in startup.stderr.splitlines() if GONE in line and "have no file here" in line
    ]
    assert len(warnings) == 1, startup.stderr
    assert HINT in warnings[0]


SQUASH = """
from django.db import migrations, models


class Migration(migrations.Migration):
    replaces = [("branchapp", "0001_initial"), ("branchapp", "0002_branch_only")]
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Note",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("text", models.TextField(default="")),
            ],
        ),
    ]
"""


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
def test_migrations_replaced_by_a_squash_are_not_reported(
    database: FreshDatabase, tmp_path: Path
) -> None:
    shutil.copytree(REPO / "tests" / "branchapp", tmp_path / "branchapp")
    env: dict[str, Any] = {
        "PYTHONPATH": f"{REPO}:{tmp_path}",
        "AUTOMIGRATE_TEST_EXTRA_APPS": "branchapp",
    }
    assert run_command(database.url, "automigrate", **env).returncode == 0
    migrations = tmp_path / "branchapp" / "migrations"
    (migrations / "0001_squashed_0002_branch_only.py").write_text(SQUASH)
    for name in ("0001_initial.py", "0002_branch_only.py"):
        (migrations / name).unlink()
    shutil.rmtree(migrations / "__pycache__", ignore_errors=True)

    document = run_command(database.url, "automigrate", "--check", "--format", "json", **env)

    assert document.json()["applied_without_file"] == {"default": []}, document.err
    assert document.json()["ok"] is True
