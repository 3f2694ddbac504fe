"""Guards: curator.cli.search, curator.hub, curator.hub.facts, curator.hub.feasibility,
  curator.hub.files, curator.hub.models, curator.recipes

``model_facts`` and ``curator info``: the figures equal what the fixture files hold, and no
weights are downloaded (safetensors headers are read with range requests)."""

# ruff: noqa: F811 - the fake Hub fixtures are imported, and tests take them as arguments
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from curator.compile.cost import predict_compile_peak_bytes
from curator.hub import model_facts
from curator.hub.feasibility import Machine, recipe_fits, this_machine
from curator.hub.files import compile_files
from curator.recipes import get_recipe, load_recipes, predict_run_bytes
from tests.conftest import run_curator
from tests.fakehub import BERT, CUSTOM, SHARDED, TINY, FakeHub, FakeRepo, server
from tests.fakehub.plugin import fake_hub_server, hub  # noqa: F401
from tests.fakehub.server import Reply, Request

pytestmark = pytest.mark.usefixtures("hub")


def numel_with_safetensors(path: Path) -> int:
    """Parameter count read with the safetensors library (independent of curator and the fake)."""
    from safetensors import safe_open

    total = 0
    with safe_open(str(path), framework="numpy") as handle:
        for name in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
            shape = handle.get_slice(name).get_shape()
            count = 1
            for dim in shape:
                count *= dim
            total += count
    return total


def test_tiny_model_figures_equal_the_files(hub: FakeHub, tiny_model_dir: Path) -> None:
    facts = model_facts(TINY)
    assert facts.parameters == numel_with_safetensors(tiny_model_dir / "model.safetensors")
    assert facts.parameters_by_dtype == {"F32": facts.parameters}
    on_disk = {p.name: p.stat().st_size for p in tiny_model_dir.iterdir() if p.is_file()}
    wanted = compile_files(on_disk)
    assert "model.safetensors" in wanted and "config.json" in wanted
    assert {f.path for f in facts.download_files} == set(wanted)
    assert facts.download_bytes == sum(on_disk[name] for name in wanted)
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert facts.architecture == config["architectures"][0]
    assert facts.model_type == config["model_type"]
    assert facts.sha == hub.repos[TINY].sha
    assert facts.chat_template is True
    assert facts.auto_map is False
    assert facts.license == "apache-2.0"
    assert facts.gated is False
    fits = {f.recipe: f for f in facts.recipes}
    assert set(fits) == {r.name for r in load_recipes()}
    assert fits["int4-cpu"].can_compile
    int4 = get_recipe("int4-cpu")
    assert fits["int4-cpu"].compile_peak_bytes == predict_compile_peak_bytes(int4, facts.parameters)
    assert fits["int4-cpu"].run_bytes == predict_run_bytes(int4, facts.parameters)
    gpu_here = this_machine().cuda_gpu
    for recipe in load_recipes():
        if recipe.needs_gpu:
            assert fits[recipe.name].can_compile is gpu_here


def test_feasibility_follows_the_machine() -> None:
    """The same model on a machine with a GPU and lots of RAM, and on one with 512 MiB free."""
    params = 1_000_000_000
    big = Machine(ram_available_bytes=2**40, cuda_gpu=True, calibration_packages=True)
    fits = recipe_fits("Qwen2ForCausalLM", params, "safetensors", machine=big)
    assert all(f.can_compile for f in fits)
    gptq = [f for f in fits if get_recipe(f.recipe).needs_calibration]
    assert gptq and all("--calibration FILE" in f.needs for f in gptq)
    small = Machine(ram_available_bytes=2**29, cuda_gpu=False, calibration_packages=False)
    for fit in recipe_fits("Qwen2ForCausalLM", params, "safetensors", machine=small):
        recipe = get_recipe(fit.recipe)
        assert not fit.can_compile
        if recipe.needs_gpu:
            assert "GPU" in (fit.reason or "")
        elif recipe.needs_calibration:
            assert "datasets" in (fit.reason or "")
        else:
            assert "RAM" in (fit.reason or "")
    custom = recipe_fits("Qwen2ForCausalLM", params, "safetensors", auto_map=True, machine=big)
    assert all("--trust-remote-code" in f.needs for f in custom)
    assert not any(f.can_compile for f in recipe_fits("Qwen2ForCausalLM", params, None))


def test_the_model_info_answer_is_enough(hub: FakeHub) -> None:
    """The answer holds counts, config, card and sizes: nothing else is requested."""
    model_facts(SHARDED)
    assert [r.path for r in hub.seen()] == [f"/api/models/{SHARDED}"]


