from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from django_automigrate.conf import (
    FLAG_BOUNDS,
    KEYS,
    KEYS_BY_NAME,
    AutomigrateSettings,
    get_settings,
    read_settings,
    shown,
)
from django_automigrate.exceptions import ConfigurationError


def ids(problems: list[Any]) -> list[str]:
    return [problem.id for problem in problems]


def test_defaults() -> None:
    conf, problems = read_settings({})

    assert problems == []
    assert conf == AutomigrateSettings(
        enabled=True,
        environment="production",
        in_production=False,
        on_startup="auto",
        mode="blocking",
        databases=("default",),
        use_lock=True,
        lock_timeout=300.0,
        lock_backend="auto",
        lock_lease=60.0,
        log_details=True,
        on_failure="raise",
        rollback_on_failure=True,
        create_database=False,
        history=True,
        statement_lock_timeout=2.0,
        statement_lock_retries=10,
        concurrent_statement_lock_timeout=None,
        rebuild_invalid_indexes=False,
        max_lock_impact=None,
        fleet=True,
        fleet_heartbeat=15.0,
        defer_incompatible=True,
        contract_grace=120.0,
        deferred_warning_age=86400.0,
    )


@override_settings(DEBUG=True)
def test_environment_and_create_database_derive_from_debug() -> None:
    conf, _ = read_settings({})

    assert conf.environment == "development"
    assert conf.create_database is True
    assert conf.statement_lock_timeout is None  # no traffic to protect in development
    assert (conf.fleet, conf.defer_incompatible) == (False, False)  # one process, one code


@pytest.mark.parametrize(
    ("setting", "environ", "expected"),
    [
        ({}, {}, 2.0),
        ({"STATEMENT_LOCK_TIMEOUT": "auto"}, {}, 2.0),
        ({"STATEMENT_LOCK_TIMEOUT": None}, {}, None),
        ({"STATEMENT_LOCK_TIMEOUT": 5}, {}, 5.0),
        ({"STATEMENT_LOCK_TIMEOUT": 5}, {"AUTOMIGRATE_STATEMENT_LOCK_TIMEOUT": ""}, 2.0),
        ({}, {"AUTOMIGRATE_STATEMENT_LOCK_TIMEOUT": "off"}, None),
        ({"ENVIRONMENT": "development"}, {}, None),
        ({"ENVIRONMENT": "staging"}, {}, 2.0),
        ({"ENVIRONMENT": "development", "STATEMENT_LOCK_TIMEOUT": 1}, {}, 1.0),
    ],
)
def test_statement_lock_timeout_is_on_outside_development_unless_set(
    setting: dict[str, Any], environ: dict[str, str], expected: float | None
) -> None:
    with override_settings(AUTOMIGRATE=setting):
        conf, problems = read_settings(environ)

    assert problems == []
    assert conf.statement_lock_timeout == expected


@pytest.mark.parametrize(
    ("setting", "environ", "expected"),
    [
        ({}, {}, None),
        ({"MAX_LOCK_IMPACT": "blocks_writes"}, {}, "blocks_writes"),
        ({"MAX_LOCK_IMPACT": "safe"}, {"AUTOMIGRATE_MAX_LOCK_IMPACT": "Rewrites"}, "rewrites"),
        ({"MAX_LOCK_IMPACT": "safe"}, {"AUTOMIGRATE_MAX_LOCK_IMPACT": "off"}, None),
        ({"MAX_LOCK_IMPACT": "safe", "ENVIRONMENT": "development"}, {}, None),
        ({"MAX_LOCK_IMPACT": "safe", "ENVIRONMENT": "staging"}, {}, "safe"),
    ],
)
def test_max_lock_impact_gates_only_outside_development(
    setting: dict[str, Any], environ: dict[str, str], expected: str | None
) -> None:
    with override_settings(AUTOMIGRATE=setting):
        conf, problems = read_settings(environ)

    assert problems == []
    assert conf.max_lock_impact == expected


