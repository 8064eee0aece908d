"""The ``AUTOMIGRATE`` settings: defaults, environment overrides and validation, in one place.

Precedence: environment variable ``AUTOMIGRATE_<KEY>`` > ``settings.AUTOMIGRATE[KEY]`` > default.
Nothing is cached and nothing is written into ``django.conf.settings``: every call re-reads, so
``override_settings`` and a changed environment are seen at once (reading is a few dict lookups).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from django.conf import settings

from django_automigrate.exceptions import ConfigurationError

ENVIRONMENTS = ("development", "staging", "production")
#: The lock forecast's verdicts, mildest first (``run.forecast`` makes them): the values of
#: ``MAX_LOCK_IMPACT`` and ``--max-lock-impact``.
LOCK_IMPACT_LEVELS: Final = ("safe", "brief_lock", "blocks_writes", "blocks_reads", "rewrites")
ON_STARTUP_CHOICES = ("auto", True, False)
MODES = ("blocking", "background")
LOCK_BACKENDS = ("auto", "table")
ON_FAILURE_CHOICES = ("raise", "continue")
ALL_DATABASES: Final = "__all__"

ENV_PREFIX = "AUTOMIGRATE_"
#: The spellings django-environ (which projects use to read the rest of their environment)
#: accepts as true; anything else that is not in _FALSE is an error, not False.
_TRUE = frozenset({"true", "on", "ok", "y", "yes", "1"})
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


# --- numbers: each numeric key and flag has one Bounds, checked alike wherever the value comes from

MINUTE: Final = 60
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR

# A number as people write one in an environment variable or on the command line: ASCII digits,
# an optional sign, fraction and exponent. Not "inf", "nan", "1_000" or non-ASCII digits, which
# float() and int() would take; blanks around it are stripped, blanks inside are an error.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WHOLE = re.compile(r"[+-]?[0-9]+")
# A longer whole number is beyond every bound below; int() is not asked (past 4300 digits it
# raises an error of its own).
_MAX_DIGITS = 40


@dataclass(frozen=True)
class Bounds:
    """The allowed range of a numeric key or flag: ``low`` to ``high``, both included (``low``
    excluded when ``above_low``); ``whole``: an int, else a number of seconds."""

    low: int | float
    high: int | float
    whole: bool = False
    above_low: bool = False

    def contains(self, number: int | float) -> bool:
        if isinstance(number, float) and not math.isfinite(number):
            return False
        above = number > self.low if self.above_low else number >= self.low
        return above and number <= self.high

    def describe(self) -> str:
        if self.whole:
            return f"a whole number from {self.low} to {self.high}"
        low, high = _plain(self.low), f"{_plain(self.high)} ({_span(self.high)})"
        if self.above_low:
            return f"a number of seconds above {low}, at most {high}"
        return f"a number of seconds from {low} to {high}"


def _plain(number: int | float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _span(seconds: int | float) -> str:
    for size, unit in ((DAY, "day"), (HOUR, "hour"), (MINUTE, "minute")):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{_plain(seconds)} s"


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, shortened: 10**400 or a pasted blob must not flood the message (and an
    int of more than 4300 digits cannot even be turned into text)."""
    try:
        text = repr(value)
    except Exception:  # a repr() that fails says nothing: the type does
        if isinstance(value, int):
            return f"an int of {value.bit_length()} bits"
        return f"a {type(value).__name__}"
    if len(text) > limit:
        return f"{text[: limit - 1]}… ({len(text)} characters)"
    return text


def parse_number(raw: str, bounds: Bounds) -> int | float:
    """A number written as text (environment variable, command flag), within ``bounds``.

    Raises :class:`InvalidValue` (``automigrate.E006``) saying what is allowed.
    """
    text = raw.strip()
    pattern = _WHOLE if bounds.whole else _DECIMAL
    if not pattern.fullmatch(text) or (bounds.whole and len(text) > _MAX_DIGITS):
        raise InvalidValue("automigrate.E006", bounds.describe())
    number = int(text) if bounds.whole else float(text)  # "1e400" is inf: out of bounds
    if not bounds.contains(number):
        raise InvalidValue("automigrate.E006", bounds.describe())
    return number


