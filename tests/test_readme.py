"""The README stays true: its command reference is what `--help` prints today."""

from __future__ import annotations

from curator.cli.reference import command_reference, splice
from tests.conftest import REPO_ROOT


def test_command_reference_matches_help() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert splice(readme, command_reference()) == readme, "README drifted: run `make docs`"


def test_readme_names_the_two_commands_and_ci_runs_the_test_command() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()
