"""Guards: curator.cli.registry, curator.errors, curator.registry

Editing the registry: add/update/remove/show/list, refusals, stable format, concurrency, crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curator.errors import RegistryInvalid
from curator.registry import load_registry, upsert_model, validate_document
from tests.conftest import run_curator
from tests.samples import make_entry


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    return tmp_path / "registry" / "models.json"


def write_entry(tmp_path: Path, entry: dict[str, object], name: str = "entry.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(entry))
    return path


def test_add_show_list_update_remove_through_cli(tmp_path: Path, registry: Path) -> None:
    reg = ["--registry", str(registry)]
    added = run_curator(
        "registry", "add", "--file", str(write_entry(tmp_path, make_entry(1))), *reg
    )
    assert added.returncode == 0, added.stderr
    flags = run_curator(
        "registry",
        "add",
        "--file",
        str(write_entry(tmp_path, make_entry(2))),
        "--id",
        "model2-generic-cpu:2",
        "--license",
        "mit",
        *reg,
    )
    assert flags.returncode == 0, flags.stderr
    listed = json.loads(run_curator("registry", "list", "--json", *reg).stdout)
    assert [m["id"] for m in listed] == ["model1-generic-cpu:1", "model2-generic-cpu:2"]
    assert listed[1]["license"] == "mit"
    table = run_curator("registry", "list", *reg).stdout
    assert "model2-generic-cpu:2" in table and "ID" in table.splitlines()[0]

    updated = run_curator(
        "registry",
        "update",
        "model1-generic-cpu:1",
        "--min-ram-gb",
        "3",
        "--capability",
        "chat",
        "--capability",
        "code",
        "--device",
        "CPU",
        *reg,
    )
    assert updated.returncode == 0, updated.stderr
    shown = json.loads(
        run_curator("registry", "show", "model1-generic-cpu:1", "--json", *reg).stdout
    )
    assert shown["minRamGb"] == 3
    assert shown["capabilities"] == ["chat", "code"]
    assert shown["runtime"]["executionProvider"] == "CPUExecutionProvider"  # merged, not replaced

    removed = run_curator("registry", "remove", "model2-generic-cpu:2", *reg)
    assert removed.returncode == 0
    assert [m["id"] for m in load_registry(registry)["models"]] == ["model1-generic-cpu:1"]


def test_add_of_existing_id_and_unknown_ids_are_clear_errors(
    tmp_path: Path, registry: Path
) -> None:
    entry_file = write_entry(tmp_path, make_entry(1))
    reg = ["--registry", str(registry)]
    assert run_curator("registry", "add", "--file", str(entry_file), *reg).returncode == 0
    again = run_curator("registry", "add", "--file", str(entry_file), *reg)
    assert again.returncode == 1  # the command was well formed; the registry refused it
    assert "already in" in again.stderr and "curator registry update" in again.stderr
    for command in (("show", "nope:1"), ("remove", "nope:1"), ("update", "nope:1", "--notes", "x")):
        result = run_curator("registry", *command, *reg)
        assert result.returncode == 1
        assert result.stderr.startswith("error: no model 'nope:1'")


def test_invalid_edit_is_refused_and_file_untouched(tmp_path: Path, registry: Path) -> None:
    upsert_model(registry, make_entry(1))
    before = registry.read_bytes()
    bad = make_entry(2, license="proprietary")
    bad["build"]["artifacts"][0]["path"] = "../../etc/passwd"
    result = run_curator(
        "registry", "add", "--file", str(write_entry(tmp_path, bad)), "--registry", str(registry)
    )
    assert result.returncode == 1
    assert "edit refused" in result.stderr
    assert "models[id=model2-generic-cpu:1].license: license 'proprietary'" in result.stderr
    assert "artifact-path-safe" in result.stderr
    assert registry.read_bytes() == before
    with pytest.raises(RegistryInvalid):
        upsert_model(registry, make_entry(1, minRamGb=-1))
    assert registry.read_bytes() == before


def test_existing_problems_do_not_block_repairs(registry: Path) -> None:
    registry.parent.mkdir(parents=True)
    document = json.loads(
        json.dumps(
            {
                "schemaVersion": 1,
                "policy": {"allowedLicenses": ["mit"]},
                "models": [make_entry(1), make_entry(2)],
            }
        )
    )
    registry.write_text(json.dumps(document))  # both entries break policy (apache-2.0)
    upsert_model(registry, make_entry(1, license="mit"))
    problems = validate_document(load_registry(registry)).problems
    assert [(p.path, p.rule) for p in problems] == [("models[1].license", "license-allowed")]


def test_a_non_object_entry_does_not_block_edits_when_sorting_moves_it(registry: Path) -> None:
    """A registry holding junk (a string where an entry belongs) is repaired edit by edit: the
    junk's schema problem was there before, even though sorting the models moves its index."""
    registry.parent.mkdir(parents=True)
    document = {"schemaVersion": 1, "policy": {"allowedLicenses": ["apache-2.0"]}}
    document["models"] = ["junk", make_entry(5)]
    registry.write_text(json.dumps(document))
    assert upsert_model(registry, make_entry(1)) == "added"
    assert upsert_model(registry, make_entry(5, minRamGb=4.0)) == "updated"
    models = load_registry(registry)["models"]
    assert "junk" in models
    assert sorted(m["id"] for m in models if isinstance(m, dict)) == [
        make_entry(1)["id"],
        make_entry(5)["id"],
    ]
    new_junk = make_entry(7)
    new_junk["fileSizeMb"] = "big"  # a new problem is still refused
    with pytest.raises(RegistryInvalid):
        upsert_model(registry, new_junk)


