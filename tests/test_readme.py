"""Guards: curator.cli.reference

The README stays true: its command reference and recipes table are generated from the code."""

from __future__ import annotations

from curator.cli.reference import regenerate
from tests.conftest import REPO_ROOT


def test_generated_sections_match_the_code() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert regenerate(readme) == readme, "README drifted from --help or recipes/: run `make docs`"


def test_readme_names_the_two_commands_and_ci_runs_the_test_command() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()