@pytest.mark.parametrize(
    ("setting", "environ"),
    [({"MAX_LOCK_IMPACT": "huge"}, {}), ({}, {"AUTOMIGRATE_MAX_LOCK_IMPACT": "blocks"})],
)
def test_an_unknown_lock_impact_is_an_error_naming_the_levels(
    setting: dict[str, Any], environ: dict[str, str]
) -> None:
    with override_settings(AUTOMIGRATE=setting):
        _, problems = read_settings(environ)

    assert len(problems) == 1
    assert "MAX_LOCK_IMPACT" in problems[0].msg
    assert "blocks_writes" in (problems[0].msg + (problems[0].hint or ""))


@override_settings(AUTOMIGRATE={"ENVIRONMENT": "staging", "CREATE_DATABASE": True})
def test_explicit_environment_and_create_database_win_over_derivation() -> None:
    conf, _ = read_settings({})

    assert conf.environment == "staging"
    assert conf.create_database is True


@override_settings(AUTOMIGRATE={"LOCK_TIMEOUT": 10, "USE_LOCK": False})
def test_environment_beats_settings_beats_default() -> None:
    conf, problems = read_settings({"AUTOMIGRATE_LOCK_TIMEOUT": "2.5"})

    assert problems == []
    assert conf.lock_timeout == 2.5  # environment
    assert conf.use_lock is False  # settings dict
    assert conf.mode == "blocking"  # default


@pytest.mark.parametrize(
    ("variable", "raw", "attribute", "expected"),
    [
        ("ENABLED", "off", "enabled", False),
        ("ENABLED", " YES ", "enabled", True),
        ("IN_PRODUCTION", "1", "in_production", True),
        ("ON_STARTUP", "auto", "on_startup", "auto"),
        ("ON_STARTUP", "true", "on_startup", True),
        ("ON_STARTUP", "0", "on_startup", False),
        ("MODE", "background", "mode", "background"),
        ("DATABASES", " default ,default", "databases", ("default", "default")),
        ("DATABASES", "__all__", "databases", "__all__"),
        ("LOCK_TIMEOUT", "0", "lock_timeout", 0.0),
        ("LOCK_TIMEOUT", " 10 ", "lock_timeout", 10.0),  # blanks around it are stripped
        ("LOCK_TIMEOUT", "1e3", "lock_timeout", 1000.0),
        ("LOCK_TIMEOUT", "+.5", "lock_timeout", 0.5),
        ("LOCK_TIMEOUT", "604800", "lock_timeout", 604800.0),
        ("LOCK_LEASE", "1", "lock_lease", 1.0),
        ("LOCK_LEASE", "86400", "lock_lease", 86400.0),
        ("STATEMENT_LOCK_TIMEOUT", "0.001", "statement_lock_timeout", 0.001),
        ("STATEMENT_LOCK_TIMEOUT", "86400", "statement_lock_timeout", 86400.0),
        ("STATEMENT_LOCK_TIMEOUT", " none ", "statement_lock_timeout", None),
        ("STATEMENT_LOCK_RETRIES", "0", "statement_lock_retries", 0),
        ("STATEMENT_LOCK_RETRIES", " 100 ", "statement_lock_retries", 100),
        ("ENVIRONMENT", "staging", "environment", "staging"),
        ("CREATE_DATABASE", "true", "create_database", True),
        ("ON_FAILURE", "continue", "on_failure", "continue"),
    ],
)
def test_environment_variables_are_parsed(
    variable: str, raw: str, attribute: str, expected: object
) -> None:
    conf, problems = read_settings({f"AUTOMIGRATE_{variable}": raw})

    assert problems == []
    assert getattr(conf, attribute) == expected


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("ENABLED", "maybe"),  # django-environ alone would read this as False
        ("LOCK_TIMEOUT", "soon"),
        ("LOCK_TIMEOUT", "-1"),
        ("LOCK_TIMEOUT", "inf"),
        ("MODE", "eventually"),
        ("ON_STARTUP", "sometimes"),
        ("DATABASES", " , "),
        ("ENVIRONMENT", "prod"),
        # Numbers: what float() and int() would take but a person does not mean, and what is
        # out of range.
        ("LOCK_TIMEOUT", "nan"),
        ("LOCK_TIMEOUT", "Infinity"),
        ("LOCK_TIMEOUT", "-inf"),
        ("LOCK_TIMEOUT", "1e400"),
        ("LOCK_TIMEOUT", "1e300"),
        ("LOCK_TIMEOUT", "604801"),
        ("LOCK_TIMEOUT", ""),
        ("LOCK_TIMEOUT", "1 0"),
        ("LOCK_TIMEOUT", "1_0"),
        ("LOCK_TIMEOUT", "\u0661\u0660"),  # Arabic-Indic digits
        ("LOCK_TIMEOUT", "0x10"),
        ("LOCK_TIMEOUT", "10s"),
        ("LOCK_LEASE", "0.5"),
        ("LOCK_LEASE", "86401"),
        ("LOCK_LEASE", "inf"),
        ("STATEMENT_LOCK_TIMEOUT", "0"),
        ("STATEMENT_LOCK_TIMEOUT", "nan"),
        ("STATEMENT_LOCK_TIMEOUT", "1e400"),
        ("STATEMENT_LOCK_TIMEOUT", "86401"),
        ("STATEMENT_LOCK_RETRIES", "3.0"),
        ("STATEMENT_LOCK_RETRIES", "1e2"),
        ("STATEMENT_LOCK_RETRIES", "-1"),
        ("STATEMENT_LOCK_RETRIES", "101"),
        ("STATEMENT_LOCK_RETRIES", "9" * 5000),  # int() alone would refuse to read it
        ("STATEMENT_LOCK_RETRIES", "inf"),
    ],
)
def test_invalid_environment_variables_are_reported_by_name(variable: str, raw: str) -> None:
    conf, problems = read_settings({f"AUTOMIGRATE_{variable}": raw})

    assert ids(problems) == ["automigrate.E006"]
    assert f"AUTOMIGRATE_{variable}" in problems[0].msg
    assert shown(raw) in problems[0].msg  # repr(raw), shortened past 60 characters
    # The bad value never takes effect: the default does.
    assert conf == read_settings({})[0]


