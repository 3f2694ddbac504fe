"""Guards: curator.onboard.pipeline

`curator onboard`'s own logic in process (tests/test_onboard.py runs it end to end on a compiled
model; tests/test_bites_trust_gates.py runs the real compiler's trust gate through it): the step
order, what a rerun skips, failing fast with the registry untouched, the one registry write and
the summary. The collaborators (the compiler, the Hub, Foundry Local, the bench backend, the
fidelity worker) are fakes of the same signatures passed through ``Collaborators``; the registry,
the manifests, the bench's measurement and reports and the summary are the real ones."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from curator import foundry
from curator.bench.backends import FoundryBackend
from curator.bench.measure import StreamChunk
from curator.bench.measure import Usage as BenchUsage
from curator.budget import compile_to_budget
from curator.compile import compile_model
from curator.compile.imported import import_model
from curator.errors import CuratorError, FoundryError, InputFileError, NotFound, RegistryInvalid
from curator.fidelity.measure import measure_fidelity
from curator.fidelity.text import load_text
from curator.fidelity.types import FidelityResult
from curator.foundry.types import ChatChunk, RegisteredModel, Usage
from curator.hub import model_facts
from curator.onboard.pipeline import (
    DEFAULT_RECIPE,
    Collaborators,
    OnboardRequest,
    OnboardStepFailed,
    _Steps,
    onboard,
)
from curator.prompts import default_prompt_set_path
from curator.register import KEPT_ON_REREGISTER, register
from curator.registry import find_model, load_registry, upsert_model
from curator.registry.rules import ram_floor_gb
from tests.samples import make_document, make_entry

MODEL_ID = "tiny-generic-cpu:1"
ARTIFACTS = make_entry(7)["build"]["artifacts"]
PROMPTS = {
    "schemaVersion": 1,
    "name": "two",
    "prompts": [
        {"id": "capital", "prompt": "What is the capital of France?", "expected": ["Paris"]},
        {"id": "greet", "prompt": "Say hello.", "expected": ["hello"]},
    ],
}
ANSWERS = {"What is the capital of France?": "It is Paris.", "Say hello.": "Hello there!"}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- the fakes: each stands for one collaborator --------------------------------------------------


class Loaded:
    """A loaded model (curator.foundry.LoadedModel's protocol) answering from ``answers``."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def chat_stream(
        self, messages: list[dict[str, str]], *, max_tokens: int
    ) -> Iterator[ChatChunk]:
        yield ChatChunk(self.answers.get(messages[-1]["content"], "I do not know."))
        yield ChatChunk("", Usage(6, 4))

    def unload(self) -> None:
        pass


@dataclass
class Runtime:
    """Foundry Local (FoundryRuntime's protocol): what is registered, and loading it."""

    cache_dir: Path
    answers: dict[str, str]
    registered: dict[str, Path] = field(default_factory=dict)
    opened: list[Path] = field(default_factory=list)

    def list_registered(self) -> list[RegisteredModel]:
        return [
            RegisteredModel(
                mid,
                "tiny",
                None,
                path,
                "chat-completion",
                "local",
                "mit",
                1,
                2048,
                "CPU",
                "CPUExecutionProvider",
                False,
            )
            for mid, path in self.registered.items()
        ]

    def get(self, model_id: str) -> RegisteredModel | None:
        return next((m for m in self.list_registered() if m.id == model_id), None)

    def load(self, model_id: str) -> Loaded:
        if model_id not in self.registered:
            raise NotFound(f"{model_id} is not registered", hint="curator register DIR")
        return Loaded(self.answers)


class Backend:
    """The bench backend (curator.bench.backends.Backend): streams each answer in three pieces."""

    kind = "in-process"
    concurrent = False

    def __init__(self, words: int = 3, fail: bool = False) -> None:
        self.words, self.fail = words, fail

    def load(self, model_id: str) -> float | None:
        if self.fail:
            raise FoundryError(f"{model_id} does not load", hint="curator smoke")
        return 12.0

    def stream(
        self,
        model_id: str,
        messages: Sequence[Any],
        *,
        max_tokens: int,
        temperature: float,
        seed: int | None,
    ) -> Iterator[StreamChunk]:
        for _ in range(self.words):
            time.sleep(0.002)
            yield StreamChunk("word ")
        yield StreamChunk("", BenchUsage(prompt_tokens=5, completion_tokens=self.words))

    def unload(self, model_id: str) -> None:
        pass

    def serving_pid(self) -> int | None:
        return os.getpid()

    def token_counter(self, model_id: str) -> None:
        return None

    def close(self) -> None:
        pass


