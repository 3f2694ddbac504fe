"""Guards: curator.register.entry, curator.register.loadtest, curator.register.types

The register flows' core in process (the CLI tests in test_foundry_register.py and test_catalog.py
are the end-to-end layer): the one registry entry both flows write, the metadata registered from
it, minRamGb from the load test's peak and the latest benchmark, and a load test that fails
putting back the registration it replaced (a fake runtime stands in for Foundry Local)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from curator.errors import FoundryError
from curator.foundry.types import ChatResult, ModelMetadata, RegisteredModel, Usage
from curator.register import entry as entry_mod
from curator.register import loadtest
from curator.register.entry import (
    KEPT_ON_REREGISTER,
    foundry_metadata,
    registry_entry,
    runtime_of,
    variant_of,
)
from curator.register.loadtest import LoadTest, min_ram_for, min_ram_from_peak
from curator.registry.rules import ram_floor_gb


def _entry(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "model_id": "tiny-generic-cpu:2",
        "alias": "tiny",
        "display_name": "Tiny",
        "task": "chat-completion",
        "license": "mit",
        "publisher": "local",
        "capabilities": ["chat"],
        "file_size_mb": 12.5,
        "min_ram_gb": 1.5,
        "context_length": 2048,
        "runtime": ("CPU", "CPUExecutionProvider"),
        "source": {"repo": "local:tiny", "architecture": "Qwen2ForCausalLM"},
    }
    values.update(changes)
    return registry_entry(**values)


def test_the_entry_holds_what_this_registration_knows() -> None:
    entry = _entry(build={"recipe": "int4-cpu"})
    assert entry == {
        "id": "tiny-generic-cpu:2",
        "alias": "tiny",
        "displayName": "Tiny",
        "variant": "generic-cpu",
        "task": "chat-completion",
        "license": "mit",
        "publisher": "local",
        "capabilities": ["chat"],
        "fileSizeMb": 12.5,
        "minRamGb": 1.5,
        "contextLength": 2048,
        "runtime": {"deviceType": "CPU", "executionProvider": "CPUExecutionProvider"},
        "source": {"repo": "local:tiny", "architecture": "Qwen2ForCausalLM"},
        "build": {"recipe": "int4-cpu"},
    }
    assert "build" not in _entry()  # a catalog model has no build


def test_a_reregistration_keeps_what_people_wrote_and_measured_and_nothing_else() -> None:
    existing = {key: f"kept {key}" for key in KEPT_ON_REREGISTER}
    existing.update({"alias": "old alias", "minRamGb": 99, "build": {"recipe": "old"}})
    entry = _entry(existing=existing)
    for key in KEPT_ON_REREGISTER:
        assert entry[key] == f"kept {key}"
    assert entry["alias"] == "tiny" and entry["minRamGb"] == 1.5 and "build" not in entry


def test_unknown_sizes_and_context_lengths_get_the_schemas_least_values() -> None:
    entry = _entry(file_size_mb=0, context_length=None)
    assert entry["fileSizeMb"] == 0.01 and entry["contextLength"] == 1


@pytest.mark.parametrize(
    ("model_id", "variant"),
    [
        ("tiny-generic-cpu:1", "generic-cpu"),
        ("phi-4-mini-instruct-cuda-gpu:5", "cuda-gpu"),
        ("m-qnn-npu:12", "qnn-npu"),
        ("tiny-cpu:1", None),  # no variant before the device
        ("tiny-generic-tpu:1", None),
        ("Tiny-generic-cpu:1", None),  # the registry's ids are lower case
        ("tiny-generic-cpu", None),
        ("tiny-generic-cpu:0", None),
    ],
)
def test_variant_of_reads_the_ids_variant(model_id: str, variant: str | None) -> None:
    match = variant_of(model_id)
    assert (match["variant"] if match else None) == variant
    if variant is None:
        with pytest.raises(ValueError):
            _entry(model_id=model_id)


def test_the_foundry_metadata_comes_from_the_entry() -> None:
    metadata = foundry_metadata(_entry(file_size_mb=12.5))
    assert metadata == ModelMetadata(
        display_name="Tiny",
        publisher="local",
        license="mit",
        file_size_mb=12,
        context_length=2048,
        device_type="CPU",
        execution_provider="CPUExecutionProvider",
    )
    assert foundry_metadata(_entry(file_size_mb=0.2)).file_size_mb == 1
    assert foundry_metadata(_entry(), context_length=None).context_length == 2048
    assert foundry_metadata(_entry(context_length=None), context_length=7).context_length == 7
    pulled = {"id": "x-generic-cpu:1", "runtime": "junk"}  # a registry entry from elsewhere
    assert foundry_metadata(pulled).device_type is None


def test_runtime_of_prefers_the_manifest_then_the_provider_options() -> None:
    gpu = {"model": {"decoder": {"session_options": {"provider_options": [{"CUDA": {}}]}}}}
    assert runtime_of(gpu, None) == ("GPU", "CUDAExecutionProvider")
    assert runtime_of(gpu, {"runtime": {"deviceType": "NPU", "executionProvider": "X"}}) == (
        "NPU",
        "X",
    )
    assert runtime_of(gpu, {"runtime": {"deviceType": "NPU"}}) == ("GPU", "CUDAExecutionProvider")
    assert runtime_of({"model": []}, None) == ("CPU", "CPUExecutionProvider")
    assert runtime_of({}, {}) == ("CPU", "CPUExecutionProvider")


def test_publisher_is_the_cache_folder_only_below_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "acme" / "m-generic-cpu-1").mkdir(parents=True)
    (cache / "m-generic-cpu-1").mkdir()
    assert entry_mod.publisher_of(cache / "acme" / "m-generic-cpu-1", {}, None, cache) == "acme"
    assert entry_mod.publisher_of(cache / "m-generic-cpu-1", {}, None, cache) == "local"
    outside = tmp_path / "acme" / "m"
    outside.mkdir(parents=True)
    assert entry_mod.publisher_of(outside, {}, None, cache) == "local"
    assert entry_mod.publisher_of(outside, {"publisher": "Org"}, None, cache) == "Org"
    assert entry_mod.publisher_of(outside, {"publisher": "bad name"}, None, cache) == "local"


# ------------------------------------------------------------------------------------ min RAM


def _test(peak_mb: float) -> LoadTest:
    return LoadTest(1.0, 2.0, 3, 4, peak_mb)


def test_min_ram_is_the_peak_with_headroom_rounded_up() -> None:
    assert min_ram_from_peak(1024) == 1.8  # 1 GiB * 1.5 + 0.25 = 1.75 -> 1.8
    assert min_ram_from_peak(0) == 0.3  # 0.25 -> 0.3
    assert min_ram_for(None, _test(1024), None) == 1.8
    assert min_ram_for(0.5, _test(1024), None) == 0.5  # --min-ram-gb wins


def test_min_ram_covers_the_latest_benchmark() -> None:
    existing = {
        "benchmarks": [
            {"date": "2026-01-02", "peakMemoryMb": 4000},
            {"date": "2026-01-01", "peakMemoryMb": 9000},
        ]
    }
    assert ram_floor_gb(4000) == 4.0  # 3.906 GiB -> 4.0
    assert ram_floor_gb(1024) == 1.0 and ram_floor_gb(1025) == 1.1
    assert min_ram_for(None, _test(1024), existing) == 4.0
    assert min_ram_for(None, _test(4096), existing) == 6.3
    assert min_ram_for(None, _test(1024), {"benchmarks": []}) == 1.8


# -------------------------------------------------------------------------- load test, put back


@dataclass
class FakeLoaded:
    tokens: int
    unloaded: bool = False

    def chat(self, messages: list[dict[str, str]], max_tokens: int) -> ChatResult:
        assert max_tokens == loadtest.LOAD_TEST_TOKENS
        return ChatResult("hi" * self.tokens, Usage(5, self.tokens), "stop")

    def unload(self) -> None:
        self.unloaded = True


@dataclass
class FakeRuntime:
    """Foundry Local's registrations as a dict; ``tokens`` is what a loaded model generates."""

    registered: dict[str, RegisteredModel] = field(default_factory=dict)
    tokens: int = 4
    calls: list[str] = field(default_factory=list)

    def get(self, model_id: str) -> RegisteredModel | None:
        return self.registered.get(model_id)

    def register_model_dir(self, path: Path, model_id: str, metadata: ModelMetadata) -> None:
        self.calls.append(f"register {path.name}")
        self.registered[model_id] = _registered(model_id, path, metadata.display_name)

    def unregister(self, model_id: str) -> bool:
        self.calls.append(f"unregister {model_id}")
        return self.registered.pop(model_id, None) is not None

    def load(self, model_id: str) -> FakeLoaded:
        if self.tokens < 0:
            raise FoundryError(f"{model_id} failed to load", hint=None)
        return FakeLoaded(self.tokens)


