from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.test import override_settings

from django_automigrate.checks import check_settings
from django_automigrate.management.commands.automigrate import Command
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


def checked() -> list[tuple[str, str, str]]:
    """The whole check, as (id, message, hint) triples: one assertion says everything."""
    return [(m.id or "", m.msg, m.hint or "") for m in check_settings()]


WEEK = "a number of seconds from 0 to 604800 (7 days)"
FIX_LOCK_TIMEOUT = "Fix AUTOMIGRATE['LOCK_TIMEOUT'] in settings.py (default: 300.0)."


@pytest.mark.parametrize(
    ("settings_value", "expected"),
    [
        pytest.param(
            {"LOCK_TIMEOUT": "300"},
            (
                "automigrate.E003",
                "AUTOMIGRATE['LOCK_TIMEOUT'] is '300'; it must be a number of seconds "
                "(int or float).",
                FIX_LOCK_TIMEOUT,
            ),
            id="wrong-type",
        ),
        pytest.param(
            {"LOCK_TIMEOUT": float("inf")},
            (
                "automigrate.E007",
                f"AUTOMIGRATE['LOCK_TIMEOUT'] is inf; it must be {WEEK}.",
                FIX_LOCK_TIMEOUT,
            ),
            id="infinite",
        ),
        pytest.param(
            {"LOCK_TIMEOUT": float("nan")},
            (
                "automigrate.E007",
                f"AUTOMIGRATE['LOCK_TIMEOUT'] is nan; it must be {WEEK}.",
                FIX_LOCK_TIMEOUT,
            ),
            id="nan",
        ),
        pytest.param(
            {"LOCK_TIMEOUT": -1},
            (
                "automigrate.E007",
                f"AUTOMIGRATE['LOCK_TIMEOUT'] is -1; it must be {WEEK}.",
                FIX_LOCK_TIMEOUT,
            ),
            id="negative",
        ),
        pytest.param(
            {"LOCK_TIMEOUT": 1e300},
            (
                "automigrate.E007",
                f"AUTOMIGRATE['LOCK_TIMEOUT'] is 1e+300; it must be {WEEK}.",
                FIX_LOCK_TIMEOUT,
            ),
            id="too-large",
        ),
        pytest.param(
            {"LOCK_TIMEOUT": 10**400},
            (
                "automigrate.E007",
                "AUTOMIGRATE['LOCK_TIMEOUT'] is 1" + "0" * 58 + "… (401 characters); "
                f"it must be {WEEK}.",
                FIX_LOCK_TIMEOUT,
            ),
            id="no-float",
        ),
        pytest.param(
            {"LOCK_LEASE": 0.5},
            (
                "automigrate.E007",
                "AUTOMIGRATE['LOCK_LEASE'] is 0.5; it must be a number of seconds from 1 to "
                "86400 (1 day).",
                "Fix AUTOMIGRATE['LOCK_LEASE'] in settings.py (default: 60.0).",
            ),
            id="lease-too-short",
        ),
        pytest.param(
            {"STATEMENT_LOCK_TIMEOUT": 0},
            (
                "automigrate.E007",
                "AUTOMIGRATE['STATEMENT_LOCK_TIMEOUT'] is 0; it must be 'auto', None (no limit) "
                "or a number of seconds above 0, at most 86400 (1 day).",
                "Fix AUTOMIGRATE['STATEMENT_LOCK_TIMEOUT'] in settings.py (default: 'auto').",
            ),
            id="statement-zero",
        ),
        pytest.param(
            {"STATEMENT_LOCK_RETRIES": 101},
            (
                "automigrate.E007",
                "AUTOMIGRATE['STATEMENT_LOCK_RETRIES'] is 101; it must be a whole number from 0 "
                "to 100.",
                "Fix AUTOMIGRATE['STATEMENT_LOCK_RETRIES'] in settings.py (default: 10).",
            ),
            id="too-many-retries",
        ),
        pytest.param(
            {"STATEMENT_LOCK_RETRIES": 3.0},
            (
                "automigrate.E003",
                "AUTOMIGRATE['STATEMENT_LOCK_RETRIES'] is 3.0; it must be a whole number (an int).",
                "Fix AUTOMIGRATE['STATEMENT_LOCK_RETRIES'] in settings.py (default: 10).",
            ),
            id="float-count",
        ),
        pytest.param(
            {"HISTORY": "false"},
            (
                "automigrate.E003",
                "AUTOMIGRATE['HISTORY'] is 'false'; it must be True or False.",
                "Fix AUTOMIGRATE['HISTORY'] in settings.py (default: True).",
            ),
            id="str-for-bool",
        ),
        pytest.param(
            {"DATABASES": {"default": {}}},
            (
                "automigrate.E003",
                "AUTOMIGRATE['DATABASES'] is {'default': {}}; it must be a list of database "
                "aliases or '__all__'.",
                "Fix AUTOMIGRATE['DATABASES'] in settings.py (default: ('default',)).",
            ),
            id="dict-for-databases",
        ),
        pytest.param(
            {"lock_timeout": 10},
            (
                "automigrate.E002",
                "AUTOMIGRATE has an unknown key 'lock_timeout'.",
                "Did you mean 'LOCK_TIMEOUT'? Known keys: ENABLED, ENVIRONMENT, IN_PRODUCTION, "
                "ON_STARTUP, MODE, DATABASES, USE_LOCK, LOCK_TIMEOUT, LOCK_BACKEND, LOCK_LEASE, "
                "LOG_DETAILS, ON_FAILURE, ROLLBACK_ON_FAILURE, CREATE_DATABASE, HISTORY, "
                "STATEMENT_LOCK_TIMEOUT, CONCURRENT_STATEMENT_LOCK_TIMEOUT, "
                "STATEMENT_LOCK_RETRIES, REBUILD_INVALID_INDEXES, MAX_LOCK_IMPACT, FLEET, "
                "FLEET_HEARTBEAT, DEFER_INCOMPATIBLE, CONTRACT_GRACE, DEFERRED_WARNING_AGE, "
                "MAIL_ADMINS_ON_FAILURE.",
            ),
            id="unknown-key",
        ),
    ],
)
def test_each_kind_of_bad_setting_is_one_error_naming_key_value_and_range(
    settings_value: dict[str, object], expected: tuple[str, str, str]
) -> None:
    with override_settings(AUTOMIGRATE=settings_value):
        assert checked() == [expected]


