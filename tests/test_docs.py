"""The docs describe what the code does: keys, check IDs, options and JSON fields stay in step."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from django_automigrate import checks
from django_automigrate.conf import KEYS
from django_automigrate.management.commands.automigrate import Command
from django_automigrate.run.runner import DatabaseResult

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_settings_reference_documents_every_key_in_order() -> None:
    text = (DOCS / "configuration.md").read_text()

    documented = re.findall(r"^### `([A-Z_]+)`$", text, flags=re.MULTILINE)

    assert documented == [key.name for key in KEYS]
    for key in KEYS:
        assert f"AUTOMIGRATE_{key.name}" in text


def test_every_system_check_id_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    ids = set(re.findall(r"automigrate\.[EW]\d{3}", checks.__doc__ or ""))

    assert len(ids) >= 10
    for check_id in ids:
        assert f"| `{check_id}` |" in text, check_id


def test_every_command_option_is_documented() -> None:
    text = (DOCS / "command.md").read_text()
    parser = Command().create_parser("manage.py", "automigrate")
    ours = [
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option not in ("--help", "--version")
    ]

    for option in ours:
        assert f"`{option}" in text, option


def test_every_json_field_of_a_database_result_is_documented() -> None:
    text = (DOCS / "command.md").read_text()

    for field in dataclasses.fields(DatabaseResult):
        assert f"| `{field.name}` |" in text, field.name


def test_every_metric_and_signal_is_documented() -> None:
    from django_automigrate import signals
    from django_automigrate.reporting import metrics

    text = (DOCS / "observability.md").read_text()
    metrics._get("runs")  # creates them all
    names = [metric._name for metric in metrics._metrics.values()]

    assert len(names) == 5
    for name in names:
        assert f"| `{name}" in text, name
    for signal in ("run_started", "run_finished", "run_failed"):
        assert hasattr(signals, signal)
        assert f"`{signal}`" in text, signal


def test_the_health_page_is_in_the_navigation() -> None:
    nav = (DOCS.parent / "mkdocs.yml").read_text()

    assert "health.md" in nav
    assert "observability.md" in nav