def test_no_weights_are_downloaded_when_the_answer_lacks_counts(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``safetensors`` in the answer the counts come from the weight headers: range reads."""
    answer = server.model_info

    def without_counts(repo: FakeRepo, revision: str, request: Request) -> Reply:
        reply = answer(repo, revision, request)
        body = json.loads(reply.body)
        body.pop("safetensors", None)
        return Reply(200, body)

    monkeypatch.setattr(server, "model_info", without_counts)
    facts = model_facts(SHARDED)
    assert facts.parameters == hub.repos[SHARDED].safetensors()["total"]  # type: ignore[index]
    weight_gets = [r for r in hub.seen("GET") if r.path.endswith(".safetensors")]
    assert len(weight_gets) == 2  # one header read per shard
    assert all(r.headers.get("range", "").startswith("bytes=") for r in weight_gets)


def test_sharded_weights_count_the_same_parameters(hub: FakeHub, tiny_model_dir: Path) -> None:
    sharded = model_facts(SHARDED)
    assert sharded.parameters == numel_with_safetensors(tiny_model_dir / "model.safetensors")
    files = hub.repos[SHARDED].files
    shards = [p for p in files if p.endswith(".safetensors")]
    assert len(shards) == 2
    assert {f.path for f in sharded.download_files} >= {*shards, "model.safetensors.index.json"}
    assert sharded.download_bytes == sum(len(files[f.path]) for f in sharded.download_files)


def test_pinned_revision_by_sha_and_branch(hub: FakeHub) -> None:
    sha = hub.repos[TINY].sha
    assert model_facts(TINY, sha).sha == sha
    assert model_facts(TINY, "main").sha == sha
    assert any(f"/revision/{sha}" in r.path for r in hub.seen("GET", "/api/models/"))


def test_repository_code_is_reported(hub: FakeHub) -> None:
    facts = model_facts(CUSTOM)
    assert facts.auto_map is True
    assert facts.chat_template is True
    files = {f.path for f in facts.download_files}
    assert {"configuration_fancy.py", "modeling_fancy.py"} <= files
    assert facts.recipes  # every recipe is judged, so the checks below see them all
    assert not any(f.can_compile for f in facts.recipes)
    assert all("FancyForCausalLM" in (f.reason or "") for f in facts.recipes)
    assert all("--trust-remote-code" in f.needs for f in facts.recipes)


def test_unsupported_architecture_and_weight_choice(hub: FakeHub) -> None:
    facts = model_facts(BERT)
    assert facts.architecture == "BertForMaskedLM"
    assert facts.recipes
    assert not any(f.can_compile for f in facts.recipes)
    assert all("not supported" in (f.reason or "") for f in facts.recipes)
    files = {f.path for f in facts.download_files}
    assert "model.safetensors" in files
    assert "pytorch_model.bin" not in files  # safetensors preferred: the pickle is not fetched
    assert facts.license_link is not None and facts.license_link.endswith(
        f"/{BERT}/blob/{facts.sha}/LICENSE"
    )
    assert facts.chat_template is False


def test_cli_info_json_and_text(hub: FakeHub, tiny_model_dir: Path) -> None:
    env = {"HF_ENDPOINT": hub.url}
    done = run_curator("info", TINY, "--json", env=env)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["parameters"] == numel_with_safetensors(tiny_model_dir / "model.safetensors")
    assert data["sha"] == hub.repos[TINY].sha
    assert {r["recipe"] for r in data["recipes"]} >= {"int4-cpu"}
    text = run_curator("info", TINY, env=env)
    assert text.returncode == 0, text.stderr
    assert f"{data['parameters']:,}" in text.stdout
    assert "int4-cpu" in text.stdout
    assert data["sha"] in text.stdout


def test_a_config_without_architectures_is_an_unknown_with_its_reason(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = FakeRepo("fixture/bare-config", {"config.json": b"{}", "README.md": b"# bare"})
    monkeypatch.setitem(hub.repos, repo.repo_id, repo)
    facts = model_facts(repo.repo_id)
    assert facts.architecture is None
    assert [(g.state, g.reason) for g in facts.gaps if g.fact == "architecture"] == [
        ("unknown", "config.json names no architecture")
    ]
    assert [(g.state, g.reason) for g in facts.gaps if g.fact == "parameters"] == [
        ("unknown", "no weight files at the top level of the repository")
    ]
    assert facts.download_bytes == len(b"{}")  # config.json is all a compile would fetch


QWEN_CONFIG = json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}).encode()


def one_tensor_safetensors() -> bytes:
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    return len(header).to_bytes(8, "little") + header + bytes(4)


def add_repo(hub: FakeHub, monkeypatch: pytest.MonkeyPatch, repo: FakeRepo) -> str:
    monkeypatch.setitem(hub.repos, repo.repo_id, repo)
    return repo.repo_id


def test_a_genai_repository_is_imported_not_compiled(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    flat = add_repo(
        hub,
        monkeypatch,
        FakeRepo("fixture/flat-genai", {"genai_config.json": b"{}", "config.json": QWEN_CONFIG}),
    )
    nested = add_repo(
        hub,
        monkeypatch,
        FakeRepo(
            "fixture/nested-genai",
            {"cuda/genai_config.json": b"{}", "cpu-int4/genai_config.json": b"{}"},
        ),
    )
    facts = model_facts(flat)
    assert (facts.kind, facts.variants, facts.base_model) == ("genai", (), None)
    assert facts.notes[1] == f"import it: curator import {flat}"
    assert facts.recipes and all(not f.can_compile for f in facts.recipes)
    assert {(f.reason, f.reason_kind) for f in facts.recipes} == {
        (facts.notes[0], "not a checkpoint")
    }
    variants = model_facts(nested)
    assert variants.variants == ("cpu-int4", "cuda")
    assert variants.notes[1] == f"import it: curator import {nested} --subfolder cpu-int4"


def test_an_adapter_names_its_base(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    adapter_config = json.dumps({"base_model_name_or_path": "org/base-model"}).encode()
    from_config = add_repo(
        hub,
        monkeypatch,
        FakeRepo(
            "fixture/lora",
            {
                "adapter_config.json": adapter_config,
                "adapter_model.safetensors": one_tensor_safetensors(),
            },
        ),
    )
    from_card = add_repo(
        hub,
        monkeypatch,
        FakeRepo(
            "fixture/lora-card",
            {"adapter_config.json": adapter_config},
            card_data={"base_model": ["org/card-base", "org/other"]},
        ),
    )
    nameless = add_repo(
        hub, monkeypatch, FakeRepo("fixture/lora-bare", {"adapter_config.json": b"{}"})
    )
    facts = model_facts(from_config)
    assert (facts.kind, facts.base_model) == ("adapter", "org/base-model")
    assert facts.notes == (
        "a LoRA adapter: compile its base org/base-model with --adapter",
        f"compile it: curator compile org/base-model --adapter {from_config} --recipe int4-cpu",
    )
    assert all(f.reason_kind == "not a checkpoint" for f in facts.recipes)
    assert model_facts(from_card).base_model == "org/card-base"
    bare = model_facts(nameless)
    assert bare.base_model is None
    assert bare.notes[0] == "a LoRA adapter: compile its base with --adapter"
    assert bare.notes[1].startswith("compile it: curator compile BASE --adapter")


def test_gguf_only_repository_points_at_gguf_file(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = add_repo(
        hub,
        monkeypatch,
        FakeRepo("fixture/ggufs", {"m-Q8_0.gguf": b"GGUF", "m-Q4_K_M.GGUF": b"GGUF"}),
    )
    with_weights = add_repo(
        hub,
        monkeypatch,
        FakeRepo(
            "fixture/both",
            {
                "config.json": QWEN_CONFIG,
                "model.safetensors": one_tensor_safetensors(),
                "m.gguf": b"GGUF",
            },
        ),
    )
    facts = model_facts(repo)
    assert (facts.kind, facts.variants, facts.base_model) == ("gguf", (), None)
    assert facts.notes == (
        f"GGUF files only: compile one with curator compile {repo} --gguf-file m-Q4_K_M.GGUF",
    )
    assert model_facts(with_weights).kind == "checkpoint"


def test_pytorch_only_weights_have_no_hub_count(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = add_repo(
        hub,
        monkeypatch,
        FakeRepo("fixture/bin-only", {"config.json": QWEN_CONFIG, "pytorch_model.bin": b"x" * 7}),
    )
    facts = model_facts(repo)
    assert facts.weight_format == "pytorch"
    assert facts.parameters is None and facts.parameters_by_dtype == {}
    assert [(g.state, g.reason) for g in facts.gaps if g.fact == "parameters"] == [
        ("unknown", "only pytorch .bin weights; the Hub counts safetensors only")
    ]
    assert facts.architecture == "Qwen2ForCausalLM"
    assert facts.model_type == "qwen2"
    assert facts.kind == "checkpoint" and facts.notes == ()


def test_license_from_the_card_the_tags_or_nowhere(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"config.json": QWEN_CONFIG}
    tagged = add_repo(
        hub, monkeypatch, FakeRepo("fixture/tagged", files, tags=("text", "license:mit"))
    )
    carded = add_repo(
        hub,
        monkeypatch,
        FakeRepo(
            "fixture/carded",
            {**files, "LICENSE": b"terms"},
            tags=("license:mit",),
            card_data={"license": "other", "license_link": "/terms/LICENSE.md"},
        ),
    )
    linked = add_repo(
        hub,
        monkeypatch,
        FakeRepo(
            "fixture/linked",
            files,
            card_data={"license": "apache-2.0", "license_link": "https://example.org/l"},
        ),
    )
    none = add_repo(hub, monkeypatch, FakeRepo("fixture/unlicensed", {**files, "LICENCE": b"x"}))
    facts = model_facts(tagged)
    assert facts.license == "mit"
    assert facts.license_link is None
    assert not any(g.fact == "license" for g in facts.gaps)
    card = model_facts(carded)
    assert card.license == "other"
    assert card.license_link == f"{hub.url}/{carded}/blob/{card.sha}/terms/LICENSE.md"
    assert model_facts(linked).license_link == "https://example.org/l"
    missing = model_facts(none)
    assert missing.license is None
    assert missing.license_link == f"{hub.url}/{none}/blob/{missing.sha}/LICENCE"
    assert [(g.state, g.reason) for g in missing.gaps if g.fact == "license"] == [
        ("unknown", "the model card states no license")
    ]


def test_sizes_the_answer_lacks_come_from_the_file_listing(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = server.model_info

    def without_sizes(repo: FakeRepo, revision: str, request: Request) -> Reply:
        reply = answer(repo, revision, request)
        body = json.loads(reply.body)
        for sibling in body.get("siblings", []):
            sibling.pop("size", None)
        return Reply(200, body)

    monkeypatch.setattr(server, "model_info", without_sizes)
    facts = model_facts(TINY)
    files = hub.repos[TINY].files
    assert facts.download_files and all(f.size is not None for f in facts.download_files)
    assert facts.download_bytes == sum(len(files[f.path]) for f in facts.download_files)
    assert facts.repo_bytes is None  # the answer gave no size for the whole repository
    assert not any(g.fact == "download size" for g in facts.gaps)
    assert any(r.path.startswith(f"/api/models/{TINY}/tree/") for r in hub.seen("GET"))


def test_progress_bars_are_left_as_they_were(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading headers turns huggingface_hub's bars off for the call only."""
    from huggingface_hub.utils.tqdm import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    answer = server.model_info

    def without_counts(repo: FakeRepo, revision: str, request: Request) -> Reply:
        reply = answer(repo, revision, request)
        body = json.loads(reply.body)
        body.pop("safetensors", None)
        return Reply(200, body)

    monkeypatch.setattr(server, "model_info", without_counts)
    was_disabled = are_progress_bars_disabled()
    try:
        enable_progress_bars()
        assert model_facts(SHARDED).parameters
        assert not are_progress_bars_disabled()
        disable_progress_bars()
        assert model_facts(SHARDED).parameters
        assert are_progress_bars_disabled()
    finally:
        (disable_progress_bars if was_disabled else enable_progress_bars)()


def test_a_failed_or_partial_file_listing_is_a_gap(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = server.model_info

    def without_sizes(repo: FakeRepo, revision: str, request: Request) -> Reply:
        reply = answer(repo, revision, request)
        body = json.loads(reply.body)
        for sibling in body.get("siblings", []):
            sibling.pop("size", None)
        return Reply(200, body)

    monkeypatch.setattr(server, "model_info", without_sizes)
    listing = server.tree
    monkeypatch.setattr(server, "tree", lambda *args: server.error(403, None, "tree refused"))
    failed = model_facts(TINY)
    assert failed.download_bytes is None
    assert all(f.size is None for f in failed.download_files)
    (gap,) = [g for g in failed.gaps if g.fact == "download size"]
    assert gap.state == "failed" and "403" in gap.reason

    def without_config(*args: Any) -> Reply:
        reply = listing(*args)
        entries = [e for e in json.loads(reply.body) if e.get("path") != "config.json"]
        return Reply(200, entries)

    monkeypatch.setattr(server, "tree", without_config)
    partial = model_facts(TINY)
    assert partial.download_bytes is None
    sizes = {f.path: f.size for f in partial.download_files}
    assert sizes["config.json"] is None
    assert sizes["model.safetensors"] == len(hub.repos[TINY].files["model.safetensors"])
    assert [(g.state, g.reason) for g in partial.gaps if g.fact == "download size"] == [
        ("unknown", "the Hub gave no size for some of the files")
    ]


def test_the_answers_plain_facts_are_carried_over(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"config.json": QWEN_CONFIG, "model.safetensors": one_tensor_safetensors()}
    repo = FakeRepo(
        "fixture/plain-facts",
        files,
        downloads=1234,
        likes=56,
        last_modified="2025-03-04T05:06:07.000Z",
        pipeline_tag="text-generation",
        library_name="transformers",
        gated="auto",
        tags=("license:apache-2.0",),
    )
    add_repo(hub, monkeypatch, repo)
    facts = model_facts(repo.repo_id, "main")
    assert (facts.repo_id, facts.renamed_from, facts.revision) == (repo.repo_id, None, "main")
    assert facts.sha == repo.sha
    assert facts.url == f"{hub.url}/{repo.repo_id}"
    assert (facts.downloads, facts.likes) == (1234, 56)
    assert facts.last_modified == "2025-03-04T05:06:07+00:00"
    assert (facts.pipeline_tag, facts.library) == ("text-generation", "transformers")
    assert (facts.gated, facts.gate) == (True, "auto")
    assert facts.repo_bytes == sum(len(content) for content in files.values())
    assert facts.parameters == 1 and facts.parameters_by_dtype == {"F32": 1}
    assert facts.weight_format == "safetensors"
    assert (facts.auto_map, facts.chat_template) == (False, False)
    assert facts.kind == "checkpoint" and facts.variants == () and facts.base_model is None
    ungated = model_facts(TINY)
    assert (ungated.gated, ungated.gate, ungated.revision) == (False, None, None)


def test_the_chat_template_from_tokenizer_config_json_when_the_answer_has_no_config(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_template = json.dumps({"chat_template": "{{ messages }}"}).encode()
    templated = add_repo(
        hub, monkeypatch, FakeRepo("fixture/tc-yes", {"tokenizer_config.json": with_template})
    )
    plain = add_repo(
        hub, monkeypatch, FakeRepo("fixture/tc-no", {"tokenizer_config.json": b'{"x": 1}'})
    )
    facts = model_facts(templated)
    assert facts.chat_template is True
    assert {r.path for r in hub.seen(contains="/tokenizer_config.json")} == {
        f"/{templated}/resolve/{facts.sha}/tokenizer_config.json"  # pinned to the commit
    }
    assert [(g.state, g.reason) for g in facts.gaps if g.fact == "architecture"] == [
        ("unknown", "the repository has no config.json")
    ]
    assert model_facts(plain).chat_template is False
    nothing = add_repo(hub, monkeypatch, FakeRepo("fixture/tc-none", {"README.md": b"# hi"}))
    assert model_facts(nothing).chat_template is False
    listed = add_repo(
        hub, monkeypatch, FakeRepo("fixture/tc-file", {"chat_template.jinja": b"{{ x }}"})
    )
    assert model_facts(listed).chat_template is True

    def refuse(*args: Any) -> Reply:
        return server.error(403, None, "no access")

    failing = add_repo(
        hub, monkeypatch, FakeRepo("fixture/tc-fail", {"tokenizer_config.json": with_template})
    )
    monkeypatch.setattr(server, "resolve", refuse)  # (a file read once is cached: a new repo)
    unknown = model_facts(failing)
    assert unknown.chat_template is None
    (gap,) = [g for g in unknown.gaps if g.fact == "chat template"]
    assert gap.state == "failed" and "403" in gap.reason


def test_an_adapter_base_named_once_or_in_an_empty_list(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter_config = json.dumps({"base_model_name_or_path": "org/from-config"}).encode()
    single = add_repo(
        hub,
        monkeypatch,
        FakeRepo(
            "fixture/lora-single",
            {"adapter_config.json": adapter_config},
            card_data={"base_model": "org/card-single"},
        ),
    )
    empty = add_repo(
        hub,
        monkeypatch,
        FakeRepo(
            "fixture/lora-empty",
            {"adapter_config.json": adapter_config},
            card_data={"base_model": []},
        ),
    )
    assert model_facts(single).base_model == "org/card-single"
    assert model_facts(empty).base_model == "org/from-config"  # the card names none: the config