def _number(bounds: Bounds) -> Callable[[Any], int | float]:
    """The validator of a numeric key's value in the settings dict."""

    def validate(value: Any) -> int | float:
        if bounds.whole:
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidValue("automigrate.E003", "a whole number (an int)")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidValue("automigrate.E003", "a number of seconds (int or float)")
        # Compared before float(): an int such as 10**400 has no float.
        if not bounds.contains(value):
            raise InvalidValue("automigrate.E007", bounds.describe())
        return value if bounds.whole else float(value)

    return validate


def _optional_number(bounds: Bounds) -> Callable[[Any], Any]:
    validate = _number(bounds)

    def validate_optional(value: Any) -> int | float | None:
        if value is None:
            return None
        try:
            return validate(value)
        except InvalidValue as exc:
            raise InvalidValue(exc.check_id, f"None (no limit) or {exc.allowed}") from None

    return validate_optional


def _env_number(bounds: Bounds) -> Callable[[str], Any]:
    return lambda raw: parse_number(raw, bounds)


def _env_optional_number(bounds: Bounds) -> Callable[[str], Any]:
    def parse(raw: str) -> int | float | None:
        if raw.strip().lower() in ("", "none", "off"):
            return None
        try:
            return parse_number(raw, bounds)
        except InvalidValue as exc:
            raise InvalidValue(exc.check_id, f"{exc.allowed}, or none (no limit)") from None

    return parse


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


def _optional_level(value: Any) -> str | None:
    return None if value is None else str(_choice(LOCK_IMPACT_LEVELS)(value))


def _env_optional_level(raw: str) -> str | None:
    if raw.strip().lower() in ("", "none", "off"):
        return None
    return str(_env_choice(LOCK_IMPACT_LEVELS)(raw))


def _env_aliases(raw: str) -> tuple[str, ...] | Literal["__all__"]:
    if raw.strip() == ALL_DATABASES:
        return ALL_DATABASES
    aliases = tuple(a.strip() for a in raw.split(",") if a.strip())
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
    #: The range of a numeric key (None for the others).
    bounds: Bounds | None = None


def _numeric(name: str, default: Any, bounds: Bounds, doc: str, *, optional: bool = False) -> Key:
    """A numeric key: its validators follow from its bounds."""
    if optional:
        return Key(
            name, default, _optional_number(bounds), _env_optional_number(bounds), doc, bounds
        )
    return Key(name, default, _number(bounds), _env_number(bounds), doc, bounds)


#: The value of a derived key that is not set (the dict has no entry, the variable is empty).
AUTO: Final = "auto"

#: Seconds a migration's statement waits for table locks in staging and production, unless set:
#: short enough that the queries queued behind it hardly notice, long enough for ordinary
#: transactions to end (pgroll waits 0.5 s, django-deferred-migrations 2 s).
PRODUCTION_STATEMENT_LOCK_TIMEOUT: Final = 2.0

STATEMENT_LOCK_BOUNDS: Final = Bounds(0, DAY, above_low=True)


