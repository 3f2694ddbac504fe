"""Guards: curator.cli.compile, curator.compile.api, curator.compile.check, curator.compile.placement,
  curator.recipes

curator compile refusals and failures: preflight before Olive starts, Olive failing, and compiles
interrupted or killed midway leaving the Foundry cache clean."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import interruptible_python, run_curator

WORK = ".curator-work"


def copy_model(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination)
    return destination


def cache_entries(cache: Path) -> list[str]:
    """Everything under the cache, relative, except empty directories."""
    return sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file())


def assert_refused_before_olive(done: subprocess.CompletedProcess[str], cache: Path) -> None:
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "hint:" in done.stderr
    assert "pass builder" not in done.stderr  # Olive never started
    assert cache_entries(cache) == []


def fake_safetensors(path: Path, rows: int, columns: int = 1, dtype: str = "BF16") -> None:
    """A valid safetensors file of one huge tensor (BF16 or F32), sparse (no data is written: preflight
    reads headers only). The strict header reader checks that the offsets span dtype x shape and
    that the file holds them; a bare header (offsets [0, 0]) is refused and counted by its bytes."""
    size = {"BF16": 2, "F32": 4}[dtype] * rows * columns
    header = json.dumps(
        {"w": {"dtype": dtype, "shape": [rows, columns], "data_offsets": [0, size]}}
    ).encode()
    with path.open("wb") as out:
        out.write(struct.pack("<Q", len(header)) + header)
        out.truncate(8 + len(header) + size)


def test_bert_config_is_refused_listing_supported_architectures(
    tmp_path: Path, isolated_env: Path
) -> None:
    model = tmp_path / "bert"
    model.mkdir()
    (model / "config.json").write_text(
        json.dumps({"architectures": ["BertModel"], "model_type": "bert", "hidden_size": 64})
    )
    start = time.monotonic()
    done = run_curator("compile", str(model), "--recipe", "int4-cpu")
    assert time.monotonic() - start < 20
    assert_refused_before_olive(done, isolated_env / "foundry-cache")
    assert "architecture BertModel is not supported" in done.stderr
    assert "Qwen2ForCausalLM" in done.stderr and "LlamaForCausalLM" in done.stderr


def test_custom_code_model_needs_trust_remote_code(
    tiny_model_dir: Path, tmp_path: Path, isolated_env: Path
) -> None:
    model = copy_model(tiny_model_dir, tmp_path / "custom")
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_custom.CustomForCausalLM"}
    (model / "config.json").write_text(json.dumps(config))
    (model / "modeling_custom.py").write_text("raise SystemExit('must not run')\n")
    done = run_curator("compile", str(model), "--recipe", "int4-cpu")
    assert_refused_before_olive(done, isolated_env / "foundry-cache")
    assert "auto_map AutoModelForCausalLM" in done.stderr
    assert "modeling_custom.py" in done.stderr and "--trust-remote-code" in done.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no config.json"),
        ("{not json", "config.json is not valid JSON"),
        ("[1, 2]", "is not a JSON object"),
        ('{"model_type": "qwen2"}', "names no architectures"),
    ],
)
def test_missing_or_broken_config_is_refused(
    content: str | None, expected: str, tmp_path: Path, isolated_env: Path
) -> None:
    model = tmp_path / "broken"
    model.mkdir()
    if content is not None:
        (model / "config.json").write_text(content)
    done = run_curator("compile", str(model), "--recipe", "int4-cpu")
    assert_refused_before_olive(done, isolated_env / "foundry-cache")
    assert expected in done.stderr


def test_predicted_ram_above_available_shows_both_figures(
    tiny_model_dir: Path, tmp_path: Path, isolated_env: Path
) -> None:
    """A streamed build's peak is set by the largest unit (curator.compile.cost), not by the
    parameter count: the config's vocabulary makes the embedding alone twice the available RAM.
    RAM is checked before disk, so this machine's free disk does not decide which one refuses."""
    import psutil

    model = copy_model(tiny_model_dir, tmp_path / "huge")
    config = json.loads((model / "config.json").read_text())
    hidden = int(config["hidden_size"])
    vocab = int(2 * psutil.virtual_memory().available / (4 * hidden)) + 1  # F32: 4 bytes each
    config["vocab_size"] = vocab
    (model / "config.json").write_text(json.dumps(config))
    fake_safetensors(model / "model.safetensors", vocab, hidden, "F32")
    done = run_curator("compile", str(model), "--recipe", "int4-cpu")
    assert_refused_before_olive(done, isolated_env / "foundry-cache")
    assert "predicted to need" in done.stderr and "GiB of RAM at peak" in done.stderr
    assert "GiB is available" in done.stderr


