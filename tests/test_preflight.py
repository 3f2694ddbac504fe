"""Guards: curator.compile.preflight

Every preflight check in process (the compile CLI tests in test_compile_failures.py are the
end-to-end layer): each refuses exactly past its limit, names the figures and gives a hint."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from curator.compile import preflight
from curator.errors import PreflightError, UsageProblem
from curator.recipes import BUILT_WRONG, SUPPORTED_ARCHITECTURES, Recipe, get_recipe

INT4 = get_recipe("int4-cpu")
GPTQ = get_recipe("int4-gptq-cpu")
CUDA = get_recipe("int4-cuda")


def test_gib_shows_one_decimal() -> None:
    assert preflight.gib(2**30) == "1.0 GiB"
    assert preflight.gib(int(1.26 * 2**30)) == "1.3 GiB"
    assert preflight.gib(0) == "0.0 GiB"


@pytest.mark.parametrize("model_id", ["m-generic-cpu:1", "a.b_c-generic-cpu:999999"])
def test_a_model_id_of_the_recipes_variant_passes(model_id: str) -> None:
    preflight.check_model_id(model_id, INT4)


@pytest.mark.parametrize(
    "model_id", ["M-generic-cpu:1", "m-generic-cpu", "m-generic-cpu:0", "-generic-cpu:1", "m:1:2"]
)
def test_a_model_id_not_of_the_form_is_a_usage_problem(model_id: str) -> None:
    with pytest.raises(UsageProblem) as refused:
        preflight.check_model_id(model_id, INT4)
    assert "is not NAME-VARIANT:VERSION in lower case" in refused.value.message
    assert refused.value.hint == f"e.g. --id mymodel-{INT4.variant}:1"


def test_a_model_id_of_another_variant_is_refused() -> None:
    with pytest.raises(UsageProblem) as refused:
        preflight.check_model_id("m-cuda-gpu:1", INT4)
    assert f"does not end with recipe int4-cpu's variant -{INT4.variant}" in refused.value.message
    assert refused.value.hint == f"use --id NAME-{INT4.variant}:VERSION"
    with pytest.raises(UsageProblem):
        preflight.check_model_id(f"m{INT4.variant}:1", INT4)  # no dash before the variant


def test_calibration_data_only_where_the_recipe_takes_it(tmp_path: Path) -> None:
    preflight.check_calibration(INT4, None)
    with pytest.raises(UsageProblem, match="takes no calibration data"):
        preflight.check_calibration(INT4, tmp_path / "c.jsonl")
    with pytest.raises(UsageProblem, match="needs calibration data") as missing:
        preflight.check_calibration(GPTQ, None)
    assert missing.value.hint is not None and "--calibration FILE.jsonl" in missing.value.hint
    with pytest.raises(PreflightError, match="calibration file not found"):
        preflight.check_calibration(GPTQ, tmp_path / "absent.jsonl")
    given = tmp_path / "c.jsonl"
    given.write_text('{"text": "x"}\n', encoding="utf-8")
    preflight.check_calibration(GPTQ, given)  # datasets is installed here


def test_calibration_needs_the_datasets_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = tmp_path / "c.jsonl"
    given.write_text('{"text": "x"}\n', encoding="utf-8")
    monkeypatch.setattr(preflight.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PreflightError, match="needs the 'datasets' package") as refused:
        preflight.check_calibration(GPTQ, given)
    assert refused.value.hint is not None and "int4-rtn-cpu" in refused.value.hint


@pytest.mark.parametrize(
    ("olive", "genai", "message"),
    [
        (None, "0.14.1", "olive-ai not installed"),
        ("0.13.0", None, "onnxruntime-genai not installed"),
        (None, None, "olive-ai and onnxruntime-genai not installed"),
        ("0.13.0", "0.15.0", "onnxruntime-genai 0.15.0 is installed; Olive 0.13.0's ModelBuilder"),
        ("0.13.0", "1.14.0", "onnxruntime-genai 1.14.0 is installed"),
    ],
)
def test_the_toolchain_must_be_installed_in_versions_that_work(
    monkeypatch: pytest.MonkeyPatch, olive: str | None, genai: str | None, message: str
) -> None:
    versions = {"olive-ai": olive, "onnxruntime-genai": genai}
    monkeypatch.setattr(preflight, "_version", versions.get)
    with pytest.raises(PreflightError) as refused:
        preflight.check_toolchain()
    assert message in refused.value.message
    assert refused.value.hint is not None


def test_the_installed_toolchain_passes() -> None:
    preflight.check_toolchain()
    assert preflight._version("olive-ai") is not None
    assert preflight._version("no-such-distribution-here") is None


def test_a_gpu_recipe_needs_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight, "has_cuda_gpu", lambda: False)
    preflight.check_device(INT4)
    with pytest.raises(PreflightError, match="has no NVIDIA GPU") as refused:
        preflight.check_device(CUDA)
    assert refused.value.hint is not None and "--dry-run" in refused.value.hint
    monkeypatch.setattr(preflight, "has_cuda_gpu", lambda: True)
    preflight.check_device(CUDA)


def test_no_gpu_is_seen_without_nvidia_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight.shutil, "which", lambda name: None)
    if not Path("/proc/driver/nvidia/gpus").is_dir():
        assert preflight.has_cuda_gpu() is False


def test_the_architecture_comes_from_the_config(tmp_path: Path) -> None:
    supported = sorted(SUPPORTED_ARCHITECTURES)[0]
    assert preflight.check_architecture({"architectures": [supported, "X"]}, tmp_path) == supported
    for config in ({}, {"architectures": []}, {"architectures": "Qwen2ForCausalLM"}):
        with pytest.raises(PreflightError, match="names no architectures") as refused:
            preflight.check_architecture({**config, "model_type": "qwen2"}, tmp_path)
        assert "(model_type qwen2)" in refused.value.message
    with pytest.raises(PreflightError, match="model_type unknown"):
        preflight.check_architecture({}, tmp_path)


def test_an_unsupported_or_wrongly_built_architecture_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PreflightError, match="is not supported by the model builder") as refused:
        preflight.check_architecture({"architectures": ["BertModel"]}, tmp_path)
    assert sorted(SUPPORTED_ARCHITECTURES)[0] in refused.value.message
    wrong = next(iter(BUILT_WRONG))
    with pytest.raises(PreflightError) as refused:
        preflight.check_architecture({"architectures": [wrong]}, tmp_path)
    assert refused.value.message == f"architecture {wrong} is refused: {BUILT_WRONG[wrong]}"


def test_repository_code_needs_trust() -> None:
    preflight.check_custom_code([], trust_remote_code=False)
    preflight.check_custom_code(["auto_map"], trust_remote_code=True)
    with pytest.raises(PreflightError) as refused:
        preflight.check_custom_code(["auto_map", "modeling_x.py"], trust_remote_code=False)
    assert "(auto_map, modeling_x.py)" in refused.value.message
    assert refused.value.hint == "read that code, then add --trust-remote-code"


def test_an_existing_target_needs_force(tmp_path: Path) -> None:
    preflight.check_target(tmp_path / "absent", force=False)
    with pytest.raises(PreflightError, match="already exists") as refused:
        preflight.check_target(tmp_path, force=False)
    assert refused.value.hint is not None and "--force" in refused.value.hint
    preflight.check_target(tmp_path, force=True)


def _recipe(passes: int, bytes_per_parameter: float) -> Recipe:
    return dataclasses.replace(
        INT4, passes=INT4.passes[:1] * passes, run_bytes_per_parameter=bytes_per_parameter
    )


def test_predicted_disk_counts_the_output_and_each_intermediate() -> None:
    margin = preflight.DISK_MARGIN_BYTES
    assert preflight.predicted_disk_bytes(_recipe(1, 0.5), 1000) == 500 + margin
    assert preflight.predicted_disk_bytes(_recipe(3, 0.5), 1000) == 500 + 8000 + margin
    assert preflight.predicted_disk_bytes(_recipe(1, 0.75), 3) == 2 + margin  # rounded down


def test_free_disk_is_read_on_the_nearest_existing_parent(tmp_path: Path) -> None:
    free = preflight.free_disk_bytes(tmp_path / "not" / "yet" / "there")
    assert (
        free == preflight.shutil.disk_usage(tmp_path).free
        or abs(free - preflight.shutil.disk_usage(tmp_path).free) < 2**26
    )


def test_disk_and_ram_refuse_only_past_what_there_is(tmp_path: Path) -> None:
    preflight.check_disk(2**30, 2**30, tmp_path)
    with pytest.raises(PreflightError) as refused:
        preflight.check_disk(2**30 + 1, 2**30, tmp_path)
    assert (
        f"not enough disk under {tmp_path}: the compile needs about 1.0 GiB, 1.0 GiB is free"
        == (refused.value.message)
    )
    assert refused.value.hint == "free some space or pass --cache-dir on a larger disk"
    preflight.check_ram(2**31, 2**31, INT4)
    with pytest.raises(PreflightError) as refused:
        preflight.check_ram(3 * 2**30, 2**31, INT4)
    assert refused.value.message == (
        "recipe int4-cpu is predicted to need 3.0 GiB of RAM at peak; 2.0 GiB is available"
    )
    assert refused.value.hint is not None and "curator recipes list" in refused.value.hint
    assert preflight.available_ram_bytes() > 0


def test_a_chat_model_needs_a_chat_template() -> None:
    preflight.check_chat_template(True, "x")
    preflight.check_chat_template(None, "x")  # not known yet
    with pytest.raises(PreflightError, match="has no chat template") as refused:
        preflight.check_chat_template(False, "org/m")
    assert refused.value.hint is not None and "curator compile org/m --chat-template" in (
        refused.value.hint
    )


# The hint is what the user reads next: each check's, exactly.
def _hint_of(check: Any) -> str | None:
    with pytest.raises((PreflightError, UsageProblem)) as refused:
        check()
    return refused.value.hint


def test_each_refusal_gives_its_own_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _hint_of(lambda: preflight.check_calibration(INT4, tmp_path)) == "drop --calibration"
    assert _hint_of(lambda: preflight.check_calibration(GPTQ, tmp_path / "x")) == (
        'give a JSONL file with one {"text": ...} object per line'
    )
    assert _hint_of(lambda: preflight.check_architecture({}, tmp_path)) == (
        "only causal language models the ONNX Runtime GenAI builder knows can compile"
    )
    search = "curator search finds models of a supported architecture"
    assert (
        _hint_of(lambda: preflight.check_architecture({"architectures": ["X"]}, tmp_path)) == search
    )
    wrong = {"architectures": [next(iter(BUILT_WRONG))]}
    assert _hint_of(lambda: preflight.check_architecture(wrong, tmp_path)) == search
    assert _hint_of(lambda: preflight.check_target(tmp_path, force=False)) == (
        "add --force to replace it, or choose another --id"
    )
    assert _hint_of(lambda: preflight.check_ram(2, 1, INT4)) == (
        "close other programs, use a smaller model, or try another recipe (curator recipes list)"
    )
    monkeypatch.setattr(preflight.importlib.util, "find_spec", lambda name: None)
    given = tmp_path / "c.jsonl"
    given.write_text("{}\n", encoding="utf-8")
    assert _hint_of(lambda: preflight.check_calibration(GPTQ, given)) == (
        "pip install datasets (or use --recipe int4-rtn-cpu, which needs no data)"
    )


def test_the_unsupported_architecture_message_lists_every_supported_one(tmp_path: Path) -> None:
    with pytest.raises(PreflightError) as refused:
        preflight.check_architecture({"architectures": ["BertModel"]}, tmp_path)
    supported = ", ".join(sorted(SUPPORTED_ARCHITECTURES))
    assert refused.value.message == (
        f"architecture BertModel is not supported by the model builder; supported: {supported}"
    )


def test_a_path_windows_cannot_open_is_refused_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from curator import portable

    monkeypatch.setattr(portable, "IS_WINDOWS", True)
    room = portable.WINDOWS_MAX_PATH - portable.MODEL_DIR_RESERVE - len(str(tmp_path)) - 1
    preflight.check_target(tmp_path / ("m" * (room - 1)), force=False)
    with pytest.raises(PreflightError, match="Windows opens at most 259") as refused:
        preflight.check_target(tmp_path / ("m" * room), force=False)
    assert refused.value.hint == portable.LONG_PATHS_HINT


class _Smi:
    def __init__(self, code: int, out: str) -> None:
        self.returncode, self.stdout = code, out


@pytest.mark.parametrize(
    ("smi", "answer", "expected"),
    [
        (None, None, False),
        ("/usr/bin/nvidia-smi", _Smi(0, "GPU 0: NVIDIA A10 (UUID: x)"), True),
        ("/usr/bin/nvidia-smi", _Smi(0, "No devices were found"), False),
        ("/usr/bin/nvidia-smi", _Smi(9, "GPU 0: NVIDIA A10"), False),
        ("/usr/bin/nvidia-smi", OSError("cannot run"), False),
    ],
)
def test_a_gpu_is_what_nvidia_smi_lists(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, smi: str | None, answer: Any, expected: bool
) -> None:
    seen: list[list[str]] = []

    def run(cmd: list[str], **kwargs: Any) -> Any:
        seen.append(cmd)
        assert kwargs["timeout"] == 10 and kwargs["capture_output"] and kwargs["text"]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    real_path = preflight.Path
    monkeypatch.setattr(
        preflight,
        "Path",
        lambda p: tmp_path / "no-driver" if p == "/proc/driver/nvidia/gpus" else real_path(p),
    )
    monkeypatch.setattr(
        preflight.shutil, "which", lambda name: smi if name == "nvidia-smi" else None
    )
    monkeypatch.setattr(preflight.subprocess, "run", run)
    assert preflight.has_cuda_gpu() is expected
    assert seen == ([] if smi is None else [[smi, "-L"]])


def test_a_gpu_the_driver_lists_needs_no_nvidia_smi(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    gpus = tmp_path / "gpus"
    (gpus / "0000:00:1e.0").mkdir(parents=True)
    monkeypatch.setattr(preflight, "Path", lambda p: gpus)
    monkeypatch.setattr(preflight.shutil, "which", lambda name: pytest.fail("not needed"))
    assert preflight.has_cuda_gpu() is True
    (gpus / "0000:00:1e.0").rmdir()
    monkeypatch.setattr(preflight.shutil, "which", lambda name: None)
    assert preflight.has_cuda_gpu() is False