def _registered(model_id: str, path: Path, name: str | None = "old") -> RegisteredModel:
    return RegisteredModel(
        id=model_id,
        alias="m",
        display_name=name,
        path=path,
        task="text-generation",
        publisher="acme",
        license="mit",
        file_size_mb=3,
        context_length=512,
        device_type="CPU",
        execution_provider="CPUExecutionProvider",
        loaded=False,
    )


def test_registered_model_metadata_registers_it_again_as_it_was(tmp_path: Path) -> None:
    model = _registered("m-generic-cpu:1", tmp_path)
    assert model.metadata() == ModelMetadata(
        task="text-generation",
        display_name="old",
        publisher="acme",
        license="mit",
        file_size_mb=3,
        context_length=512,
        device_type="CPU",
        execution_provider="CPUExecutionProvider",
    )


@pytest.fixture
def fake_runtime(monkeypatch: pytest.MonkeyPatch) -> FakeRuntime:
    import curator.foundry

    rt = FakeRuntime()
    monkeypatch.setattr(curator.foundry, "runtime", lambda cache_dir: rt)
    return rt


def test_a_load_tested_registration_reports_the_figures(
    tmp_path: Path, fake_runtime: FakeRuntime
) -> None:
    done = loadtest.register_load_tested(
        tmp_path, tmp_path / "new", "m-generic-cpu:1", ModelMetadata()
    )
    assert done.action == "registered"
    assert done.load_test.completion_tokens == 4 and done.load_test.prompt_tokens == 5
    assert done.load_test.peak_rss_mb > 10  # this process's peak, in MiB
    assert fake_runtime.calls == ["register new"]