def _derived(key: Key) -> Key:
    """``key``, also accepting :data:`AUTO` (and an empty variable) for "derive it"."""

    def validate(value: Any) -> Any:
        if value == AUTO:
            return AUTO
        try:
            return key.validate(value)
        except InvalidValue as exc:
            raise InvalidValue(exc.check_id, f"{AUTO!r}, {exc.allowed}") from None

    def parse_env(raw: str) -> Any:
        if raw.strip().lower() in ("", AUTO):
            return AUTO
        try:
            return key.parse_env(raw)
        except InvalidValue as exc:
            raise InvalidValue(exc.check_id, f"{AUTO} (or empty), {exc.allowed}") from None

    return dataclasses.replace(key, validate=validate, parse_env=parse_env)


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
    _numeric(
        "LOCK_TIMEOUT",
        300.0,
        # At most 7 days. A deploy still waiting after a week for another's migrations is stuck,
        # not patient; and 7 days in milliseconds (6.048e8) stays within the 32-bit int of
        # PostgreSQL's lock_timeout (about 24.8 days), should a wait ever be handed to it whole.
        Bounds(0, 7 * DAY),
        "seconds to wait for the lock",
    ),
    Key(
        "LOCK_BACKEND",
        "auto",
        _choice(LOCK_BACKENDS),
        _env_choice(LOCK_BACKENDS),
        "auto (native lock) or table",
    ),
    _numeric(
        "LOCK_LEASE",
        60.0,
        # 1 second to 1 day. A dead holder keeps every other process out for up to one lease, so
        # a lease longer than a day turns a crash into a day without deploys (Consul caps its
        # session TTL at a day too); below a second the heartbeat (every LOCK_LEASE / 4) cannot
        # keep up with a database round trip.
        Bounds(1, DAY),
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
    _derived(
        _numeric(
            "STATEMENT_LOCK_TIMEOUT",
            AUTO,
            # Above 0 (0 would mean "no limit" to both servers: that is None) and at most 1 day:
            # PostgreSQL's lock_timeout is milliseconds in a 32-bit int (at most about 24.8
            # days), MySQL's lock_wait_timeout at most 31536000 s (a year), and a statement that
            # queues production queries behind it for longer than a day is what this key exists
            # to stop.
            STATEMENT_LOCK_BOUNDS,
            "seconds a statement may wait for table locks; None: no limit; derived when unset",
            optional=True,
        )
    ),
    _numeric(
        "CONCURRENT_STATEMENT_LOCK_TIMEOUT",
        None,
        STATEMENT_LOCK_BOUNDS,
        "the same for statements that let traffic through (CREATE INDEX CONCURRENTLY)",
        optional=True,
    ),
    _numeric(
        "STATEMENT_LOCK_RETRIES",
        10,
        # At most 100: each retry runs the migration again after a pause (up to 10 s) and a
        # wait of up to STATEMENT_LOCK_TIMEOUT; past 100, retrying is waiting forever in disguise.
        Bounds(0, 100, whole=True),
        "retries after a statement lock timeout",
    ),
    Key(
        "REBUILD_INVALID_INDEXES",
        False,
        _bool,
        _env_bool,
        "drop an invalid index a pending migration creates again, before the run",
    ),
    Key(
        "MAX_LOCK_IMPACT",
        None,
        _optional_level,
        _env_optional_level,
        "refuse runs whose lock forecast is worse, outside development; None: off",
    ),
    _derived(
        Key(
            "FLEET",
            AUTO,
            _bool,
            _env_bool,
            "serving processes register their code and a heartbeat; derived when unset",
        )
    ),
    _numeric(
        "FLEET_HEARTBEAT",
        15.0,
        # A member is gone after three missed beats: a second at least (a database round trip
        # each), an hour at most (a killed process would hold contract steps back for hours).
        Bounds(1, HOUR),
        "seconds between a fleet member's heartbeats",
    ),
    _derived(
        Key(
            "DEFER_INCOMPATIBLE",
            AUTO,
            _bool,
            _env_bool,
            "defer what older serving code cannot run beside; derived when unset",
        )
    ),
    _numeric(
        "CONTRACT_GRACE",
        120.0,
        Bounds(0, 7 * DAY),
        "seconds without older code seen before deferred work runs",
    ),
    _numeric(
        "DEFERRED_WARNING_AGE",
        float(DAY),
        Bounds(1, 365 * DAY),
        "seconds deferred work may wait before every heartbeat warns",
    ),
    Key(
        "MAIL_ADMINS_ON_FAILURE",
        False,
        _bool,
        _env_bool,
        "mail settings.ADMINS when a run fails",
    ),
)
KEYS_BY_NAME: Mapping[str, Key] = {key.name: key for key in KEYS}


