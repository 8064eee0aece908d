from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_automigrate.checks import check_settings
from tests.utils import run_command


def ids() -> list[str]:
    return [message.id or "" for message in check_settings()]


def test_valid_settings_give_no_message() -> None:
    assert ids() == []


@pytest.mark.django_db  # Django 6's own checks read the database
@override_settings(AUTOMIGRATE={"MODE": "async"})
def test_errors_are_registered_and_fail_manage_py_check() -> None:
    with pytest.raises(SystemCheckError, match=r"automigrate\.E004"):
        call_command("check")


@override_settings(AUTOMIGRATE={"MODE": "async"})
def test_error_messages_name_the_key_the_value_and_the_fix() -> None:
    (message,) = check_settings()

    assert message.id == "automigrate.E004"
    assert "AUTOMIGRATE['MODE'] is 'async'" in message.msg
    assert "'blocking', 'background'" in message.msg
    assert message.hint


@override_settings(AUTOMIGRATE={"USE_LOCK": False})
def test_running_without_the_lock_is_a_warning() -> None:
    assert ids() == ["automigrate.W001"]


@override_settings(AUTOMIGRATE={"LOCK_BACKEND": "table"})
def test_the_table_lock_is_refused_on_sqlite() -> None:
    (message,) = check_settings()

    assert message.id == "automigrate.E010"
    assert "'default' is SQLite" in message.msg


def test_an_environment_variable_error_fails_check_in_a_real_process() -> None:
    result = run_command(None, "check", AUTOMIGRATE_LOCK_TIMEOUT="soon")

    assert result.returncode == 1
    assert "automigrate.E006" in result.err
    assert "AUTOMIGRATE_LOCK_TIMEOUT='soon'" in result.err


def test_a_backend_without_a_native_lock_is_refused() -> None:
    result = run_command(
        None,
        "check",
        AUTOMIGRATE_TEST_DUMMY_ALIAS="legacy",
        AUTOMIGRATE_DATABASES="default,legacy",
    )

    assert result.returncode == 1
    assert "automigrate.E008" in result.err
    assert "'legacy' uses 'django.db.backends.dummy'" in result.err


def test_a_backend_without_a_native_lock_is_accepted_with_the_table_lock() -> None:
    result = run_command(
        None,
        "check",
        AUTOMIGRATE_TEST_DUMMY_ALIAS="legacy",
        AUTOMIGRATE_DATABASES="default,legacy",
        AUTOMIGRATE_LOCK_BACKEND="table",
    )

    assert "automigrate.E008" not in result.err
