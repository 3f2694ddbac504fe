"""Guards: curator.cli.main, curator.cli.registry

`curator --help` and `curator registry validate` stay light: no heavy imports at start-up."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

HEAVY = (
    "torch",
    "olive",
    "onnxruntime",
    "onnxruntime_genai",
    "transformers",
    "foundry_local_sdk",
    "tokenizers",
    "matplotlib",
    "fastapi",
    "uvicorn",
)

PROBE = """
import json, sys
from curator.cli.main import cli
try:
    cli(sys.argv[1:], prog_name="curator")
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules)), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["registry", "validate", "--registry", str(REPO_ROOT / "registry" / "models.json")],
    ],
)
def test_no_heavy_imports(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    modules = json.loads(done.stderr.strip().splitlines()[-1])
    loaded = sorted({m.split(".")[0] for m in modules} & set(HEAVY))
    assert loaded == []
    assert "curator" in modules  # the probe did run curator


def test_every_command_has_help(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from curator.cli.main import load_all_commands

    cli = load_all_commands()  # --help itself imports no command (it lists COMMANDS' summaries)
    runner = CliRunner()
    stack = [((), cli)]
    seen = 0
    while stack:
        path, command = stack.pop()
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        seen += 1
        for name, sub in getattr(command, "commands", {}).items():
            stack.append(((*path, name), sub))
    assert seen > 10


def test_each_lazily_named_command_loads_under_its_own_name() -> None:
    """COMMANDS names a command before importing it: a wrong name would list a command that
    cannot run, or run another one."""
    import click

    from curator.cli.main import COMMANDS, cli

    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name, name


def command_modules_loaded(args: list[str]) -> tuple[str, set[str]]:
    """What `curator ARGS` prints, and the curator.cli modules it imported, in a fresh process."""
    code = (
        "import sys; from curator.cli.main import cli; "
        f"cli({args!r}, standalone_mode=False); "
        "print(sorted(m for m in sys.modules if m.startswith('curator.cli.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return out, set(ast.literal_eval(out.strip().splitlines()[-1]))


def test_a_registry_command_imports_no_other_command_module() -> None:
    _, loaded = command_modules_loaded(["registry", "--help"])
    assert "curator.cli.registry" in loaded
    for other in ("curator.cli.foundry", "curator.cli.compile", "curator.cli.bench"):
        assert other not in loaded


def test_help_lists_each_command_as_the_command_itself_would() -> None:
    """`curator --help` lists COMMANDS' summaries without importing the commands: each summary
    must give what the loaded command's own help gives, at every width a terminal may have."""
    import click

    from curator.cli.main import COMMANDS, load_all_commands

    cli = load_all_commands()
    for name, (_, _, summary) in COMMANDS.items():
        for limit in (20, 35, 45, 60, 80, 120, 200):
            shown = click.Command(name, help=summary).get_short_help_str(limit)
            assert shown == cli.commands[name].get_short_help_str(limit), (name, limit)


def test_help_imports_no_command_module() -> None:
    from curator.cli.main import COMMANDS

    out, loaded = command_modules_loaded(["--help"])
    assert "Commands:" in out and "registry" in out
    assert "curator.cli.main" in loaded
    assert loaded.isdisjoint(module for module, _, _ in COMMANDS.values())