@dataclass
class World:
    """One onboarding's surroundings: a local model, a cache, a registry, and the fakes."""

    root: Path
    answers: dict[str, str] = field(default_factory=lambda: dict(ANSWERS))
    recipe_sha: str = sha("int4-cpu")
    compiles: list[Any] = field(default_factory=list)
    registers: list[dict[str, Any]] = field(default_factory=list)
    fidelities: list[Any] = field(default_factory=list)
    texts: list[Any] = field(default_factory=list)
    asked_hub: list[tuple[str, str | None]] = field(default_factory=list)
    budgets: list[tuple[Any, Any]] = field(default_factory=list)
    imports: list[Any] = field(default_factory=list)
    backend: Backend = field(default_factory=Backend)
    said: list[str] = field(default_factory=list)
    manifest_extra: dict[str, Any] = field(default_factory=dict)
    ram: float = 0.05  # the minRamGb register writes (its load test's figure)
    wall_seconds: float | None = 4.4  # how long the compile says it took

    def __post_init__(self) -> None:
        self.source = self.root / "tiny"
        self.source.mkdir(parents=True)
        (self.source / "config.json").write_text(
            json.dumps({"architectures": ["Qwen2ForCausalLM"]}), encoding="utf-8"
        )
        self.cache = self.root / "cache"
        self.registry = self.root / "registry" / "models.json"
        self.out = self.root / "runs" / "out"  # created with its parents
        self.prompts = self.root / "prompts.json"
        self.prompts.write_text(json.dumps(PROMPTS), encoding="utf-8")
        self.runtime = Runtime(self.cache, self.answers)
        self.target = self.cache / "local" / "tiny-generic-cpu-1"

    # the compiler -----------------------------------------------------------------------------
    def plan(self, request: Any) -> SimpleNamespace:
        template = getattr(request, "chat_template", None)
        return SimpleNamespace(
            target=self.target,
            model_id=MODEL_ID,
            recipe_sha256=self.recipe_sha,
            source_repo=f"local:{self.source.name}",
            source_revision="r1",
            chat_template=(
                SimpleNamespace(manifest_record=lambda: {"name": template}) if template else None
            ),
            source_adapter=SimpleNamespace(sha256="ad1")
            if getattr(request, "adapter", None)
            else None,
            files=(SimpleNamespace(path="model.onnx", sha256="f1"),),
        )

    def build(self, manifest: dict[str, Any]) -> None:
        self.target.mkdir(parents=True, exist_ok=True)
        (self.target / "genai_config.json").write_text("{}", encoding="utf-8")
        (self.target / "curator-manifest.json").write_text(
            json.dumps({**manifest, **self.manifest_extra}), encoding="utf-8"
        )

    def snapshot(self) -> Path:
        """The checkpoint a Hub, GGUF or adapter build starts from (downloaded, dequantized,
        merged)."""
        path = self.root / "snapshot"
        path.mkdir(exist_ok=True)
        (path / "config.json").write_text("{}", encoding="utf-8")
        return path

    def compile(self, request: Any, progress: Any) -> SimpleNamespace:
        self.compiles.append(request)
        plan = self.plan(request)
        if request.dry_run:
            return SimpleNamespace(plan=plan)
        progress("compiling")
        manifest: dict[str, Any] = {
            "source": {"repo": plan.source_repo, "revision": None},
            "build": {
                "recipe": request.recipe,
                "recipeSha256": self.recipe_sha,
                "compiledAt": "2026-12-06T09:00:00Z",
                "artifacts": ARTIFACTS,
            },
        }
        if request.source != str(self.source) or request.gguf_file or request.adapter:
            manifest["sourceDir"] = str(self.snapshot())  # the checkpoint the build started from
        if request.chat_template:
            manifest["chatTemplate"] = {"name": request.chat_template}
        if request.adapter:
            manifest["adapter"] = {"sha256": "ad1"}
        if getattr(request, "context_length", None):  # --context-length, as compile records it
            manifest.update(contextLength=request.context_length, modelContextLength=32768)
        self.build(manifest)
        return SimpleNamespace(
            plan=plan,
            path=self.target,
            model_id=MODEL_ID,
            total_bytes=3 * 2**20,
            wall_seconds=self.wall_seconds,
        )

    def compile_to_budget(self, request: Any, budget: Any, progress: Any) -> SimpleNamespace:
        self.budgets.append((request, budget))
        self.compile(replace(request, recipe="int4-cpu", dry_run=False), progress)
        return SimpleNamespace(
            compiled=SimpleNamespace(path=self.target, model_id=MODEL_ID, total_bytes=5 * 2**20),
            seconds=61.2,
            kl=0.01234,
            recipe=Path("plan/int4-mixed.json"),
        )

    def import_model(self, request: Any, progress: Any) -> SimpleNamespace:
        self.imports.append(request)
        plan = self.plan(request)
        if request.dry_run:
            return SimpleNamespace(plan=plan)
        progress("importing")
        self.build(
            {
                "source": {
                    "repo": "org/tiny-onnx",
                    "revision": "r1",
                    "files": [{"path": "model.onnx", "sha256": "f1"}],
                },
                "build": {
                    "recipe": "imported",
                    "compiledAt": "2026-12-06T09:00:00Z",
                    "artifacts": ARTIFACTS,
                },
            }
        )
        return SimpleNamespace(
            plan=plan,
            path=self.target,
            model_id=MODEL_ID,
            wall_seconds=None if self.wall_seconds is None else 2.6,
            artifacts=(SimpleNamespace(bytes=2**20), SimpleNamespace(bytes=2**19)),
        )

    # Foundry Local and the registry ------------------------------------------------------------
    def register(self, target: str, **kw: Any) -> SimpleNamespace:
        self.registers.append({"target": target, **kw})
        entry = make_entry(
            7, id=kw["model_id"], alias="tiny", license=kw["license"] or "mit", minRamGb=self.ram
        )
        entry["build"]["artifacts"] = ARTIFACTS
        if kw["registry"].exists():  # as register does: measurements stay with the entry
            old = find_model(load_registry(kw["registry"]), kw["model_id"]) or {}
            entry.update({k: v for k, v in old.items() if k in KEPT_ON_REREGISTER})
            entry["minRamGb"] = max(self.ram, old.get("minRamGb", 0))  # covers its benchmarks
        action = upsert_model(kw["registry"], entry)
        self.runtime.registered[kw["model_id"]] = Path(target)
        return SimpleNamespace(foundry_action="registered", registry_action=action)

    def measure(self, model_dir: Path, reference: Any, text: Any, *, model: str) -> FidelityResult:
        self.fidelities.append((model_dir, reference, model))
        self.texts.append(text)
        return FidelityResult(
            model=model,
            model_path=model_dir,
            reference=str(reference.path),
            text="t",
            text_sha256=sha("t"),
            tokens=512,
            windows=1,
            window=512,
            kl_mean=0.0123456,
            kl_p99=0.2,
            kl_max=0.5,
            top1_agreement=0.91234,
            perplexity=12.5,
            reference_perplexity=12.0,
            date="2026-12-06T09:30:00Z",
            seconds=3.0,
        )

    def collaborators(self, **changes: Any) -> Collaborators:
        tools = Collaborators(
            hub_facts=self.hub_facts,
            compile=self.compile,
            compile_to_budget=self.compile_to_budget,
            import_model=self.import_model,
            register=self.register,
            runtime=self.foundry,  # type: ignore[arg-type]
            bench_backend=self.bench_backend,  # type: ignore[arg-type]
            measure_fidelity=self.measure,
        )
        return replace(tools, **changes)

    def foundry(self, cache_dir: Path) -> Runtime:
        assert cache_dir == self.cache.absolute()  # Foundry Local of the request's cache
        return self.runtime

    def bench_backend(self, cache_dir: Path) -> Backend:
        assert cache_dir == self.cache.absolute()
        return self.backend

    def hub_facts(self, repo: str, revision: str | None) -> SimpleNamespace:
        self.asked_hub.append((repo, revision))
        return SimpleNamespace(
            repo_id=repo,
            sha="c0ffee" * 7,
            architecture="LlamaForCausalLM",
            license="apache-2.0",
            kind="genai" if repo.endswith("-onnx") else "transformers",
        )

    def request(self, **changes: Any) -> OnboardRequest:
        values: dict[str, Any] = {
            "source": str(self.source),
            "registry": self.registry,
            "cache_dir": self.cache,
            "out_dir": self.out,
            "license": "mit",
            "prompts": self.prompts,
            "rounds": 1,
            "warmup": 0,
            "max_tokens": 8,
        }
        values.update(changes)
        return OnboardRequest(**values)

    def run(self, tools: Collaborators | None = None, **changes: Any) -> Any:
        return onboard(self.request(**changes), self.said.append, tools or self.collaborators())


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def steps(result: Any) -> list[tuple[str, str]]:
    return [(s.name, s.status) for s in result.steps]