def test_a_failed_load_test_puts_back_the_registration_it_replaced(
    tmp_path: Path, fake_runtime: FakeRuntime
) -> None:
    old = tmp_path / "old"
    old.mkdir()
    fake_runtime.registered["m-generic-cpu:1"] = _registered("m-generic-cpu:1", old)
    fake_runtime.tokens = 0  # loads, generates nothing
    with pytest.raises(FoundryError) as failed:
        loadtest.register_load_tested(
            tmp_path, tmp_path / "new", "m-generic-cpu:1", ModelMetadata()
        )
    assert "generated no tokens" in failed.value.message
    assert f"the previous registration ({old}) kept" in failed.value.message
    assert fake_runtime.calls == ["register new", "unregister m-generic-cpu:1", "register old"]
    restored = fake_runtime.registered["m-generic-cpu:1"]
    assert restored.path == old and restored.display_name == "old"


def test_a_failed_load_test_of_the_same_directory_leaves_it_unregistered(
    tmp_path: Path, fake_runtime: FakeRuntime
) -> None:
    fake_runtime.registered["m-generic-cpu:1"] = _registered("m-generic-cpu:1", tmp_path)
    fake_runtime.tokens = -1  # cannot load
    with pytest.raises(FoundryError) as failed:
        loadtest.register_load_tested(tmp_path, tmp_path, "m-generic-cpu:1", ModelMetadata())
    assert "left unregistered" in failed.value.message
    assert "m-generic-cpu:1" not in fake_runtime.registered


