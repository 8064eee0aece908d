"""The ``AUTOMIGRATE`` settings: defaults, environment overrides and validation, in one place.

Precedence: environment variable ``AUTOMIGRATE_<KEY>`` > ``settings.AUTOMIGRATE[KEY]`` > default.
Nothing is cached and nothing is written into ``django.conf.settings``: every call re-reads, so
``override_settings`` and a changed environment are seen at once (reading is a few dict lookups).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import environ
from django.conf import settings

from django_automigrate.exceptions import ConfigurationError

ENVIRONMENTS = ("development", "staging", "production")
ON_STARTUP_CHOICES = ("auto", True, False)
MODES = ("blocking", "background")
LOCK_BACKENDS = ("auto", "table")
ON_FAILURE_CHOICES = ("raise", "continue")
ALL_DATABASES: Final = "__all__"

ENV_PREFIX = "AUTOMIGRATE_"
_TRUE = frozenset(s.lower() for s in environ.Env.BOOLEAN_TRUE_STRINGS)
_FALSE = frozenset({"false", "off", "no", "n", "0"})


@dataclass(frozen=True)
class Problem:
    """One invalid setting, turned into a system check message by ``checks.py``."""

    id: str
    msg: str
    hint: str


class InvalidValue(ValueError):
    """A value that cannot be used; ``check_id`` says which kind of mistake it is."""

    def __init__(self, check_id: str, allowed: str) -> None:
        super().__init__(allowed)
        self.check_id = check_id
        self.allowed = allowed


# --- validators for values from the settings dict (Python objects) -----------------------------


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidValue("automigrate.E003", "True or False")
    return value


def _optional_bool(value: Any) -> bool | None:
    return None if value is None else _bool(value)


def _choice(choices: tuple[Any, ...]) -> Callable[[Any], Any]:
    def validate(value: Any) -> Any:
        for choice in choices:
            # `True == 1` in Python: compare types too, so 1 is not accepted for True.
            if type(value) is type(choice) and value == choice:
                return value
        raise InvalidValue("automigrate.E004", "one of " + ", ".join(repr(c) for c in choices))

    return validate


def _optional_environment(value: Any) -> str | None:
    return None if value is None else _choice(ENVIRONMENTS)(value)


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValue("automigrate.E003", "a number of seconds (int or float)")
    if value < 0 or value != value or value == float("inf"):
        raise InvalidValue("automigrate.E007", "a finite number of seconds, 0 or more")
    return float(value)


def _optional_seconds(value: Any) -> float | None:
    if value is None:
        return None
    seconds = _seconds(value)
    if seconds == 0:
        raise InvalidValue("automigrate.E007", "None (no limit) or more than 0 seconds")
    return seconds


def _positive_seconds(value: Any) -> float:
    seconds = _seconds(value)
    if seconds < 1:
        raise InvalidValue("automigrate.E007", "1 second or more")
    return seconds


def _env_positive_seconds(raw: str) -> float:
    try:
        return _positive_seconds(_env_seconds(raw))
    except InvalidValue:
        raise InvalidValue("automigrate.E006", "a number of seconds, 1 or more") from None


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue("automigrate.E003", "a whole number")
    if value < 0:
        raise InvalidValue("automigrate.E007", "0 or more")
    return value


def _aliases(value: Any) -> tuple[str, ...] | Literal["__all__"]:
    if value == ALL_DATABASES:
        return ALL_DATABASES
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InvalidValue("automigrate.E003", f"a list of database aliases or {ALL_DATABASES!r}")
    if not value or not all(isinstance(alias, str) and alias for alias in value):
        raise InvalidValue("automigrate.E003", "a non-empty list of alias strings")
    return tuple(value)


# --- parsers for environment variables (strings) --------------------------------------------------


def _env_bool(raw: str) -> bool:
    word = raw.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise InvalidValue("automigrate.E006", "true or false (also: 1/0, yes/no, on/off)")


def _env_optional_bool(raw: str) -> bool | None:
    return None if raw.strip() == "" else _env_bool(raw)


def _env_choice(choices: tuple[Any, ...]) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        word = raw.strip().lower()
        for choice in choices:
            if isinstance(choice, bool):
                if word in (_TRUE if choice else _FALSE):
                    return choice
            elif word == choice:
                return choice
        raise InvalidValue("automigrate.E006", "one of " + ", ".join(str(c) for c in choices))

    return parse


def _env_optional_environment(raw: str) -> str | None:
    return None if raw.strip() == "" else _env_choice(ENVIRONMENTS)(raw)


def _env_seconds(raw: str) -> float:
    try:
        number = float(raw.strip())
    except ValueError:
        raise InvalidValue("automigrate.E006", "a number of seconds, 0 or more") from None
    try:
        return _seconds(number)
    except InvalidValue:
        raise InvalidValue("automigrate.E006", "a finite number of seconds, 0 or more") from None


def _env_optional_seconds(raw: str) -> float | None:
    if raw.strip().lower() in ("", "none", "off"):
        return None
    try:
        return _optional_seconds(_env_seconds(raw))
    except InvalidValue:
        raise InvalidValue("automigrate.E006", "a number of seconds above 0, or none") from None


def _env_count(raw: str) -> int:
    try:
        return _count(int(raw.strip()))
    except (ValueError, InvalidValue):
        raise InvalidValue("automigrate.E006", "a whole number, 0 or more") from None


def _env_aliases(raw: str) -> tuple[str, ...] | Literal["__all__"]:
    if raw.strip() == ALL_DATABASES:
        return ALL_DATABASES
    # django-environ's list parsing keeps the blanks around items: strip them here.
    aliases = tuple(a.strip() for a in environ.Env.parse_value(raw, list) if a.strip())
    if not aliases:
        raise InvalidValue("automigrate.E006", f"comma-separated aliases or {ALL_DATABASES}")
    return aliases


@dataclass(frozen=True)
class Key:
    name: str
    default: Any
    validate: Callable[[Any], Any]
    parse_env: Callable[[str], Any]
    doc: str


KEYS: tuple[Key, ...] = (
    Key("ENABLED", True, _bool, _env_bool, "master switch for startup runs"),
    Key(
        "ENVIRONMENT",
        None,
        _optional_environment,
        _env_optional_environment,
        "development/staging/production; derived from DEBUG when unset",
    ),
    Key("IN_PRODUCTION", False, _bool, _env_bool, "allow startup runs in production"),
    Key(
        "ON_STARTUP",
        "auto",
        _choice(ON_STARTUP_CHOICES),
        _env_choice(ON_STARTUP_CHOICES),
        "which process starts run migrations",
    ),
    Key("MODE", "blocking", _choice(MODES), _env_choice(MODES), "blocking or background"),
    Key("DATABASES", ("default",), _aliases, _env_aliases, "aliases migrated, in order"),
    Key("USE_LOCK", True, _bool, _env_bool, "take the migration lock"),
    Key("LOCK_TIMEOUT", 300.0, _seconds, _env_seconds, "seconds to wait for the lock"),
    Key(
        "LOCK_BACKEND",
        "auto",
        _choice(LOCK_BACKENDS),
        _env_choice(LOCK_BACKENDS),
        "auto (native lock) or table",
    ),
    Key(
        "LOCK_LEASE",
        60.0,
        _positive_seconds,
        _env_positive_seconds,
        "table lock: seconds a lease lasts unless its heartbeat renews it",
    ),
    Key("LOG_DETAILS", True, _bool, _env_bool, "log each migration"),
    Key(
        "ON_FAILURE",
        "raise",
        _choice(ON_FAILURE_CHOICES),
        _env_choice(ON_FAILURE_CHOICES),
        "raise or continue at startup",
    ),
    Key("ROLLBACK_ON_FAILURE", True, _bool, _env_bool, "undo the run on failure"),
    Key(
        "CREATE_DATABASE",
        None,
        _optional_bool,
        _env_optional_bool,
        "create a missing database; derived from ENVIRONMENT when unset",
    ),
    Key("HISTORY", True, _bool, _env_bool, "record runs in MigrationRun"),
    Key(
        "STATEMENT_LOCK_TIMEOUT",
        None,
        _optional_seconds,
        _env_optional_seconds,
        "seconds a DDL statement may wait for table locks; None: no limit",
    ),
    Key("STATEMENT_LOCK_RETRIES", 3, _count, _env_count, "retries after a statement lock timeout"),
    Key(
        "MAIL_ADMINS_ON_FAILURE",
        False,
        _bool,
        _env_bool,
        "mail settings.ADMINS when a run fails",
    ),
)
KEYS_BY_NAME: Mapping[str, Key] = {key.name: key for key in KEYS}


@dataclass(frozen=True)
class AutomigrateSettings:
    """The effective settings, after environment overrides and derivations."""

    enabled: bool
    environment: str
    in_production: bool
    on_startup: bool | str
    mode: str
    databases: tuple[str, ...] | Literal["__all__"]
    use_lock: bool
    lock_timeout: float
    lock_backend: str
    lock_lease: float
    log_details: bool
    on_failure: str
    rollback_on_failure: bool
    create_database: bool
    history: bool
    statement_lock_timeout: float | None = None
    statement_lock_retries: int = 3
    mail_admins_on_failure: bool = False

    def aliases(self) -> tuple[str, ...]:
        """The aliases to migrate, in order (``"__all__"`` expanded in ``DATABASES`` order)."""
        if self.databases == ALL_DATABASES:
            return tuple(settings.DATABASES)
        return tuple(self.databases)


def env_var(key: str) -> str:
    return ENV_PREFIX + key


def read_settings(
    environ_: Mapping[str, str] | None = None,
) -> tuple[AutomigrateSettings, list[Problem]]:
    """The effective settings and every problem found; a bad value falls back to its default."""
    environ_ = os.environ if environ_ is None else environ_
    problems: list[Problem] = []
    raw = getattr(settings, "AUTOMIGRATE", {})
    if not isinstance(raw, Mapping):
        problems.append(
            Problem(
                "automigrate.E001",
                f"AUTOMIGRATE must be a dict, not {type(raw).__name__} ({raw!r}).",
                "Set AUTOMIGRATE = {...} in settings.py, or remove it to use the defaults.",
            )
        )
        raw = {}
    for name in raw:
        if name not in KEYS_BY_NAME:
            close = difflib.get_close_matches(str(name), KEYS_BY_NAME, n=1)
            hint = f"Did you mean {close[0]!r}? " if close else ""
            problems.append(
                Problem(
                    "automigrate.E002",
                    f"AUTOMIGRATE has an unknown key {name!r}.",
                    hint + "Known keys: " + ", ".join(KEYS_BY_NAME) + ".",
                )
            )

    values: dict[str, Any] = {}
    for key in KEYS:
        value = key.default
        if key.name in raw:
            try:
                value = key.validate(raw[key.name])
            except InvalidValue as exc:
                problems.append(
                    Problem(
                        exc.check_id,
                        f"AUTOMIGRATE[{key.name!r}] is {raw[key.name]!r}; "
                        f"it must be {exc.allowed}.",
                        f"Fix AUTOMIGRATE[{key.name!r}] in settings.py (default: {key.default!r}).",
                    )
                )
                value = key.default
        variable = env_var(key.name)
        if variable in environ_:
            try:
                value = key.parse_env(environ_[variable])
            except InvalidValue as exc:
                problems.append(
                    Problem(
                        "automigrate.E006",
                        f"Environment variable {variable}={environ_[variable]!r} is invalid; "
                        f"it must be {exc.allowed}.",
                        f"Fix or unset {variable}.",
                    )
                )
        values[key.name] = value

    problems.extend(_misspelled_variables(environ_))
    environment = values["ENVIRONMENT"] or ("development" if settings.DEBUG else "production")
    create_database = values["CREATE_DATABASE"]
    if create_database is None:
        create_database = environment == "development"
    result = AutomigrateSettings(
        enabled=values["ENABLED"],
        environment=environment,
        in_production=values["IN_PRODUCTION"],
        on_startup=values["ON_STARTUP"],
        mode=values["MODE"],
        databases=values["DATABASES"],
        use_lock=values["USE_LOCK"],
        lock_timeout=values["LOCK_TIMEOUT"],
        lock_backend=values["LOCK_BACKEND"],
        lock_lease=values["LOCK_LEASE"],
        log_details=values["LOG_DETAILS"],
        on_failure=values["ON_FAILURE"],
        rollback_on_failure=values["ROLLBACK_ON_FAILURE"],
        create_database=create_database,
        history=values["HISTORY"],
        statement_lock_timeout=values["STATEMENT_LOCK_TIMEOUT"],
        statement_lock_retries=values["STATEMENT_LOCK_RETRIES"],
        mail_admins_on_failure=values["MAIL_ADMINS_ON_FAILURE"],
    )
    problems.extend(_alias_problems(result))
    return result, problems


def _misspelled_variables(environ_: Mapping[str, str]) -> list[Problem]:
    """``AUTOMIGRATE_LOCK_TIMOUT`` would be ignored in silence: say so when a variable looks
    like a misspelt setting (other ``AUTOMIGRATE_*`` variables are none of our business)."""
    problems = []
    for variable in sorted(environ_):
        name = variable[len(ENV_PREFIX) :]
        if not variable.startswith(ENV_PREFIX) or name in KEYS_BY_NAME:
            continue
        close = difflib.get_close_matches(name, KEYS_BY_NAME, n=1, cutoff=0.8)
        if close:
            problems.append(
                Problem(
                    "automigrate.W002",
                    f"Environment variable {variable} is not a setting and is ignored.",
                    f"Did you mean {env_var(close[0])}?",
                )
            )
    return problems


def _alias_problems(conf: AutomigrateSettings) -> list[Problem]:
    if conf.databases == ALL_DATABASES:
        return []
    return [
        Problem(
            "automigrate.E005",
            f"AUTOMIGRATE['DATABASES'] names {alias!r}, which is not in settings.DATABASES.",
            "Use one of: " + ", ".join(repr(a) for a in settings.DATABASES) + ".",
        )
        for alias in conf.databases
        if alias not in settings.DATABASES
    ]


def get_settings() -> AutomigrateSettings:
    """The effective settings; raises :class:`ConfigurationError` naming every invalid value."""
    conf, problems = read_settings()
    errors = [p for p in problems if p.id.startswith("automigrate.E")]
    if errors:
        raise ConfigurationError(
            "Invalid AUTOMIGRATE configuration:\n"
            + "\n".join(f"  {p.id}: {p.msg} {p.hint}" for p in errors)
        )
    return conf