def test_too_little_disk_is_refused(
    tiny_model_dir: Path, tmp_path: Path, isolated_env: Path
) -> None:
    free = shutil.disk_usage(isolated_env / "foundry-cache").free
    model = copy_model(tiny_model_dir, tmp_path / "enormous")
    fake_safetensors(model / "model.safetensors", free, 1)  # 1.2 bytes/parameter compiled
    done = run_curator("compile", str(model), "--recipe", "int4-cpu")
    assert_refused_before_olive(done, isolated_env / "foundry-cache")
    assert "not enough disk" in done.stderr and "--cache-dir" in done.stderr


def test_usage_errors_exit_2(tiny_model_dir: Path, isolated_env: Path) -> None:
    cases = [
        (["--recipe", "int3-cpu"], "unknown recipe"),
        (["--recipe", "int4-cpu", "--id", "Upper-generic-cpu:1"], "not NAME-VARIANT:VERSION"),
        (["--recipe", "int4-cpu", "--id", "tiny-cuda-gpu:1"], "does not end with"),
        (["--recipe", "int4-gptq-cpu"], "needs calibration data"),
        (["--recipe", "int4-cpu", "--calibration", "x.jsonl"], "takes no calibration"),
        (["--recipe", "int4-cpu", "--revision", "main"], "--revision applies only"),
    ]
    for args, expected in cases:
        done = run_curator("compile", str(tiny_model_dir), *args)
        assert done.returncode == 2, (args, done.stderr)
        assert expected in done.stderr, (args, done.stderr)
    assert cache_entries(isolated_env / "foundry-cache") == []


def test_olive_failure_exits_1_with_the_log_tail_and_leaves_nothing(
    tiny_model_dir: Path, tmp_path: Path, isolated_env: Path
) -> None:
    model = copy_model(tiny_model_dir, tmp_path / "corrupt")
    (model / "model.safetensors").write_bytes(b"\x00" * 4096)  # valid config, unreadable weights
    cache = isolated_env / "foundry-cache"
    done = run_curator("compile", str(model), "--recipe", "int4-cpu")
    assert done.returncode == 1, done.stderr
    assert "Olive did not produce a usable model" in done.stderr
    assert "last lines of compile.log" in done.stderr
    assert "pass builder running" in done.stderr  # it got as far as Olive
    tail = done.stderr.split("last lines of compile.log")[1]
    assert "SafetensorError" in tail  # the cause, from Olive's log
    assert cache_entries(cache) == []
    assert not (cache / WORK).exists()
    logs = list((isolated_env / "home" / "logs").glob("compile-*.log"))
    assert len(logs) == 1 and str(logs[0]) in done.stderr


