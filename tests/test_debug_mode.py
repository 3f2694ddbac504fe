"""Guards: curator.cli.main, curator.cli.registry

CURATOR_DEBUG=1 (issue 17): errors are one line and a hint, with no traceback, unless the user
asks for the traceback; then the real exception comes out, for user errors and for bugs alike."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from curator.cli.main import CuratorGroup
from tests.conftest import run_curator


def test_a_user_error_is_one_line_and_a_hint_without_debug(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "models.json"
    for env in ({}, {"CURATOR_DEBUG": "0"}, {"CURATOR_DEBUG": "true"}):  # only "1" turns it on
        done = run_curator("registry", "validate", "--registry", str(missing), env=env)
        assert done.returncode == 1
        assert done.stderr.splitlines() == [
            f"error: registry not found: {missing}",
            "hint: pass --registry PATH",
        ]


def test_debug_shows_the_traceback_of_a_user_error(tmp_path: Path) -> None:
    """Bug: CURATOR_DEBUG=1 ignored, so a user cannot get the traceback a bug report needs."""
    missing = tmp_path / "nowhere" / "models.json"
    done = run_curator(
        "registry", "validate", "--registry", str(missing), env={"CURATOR_DEBUG": "1"}
    )
    assert done.returncode == 1
    assert done.stderr.startswith("Traceback (most recent call last):")
    assert done.stderr.rstrip().endswith(f"curator.errors.NotFound: registry not found: {missing}")
    json_mode = run_curator(
        "registry", "validate", "--registry", str(missing), "--json", env={"CURATOR_DEBUG": "1"}
    )
    assert json_mode.stdout == "" and "Traceback" in json_mode.stderr


def failing_cli() -> click.Group:
    """A command group built like curator's, with a command that hits a bug."""

    @click.group(cls=CuratorGroup)
    def cli() -> None:
        pass

    @cli.command()
    @click.option("--json", "as_json", is_flag=True)
    def boom(as_json: bool) -> None:
        raise RuntimeError("first line\nsecond line")

    return cli


def test_a_bug_is_an_internal_error_without_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CURATOR_DEBUG", raising=False)
    result = CliRunner().invoke(failing_cli(), ["boom"])
    assert result.exit_code == 1 and not isinstance(result.exception, RuntimeError)
    assert result.stderr.splitlines() == [
        "error: internal error: RuntimeError: first line",
        "hint: this is a bug in curator: run the command again with CURATOR_DEBUG=1 for the "
        "traceback and report it",
    ]
    as_json = CliRunner().invoke(failing_cli(), ["boom", "--json"])
    assert json.loads(as_json.stdout)["code"] == "internal_error" and as_json.exit_code == 1


def test_debug_lets_a_bug_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATOR_DEBUG", "1")
    result = CliRunner().invoke(failing_cli(), ["boom"])
    assert isinstance(result.exception, RuntimeError)
    assert result.exception.args == ("first line\nsecond line",)
