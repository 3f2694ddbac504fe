"""Guards: curator.cli.main, curator.cli.registry, curator.cli.search, curator.errors,
  curator.hub.errors

With ``--json``, every curator command and subcommand reports a failure as one JSON object on
stdout (``error``, ``hint``, ``code``, ``exit_code``) and exits non-zero: usage errors, CuratorErrors
and bugs alike; a full, read-only or forbidden disk is a one-line error with a hint, not a bug. The walk finds every command that has ``--json``, nested groups included."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from curator.cli.main import load_all_commands
from curator.errors import RegistryInvalid, storage_error
from curator.hub.errors import HubGated
from tests.conftest import run_curator


def commands_with_json(
    group: click.Group, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    for name, command in sorted(group.commands.items()):
        here = (*path, name)
        if any("--json" in getattr(p, "opts", ()) for p in command.params):
            found.append((here, command))
        if isinstance(command, click.Group):
            found += commands_with_json(command, here)
    return found


cli = load_all_commands()
WITH_JSON = commands_with_json(cli)
IDS = [" ".join(path) for path, _ in WITH_JSON]


def required_args(command: click.Command, tmp_path: Path) -> list[str]:
    """Values that get every required argument and option of ``command`` past the parser."""
    args: list[str] = []
    for param in command.params:
        if not param.required:
            continue
        value = _value_for(param.type, tmp_path)
        count = param.nargs if param.nargs > 0 else 1
        if isinstance(param, click.Option):
            args += [param.opts[0], value]
        else:
            args += [value] * count
    return args


def _value_for(kind: click.ParamType, tmp_path: Path) -> str:
    if isinstance(kind, click.Choice):
        return str(kind.choices[0])
    if isinstance(kind, (click.IntRange, click.FloatRange)):
        return str(kind.min if kind.min is not None else 1)
    if isinstance(kind, (click.types.IntParamType, click.types.FloatParamType)):
        return "1"
    if isinstance(kind, click.Path):
        target = tmp_path / "given"
        if kind.dir_okay and not kind.file_okay:
            target.mkdir(exist_ok=True)
        else:
            target.write_text("{}")
        return str(target)
    return "org/name"


def test_the_walk_finds_the_commands_and_the_nested_ones() -> None:
    names = set(IDS)
    assert {"search", "info"} <= names
    assert any(len(path) > 1 for path, _ in WITH_JSON), "no subcommand of a group has --json"
    assert len(WITH_JSON) >= 10


@pytest.mark.parametrize(("path", "command"), WITH_JSON, ids=IDS)
def test_usage_error_is_json(path: tuple[str, ...], command: click.Command) -> None:
    result = CliRunner().invoke(cli, [*path, "--json", "--no-such-option"], prog_name="curator")
    assert result.exit_code == 2
    error = json.loads(result.stdout)
    assert error["code"] == "usage" and error["exit_code"] == 2
    assert "--no-such-option" in error["error"]
    assert error["hint"] == f"curator {' '.join(path)} --help"


@pytest.mark.parametrize(("path", "command"), WITH_JSON, ids=IDS)
def test_curator_error_and_bug_are_json(
    path: tuple[str, ...], command: click.Command, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command body is replaced by one that fails: the error mapping is what is under test."""
    args = [*path, *required_args(command, tmp_path), "--json"]

    def refuse(**_: Any) -> None:
        raise RegistryInvalid("two problems", ("first", "second"), hint="fix them")

    monkeypatch.setattr(command, "callback", refuse)
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 1, refused.output
    assert json.loads(refused.stdout) == {
        "error": "two problems",
        "hint": "fix them",
        "code": "registry_invalid",
        "exit_code": 1,
        "problems": ["first", "second"],
    }

    def crash(**_: Any) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(command, "callback", crash)
    crashed = CliRunner().invoke(cli, args)
    assert crashed.exit_code == 1
    error = json.loads(crashed.stdout)
    assert error["code"] == "internal_error" and "KeyError" in error["error"]
    assert "CURATOR_DEBUG=1" in error["hint"]