def test_stable_format(registry: Path) -> None:
    upsert_model(registry, make_entry(2))
    upsert_model(registry, make_entry(1))
    text = registry.read_text()
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert '\n  "models": [\n    {\n      "alias"' in text  # 2-space indent, sorted keys
    ids = [m["id"] for m in json.loads(text)["models"]]
    assert ids == sorted(ids)
    upsert_model(registry, make_entry(1))  # a no-op edit changes no byte
    assert registry.read_text() == text


def test_interrupted_write_leaves_old_file_and_no_temp(
    registry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upsert_model(registry, make_entry(1))
    before = registry.read_bytes()

    def interrupted(src: object, dst: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        upsert_model(registry, make_entry(2))
    monkeypatch.undo()
    assert registry.read_bytes() == before
    assert sorted(p.name for p in registry.parent.iterdir()) == [".models.json.lock", "models.json"]


def start_add(entry_file: Path, registry: Path, *extra: str) -> subprocess.Popen[str]:
    """A `curator registry add` process, left running."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "curator",
            "registry",
            "add",
            "--file",
            str(entry_file),
            "--registry",
            str(registry),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_eight_concurrent_writers_keep_all_entries(tmp_path: Path, registry: Path) -> None:
    files = [write_entry(tmp_path, make_entry(i), f"e{i}.json") for i in range(8)]
    procs = [start_add(f, registry) for f in files]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    document = load_registry(registry)
    assert sorted(m["id"] for m in document["models"]) == sorted(
        f"model{i}-generic-cpu:1" for i in range(8)
    )
    assert validate_document(document).valid


KILL_LOOP = """
import sys
from pathlib import Path
from curator.registry import upsert_model
from tests.samples import make_entry
registry = Path(sys.argv[1])
big = "x" * 1500
i = 0
while True:
    upsert_model(registry, make_entry(i % 300, notes=big))
    i += 1
    if i == 5:
        print("writing", flush=True)
"""


def test_killed_writer_never_leaves_a_torn_file(registry: Path) -> None:
    """SIGKILL a process that rewrites the registry in a loop: the file always parses and validates."""
    repo = Path(__file__).resolve().parent.parent
    for delay in (0.05, 0.13, 0.21, 0.37):
        proc = subprocess.Popen(
            [sys.executable, "-c", KILL_LOOP, str(registry)],
            cwd=repo,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        document = json.loads(registry.read_text())
        assert validate_document(document).valid
        assert len(document["models"]) >= 5


def test_concurrent_adds_of_one_id_admit_exactly_one(tmp_path: Path, registry: Path) -> None:
    entry_file = write_entry(tmp_path, make_entry(1))
    procs = [start_add(entry_file, registry, "--json") for _ in range(4)]
    outcomes = [(p.wait(timeout=120), p.communicate()) for p in procs]
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 1, 1, 1]
    ((out, _),) = [io for code, io in outcomes if code == 0]
    assert json.loads(out) == {
        "action": "added",
        "id": "model1-generic-cpu:1",
        "registry": str(registry),
    }
    assert len(load_registry(registry)["models"]) == 1