def test_undo_unregisters_and_puts_back(tmp_path: Path, fake_runtime: FakeRuntime) -> None:
    old = tmp_path / "old"
    old.mkdir()
    fake_runtime.registered["m-generic-cpu:1"] = _registered("m-generic-cpu:1", old)
    done = loadtest.register_load_tested(
        tmp_path, tmp_path / "new", "m-generic-cpu:1", ModelMetadata()
    )
    assert done.action == "re-registered"
    done.undo()
    assert fake_runtime.registered["m-generic-cpu:1"].path == old


# ------------------------------------------------------------- what the manifest tells the entry


def test_manifest_strings_come_from_the_manifest_then_its_source() -> None:
    manifest = {"license": "mit", "source": {"license": "apache-2.0", "publisher": "Org"}}
    assert entry_mod.manifest_str(manifest, "license") == "mit"
    assert entry_mod.manifest_str(manifest, "publisher") == "Org"
    assert entry_mod.manifest_str({"license": "", "source": {"license": "x"}}, "license") == "x"
    assert entry_mod.manifest_str({"license": 3, "source": "junk"}, "license") is None
    assert entry_mod.manifest_str({}, "license") is None


def test_the_context_length_is_the_models_then_the_searchs() -> None:
    context_length = entry_mod.context_length
    assert context_length({"model": {"context_length": 4096}, "search": {"max_length": 9}}) == 4096
    assert context_length({"model": {"context_length": 0}, "search": {"max_length": 9}}) == 9
    assert context_length({"model": {"context_length": "4096"}, "search": {"max_length": 9}}) == 9
    assert context_length({"model": [], "search": []}) is None
    assert context_length({"search": {"max_length": -1}}) is None
    assert context_length({}) is None


@pytest.mark.parametrize(
    ("declared", "repo"),
    [
        ({"repo": "Qwen/Qwen2.5-0.5B"}, "Qwen/Qwen2.5-0.5B"),
        ({"repoId": "org/m.v1_x-y"}, "org/m.v1_x-y"),
        ({"repo": "local:mine"}, "local:mine"),
        ({"repo": "not a repo/x"}, "local:x"),
        ({"path": "/models/My Model (v2)"}, "local:My-Model--v2-"),
        ({"path": "/models/..hidden"}, "local:hidden"),
        ({"path": "/models/!!!"}, "local:model"),
        ({}, "local:dirname"),
        ({"repo": "a/b/c"}, "local:c"),
    ],
)
def test_the_source_repo_is_the_hubs_or_a_local_name(declared: dict[str, Any], repo: str) -> None:
    source = entry_mod.source_of(Path("/x/dirname"), {"source": declared}, {})
    assert source["repo"] == repo


def test_the_source_keeps_a_commit_revision_and_a_positive_parameter_count(tmp_path: Path) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    declared = {"repo": "o/m", "revision": commit, "parameters": 135, "architecture": "Qwen2X"}
    assert entry_mod.source_of(tmp_path, {"source": declared}, {}) == {
        "repo": "o/m",
        "revision": commit,
        "architecture": "Qwen2X",
        "parameters": 135,
    }
    odd = {"repo": "o/m", "revision": "main", "parameters": 0}
    assert set(entry_mod.source_of(tmp_path, {"source": odd}, {})) == {"repo", "architecture"}
    odd = {"repo": "o/m", "revision": commit.upper(), "parameters": "135"}
    assert set(entry_mod.source_of(tmp_path, {"source": odd}, {})) == {"repo", "architecture"}
    assert entry_mod.source_of(tmp_path, {"source": "junk"}, {})["repo"] == f"local:{tmp_path.name}"


