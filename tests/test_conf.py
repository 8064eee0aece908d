from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from django_automigrate.conf import AutomigrateSettings, get_settings, read_settings
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
    )


@override_settings(DEBUG=True)
def test_environment_and_create_database_derive_from_debug() -> None:
    conf, _ = read_settings({})

    assert conf.environment == "development"
    assert conf.create_database is True


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
    ],
)
def test_invalid_environment_variables_are_reported_by_name(variable: str, raw: str) -> None:
    conf, problems = read_settings({f"AUTOMIGRATE_{variable}": raw})

    assert ids(problems) == ["automigrate.E006"]
    assert f"AUTOMIGRATE_{variable}" in problems[0].msg
    assert repr(raw) in problems[0].msg
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
