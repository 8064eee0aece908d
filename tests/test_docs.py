"""The docs describe what the code does: keys, check IDs, options and JSON fields stay in step.
And they stay short enough to be read: a word budget and a sentence-length budget."""

from __future__ import annotations

import dataclasses
import re
import statistics
from pathlib import Path

from django_automigrate import checks
from django_automigrate.conf import KEYS
from django_automigrate.management.commands.automigrate import Command
from django_automigrate.run.runner import DatabaseResult

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.glob("*.md"))

#: The issue's budget: every page of docs/ together (the JSON schema is not a page).
MAX_WORDS = 15_000
MAX_MEAN_SENTENCE = 20.0
#: "No sentence over about 45 words": a quoted message belongs in a code block.
MAX_SENTENCE = 45


def section(text: str, heading: str) -> str:
    """The body under ``heading`` (a full heading line), up to the next heading of any level."""
    body = text.split(f"\n{heading}\n", 1)[1]
    return re.split(r"\n#{1,6} ", body, maxsplit=1)[0]


def sentences(text: str) -> list[list[str]]:
    """The prose sentences of a page, each as its list of words.

    What counts as prose: fenced code blocks are dropped, and so are tables (their cells are
    labels and values, not sentences), snippet includes, admonition markers and HTML. A link
    counts by its text, not its target. Inside an inline code span a ``.``, ``!`` or ``?`` never
    ends a sentence (``manage.py``, a quoted message). Headings and list items end sentences,
    as do ``.``, ``!``, ``?`` followed by a blank, and a colon at the end of a line (it
    introduces a code block or a list).
    """
    units: list[str] = []
    fenced = False
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            units.append(" ".join(paragraph))
            paragraph.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(("```", "~~~")):
            fenced = not fenced
            flush()
            continue
        if fenced or line.startswith(("|", "--8<--", "<")):
            continue
        if not line:
            flush()
            continue
        if line.startswith("!!!"):
            flush()
            units.append(re.sub(r"^!!!\s*\w+\s*", "", line).strip('"'))
            continue
        heading = re.match(r"#{1,6}\s+(.*)", line)
        item = re.match(r"(?:[*+-]|\d+\.)\s+(.*)", line)
        start = heading or item
        if start is not None:
            flush()
            paragraph.append(start.group(1))
            if heading:
                flush()
            continue
        paragraph.append(line)
        if line.endswith(":"):
            flush()
    flush()

    found = []
    for unit in units:
        unit = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", unit)  # a link counts by its text
        unit = re.sub(r"`[^`]*`", lambda m: re.sub(r"[.!?](?=\s)", "", m.group(0)), unit)
        for sentence in re.split(r"(?<=[.!?])\s+|:\s*$", unit):
            words = [w for w in sentence.split() if re.search(r"\w", w)]
            if words:
                found.append(words)
    return found


def test_the_docs_keep_their_word_budget() -> None:
    """Every word of docs/*.md counts, code and tables included (as ``wc -w`` counts)."""
    words = {page.name: len(page.read_text().split()) for page in PAGES}

    assert sum(words.values()) <= MAX_WORDS, words


def test_sentences_are_short() -> None:
    everything = [s for page in PAGES for s in sentences(page.read_text())]
    too_long = [
        f"{page.name}: {' '.join(s)}"
        for page in PAGES
        for s in sentences(page.read_text())
        if len(s) > MAX_SENTENCE
    ]

    assert statistics.mean(len(s) for s in everything) <= MAX_MEAN_SENTENCE
    assert not too_long, "\n".join(too_long)


def test_the_sentence_counter_counts_prose_only() -> None:
    text = (
        "# A heading\n\nOne two three. Four `manage.py check. Now` five?\n\n"
        "* an item\n* [a link](https://example.com/a.b. c)\n\n"
        "```text\nnot. counted. at all\n```\n\n| a | table. row |\n\nIt shows:\n"
    )

    assert [len(s) for s in sentences(text)] == [2, 3, 5, 2, 2, 2]


def test_the_settings_reference_documents_every_key_in_order() -> None:
    """One pattern per key: type, default, environment variable, a sentence and an example."""
    text = (DOCS / "configuration.md").read_text()

    documented = re.findall(r"^### `([A-Z_]+)`$", text, flags=re.MULTILINE)

    assert documented == [key.name for key in KEYS]
    for key in KEYS:
        body = section(text, f"### `{key.name}`")
        assert "**Type**" in body, key.name
        assert "**Default**" in body, key.name
        assert re.search(rf"\*\*Environment variable\*\*\s+`AUTOMIGRATE_{key.name}`", body), (
            key.name
        )
        prose = re.sub(
            r"^\*\*Type\*\*.*$", "", re.sub(r"```.*?```", "", body, flags=re.S), flags=re.M
        )
        assert sentences(prose), f"{key.name}: no sentence"
        assert re.search(r"```(python|sh|console)\n", body), f"{key.name}: no example"


def test_every_system_check_id_is_documented() -> None:
    """The checks table: ID, cause, fix."""
    text = (DOCS / "configuration.md").read_text()
    ids = set(re.findall(r"automigrate\.[EW]\d{3}", checks.__doc__ or ""))

    assert "| ID | Cause | Fix |" in text
    assert len(ids) >= 10
    for check_id in ids:
        row = re.search(rf"^\| `{re.escape(check_id)}` \|([^|\n]+)\|([^|\n]+)\|$", text, re.M)
        assert row, check_id
        assert row.group(1).strip(), check_id
        assert row.group(2).strip(), check_id


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

    assert len(names) == 7
    for name in names:
        assert f"| `{name}" in text, name
    for signal in ("run_started", "run_finished", "run_failed"):
        assert hasattr(signals, signal)
        assert f"`{signal}`" in text, signal


def test_the_navigation_lists_every_page_once() -> None:
    nav = (DOCS.parent / "mkdocs.yml").read_text()
    listed = re.findall(r"^  - [^:]+: (\S+\.md)$", nav, flags=re.MULTILINE)

    assert sorted(listed) == [page.name for page in PAGES]
    assert "health.md" in listed
    assert "observability.md" in listed