def bounds_of(name: str) -> Bounds:
    bounds = KEYS_BY_NAME[name].bounds
    assert bounds is not None, name
    return bounds


#: A recorded run's id (``--rollback RUN_ID``, ``--mark-fixed RUN_ID``): MigrationRun's key is a
#: BigAutoField, so no run has a larger id, and a database driver could not even send one.
RUN_ID_BOUNDS: Final = Bounds(1, 2**63 - 1, whole=True)

#: The command's numeric flags, bounded here beside the keys they override or stand with.
FLAG_BOUNDS: Mapping[str, Bounds] = {
    "--lock-timeout": bounds_of("LOCK_TIMEOUT"),
    # --history N shows runs to read, not an export (the admin and the MigrationRun model are
    # for that): past 100000 runs the text is unreadable and the JSON megabytes long.
    "--history": Bounds(1, 100_000, whole=True),
    "--rollback": RUN_ID_BOUNDS,
    "--mark-fixed": RUN_ID_BOUNDS,
}


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
    statement_lock_retries: int = 10
    concurrent_statement_lock_timeout: float | None = None
    rebuild_invalid_indexes: bool = False
    max_lock_impact: str | None = None
    mail_admins_on_failure: bool = False
    fleet: bool = False
    fleet_heartbeat: float = 15.0
    defer_incompatible: bool = False
    contract_grace: float = 120.0
    deferred_warning_age: float = float(DAY)

    @property
    def fleet_expiry(self) -> float:
        """Seconds after its last heartbeat that a member counts as gone: three missed beats."""
        return 3 * self.fleet_heartbeat

    @property
    def effective_contract_grace(self) -> float:
        """The grace never ends before a silent member could still be alive."""
        return max(self.contract_grace, self.fleet_expiry)

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
                f"AUTOMIGRATE must be a dict, not {type(raw).__name__} ({shown(raw)}).",
                "Set AUTOMIGRATE = {...} in settings.py, or remove it to use the defaults.",
            )
        )
        raw = {}
    for name in raw:
        if name not in KEYS_BY_NAME:
            spelled = str(name).strip().upper()
            close = (
                [spelled]
                if spelled in KEYS_BY_NAME
                else difflib.get_close_matches(spelled, KEYS_BY_NAME, n=1)
            )
            hint = f"Did you mean {close[0]!r}? " if close else ""
            problems.append(
                Problem(
                    "automigrate.E002",
                    f"AUTOMIGRATE has an unknown key {shown(name)}.",
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
                        f"AUTOMIGRATE[{key.name!r}] is {shown(raw[key.name])}; "
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
                        f"Environment variable {variable}={shown(environ_[variable])} is invalid; "
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
        statement_lock_timeout=(
            (None if environment == "development" else PRODUCTION_STATEMENT_LOCK_TIMEOUT)
            if values["STATEMENT_LOCK_TIMEOUT"] == AUTO
            else values["STATEMENT_LOCK_TIMEOUT"]
        ),
        concurrent_statement_lock_timeout=values["CONCURRENT_STATEMENT_LOCK_TIMEOUT"],
        rebuild_invalid_indexes=values["REBUILD_INVALID_INDEXES"],
        # The gate guards shared databases; in development every run goes through.
        max_lock_impact=None if environment == "development" else values["MAX_LOCK_IMPACT"],
        statement_lock_retries=values["STATEMENT_LOCK_RETRIES"],
        mail_admins_on_failure=values["MAIL_ADMINS_ON_FAILURE"],
        # Development applies everything at once, as ``migrate`` does: one process, one code.
        fleet=(environment != "development") if values["FLEET"] == AUTO else values["FLEET"],
        fleet_heartbeat=values["FLEET_HEARTBEAT"],
        defer_incompatible=(
            (environment != "development")
            if values["DEFER_INCOMPATIBLE"] == AUTO
            else values["DEFER_INCOMPATIBLE"]
        ),
        contract_grace=values["CONTRACT_GRACE"],
        deferred_warning_age=values["DEFERRED_WARNING_AGE"],
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