def test_the_architecture_is_declared_then_from_config_json_then_the_model_type(
    tmp_path: Path,
) -> None:
    def architecture(declared: dict[str, Any], config: dict[str, Any] | None = None) -> str:
        return str(
            entry_mod.source_of(tmp_path, {"source": declared}, config or {})["architecture"]
        )

    assert architecture({"architecture": "LlamaForCausalLM"}) == "LlamaForCausalLM"
    assert architecture({}, {"model": {"type": "qwen2-x"}}) == "qwen2x"
    assert architecture({}) == "unknown"
    assert architecture({}, {"model": {"type": "--"}}) == "unknown"
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["Phi3ForCausalLM"]}))
    assert architecture({"architecture": "bad name"}) == "Phi3ForCausalLM"
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["bad name"]}))
    assert architecture({}, {"model": {"type": "phi3"}}) == "phi3"
    (tmp_path / "config.json").write_text("[1, 2]")  # not an object
    assert architecture({}, {"model": {"type": "phi3"}}) == "phi3"
    (tmp_path / "config.json").write_text("{broken")
    assert architecture({}, {"model": []}) == "unknown"


def test_the_build_lists_the_recipe_tools_artifacts_and_time() -> None:
    listed = [{"path": "model.onnx", "sha256": "a" * 64, "bytes": 5, "extra": 1}]
    manifest = {
        "build": {
            "recipe": "int4-cpu",
            "recipeSha256": "b" * 64,
            "tools": {"olive-ai": "0.13.0"},
            "compiledAt": "2026-12-06T07:00:00Z",
        }
    }
    assert entry_mod.build_of(manifest, listed) == {
        "recipe": "int4-cpu",
        "recipeSha256": "b" * 64,
        "tools": {"olive-ai": "0.13.0"},
        "artifacts": [{"path": "model.onnx", "sha256": "a" * 64, "bytes": 5}],
        "compiledAt": "2026-12-06T07:00:00Z",
    }
    flat = {"recipe": "fp32-cpu", "tools": "junk", "compiledAt": 5}  # an older, flat manifest
    assert entry_mod.build_of(flat, []) == {
        "recipe": "fp32-cpu",
        "recipeSha256": None,
        "tools": {},
        "artifacts": [],
    }
    mixed = {"build": {"recipe": "r"}, "compiledAt": "then"}
    assert entry_mod.build_of(mixed, [{"path": "p"}])["compiledAt"] == "then"
    assert entry_mod.build_of(mixed, [{"path": "p"}])["artifacts"] == [
        {"path": "p", "sha256": None, "bytes": None}
    ]


def test_the_publisher_is_declared_first() -> None:
    existing = {"publisher": "kept"}
    assert entry_mod.publisher_of(Path("/x/y"), {}, existing, Path("/c")) == "kept"
    assert (
        entry_mod.publisher_of(Path("/x/y"), {"source": {"publisher": "S"}}, existing, Path("/c"))
        == "S"
    )


def test_a_failed_load_test_says_what_to_run(tmp_path: Path, fake_runtime: FakeRuntime) -> None:
    fake_runtime.tokens = 0
    with pytest.raises(FoundryError) as failed:
        loadtest.register_load_tested(
            tmp_path, tmp_path / "new", "m-generic-cpu:1", ModelMetadata()
        )
    assert failed.value.message == (
        "load test failed, m-generic-cpu:1 left unregistered: m-generic-cpu:1 generated no tokens"
    )
    assert failed.value.hint == "curator cache verify m-generic-cpu:1; recompile with --force"


