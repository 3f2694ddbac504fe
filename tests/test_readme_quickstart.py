"""The README's quickstart runs as written, against the loopback fake Hub serving the small test
model under the quickstart's repository name."""

from __future__ import annotations

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
    for argv in commands:
        if argv[:2] == ["bench", "qwen2.5-0.5b-instruct-generic-cpu:1"]:
            argv = [*argv, "--rounds", "1", "--max-tokens", "16"]  # the same command, shorter
        result = run_curator(*argv, cwd=workdir)
        assert result.returncode == 0, (argv, result.stdout, result.stderr)
        if argv[0] == "search":
            assert QUICKSTART_REPO in result.stdout
    registry = (workdir / "registry" / "models.json").read_text()
    assert '"id": "qwen2.5-0.5b-instruct-generic-cpu:1"' in registry
    assert (workdir / "onboard-out" / "SUMMARY.md").is_file()