@pytest.mark.parametrize(
    ("settings_value", "check_id"),
    [
        ({"ENABLED": "yes"}, "automigrate.E003"),
        ({"ENABLED": 1}, "automigrate.E003"),
        ({"LOCK_TIMEOUT": "300"}, "automigrate.E003"),
        ({"LOCK_TIMEOUT": True}, "automigrate.E003"),
        ({"DATABASES": "default"}, "automigrate.E003"),
        ({"DATABASES": []}, "automigrate.E003"),
        ({"MODE": "async"}, "automigrate.E004"),
        ({"ON_STARTUP": 1}, "automigrate.E004"),
        ({"ON_STARTUP": "yes"}, "automigrate.E004"),
        ({"LOCK_BACKEND": "redis"}, "automigrate.E004"),
        ({"ON_FAILURE": "ignore"}, "automigrate.E004"),
        ({"ENVIRONMENT": "prod"}, "automigrate.E004"),
        ({"DATABASES": ["default", "replica"]}, "automigrate.E005"),
        ({"LOCK_TIMEOUT": -5}, "automigrate.E007"),
        ({"LOCK_TIMEOUT": float("nan")}, "automigrate.E007"),
        ({"LOCK_TIMOUT": 10}, "automigrate.E002"),
        # Every numeric key: wrong type, infinities, NaN, negative, and too large to use.
        ({"LOCK_TIMEOUT": None}, "automigrate.E003"),
        ({"LOCK_TIMEOUT": float("inf")}, "automigrate.E007"),
        ({"LOCK_TIMEOUT": float("-inf")}, "automigrate.E007"),
        ({"LOCK_TIMEOUT": 10**400}, "automigrate.E007"),  # no float: was an OverflowError
        ({"LOCK_TIMEOUT": 1e300}, "automigrate.E007"),
        ({"LOCK_TIMEOUT": 7 * 86400 + 1}, "automigrate.E007"),
        ({"LOCK_LEASE": "60"}, "automigrate.E003"),
        ({"LOCK_LEASE": 0.5}, "automigrate.E007"),
        ({"LOCK_LEASE": 86400.5}, "automigrate.E007"),
        ({"LOCK_LEASE": float("inf")}, "automigrate.E007"),
        ({"LOCK_LEASE": float("nan")}, "automigrate.E007"),
        ({"LOCK_LEASE": 10**400}, "automigrate.E007"),
        ({"STATEMENT_LOCK_TIMEOUT": False}, "automigrate.E003"),
        ({"STATEMENT_LOCK_TIMEOUT": 0}, "automigrate.E007"),
        ({"STATEMENT_LOCK_TIMEOUT": -1}, "automigrate.E007"),
        ({"STATEMENT_LOCK_TIMEOUT": 86401}, "automigrate.E007"),
        ({"STATEMENT_LOCK_TIMEOUT": float("inf")}, "automigrate.E007"),
        ({"STATEMENT_LOCK_TIMEOUT": float("nan")}, "automigrate.E007"),
        ({"STATEMENT_LOCK_TIMEOUT": 10**400}, "automigrate.E007"),
        ({"STATEMENT_LOCK_RETRIES": 3.0}, "automigrate.E003"),
        ({"STATEMENT_LOCK_RETRIES": True}, "automigrate.E003"),
        ({"STATEMENT_LOCK_RETRIES": "3"}, "automigrate.E003"),
        ({"STATEMENT_LOCK_RETRIES": float("inf")}, "automigrate.E003"),
        ({"STATEMENT_LOCK_RETRIES": -1}, "automigrate.E007"),
        ({"STATEMENT_LOCK_RETRIES": 101}, "automigrate.E007"),
        ({"STATEMENT_LOCK_RETRIES": 10**400}, "automigrate.E007"),
        # The other keys: weird types.
        ({"USE_LOCK": "False"}, "automigrate.E003"),
        ({"HISTORY": None}, "automigrate.E003"),
        ({"CREATE_DATABASE": "yes"}, "automigrate.E003"),
        ({"DATABASES": {"default": {}}}, "automigrate.E003"),
        ({"DATABASES": {"default"}}, "automigrate.E003"),
        ({"DATABASES": ["default", 1]}, "automigrate.E003"),
        ({"DATABASES": ["default", ""]}, "automigrate.E003"),
        ({"ENVIRONMENT": 1}, "automigrate.E004"),
        ({"MODE": ["blocking"]}, "automigrate.E004"),
        ({"lock_timeout": 10}, "automigrate.E002"),
        ({1: 10}, "automigrate.E002"),
    ],
)
def test_each_invalid_value_has_its_check_id(settings_value: dict[str, Any], check_id: str) -> None:
    with override_settings(AUTOMIGRATE=settings_value):
        _, problems = read_settings({})

    assert ids(problems) == [check_id]


