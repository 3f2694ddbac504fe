"""Guards: curator.cli.examples, curator.cli.main

Every command's --help ends with examples (issue 25), each naming a real command; `ls` and
`list` name the same subcommand in every group that has one of them."""

from __future__ import annotations

import click
from click.testing import CliRunner

from curator.cli.examples import EXAMPLES
from curator.cli.main import load_all_commands


def _commands() -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}

    def walk(command: click.Command, path: list[str]) -> None:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
        else:
            found[" ".join(path)] = command

    walk(load_all_commands(), [])
    return found


def test_every_command_has_examples_of_real_commands() -> None:
    commands = _commands()
    assert sorted(commands) == sorted(EXAMPLES)
    cli = load_all_commands()
    for path, examples in EXAMPLES.items():
        assert commands[path].epilog and "Examples:" in commands[path].epilog
        for example in examples:
            if not example.startswith("curator "):
                continue
            words = example.split()[1:]
            ctx = click.Context(cli)
            command: click.Command | None = cli
            while isinstance(command, click.Group) and words:
                if words[0] not in command.commands and "run" in command.commands:
                    words = ["run", *words]  # `curator bench ID` is `curator bench run ID`
                command = command.get_command(ctx, words.pop(0))
            assert command is commands[path], (path, example)


def test_ls_and_list_are_one_command() -> None:
    runner = CliRunner()
    cli = load_all_commands()
    for group in ("cache", "registry", "recipes", "catalog"):
        for word in ("ls", "list"):
            done = runner.invoke(cli, [group, word, "--help"])
            assert done.exit_code == 0, (group, word, done.output)
