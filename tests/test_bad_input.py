"""Guards: curator.cli._options, curator.cli.bench, curator.cli.compile, curator.cli.foundry

Bad input across commands: one-line error with a hint, non-zero exit, no traceback, and found
before any slow work starts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import run_curator


def assert_clean_error(result: object, code: int, starts: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    stderr = result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    assert stderr.startswith(f"error: {starts}"), stderr
    assert "\nhint: " in stderr


def test_bench_refuses_an_unwritable_out_dir_before_running(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_curator(
        "bench",
        "m-generic-cpu:1",
        "--endpoint",
        "http://127.0.0.1:9",
        "--out",
        str(blocker / "reports"),
    )
    assert_clean_error(result, 1, "cannot write reports to")


def test_bench_scores_must_be_utf8(tmp_path: Path) -> None:
    scores = tmp_path / "scores.csv"
    scores.write_bytes(b"model,prompt_id\n\xff\xfe\n")
    result = run_curator(
        "bench",
        "m-generic-cpu:1",
        "--endpoint",
        "http://127.0.0.1:9",
        "--scores",
        str(scores),
        "--out",
        str(tmp_path / "out"),
    )
    assert_clean_error(result, 1, f"{scores} is not UTF-8 text")


def test_malformed_auto_map_is_refused_as_repository_code(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "model"
    shutil.copytree(tiny_model_dir, source)
    config = json.loads((source / "config.json").read_text())
    config["auto_map"] = 5
    (source / "config.json").write_text(json.dumps(config))
    result = run_curator("compile", str(source), "--recipe", "int4-cpu")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--trust-remote-code" in result.stderr


def test_serve_with_an_unusable_cache_dir_fails_in_one_line_before_listening(
    tmp_path: Path,
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    not_a_dir = a_file / "cache"  # passes the option's own check; cannot be created
    result = run_curator("serve", "--port", "0", "--cache-dir", str(not_a_dir), timeout=120)
    assert result.returncode == 1
    assert "listening" not in result.stderr  # refused before the server started
    assert "Traceback" not in result.stderr
    first, hint = result.stderr.strip().splitlines()
    assert first.startswith(f"error: cannot use {not_a_dir} as the Foundry cache directory")
    assert hint.startswith("hint: ") and "FOUNDRY_CACHE_DIR" in hint