@override_settings(AUTOMIGRATE={"LOCK_TIMOUT": 10})
def test_an_unknown_key_suggests_the_right_one() -> None:
    _, problems = read_settings({})

    assert "'LOCK_TIMOUT'" in problems[0].msg
    assert "Did you mean 'LOCK_TIMEOUT'?" in problems[0].hint


@override_settings(AUTOMIGRATE=["ENABLED"])
def test_a_non_dict_setting_is_reported() -> None:
    _, problems = read_settings({})

    assert ids(problems) == ["automigrate.E001"]


@override_settings(AUTOMIGRATE={"MODE": "async", "LOCK_TIMEOUT": -1})
def test_get_settings_raises_naming_every_problem() -> None:
    with pytest.raises(ConfigurationError) as error:
        get_settings()

    assert "automigrate.E004" in str(error.value)
    assert "automigrate.E007" in str(error.value)
    assert "'MODE'" in str(error.value)


@override_settings(AUTOMIGRATE={"DATABASES": "__all__"})
def test_all_databases_expand_in_settings_order() -> None:
    conf = get_settings()

    assert conf.aliases() == ("default",)


def test_an_environment_list_naming_an_unknown_alias_is_reported() -> None:
    conf, problems = read_settings({"AUTOMIGRATE_DATABASES": "default, replica"})

    assert conf.databases == ("default", "replica")
    assert ids(problems) == ["automigrate.E005"]
    assert "'replica'" in problems[0].msg