# --- the default collaborators are the real ones --------------------------------------------------


def test_the_default_collaborators_are_the_real_ones() -> None:
    tools = Collaborators()
    assert tools.hub_facts is model_facts and tools.compile is compile_model
    assert tools.compile_to_budget is compile_to_budget and tools.import_model is import_model
    assert tools.register is register and tools.runtime is foundry.runtime
    assert tools.bench_backend is FoundryBackend and tools.measure_fidelity is measure_fidelity
    assert DEFAULT_RECIPE == "int4-cpu" and OnboardRequest("x").recipe == DEFAULT_RECIPE


def test_a_completion_only_request_defaults_to_the_continuation_set(tmp_path: Path) -> None:
    assert OnboardRequest("x").prompt_set() is None
    assert OnboardRequest("x", completion_only=True).prompt_set() == default_prompt_set_path(
        "completion"
    )
    mine = tmp_path / "p.json"
    assert OnboardRequest("x", completion_only=True, prompts=mine).prompt_set() == mine
    assert OnboardRequest("x", prompts=mine).prompt_set() == mine


# --- a first run: every step, in order, one registry write ----------------------------------------


def test_a_first_run_does_every_step_and_writes_the_registry_once(world: World) -> None:
    result = world.run()
    assert steps(result) == [
        ("info", "done"),
        ("compile", "done"),
        ("register", "done"),
        ("smoke", "done"),
        ("bench", "done"),
        ("fidelity", "done"),
    ]
    details = {s.name: s.detail for s in result.steps}
    assert details["info"] == "local model, Qwen2ForCausalLM"
    assert details["compile"] == "3.0 MiB in 4 s"
    assert details["register"] == "registered, registry entry added"
    assert details["smoke"] == "2 prompts passed"
    assert details["bench"].endswith(" tok/s decode, report bench/bench-report.md")
    assert float(details["bench"].split()[0]) > 0
    assert details["fidelity"] == "KL 0.0123, top-1 91.2%"
    assert all(s.seconds >= 0 and s.seconds == round(s.seconds, 2) for s in result.steps)
    # the compile planned first (dry run), then built
    assert [(r.dry_run, r.force) for r in world.compiles] == [(True, True), (False, True)]
    first = world.compiles[0]
    assert (first.source, first.recipe, first.cache_dir) == (
        str(world.source),
        "int4-cpu",
        world.cache.absolute(),
    )
    (registered,) = world.registers
    assert registered["target"] == str(world.target) and registered["model_id"] == MODEL_ID
    assert registered["registry"] == world.out / "staged-registry.json"
    assert (registered["license"], registered["capabilities"]) == ("mit", ("chat",))
    # the team registry holds the finished entry: benchmark, RAM floor and fidelity included
    assert result.registry_action == "added" and result.model_id == MODEL_ID
    assert result.model_dir == world.target and result.registry == world.registry
    entry = find_model(load_registry(world.registry), MODEL_ID)
    assert entry is not None and result.entry == entry
    (bench,) = entry["benchmarks"]
    floor = ram_floor_gb(bench["peakMemoryMb"])
    assert entry["minRamGb"] == floor > world.ram  # raised to cover the bench's peak
    report = json.loads(result.bench_report.read_text())
    assert (report["settings"]["rounds"], report["settings"]["warmup"]) == (1, 0)
    assert report["settings"]["maxTokens"] == 8
    assert entry["fidelity"]["klMean"] == 0.012346
    manifest = json.loads((world.target / "curator-manifest.json").read_text())
    assert manifest["fidelity"] == entry["fidelity"]
    assert world.texts == [load_text()]  # the shipped fidelity text
    # the reports and the summary, and no working file left behind
    assert result.bench_report == world.out / "bench" / "bench-report.json"
    assert result.bench_report.is_file() and (world.out / "bench" / "bench-report.md").is_file()
    assert result.summary_path == world.out / "SUMMARY.md"
    summary = result.summary_path.read_text()
    assert f"# Onboard `{MODEL_ID}`" in summary and "| capital | It is Paris. |" in summary
    assert "| compile | done | " in summary and "Full bench report" in summary
    assert sorted(p.name for p in world.out.iterdir()) == ["SUMMARY.md", "bench"]


