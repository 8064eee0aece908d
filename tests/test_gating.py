"""Which processes migrate at startup: the decision, rule by rule (real processes: test_startup)."""

from __future__ import annotations

import dataclasses

import pytest

from django_automigrate.conf import read_settings
from django_automigrate.startup.gating import Process, decide


def process(*argv: str, modules: tuple[str, ...] = (), **environ: str) -> Process:
    return Process(list(argv), environ, frozenset(modules))


def conf(**changes: object) -> object:
    settings, _ = read_settings({})
    changes.setdefault("environment", "development")
    return dataclasses.replace(settings, **changes)  # type: ignore[arg-type]


GUNICORN = process("/srv/bin/gunicorn", "app.wsgi", modules=("gunicorn.arbiter",))


@pytest.mark.parametrize(
    ("proc", "runs", "reason"),
    [
        (GUNICORN, True, "gunicorn"),
        (
            process("/usr/lib/python3/gunicorn/__main__.py", modules=("gunicorn.arbiter",)),
            True,
            "gunicorn",
        ),
        (process("/srv/bin/x", SERVER_SOFTWARE="gunicorn/23.0"), True, "gunicorn"),
        (
            process("/srv/bin/uvicorn", "app.asgi:application", modules=("uvicorn",)),
            True,
            "uvicorn",
        ),
        (process("daphne", modules=("daphne.server",)), True, "daphne"),
        (process("uwsgi", modules=("uwsgi",)), True, "uwsgi"),
        (process("hypercorn", modules=("hypercorn",)), True, "hypercorn"),
        (process("granian", modules=("granian",)), True, "granian"),
        (process("manage.py", "runserver", RUN_MAIN="true"), True, "runserver"),
        (process("manage.py", "runserver", "--noreload"), True, "runserver"),
        (process("manage.py", "runserver"), False, "autoreloader parent"),
        (process("manage.py", "runserver_plus", WERKZEUG_RUN_MAIN="true"), True, "runserver_plus"),
        (process("manage.py", "shell"), False, "management command 'shell' does not serve"),
        (process("manage.py", "collectstatic"), False, "'collectstatic' does not serve"),
        (process("manage.py", "check"), False, "'check' does not serve"),
        (process("manage.py", "migrate"), False, "'migrate' (migrations and tests run alone)"),
        (process("manage.py", "makemigrations"), False, "'makemigrations'"),
        (process("manage.py", "test"), False, "'test'"),
        (process("manage.py", "automigrate"), False, "'automigrate'"),
        (process("/srv/bin/django-admin", "migrate"), False, "'migrate'"),
        (process("/x/django/__main__.py", "squashmigrations"), False, "'squashmigrations'"),
        (process("/srv/bin/celery", "-A", "proj", "worker"), False, "not a web server process"),
        (process("manage.py", "runserver", RUN_MAIN="true", PYTEST_VERSION="9"), False, "pytest"),
        (process("/srv/bin/pytest", modules=("pytest", "gunicorn.arbiter")), False, "pytest"),
    ],
)
def test_auto_runs_only_in_serving_processes(proc: Process, runs: bool, reason: str) -> None:
    decision = decide(conf(), proc)  # type: ignore[arg-type]

    assert decision.run is runs
    assert reason in decision.reason


@pytest.mark.parametrize(
    ("proc", "runs"),
    [
        (process("manage.py", "shell"), True),
        (process("/srv/bin/celery", "worker"), True),
        (process("manage.py", "migrate"), False),
        (process("manage.py", "test"), False),
        (process("manage.py", "runserver"), False),
        (process("pytest", PYTEST_VERSION="9"), False),
    ],
)
def test_on_startup_true_runs_everywhere_but_migration_commands_and_tests(
    proc: Process, runs: bool
) -> None:
    assert decide(conf(on_startup=True), proc).run is runs  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "runs", "reason"),
    [
        ({"enabled": False}, False, "ENABLED is off"),
        ({"on_startup": False}, False, "ON_STARTUP is off"),
        (
            {"environment": "production"},
            False,
            "environment is production and IN_PRODUCTION is off",
        ),
        ({"environment": "production", "in_production": True}, True, "environment production"),
        ({"environment": "staging"}, True, "environment staging"),
        ({"environment": "development"}, True, "environment development"),
        ({"mode": "background"}, True, "mode background"),
    ],
)
def test_settings_gate_a_serving_process(
    settings: dict[str, object], runs: bool, reason: str
) -> None:
    decision = decide(conf(**settings), GUNICORN)  # type: ignore[arg-type]

    assert decision.run is runs
    assert reason in decision.reason


def test_a_management_command_is_recognised_whatever_the_script_is_called() -> None:
    wrapper = Process(["/srv/app/manage"], {}, frozenset(), ["/srv/app/manage", "migrate"])

    decision = decide(conf(on_startup=True), wrapper)  # type: ignore[arg-type]

    assert decision.run is False
    assert "'migrate'" in decision.reason


def test_the_decision_reads_as_a_log_line() -> None:
    decision = decide(conf(environment="production"), GUNICORN)  # type: ignore[arg-type]

    assert decision.message() == (
        "automigrate: skipped at startup: environment is production and IN_PRODUCTION is off"
    )