def test_a_catalog_download_under_the_id_is_not_put_back(
    tmp_path: Path, fake_runtime: FakeRuntime
) -> None:
    old = tmp_path / "old"
    old.mkdir()
    downloaded = _registered("m-generic-cpu:1", old)
    fake_runtime.registered["m-generic-cpu:1"] = RegisteredModel(
        **{**downloaded.__dict__, "catalog": True}
    )
    done = loadtest.register_load_tested(
        tmp_path, tmp_path / "new", "m-generic-cpu:1", ModelMetadata()
    )
    assert done.action == "registered" and done.previous is None
    fake_runtime.tokens = 0
    with pytest.raises(FoundryError, match="left unregistered"):
        loadtest.register_load_tested(
            tmp_path, tmp_path / "new", "m-generic-cpu:1", ModelMetadata()
        )
    assert fake_runtime.calls[-1] == "unregister m-generic-cpu:1"


def test_a_previous_registration_whose_directory_is_gone_is_not_put_back(
    tmp_path: Path, fake_runtime: FakeRuntime
) -> None:
    fake_runtime.registered["m-generic-cpu:1"] = _registered("m-generic-cpu:1", tmp_path / "gone")
    fake_runtime.tokens = 0
    with pytest.raises(FoundryError, match="left unregistered"):
        loadtest.register_load_tested(
            tmp_path, tmp_path / "new", "m-generic-cpu:1", ModelMetadata()
        )
    assert "m-generic-cpu:1" not in fake_runtime.registered