@pytest.mark.parametrize(
    ("variable", "raw", "allowed"),
    [
        pytest.param("LOCK_TIMEOUT", "inf", WEEK, id="infinite"),
        pytest.param("LOCK_TIMEOUT", "nan", WEEK, id="nan"),
        pytest.param("LOCK_TIMEOUT", "1e400", WEEK, id="overflows"),
        pytest.param("LOCK_TIMEOUT", "604801", WEEK, id="too-large"),
        pytest.param("LOCK_TIMEOUT", "-1", WEEK, id="negative"),
        pytest.param("LOCK_TIMEOUT", "1 0", WEEK, id="blank-inside"),
        pytest.param(
            "STATEMENT_LOCK_TIMEOUT",
            "0",
            "auto (or empty), a number of seconds above 0, at most 86400 (1 day), or none "
            "(no limit)",
            id="statement-zero",
        ),
        pytest.param(
            "STATEMENT_LOCK_RETRIES", "1e2", "a whole number from 0 to 100", id="not-whole"
        ),
    ],
)
def test_each_kind_of_bad_environment_value_is_one_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, raw: str, allowed: str
) -> None:
    monkeypatch.setenv(f"AUTOMIGRATE_{variable}", raw)

    assert checked() == [
        (
            "automigrate.E006",
            f"Environment variable AUTOMIGRATE_{variable}={raw!r} is invalid; it must be "
            f"{allowed}.",
            f"Fix or unset AUTOMIGRATE_{variable}.",
        )
    ]


def test_a_value_with_no_float_fails_check_in_a_real_process_without_a_traceback() -> None:
    # 10**400 as JSON: every manage.py command used to die of an OverflowError here.
    result = run_command(
        None, "check", AUTOMIGRATE_TEST_SETTINGS='{"LOCK_TIMEOUT": 1' + "0" * 400 + "}"
    )

    assert result.returncode == 1
    assert "(automigrate.E007) AUTOMIGRATE['LOCK_TIMEOUT'] is 1000" in result.err
    assert f"it must be {WEEK}." in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize("raw", ["inf", "nan", "1e400", " 1e300 "])