def test_progress_numbers_each_step_and_says_how_it_ended(world: World) -> None:
    world.run(fidelity=False)
    lines = [line for line in world.said if line.startswith("[")]
    assert lines[:4] == [
        "[1] info ...",
        "[1] info: local model, Qwen2ForCausalLM (0.0 s)",
        "[2] compile ...",
        "[2] compile: 3.0 MiB in 4 s (0.0 s)",
    ]
    assert "compiling" in world.said  # the collaborator's own progress reaches the caller
    assert "smoke: prompt 2/2 greet" in world.said
    assert f"{MODEL_ID}: measuring 1 round(s) x 2 prompt(s)" in world.said  # the bench's own
    assert lines[-2] == "[5] bench ..."
    assert [line.split(" ")[1] for line in lines[::2]] == [
        "info",
        "compile",
        "register",
        "smoke",
        "bench",
    ]


def test_no_fidelity_skips_the_step_entirely(world: World) -> None:
    result = world.run(fidelity=False)
    assert [name for name, _ in steps(result)][-1] == "bench" and world.fidelities == []
    assert "fidelity" not in (find_model(load_registry(world.registry), MODEL_ID) or {})


# --- a rerun skips what is done -------------------------------------------------------------------


def test_a_rerun_skips_every_done_step_and_changes_nothing(world: World) -> None:
    world.run()
    before = world.registry.read_bytes()
    again = world.run()
    assert steps(again) == [
        ("info", "done"),
        ("compile", "skipped"),
        ("register", "skipped"),
        ("smoke", "done"),
        ("bench", "skipped"),
        ("fidelity", "skipped"),
    ]
    details = {s.name: s.detail for s in again.steps}
    assert details["compile"] == "skipped: the Foundry cache holds this build"
    assert details["register"] == "skipped: Foundry and the registry already hold this build"
    assert details["bench"].startswith("skipped: benchmarked on this machine at 20")
    assert details["fidelity"] == "skipped: measured for this build"
    assert again.registry_action == "unchanged" and world.registry.read_bytes() == before
    assert [r.dry_run for r in world.compiles] == [True, False, True]
    assert len(world.registers) == 1 and len(world.fidelities) == 1


def test_force_redoes_every_step(world: World) -> None:
    world.run()
    again = world.run(force=True)
    assert [status for _, status in steps(again)] == ["done"] * 6  # a new build, measured again
    assert len(world.registers) == 2 and [r.dry_run for r in world.compiles][-1] is False
    entry = find_model(load_registry(world.registry), MODEL_ID) or {}
    assert len(entry["benchmarks"]) == 2 and again.registry_action == "updated"


@pytest.mark.parametrize(
    ("change", "redone"),
    [
        ("recipe", "compile"),  # another recipe file
        ("repo", "compile"),  # another source
        ("registration", "register"),  # Foundry lost the registration
        ("entry", "register"),  # the registry lost the entry
        ("artifacts", "register"),  # the registry names other files
        ("report", "bench"),  # the bench report is gone
        ("fingerprint", "bench"),  # benchmarked on another machine
        ("older", "bench"),  # benchmarked before this build
        ("fidelity", "fidelity"),  # the registry's fidelity is not this build's
    ],
)
def test_a_rerun_redoes_the_step_whose_inputs_changed(
    world: World, change: str, redone: str
) -> None:
    world.run()
    manifest_path = world.target / "curator-manifest.json"
    manifest = json.loads(manifest_path.read_text())
    document = load_registry(world.registry)
    entry = find_model(document, MODEL_ID) or {}
    if change == "recipe":
        world.recipe_sha = sha("another recipe")
    elif change == "repo":
        manifest["source"]["repo"] = "local:other"
    elif change == "registration":
        world.runtime.registered.clear()
    elif change == "entry":
        document["models"] = []
    elif change == "artifacts":
        entry["build"]["artifacts"] = ARTIFACTS[:1]
    elif change == "report":
        (world.out / "bench" / "bench-report.json").unlink()
    elif change == "fingerprint":
        entry["benchmarks"][0]["machine"]["fingerprint"] = "elsewhere"
    elif change == "older":
        manifest["build"]["compiledAt"] = "2099-01-01T00:00:00Z"
    elif change == "fidelity":
        entry["fidelity"]["klMean"] = 0.5
    manifest_path.write_text(json.dumps(manifest))
    world.registry.write_text(json.dumps(document))
    again = world.run()
    assert dict(steps(again))[redone] == "done"
    kept = {"compile", "register", "bench", "fidelity"} - {redone}
    if redone == "compile":  # a new build is registered, benched and measured again
        kept = set()
    if redone == "register" and change == "entry":
        kept -= {"bench", "fidelity"}  # the new entry has neither yet
    assert {n for n, status in steps(again) if status == "skipped"} >= kept


def test_a_hub_source_rebuilds_when_its_commit_moved(world: World) -> None:
    source = "org/tiny"
    world.run(source=source)
    manifest_path = world.target / "curator-manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["source"]["revision"] = "c0ffee" * 7  # what the Hub said
    manifest_path.write_text(json.dumps(manifest))
    assert dict(steps(world.run(source=source)))["compile"] == "skipped"
    manifest["source"]["revision"] = "0" * 42  # an older commit
    manifest_path.write_text(json.dumps(manifest))
    assert dict(steps(world.run(source=source)))["compile"] == "done"