def test_a_misspelt_environment_variable_is_a_warning() -> None:
    conf, problems = read_settings({"AUTOMIGRATE_LOCK_TIMOUT": "600", "AUTOMIGRATE_OTHER": "x"})

    assert ids(problems) == ["automigrate.W002"]
    assert "AUTOMIGRATE_LOCK_TIMOUT" in problems[0].msg
    assert problems[0].hint == "Did you mean AUTOMIGRATE_LOCK_TIMEOUT?"
    assert conf.lock_timeout == 300.0


@pytest.mark.parametrize(
    ("settings_value", "attribute", "expected"),
    [
        ({"LOCK_TIMEOUT": 0}, "lock_timeout", 0.0),
        ({"LOCK_TIMEOUT": 7 * 86400}, "lock_timeout", 604800.0),
        ({"LOCK_LEASE": 1}, "lock_lease", 1.0),
        ({"LOCK_LEASE": 86400.0}, "lock_lease", 86400.0),
        ({"STATEMENT_LOCK_TIMEOUT": 0.001}, "statement_lock_timeout", 0.001),
        ({"STATEMENT_LOCK_TIMEOUT": 86400}, "statement_lock_timeout", 86400.0),
        ({"STATEMENT_LOCK_RETRIES": 0}, "statement_lock_retries", 0),
        ({"STATEMENT_LOCK_RETRIES": 100}, "statement_lock_retries", 100),
    ],
)
def test_the_bounds_themselves_are_allowed(
    settings_value: dict[str, Any], attribute: str, expected: object
) -> None:
    with override_settings(AUTOMIGRATE=settings_value):
        conf, problems = read_settings({})

    assert (problems, getattr(conf, attribute)) == ([], expected)


@override_settings(AUTOMIGRATE={"LOCK_TIMEOUT": 10**400})
def test_a_huge_value_is_named_shortened() -> None:
    conf, problems = read_settings({})

    assert [(p.id, p.msg) for p in problems] == [
        (
            "automigrate.E007",
            "AUTOMIGRATE['LOCK_TIMEOUT'] is 1" + "0" * 58 + "… (401 characters); "
            "it must be a number of seconds from 0 to 604800 (7 days).",
        )
    ]
    assert conf.lock_timeout == 300.0


@override_settings(AUTOMIGRATE={"STATEMENT_LOCK_RETRIES": 10**5000})
def test_an_int_too_long_for_text_is_described_by_its_size() -> None:
    _, problems = read_settings({})

    assert "is an int of 16610 bits;" in problems[0].msg


@override_settings(AUTOMIGRATE={"lock_timeout": 10})
def test_a_key_in_lower_case_suggests_the_key() -> None:
    _, problems = read_settings({})

    assert problems[0].hint.startswith("Did you mean 'LOCK_TIMEOUT'?")


def test_every_numeric_key_is_bounded_and_the_flags_share_the_key_bounds() -> None:
    numeric = [key.name for key in KEYS if key.bounds is not None]

    assert numeric == [
        "LOCK_TIMEOUT",
        "LOCK_LEASE",
        "STATEMENT_LOCK_TIMEOUT",
        "CONCURRENT_STATEMENT_LOCK_TIMEOUT",
        "STATEMENT_LOCK_RETRIES",
        "FLEET_HEARTBEAT",
        "CONTRACT_GRACE",
        "DEFERRED_WARNING_AGE",
    ]
    # Every other key's default is no number (so no numeric key lacks bounds).
    assert not [
        key.name
        for key in KEYS
        if key.bounds is None
        and isinstance(key.default, int | float)
        and not isinstance(key.default, bool)
    ]
    assert FLAG_BOUNDS["--lock-timeout"] is KEYS_BY_NAME["LOCK_TIMEOUT"].bounds
    assert set(FLAG_BOUNDS) == {"--lock-timeout", "--history", "--rollback", "--mark-fixed"}