def test_an_unusable_environment_number_fails_check_in_a_real_process(raw: str) -> None:
    result = run_command(None, "check", AUTOMIGRATE_LOCK_TIMEOUT=raw)

    assert result.returncode == 1
    assert f"(automigrate.E006) Environment variable AUTOMIGRATE_LOCK_TIMEOUT={raw!r}" in result.err
    assert "Traceback" not in result.err


def test_the_command_refuses_a_bad_setting_with_exit_code_2_and_no_traceback() -> None:
    result = run_command(
        None, "automigrate", AUTOMIGRATE_TEST_SETTINGS='{"STATEMENT_LOCK_TIMEOUT": Infinity}'
    )

    assert result.returncode == 2
    assert "automigrate.E007" in result.err
    assert "AUTOMIGRATE['STATEMENT_LOCK_TIMEOUT'] is inf" in result.err
    assert "Traceback" not in result.err


RUN_ID = "a whole number from 1 to 9223372036854775807"


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (("--lock-timeout", "inf"), f"argument --lock-timeout: 'inf' is not {WEEK}"),
        (("--lock-timeout", "nan"), f"argument --lock-timeout: 'nan' is not {WEEK}"),
        (("--lock-timeout", "1e400"), f"argument --lock-timeout: '1e400' is not {WEEK}"),
        (("--lock-timeout", "1e300"), f"argument --lock-timeout: '1e300' is not {WEEK}"),
        (("--lock-timeout=-1",), f"argument --lock-timeout: '-1' is not {WEEK}"),
        (("--lock-timeout", "604801"), f"argument --lock-timeout: '604801' is not {WEEK}"),
        (("--lock-timeout", "1_0"), f"argument --lock-timeout: '1_0' is not {WEEK}"),
        (
            ("--history", "0"),
            "argument --history: '0' is not a whole number from 1 to 100000",
        ),
        (
            ("--history", "100001"),
            "argument --history: '100001' is not a whole number from 1 to 100000",
        ),
        (
            ("--history", "2.5"),
            "argument --history: '2.5' is not a whole number from 1 to 100000",
        ),
        (("--rollback", "0"), f"argument --rollback: '0' is not {RUN_ID}"),
        (("--rollback", "inf"), f"argument --rollback: 'inf' is not {RUN_ID}"),
        (
            ("--rollback", str(2**63)),
            f"argument --rollback: '9223372036854775808' is not {RUN_ID}",
        ),
        (("--mark-fixed", "-3"), f"argument --mark-fixed: '-3' is not {RUN_ID}"),
        (
            ("--mark-fixed", "9" * 100),  # shown shortened
            "argument --mark-fixed: '" + "9" * 58 + f"… (102 characters) is not {RUN_ID}",
        ),
    ],
)
def test_a_bad_numeric_flag_is_a_usage_error(arguments: tuple[str, ...], error: str) -> None:
    parser = Command().create_parser("manage.py", "automigrate")

    with pytest.raises(CommandError) as raised:
        parser.parse_args(list(arguments))

    assert str(raised.value) == f"Error: {error}"


@pytest.mark.parametrize(
    ("arguments", "option", "expected"),
    [
        (("--lock-timeout", "604800"), "lock_timeout", 604800.0),
        (("--lock-timeout", " 0 "), "lock_timeout", 0.0),
        (("--history", "100000"), "history", 100000),
        (("--rollback", str(2**63 - 1)), "rollback", 2**63 - 1),
        (("--mark-fixed", "7"), "mark_fixed", 7),
    ],
)
def test_numeric_flags_take_their_bounds(
    arguments: tuple[str, ...], option: str, expected: object
) -> None:
    parser = Command().create_parser("manage.py", "automigrate")

    assert getattr(parser.parse_args(list(arguments)), option) == expected


@pytest.mark.parametrize(
    "arguments",
    [
        ("--lock-timeout", "inf"),
        ("--history", "99999999999999999999999"),
        ("--rollback", "99999999999999999999999"),
        ("--mark-fixed", "0"),
    ],
)
def test_a_bad_numeric_flag_exits_2_with_one_line_in_a_real_process(
    arguments: tuple[str, ...],
) -> None:
    result = run_command(None, "automigrate", *arguments)

    assert result.returncode == 2
    (error,) = [line for line in result.err.splitlines() if "error:" in line]
    assert f"automigrate: error: argument {arguments[0]}: {arguments[1]!r} is not a" in error
    assert "Traceback" not in result.err
    assert result.out == ""