def test_a_rerun_with_another_chat_template_or_adapter_rebuilds(world: World) -> None:
    world.run(chat_template="chatml")
    assert dict(steps(world.run(chat_template="chatml")))["compile"] == "skipped"
    assert dict(steps(world.run()))["compile"] == "done"  # the template is gone
    assert dict(steps(world.run(chat_template="zephyr")))["compile"] == "done"
    assert dict(steps(world.run(adapter="org/lora")))["compile"] == "done"
    assert dict(steps(world.run(adapter="org/lora")))["compile"] == "skipped"
    assert world.compiles[-1].adapter == "org/lora"


def test_a_rerun_with_another_context_length_rebuilds(world: World) -> None:
    world.run(context_length=4096)
    assert world.compiles[-1].context_length == 4096 and not world.compiles[-1].dry_run
    assert dict(steps(world.run(context_length=4096)))["compile"] == "skipped"
    assert dict(steps(world.run(context_length=2048)))["compile"] == "done"
    assert dict(steps(world.run()))["compile"] == "done"  # back to the model's own context
    assert world.compiles[-1].context_length is None
    assert dict(steps(world.run()))["compile"] == "skipped"
    world.run(recipe="auto", min_top1=0.8, context_length=1024, fidelity=False)
    assert world.budgets[-1][0].context_length == 1024  # a budget compile is asked for it too


def test_a_context_length_for_an_imported_model_is_refused(world: World) -> None:
    (world.source / "genai_config.json").write_text(json.dumps({"model": {"type": "qwen2"}}))
    (world.source / "model.onnx").write_bytes(b"onnx")
    with pytest.raises(OnboardStepFailed) as failed:
        world.run(context_length=4096)
    assert failed.value.message == (
        f"import failed: --context-length applies to a compile, and {world.source} is already "
        "in ONNX Runtime GenAI format (imported as it is)"
    )
    assert world.imports == [] and not world.registry.exists()


# --- failing fast ---------------------------------------------------------------------------------


def test_a_failing_smoke_stops_the_run_and_leaves_the_registry_as_it_was(world: World) -> None:
    world.registry.parent.mkdir(parents=True)
    world.registry.write_text(json.dumps(make_document([make_entry(1)]), indent=2))
    before = world.registry.read_bytes()
    world.answers["What is the capital of France?"] = "Lyon, of course."
    world.answers["Say hello."] = "Bye."
    with pytest.raises(OnboardStepFailed) as failed:
        world.run()
    assert failed.value.message == (
        "smoke failed: smoke prompts failed: capital: the answer lacks the expected 'Paris': "
        "'Lyon, of course.'; greet: the answer lacks the expected 'hello': 'Bye.'"
    )
    assert failed.value.hint == f"curator smoke {MODEL_ID} shows each answer"
    assert isinstance(failed.value.__cause__, FoundryError)
    assert world.registry.read_bytes() == before
    assert sorted(p.name for p in world.out.iterdir()) == []  # the staged copy is gone too
    assert "[4] smoke ..." in world.said and not any("[5]" in s for s in world.said)


def test_a_failing_bench_is_a_step_failure(world: World) -> None:
    world.backend = Backend(fail=True)
    with pytest.raises(OnboardStepFailed) as failed:
        world.run()
    assert failed.value.message == (f"bench failed: benchmark failed: {MODEL_ID} does not load")
    assert failed.value.hint == f"curator bench {MODEL_ID}"
    assert not world.registry.exists()


def test_a_refused_benchmark_record_is_a_step_failure(world: World) -> None:
    """A run the registry will not record (no peak memory measured) fails the step."""

    class Unmeasured(Backend):
        def serving_pid(self) -> int | None:
            return None

    world.backend = Unmeasured()
    with pytest.raises(OnboardStepFailed) as failed:
        world.run()
    assert failed.value.message.startswith(
        "bench failed: benchmark not recorded: peak memory unknown"
    )
    assert failed.value.hint == "see the report"
    assert not world.registry.exists() and world.fidelities == []


def test_a_registry_problem_is_listed_in_the_failure(world: World) -> None:
    def broken(target: str, **kw: Any) -> Any:
        raise RegistryInvalid("the entry is invalid", ["models[0].id: bad", "x: y"], hint="fix")

    with pytest.raises(OnboardStepFailed) as failed:
        world.run(world.collaborators(register=broken))
    assert failed.value.message == "register failed: the entry is invalid (models[0].id: bad; x: y)"
    assert failed.value.hint == "fix"


def test_a_model_dir_without_a_manifest_is_refused(world: World) -> None:
    def no_manifest(request: Any, progress: Any) -> Any:
        result = world.compile(request, progress)
        (world.target / "curator-manifest.json").unlink(missing_ok=True)
        return result

    with pytest.raises(FoundryError) as refused:
        world.run(world.collaborators(compile=no_manifest))
    assert refused.value.message == f"{world.target} has no compile manifest"
    assert refused.value.hint == "recompile with curator compile --force"


def test_an_error_that_is_not_a_curator_error_is_not_wrapped() -> None:
    steps_ = _Steps(None)
    with pytest.raises(ZeroDivisionError), steps_.step("info"):
        raise ZeroDivisionError
    assert steps_.outcomes == []
    with steps_.step("bench") as detail:
        pass
    assert (steps_.outcomes[0].status, steps_.outcomes[0].detail) == ("done", "")
    with pytest.raises(OnboardStepFailed) as failed, steps_.step("smoke"):
        raise InputFileError("bad prompts", hint="check them")
    assert (failed.value.message, failed.value.hint) == ("smoke failed: bad prompts", "check them")
    assert isinstance(failed.value, CuratorError) and detail == []


# --- sources: local GenAI (imported), GGUF, Hub, budgets ------------------------------------------