def test_ctrl_c_during_the_load_test_puts_back_what_was_there(
    tmp_path: Path, fake_runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = tmp_path / "old"
    old.mkdir()
    fake_runtime.registered["m-generic-cpu:1"] = _registered("m-generic-cpu:1", old)

    def interrupted(model_id: str) -> FakeLoaded:
        raise KeyboardInterrupt

    monkeypatch.setattr(fake_runtime, "load", interrupted)
    with pytest.raises(KeyboardInterrupt):
        loadtest.register_load_tested(
            tmp_path, tmp_path / "new", "m-generic-cpu:1", ModelMetadata()
        )
    assert fake_runtime.calls == ["register new", "unregister m-generic-cpu:1", "register old"]
    assert fake_runtime.registered["m-generic-cpu:1"].path == old


def test_the_load_test_times_and_unloads(
    tmp_path: Path, fake_runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = iter([10.0, 10.25, 10.75])
    loaded = FakeLoaded(3)
    monkeypatch.setattr(fake_runtime, "load", lambda model_id: loaded)
    test = loadtest.load_test(
        fake_runtime,  # type: ignore[arg-type]
        "m-generic-cpu:1",
        clock=lambda: next(ticks),
        peak_bytes=lambda: 1536 * 2**20 + 2**19,
    )
    assert test == LoadTest(
        load_ms=250.0, generate_ms=500.0, prompt_tokens=5, completion_tokens=3, peak_rss_mb=1536.5
    )
    assert loaded.unloaded


def test_a_model_that_fails_mid_answer_is_still_unloaded(
    fake_runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken(FakeLoaded):
        def chat(self, messages: list[dict[str, str]], max_tokens: int) -> ChatResult:
            raise FoundryError("native failure", hint=None)

    broken = Broken(1)
    monkeypatch.setattr(fake_runtime, "load", lambda model_id: broken)
    with pytest.raises(FoundryError, match="native failure"):
        loadtest.load_test(fake_runtime, "m-generic-cpu:1")  # type: ignore[arg-type]
    assert broken.unloaded


def test_min_ram_follows_the_newest_benchmark_wherever_it_is_listed() -> None:
    older_first = {
        "benchmarks": [
            {"date": "2026-01-01", "peakMemoryMb": 9000},
            {"date": "2026-01-02", "peakMemoryMb": 4000},
        ]
    }
    assert min_ram_for(None, _test(0), older_first) == 4.0
    undated = {"benchmarks": [{"peakMemoryMb": 9000}, {"date": "2026-01-02", "peakMemoryMb": 100}]}
    assert min_ram_for(None, _test(0), undated) == 0.3  # the dated run is the newest
    no_peak = {"benchmarks": [{"date": "2026-01-02"}]}
    assert min_ram_for(None, _test(0), no_peak) == 0.3
    assert min_ram_for(None, _test(0), None) == 0.3
    assert min_ram_from_peak(1023.9) == 1.8 and min_ram_from_peak(1024 * 1.5) == 2.5


def test_one_generated_token_passes_the_load_test(
    fake_runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[Any] = []

    class Recording(FakeLoaded):
        def chat(self, messages: list[dict[str, str]], max_tokens: int) -> ChatResult:
            asked.append(messages)
            return super().chat(messages, max_tokens)

    monkeypatch.setattr(
        fake_runtime, "load", lambda model_id: asked.append(model_id) or Recording(1)
    )
    ticks = iter([1.0, 1.00012, 1.00036])
    test = loadtest.load_test(
        fake_runtime,  # type: ignore[arg-type]
        "m-generic-cpu:1",
        clock=lambda: next(ticks),
    )
    assert test.completion_tokens == 1
    assert (test.load_ms, test.generate_ms) == (0.1, 0.2)  # one decimal of a millisecond
    assert asked == ["m-generic-cpu:1", loadtest.LOAD_TEST_MESSAGES]


def test_no_tokens_points_at_smoke(fake_runtime: FakeRuntime) -> None:
    fake_runtime.tokens = 0
    with pytest.raises(FoundryError) as failed:
        loadtest.load_test(fake_runtime, "m-generic-cpu:1")  # type: ignore[arg-type]
    assert (failed.value.message, failed.value.hint) == (
        "m-generic-cpu:1 generated no tokens",
        "curator smoke",
    )


def test_a_byom_source_keeps_its_license_subfolder_and_merged_adapter(tmp_path: Path) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    files = [{"path": "adapter_model.safetensors", "sha256": "ab" * 32}]
    adapter = {"repo": "o/lora", "revision": commit, "license": "mit", "rank": 8, "files": files}
    declared = {"repo": "o/m", "license": "apache-2.0", "subfolder": "cpu/int4"}
    source = entry_mod.source_of(tmp_path, {"source": declared, "adapter": adapter}, {})
    digest = hashlib.sha256(f"adapter_model.safetensors {'ab' * 32}".encode())
    assert source["license"] == "apache-2.0"
    assert source["subfolder"] == "cpu/int4"
    assert source["adapter"] == {
        "repo": "o/lora",
        "sha256": digest.hexdigest(),
        "revision": commit,
        "license": "mit",
        "rank": 8,
    }
    odd_adapter = {"repo": "o/lora", "revision": "main", "license": "MIT!", "rank": 0}
    odd = {"repo": "o/m", "license": "Apache 2.0", "subfolder": "cpu int4"}
    source = entry_mod.source_of(tmp_path, {"source": odd, "adapter": odd_adapter}, {})
    assert "license" not in source and "subfolder" not in source
    assert source["adapter"] == {
        "repo": "o/lora",
        "sha256": hashlib.sha256(b"").hexdigest(),
    }
    for subfolder in ("/abs", "a//b", "a/", "a b", "../up", "cpu/..", "./cpu", "cpu\n"):
        declared = {"repo": "o/m", "subfolder": subfolder}
        assert "subfolder" not in entry_mod.source_of(tmp_path, {"source": declared}, {})
    assert (
        entry_mod.source_of(tmp_path, {"source": declared, "adapter": {"rank": 4}}, {}).get(
            "adapter"
        )
        is None
    )
    assert (
        entry_mod.source_of(tmp_path, {"source": declared, "adapter": ["o/lora"]}, {}).get(
            "adapter"
        )
        is None
    )
