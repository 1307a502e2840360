"""The README is true: every ``alignstream`` command it shows exists with the options it shows,
the files it names exist, and its rule-file examples run against the real stack."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer.main

from services.cli.main import app
from services.ingest.app import IngestService
from shared import events
from shared.testing.topics import TopicReader
from shared.topics import RULES_EVENTS
from tests.integration.helpers import alignstream_cli

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"


def readme_commands() -> list[str]:
    """Each ``alignstream`` line of the README's bash blocks, continuation lines joined."""
    text = README.read_text(encoding="utf-8")
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split("  #")[0].strip()
            for part in line.split("&&"):
                part = part.strip().removeprefix(".venv/bin/")
                if part.startswith("alignstream "):
                    commands.append(part)
    return commands


def resolve(tokens: list[str]) -> tuple[Any, list[str]]:
    """The deepest (click) command the leading words name, and the rest."""
    command: Any = typer.main.get_command(app)
    rest = list(tokens)
    while rest and hasattr(command, "commands") and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
    return command, rest


def option_names(command: Any) -> set[str]:
    names = {"--debug", "--help"}
    for param in command.params:
        names.update(param.opts)
        names.update(param.secondary_opts)
    return names


COMMANDS = readme_commands()


def test_the_readme_shows_commands() -> None:
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize("line", COMMANDS)
def test_each_readme_command_and_option_exists(line: str) -> None:
    tokens = shlex.split(line.replace("[", " ").replace("]", " "))[1:]
    command, rest = resolve(tokens)
    assert command.name != "alignstream", f"no such command: {line}"
    # "up | status | down": the words after "|" are sibling commands or choices.
    unknown = [
        t.split("=")[0]
        for t in rest
        if t.startswith("--") and t.split("=")[0] not in option_names(command)
    ]
    assert not unknown, f"{line}: {command.name} has no option {unknown}"


@pytest.mark.parametrize("line", COMMANDS)
def test_files_the_readme_names_exist(line: str) -> None:
    for token in shlex.split(line.replace("[", " ").replace("]", " ")):
        if token.startswith("../shared/"):
            if not (ROOT.parent / "shared").is_dir():
                pytest.skip("the team folder ../shared is not beside this checkout")
            assert (ROOT / token).exists(), f"{line}: {token} does not exist"
        elif token.startswith("examples/"):
            assert (ROOT / token).exists(), f"{line}: {token} does not exist"


async def test_the_rule_file_examples_publish_and_apply(
    cli_env: dict[str, str], ingest: IngestService, reader: TopicReader
) -> None:
    examples = [c for c in COMMANDS if "examples/" in c and "examples/data/" not in c]
    assert len(examples) == 3
    for line in examples:  # in a subprocess that does not block the ingest service running here
        code, output = await alignstream_cli(cli_env, *shlex.split(line)[1:])
        assert code == 0, output
    kinds = [
        events.RULES_TOPIC_EVENT.validate_json(r.value).kind
        for r in await reader.read(RULES_EVENTS, count=6)
    ]
    assert kinds.count("rule.upsert") == 4
    assert kinds.count("rule.delete") == 1
    assert kinds.count("jurisdictions.tree") == 1