def test_a_local_genai_model_is_imported_and_has_no_fidelity(world: World) -> None:
    (world.source / "genai_config.json").write_text(json.dumps({"model": {"type": "qwen2"}}))
    (world.source / "model.onnx").write_bytes(b"onnx")
    result = world.run()
    assert steps(result)[:2] == [("info", "done"), ("import", "done")]
    details = {s.name: s.detail for s in result.steps}
    assert details["info"] == "local ONNX Runtime GenAI model: imported as it is"
    assert details["import"] == "1.5 MiB in 3 s"
    assert details["fidelity"] == (
        "skipped: an imported model has no fp32 checkpoint here to compare with "
        f"(curator fidelity {MODEL_ID} --reference DIR --record)"
    )
    assert [(r.dry_run, r.force) for r in world.imports] == [(True, True), (False, True)]
    assert world.compiles == [] and world.fidelities == []
    assert "importing" in world.said  # the import's own progress reaches the caller
    again = world.run()
    assert dict(steps(again))["import"] == "skipped"
    assert {s.name: s.detail for s in again.steps}["import"] == (
        f"skipped: {world.target} holds this import"
    )
    assert dict(steps(world.run(force=True)))["import"] == "done"


def test_an_import_with_other_files_is_done_again(world: World) -> None:
    (world.source / "genai_config.json").write_text(json.dumps({"model": {"type": "qwen2"}}))
    (world.source / "model.onnx").write_bytes(b"onnx")
    world.run()
    manifest_path = world.target / "curator-manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["source"]["files"] = [{"path": "model.onnx", "sha256": "f2"}]
    manifest_path.write_text(json.dumps(manifest))
    assert dict(steps(world.run()))["import"] == "done"
    manifest["source"]["revision"] = "r0"
    manifest_path.write_text(json.dumps(manifest))
    assert dict(steps(world.run()))["import"] == "done"


def test_a_hub_source_reports_its_commit_and_passes_it_to_the_compile(world: World) -> None:
    result = world.run(source="org/tiny", revision="v1", fidelity=False)
    info = result.steps[0].detail
    assert info == f"org/tiny@{'c0ffee' * 2}, LlamaForCausalLM, license apache-2.0"
    assert world.compiles[0].source == "org/tiny" and world.compiles[0].revision == "v1"
    assert world.asked_hub == [("org/tiny", "v1")]


def test_a_hub_genai_repo_is_imported(world: World) -> None:
    result = world.run(source="org/tiny-onnx", subfolder="cpu", fidelity=False)
    assert result.steps[0].detail.endswith("; already ONNX Runtime GenAI: imported as it is")
    assert result.steps[1].name == "import" and world.imports[0].subfolder == "cpu"
    assert world.imports[0].source == "org/tiny-onnx"


def tiny_gguf(path: Path) -> Path:
    """A GGUF header (version 3) with an architecture, one F32 tensor of 4 values and no data."""

    def text(value: str) -> bytes:
        return struct.pack("<Q", len(value)) + value.encode()

    body = struct.pack("<4sIQQ", b"GGUF", 3, 1, 1)
    body += text("general.architecture") + struct.pack("<I", 8) + text("llama")
    body += text("w") + struct.pack("<I", 1) + struct.pack("<Q", 4) + struct.pack("<IQ", 0, 0)
    body += b"\0" * (-len(body) % 32) + b"\0" * 16
    path.write_bytes(body)
    return path


def test_a_local_gguf_is_described_and_rebuilt_when_its_bytes_change(world: World) -> None:
    gguf = tiny_gguf(world.root / "tiny.gguf")
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
    world.manifest_extra = {
        "gguf": {"file": "tiny.gguf", "sha256": digest, "quantizationTypes": ["Q4_1"]}
    }
    result = world.run(source=str(gguf), fidelity=False)
    info = result.steps[0].detail
    assert info.startswith("local GGUF, llama, 4 parameters; the source tiny.gguf was already")
    summary = result.summary_path.read_text()
    assert "**Note:** the source tiny.gguf was already quantized (Q4_1)" in summary
    assert dict(steps(world.run(source=str(gguf), fidelity=False)))["compile"] == "skipped"
    world.manifest_extra = {"gguf": {"file": "tiny.gguf", "sha256": "0" * 64}}
    world.build(json.loads((world.target / "curator-manifest.json").read_text()))
    assert dict(steps(world.run(source=str(gguf), fidelity=False)))["compile"] == "done"


def test_a_gguf_file_in_a_directory_or_a_hub_repo(world: World) -> None:
    tiny_gguf(world.source / "model-q4.gguf")
    world.manifest_extra = {"gguf": {"file": "model-q4.gguf", "sha256": "x"}}
    local = world.run(gguf_file="model-q4.gguf", fidelity=False)
    assert local.steps[0].detail.startswith("local GGUF, llama, 4 parameters")
    assert world.compiles[-1].gguf_file == "model-q4.gguf"
    hub = world.run(source="org/tiny", gguf_file="model-q4.gguf", fidelity=False)
    assert hub.steps[0].detail.endswith(
        "; the source model-q4.gguf was already quantized: the compile starts from its "
        "dequantized fp32 weights and cannot restore what that quantization lost; fidelity "
        "compares with the dequantized checkpoint, not with the original model"
    )
    world.manifest_extra = {}  # a build from no GGUF file, or another one: compiled again
    world.build(json.loads((world.target / "curator-manifest.json").read_text()) | {"gguf": None})
    assert dict(steps(world.run(source="org/tiny", gguf_file="model-q4.gguf")))["compile"] == "done"


def test_a_build_from_a_gguf_is_rebuilt_for_a_checkpoint(world: World) -> None:
    world.manifest_extra = {"gguf": {"file": "tiny.gguf", "sha256": "x"}}
    world.run(fidelity=False)
    assert dict(steps(world.run(fidelity=False)))["compile"] == "done"
    world.manifest_extra = {}
    world.run(fidelity=False)
    assert dict(steps(world.run(fidelity=False)))["compile"] == "skipped"