def test_without_json_errors_stay_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    info = cli.commands["info"]

    def gated(**_: Any) -> None:
        raise HubGated("org/name is gated", hint="request access")

    monkeypatch.setattr(info, "callback", gated)
    result = CliRunner().invoke(cli, ["info", "org/name"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines() == ["error: org/name is gated", "hint: request access"]


def test_a_bug_is_one_line_unless_curator_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    info = cli.commands["info"]

    def crash(**_: Any) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(info, "callback", crash)
    quiet = CliRunner().invoke(cli, ["info", "org/name"])
    assert quiet.exit_code == 1
    assert quiet.stderr.startswith("error: internal error: ZeroDivisionError: division by zero")
    assert "Traceback" not in quiet.stderr
    monkeypatch.setenv("CURATOR_DEBUG", "1")
    loud = CliRunner().invoke(cli, ["info", "org/name"])
    assert isinstance(loud.exception, ZeroDivisionError)


def test_a_full_or_read_only_disk_is_a_one_line_error_not_a_bug(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    info = cli.commands["info"]

    def full(**_: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/cache/models/x.onnx.data")

    monkeypatch.setattr(info, "callback", full)
    text = CliRunner().invoke(cli, ["info", "org/name"])
    assert text.exit_code == 1
    assert (
        text.stderr.splitlines()[0] == "error: No space left on device: /cache/models/x.onnx.data"
    )
    assert text.stderr.splitlines()[1].startswith("hint: free disk space")
    as_json = json.loads(CliRunner().invoke(cli, ["info", "org/name", "--json"]).stdout)
    assert as_json["code"] == "storage_error" and as_json["exit_code"] == 1

    def missing(**_: Any) -> None:  # any other OSError is still a bug, reported as one
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/x")

    monkeypatch.setattr(info, "callback", missing)
    bug = json.loads(CliRunner().invoke(cli, ["info", "org/name", "--json"]).stdout)
    assert bug["code"] == "internal_error" and "FileNotFoundError" in bug["error"]
    monkeypatch.setattr(info, "callback", full)
    monkeypatch.setenv("CURATOR_DEBUG", "1")
    loud = CliRunner().invoke(cli, ["info", "org/name"])
    assert isinstance(loud.exception, OSError) and loud.exception.errno == errno.ENOSPC


@pytest.mark.parametrize(
    ("number", "hint"),
    [
        (errno.ENOSPC, "free disk space"),
        (errno.EROFS, "read-only"),
        (errno.EACCES, "permissions"),
        (errno.EPERM, "permissions"),
        (errno.ENOENT, None),
        (errno.EIO, None),
    ],
)
def test_storage_errors_are_the_disk_s_and_no_other(number: int, hint: str | None) -> None:
    mapped = storage_error(OSError(number, "message", "/p"))
    if hint is None:
        assert mapped is None
    else:
        assert mapped is not None and mapped.message == "message: /p" and hint in str(mapped.hint)
    bare = storage_error(OSError(number, "message"))  # no path: the message alone
    assert bare is None if hint is None else bare is not None and bare.message == "message"


def test_json_value_of_an_option_is_not_taken_for_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--json`` after ``--`` is an argument, not the flag: the error stays text."""
    result = CliRunner().invoke(cli, ["info", "--", "--json"])
    assert result.stdout == ""
    assert result.exit_code != 0


def test_real_failures_print_json_on_stdout_only(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    validate = run_curator("registry", "validate", "--registry", str(missing), "--json")
    assert validate.returncode == 1
    assert json.loads(validate.stdout)["code"] == "not_found"
    assert validate.stderr == ""
    offline = run_curator("info", "org/name", "--json")  # the tests run with HF_HUB_OFFLINE=1
    assert offline.returncode == 1
    assert json.loads(offline.stdout) == {
        "error": "the Hugging Face Hub is switched off: HF_HUB_OFFLINE is set",
        "hint": json.loads(offline.stdout)["hint"],
        "code": "hub_offline",
        "exit_code": 1,
    }
    assert offline.stderr == ""