def start_compile(model: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        interruptible_python(
            "-m", "curator", "compile", str(model), "--recipe", "int4-cpu", *extra
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )


def wait_for_olive(cache: Path, proc: subprocess.Popen[str], timeout: float = 60) -> int:
    """The Olive child's pid once the compile recorded it in its work directory."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for owner in (cache / WORK).glob("*/owner.json"):
            try:
                child = json.loads(owner.read_text()).get("child_pid")
            except ValueError:
                continue
            if child:
                return int(child)
        time.sleep(0.05)
    raise AssertionError("the compile never started Olive")


def pid_gone(pid: int, timeout: float = 15) -> bool:
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_olive_killed_midway_fails_cleanly(tiny_model_dir: Path, isolated_env: Path) -> None:
    cache = isolated_env / "foundry-cache"
    proc = start_compile(tiny_model_dir)
    os.kill(wait_for_olive(cache, proc), signal.SIGKILL)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    assert "Olive did not produce a usable model (exit code -9)" in stderr
    assert cache_entries(cache) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_compile_stops_olive_and_cleans_up(
    sig: signal.Signals, tiny_model_dir: Path, isolated_env: Path
) -> None:
    cache = isolated_env / "foundry-cache"
    proc = start_compile(tiny_model_dir)
    child = wait_for_olive(cache, proc)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert pid_gone(child)
    assert cache_entries(cache) == []


def test_compile_killed_outright_is_cleaned_by_the_next_run(
    tiny_model_dir: Path, isolated_env: Path
) -> None:
    cache = isolated_env / "foundry-cache"
    proc = start_compile(tiny_model_dir)
    child = wait_for_olive(cache, proc)
    proc.kill()  # SIGKILL: no cleanup runs in curator
    proc.communicate(timeout=60)
    assert pid_gone(child), "the Olive child outlived its parent"
    leftovers = [p.name for p in (cache / WORK).iterdir()]
    assert len(leftovers) == 1  # the killed run's work directory, never at the target
    assert not (cache / "local").exists()
    done = run_curator("compile", str(tiny_model_dir), "--recipe", "int4-cpu")
    assert done.returncode == 0, done.stderr
    assert f"removed a work directory left by an interrupted compile: {leftovers[0]}" in done.stderr
    assert not (cache / WORK).exists()
    (target,) = (cache / "local").iterdir()
    assert (target / "genai_config.json").is_file()


def test_an_incompatible_model_builder_is_refused_before_olive(
    tiny_model_dir: Path, tmp_path: Path, isolated_env: Path
) -> None:
    # A distribution found earlier on sys.path shadows the installed one for importlib.metadata.
    shadow = tmp_path / "shadow" / "onnxruntime_genai-0.18.0.dist-info"
    shadow.mkdir(parents=True)
    (shadow / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: onnxruntime-genai\nVersion: 0.18.0\n"
    )
    done = run_curator(
        "compile", str(tiny_model_dir), "--recipe", "int4-cpu",
        env={"PYTHONPATH": str(shadow.parent)},
    )  # fmt: skip
    assert_refused_before_olive(done, isolated_env / "foundry-cache")
    assert "onnxruntime-genai 0.18.0 is installed" in done.stderr
    assert "pip install onnxruntime-genai==0.14.1" in done.stderr


def test_a_running_compile_is_not_taken_for_a_stale_one(
    tiny_model_dir: Path, isolated_env: Path
) -> None:
    cache = isolated_env / "foundry-cache"
    first = start_compile(tiny_model_dir, "--id", "first-generic-cpu:1")
    wait_for_olive(cache, first)
    second = run_curator("compile", str(tiny_model_dir), "--recipe", "int4-cpu", "--id",
                         "second-generic-cpu:1")  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert "removed a work directory" not in second.stderr
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert sorted(p.name for p in (cache / "local").iterdir()) == [
        "first-generic-cpu-1",
        "second-generic-cpu-1",
    ]
    assert not (cache / WORK).exists()


def test_force_keeps_the_old_model_when_the_new_one_cannot_be_placed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from curator.compile import placement

    target, work, built = tmp_path / "target", tmp_path / "work", tmp_path / "work" / "built"
    target.mkdir()
    (target / "genai_config.json").write_text("{}")
    built.mkdir(parents=True)
    real_replace = os.replace

    def fail_on_built(src: object, dst: object) -> None:
        if Path(str(src)) == built:
            raise OSError("disk full")
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(placement.os, "replace", fail_on_built)
    with pytest.raises(OSError, match="disk full"):
        placement.place(built, target, work, replace=True)
    assert (target / "genai_config.json").is_file()