def test_a_budget_compiles_to_the_budget(world: World) -> None:
    result = world.run(max_kl=0.05, fidelity=False)
    assert result.steps[1].detail == (
        "5.0 MiB in 61 s, budget KL <= 0.05: KL 0.0123, recipe int4-mixed.json"
    )
    ((request, budget),) = world.budgets
    assert (request.recipe, request.force, request.source) == ("auto", True, str(world.source))
    assert budget.max_kl == 0.05
    world.run(min_top1=0.9, fidelity=False)
    assert world.budgets[-1][1].min_top1 == 0.9


# --- fidelity's reference -------------------------------------------------------------------------


def test_a_local_checkpoint_is_its_own_fidelity_reference(world: World) -> None:
    world.run()
    ((_, reference, model),) = world.fidelities
    assert reference.path == world.source.resolve() and model == MODEL_ID


def test_an_adapter_build_compares_with_the_merged_checkpoint(world: World) -> None:
    merged = world.root / "merged"
    merged.mkdir()
    (merged / "config.json").write_text("{}")
    world.manifest_extra = {"sourceDir": str(merged)}
    world.run(adapter="org/lora")
    ((_, reference, _),) = world.fidelities
    assert reference.path == merged.resolve()


# --- what each collaborator is asked --------------------------------------------------------------


def test_each_collaborator_is_asked_with_the_request_s_values(world: World) -> None:
    from curator.compile import CompileRequest

    calibration = world.root / "calib.json"
    world.run(
        model_id=MODEL_ID,
        revision="v2",
        alias="tiny",
        license="apache-2.0",
        capabilities=("chat", "code"),
        trust_remote_code=True,
        calibration=calibration,
        chat_template="chatml",
        completion_only=True,
        adapter="org/lora",
        adapter_revision="a1",
        fidelity=False,
    )
    expected = CompileRequest(
        source=str(world.source),
        recipe="int4-cpu",
        model_id=MODEL_ID,
        revision="v2",
        cache_dir=world.cache.absolute(),
        calibration=calibration,
        trust_remote_code=True,
        force=True,
        dry_run=True,
        gguf_file=None,
        chat_template="chatml",
        completion_only=True,
        adapter="org/lora",
        adapter_revision="a1",
    )
    assert world.compiles == [expected, replace(expected, dry_run=False)]
    (registered,) = world.registers
    assert registered == {
        "target": str(world.target),
        "cache_dir": world.cache.absolute(),
        "registry": world.out / "staged-registry.json",
        "model_id": MODEL_ID,
        "alias": "tiny",
        "capabilities": ("chat", "code"),
        "license": "apache-2.0",
    }


def test_an_import_is_asked_with_the_request_s_values(world: World) -> None:
    from curator.compile.imported import ImportRequest

    world.run(
        source="org/tiny-onnx",
        subfolder="cpu-int4",
        model_id=MODEL_ID,
        revision="v3",
        chat_template="chatml",
        completion_only=True,
        fidelity=False,
    )
    expected = ImportRequest(
        source="org/tiny-onnx",
        subfolder="cpu-int4",
        model_id=MODEL_ID,
        revision="v3",
        cache_dir=world.cache.absolute(),
        chat_template="chatml",
        completion_only=True,
        force=True,
        dry_run=True,
    )
    assert world.imports == [expected, replace(expected, dry_run=False)]


def test_a_budget_compile_is_asked_with_the_request_s_values(world: World) -> None:
    from curator.compile import CompileRequest

    world.run(
        recipe="auto",
        min_top1=0.8,
        model_id=MODEL_ID,
        revision="v2",
        trust_remote_code=True,
        chat_template="chatml",
        completion_only=True,
        fidelity=False,
    )
    ((request, budget),) = world.budgets
    assert request == CompileRequest(
        source=str(world.source),
        recipe="auto",
        model_id=MODEL_ID,
        revision="v2",
        cache_dir=world.cache.absolute(),
        trust_remote_code=True,
        force=True,
        gguf_file=None,
        chat_template="chatml",
        completion_only=True,
    )
    assert (budget.max_kl, budget.min_top1) == (None, 0.8)


def test_recipe_auto_takes_its_budget_from_the_registry_policy(world: World) -> None:
    world.registry.parent.mkdir(parents=True)
    world.registry.write_text(json.dumps(make_document([], maxKlDivergence=0.2)))
    result = world.run(recipe="auto", fidelity=False)
    assert result.steps[1].detail.startswith("5.0 MiB in 61 s, budget KL <= 0.2: KL 0.0123")
    assert [r.recipe for r in world.compiles] == ["int4-cpu"]  # the budget's search, not a plan


def test_a_completion_only_model_is_smoked_and_benched_with_the_continuation_set(
    world: World,
) -> None:
    from curator.prompts import load_prompt_set

    completion = load_prompt_set(default_prompt_set_path("completion"))
    for prompt in completion.prompts:
        world.answers[prompt.messages[-1].content] = " ".join(prompt.expected) or "more text"
    result = world.run(completion_only=True, prompts=None, fidelity=False)
    assert result.steps[3].detail == f"{len(completion.prompts)} prompts passed"
    report = json.loads(result.bench_report.read_text())
    assert report["promptSet"]["sha256"] == completion.sha256


def test_the_entry_keeps_a_higher_ram_floor(world: World) -> None:
    world.ram = 64.0
    world.run(fidelity=False)
    entry = find_model(load_registry(world.registry), MODEL_ID) or {}
    assert entry["minRamGb"] == 64.0


def test_registry_artifacts_in_another_order_are_the_same_build(world: World) -> None:
    world.run(fidelity=False)
    document = load_registry(world.registry)
    document["models"][0]["build"]["artifacts"].reverse()
    world.registry.write_text(json.dumps(document))
    assert dict(steps(world.run(fidelity=False)))["register"] == "skipped"


