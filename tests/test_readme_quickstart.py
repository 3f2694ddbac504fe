"""Guards: curator.cli.compile, curator.cli.foundry, curator.cli.search

The README's quickstart runs as written, against the loopback fake Hub serving the small test
model under the quickstart's repository name."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_curator
from tests.fakehub.fixtures import CHAT_TAGS, tiny_files
from tests.fakehub.plugin import fake_hub_server, hub  # noqa: F401
from tests.fakehub.repo import FakeRepo
from tests.fakehub.server import FakeHub

QUICKSTART_REPO = "Qwen/Qwen2.5-0.5B-Instruct"
LIVENESS_PROMPTS = REPO_ROOT / "tests" / "data" / "prompts-liveness.json"  # no expected words


def readme_commands(section: str) -> list[list[str]]:
    """The ``curator ...`` lines of the bash blocks under the README heading ``section``."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    body = readme.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", body, re.DOTALL):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            for part in " ".join(words).split(" && "):
                argv = shlex.split(part)
                if argv and argv[0] == "curator":
                    commands.append(argv[1:])
    return commands


def test_quickstart_runs_as_written(
    hub: FakeHub,  # noqa: F811
    tiny_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub.add(
        FakeRepo(
            QUICKSTART_REPO,
            tiny_files(tiny_model_dir),
            downloads=10,
            likes=1,
            tags=(*CHAT_TAGS, "qwen2", "license:apache-2.0"),
            pipeline_tag="text-generation",
            card_data={"license": "apache-2.0"},
        )
    )
    workdir = tmp_path / "checkout"
    (workdir / "registry").mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / "registry" / "models.json", workdir / "registry" / "models.json")
    monkeypatch.delenv("CURATOR_REGISTRY")  # the quickstart uses the default registry/models.json
    commands = readme_commands("Quickstart with a Hub model")
    assert [c[0] for c in commands] == [
        "search",
        "info",
        "compile",
        "register",
        "smoke",
        "bench",
        "registry",
        "onboard",
    ]
    model_id = "qwen2.5-0.5b-instruct-generic-cpu:1"
    outputs: dict[str, str] = {}
    for argv in commands:
        if argv[:2] == ["bench", model_id]:
            argv = [*argv, "--rounds", "1", "--max-tokens", "16"]  # the same command, shorter
        if argv[0] in ("smoke", "onboard"):
            # The same commands with prompts a random toy model can pass: the shipped set expects
            # real answers ("paris"), which smoke now checks on the real model's compile.
            argv = [*argv, "--prompts", str(LIVENESS_PROMPTS)]
        result = run_curator(*argv, cwd=workdir)
        assert result.returncode == 0, (argv, result.stdout, result.stderr)
        outputs[argv[0]] = result.stdout
        check_step(argv[0], result.stdout, workdir, model_id)
    # Exit codes alone would pass a command that did nothing: each step's output is checked above,
    # and the registry the steps built holds the finished entry.
    entry = next(m for m in json.loads(registry_text(workdir))["models"] if m["id"] == model_id)
    assert entry["source"]["repo"] == QUICKSTART_REPO
    assert entry["source"]["architecture"] == "Qwen2ForCausalLM"
    assert entry["license"] == "apache-2.0" and entry["capabilities"] == ["chat"]
    assert entry["build"]["recipe"] == "int4-cpu"
    assert {a["path"] for a in entry["build"]["artifacts"]} >= {"genai_config.json", "model.onnx"}
    assert len(entry["benchmarks"]) >= 1
    summary = (workdir / "onboard-out" / "SUMMARY.md").read_text(encoding="utf-8")
    assert model_id in summary


def registry_text(workdir: Path) -> str:
    return (workdir / "registry" / "models.json").read_text(encoding="utf-8")


def check_step(command: str, stdout: str, workdir: Path, model_id: str) -> None:
    """What each quickstart command must have done, beyond exiting 0."""
    model_dir = Path(os.environ["FOUNDRY_CACHE_DIR"]) / "Qwen" / model_id.replace(":", "-")
    if command == "search":
        assert QUICKSTART_REPO in stdout
    elif command == "info":
        assert QUICKSTART_REPO in stdout and "Qwen2ForCausalLM" in stdout
        assert "apache-2.0" in stdout and "int4-cpu" in stdout
    elif command == "compile":
        manifest = json.loads((model_dir / "curator-manifest.json").read_text(encoding="utf-8"))
        assert manifest["source"]["repo"] == QUICKSTART_REPO
        assert manifest["build"]["recipe"] == "int4-cpu"
        assert (model_dir / "genai_config.json").is_file() and (model_dir / "model.onnx").is_file()
    elif command == "register":
        assert f"{model_id}: " in stdout
        assert f'"id": "{model_id}"' in registry_text(workdir)
    elif command == "smoke":
        header, *rows = stdout.strip().splitlines()
        prompts = json.loads(LIVENESS_PROMPTS.read_text(encoding="utf-8"))["prompts"]
        assert header.split()[:2] == ["PROMPT", "RESULT"]
        assert [row.split()[:2] for row in rows] == [[p["id"], "ok"] for p in prompts], stdout
    elif command == "bench":
        report = json.loads((workdir / "bench-out" / "bench-report.json").read_text())
        (model,) = report["models"]
        assert model["id"] == model_id and model["status"] == "ok"
        assert all(0 < r["completionTokens"] <= 16 for r in model["requests"])
        assert model["summary"]["ttftMs"]["p50"] <= model["summary"]["latencyMs"]["p50"]
        recorded = json.loads(registry_text(workdir))["models"]
        assert [len(m.get("benchmarks", [])) for m in recorded if m["id"] == model_id] == [1]
    elif command == "registry":
        assert re.search(r"models\.json: [1-9][0-9]* model\(s\), valid$", stdout.strip())