def test_a_benchmark_dated_at_the_build_s_time_is_current(world: World) -> None:
    world.run(fidelity=False)
    document = load_registry(world.registry)
    bench_date = document["models"][0]["benchmarks"][0]["date"]
    manifest_path = world.target / "curator-manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["build"]["compiledAt"] = bench_date
    manifest_path.write_text(json.dumps(manifest))
    assert dict(steps(world.run(fidelity=False)))["bench"] == "skipped"


def test_a_config_without_architectures_is_described_so(world: World) -> None:
    (world.source / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    result = world.run(fidelity=False)
    assert result.steps[0].detail == "local model, unknown architecture"


def test_a_hub_gguf_file_is_the_same_build_when_its_name_and_commit_are(world: World) -> None:
    world.manifest_extra = {"gguf": {"file": "model-q4.gguf"}}
    world.run(source="org/tiny", gguf_file="model-q4.gguf", fidelity=False)
    manifest_path = world.target / "curator-manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["source"]["revision"] = "c0ffee" * 7
    manifest_path.write_text(json.dumps(manifest))
    again = world.run(source="org/tiny", gguf_file="model-q4.gguf", fidelity=False)
    assert dict(steps(again))["compile"] == "skipped"
    manifest_path.write_text(json.dumps(manifest))  # what the rerun left, for the next one
    other = world.run(source="org/tiny", gguf_file="model-q8.gguf", fidelity=False)
    assert dict(steps(other))["compile"] == "done"


def test_a_gguf_in_a_checkpoint_directory_compares_with_its_dequantized_checkpoint(
    world: World,
) -> None:
    tiny_gguf(world.source / "model-q4.gguf")
    dequantized = world.root / "dequantized"
    dequantized.mkdir()
    (dequantized / "config.json").write_text("{}")
    world.manifest_extra = {"sourceDir": str(dequantized), "gguf": {"file": "model-q4.gguf"}}
    world.run(gguf_file="model-q4.gguf")
    ((model_dir, reference, _),) = world.fidelities
    assert reference.path == dequantized.resolve() and model_dir == world.target


def test_a_build_without_a_recorded_time_says_0_s(world: World) -> None:
    world.wall_seconds = None
    assert world.run(fidelity=False).steps[1].detail == "3.0 MiB in 0 s"
    (world.source / "genai_config.json").write_text(json.dumps({"model": {"type": "qwen2"}}))
    (world.source / "model.onnx").write_bytes(b"onnx")
    assert world.run(fidelity=False, force=True).steps[1].detail == "1.5 MiB in 0 s"


def test_a_gguf_source_is_rebuilt_when_the_build_names_no_gguf(world: World) -> None:
    gguf = tiny_gguf(world.root / "tiny.gguf")
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
    world.manifest_extra = {"gguf": {"file": "tiny.gguf", "sha256": digest}}
    world.run(source=str(gguf), fidelity=False)
    assert dict(steps(world.run(source=str(gguf), fidelity=False)))["compile"] == "skipped"
    world.manifest_extra = {"gguf": None}
    world.build(json.loads((world.target / "curator-manifest.json").read_text()))
    assert dict(steps(world.run(source=str(gguf), fidelity=False)))["compile"] == "done"


def test_a_budget_compile_of_a_gguf_names_the_file(world: World) -> None:
    tiny_gguf(world.source / "model-q4.gguf")
    world.run(gguf_file="model-q4.gguf", max_kl=0.1, fidelity=False)
    ((request, _),) = world.budgets
    assert request.gguf_file == "model-q4.gguf"


def test_a_build_with_no_compile_time_is_benched_once(world: World) -> None:
    world.run(fidelity=False)
    manifest_path = world.target / "curator-manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["build"]["compiledAt"]
    manifest_path.write_text(json.dumps(manifest))
    assert dict(steps(world.run(fidelity=False)))["bench"] == "skipped"


def test_answers_of_one_token_have_no_decode_rate_to_record(world: World) -> None:
    world.backend = Backend(words=1)
    with pytest.raises(OnboardStepFailed) as failed:
        world.run(fidelity=False)
    assert failed.value.message == (
        "bench failed: benchmark not recorded: no decode speed measured "
        "(answers shorter than two tokens)"
    )
    assert not world.registry.exists()


@pytest.mark.parametrize(
    ("config", "described"),
    [
        ({"architectures": ["A", "B"]}, "local model, A, B"),
        ({"model_type": "qwen2"}, "local model, unknown architecture"),
        ([], "local model, unknown architecture"),  # not an object: nothing to read
    ],
)
def test_a_local_model_is_described_by_its_config(
    world: World, config: Any, described: str
) -> None:
    (world.source / "config.json").write_text(json.dumps(config))
    assert world.run(fidelity=False).steps[0].detail == described


def test_an_unreadable_config_is_an_info_failure(world: World) -> None:
    (world.source / "config.json").write_text("{broken")
    with pytest.raises(OnboardStepFailed) as failed:
        world.run()
    assert failed.value.message.startswith("info failed: ")
    assert "invalid JSON in model config" in failed.value.message


def test_a_hub_description_keeps_the_repo_before_the_notes(world: World) -> None:
    head = f"org/tiny@{'c0ffee' * 2}, LlamaForCausalLM, license apache-2.0; "
    gguf = world.run(source="org/tiny", gguf_file="model-q4.gguf", fidelity=False)
    assert gguf.steps[0].detail.startswith(head + "the source model-q4.gguf was already")
    onnx = world.run(source="org/tiny-onnx", fidelity=False)
    assert onnx.steps[0].detail == (
        f"org/tiny-onnx@{'c0ffee' * 2}, LlamaForCausalLM, license apache-2.0; "
        "already ONNX Runtime GenAI: imported as it is"
    )
