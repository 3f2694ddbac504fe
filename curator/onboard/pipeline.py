"""``curator onboard``: info → compile → register → smoke → bench → fidelity → registry entry.

Every step that writes the registry works on a staged copy; the team registry is written once, at
the end, with the finished entry. A failing step stops the run and leaves the registry as it was.
A rerun skips what is already done: the compile when the model directory's manifest names the same
source and recipe, the registration when Foundry and the registry already hold this build, the
benchmark and fidelity when the entry already has them for this build on this machine.

Each step hands its work to a collaborator (:class:`Collaborators`: the compiler, the Hub, Foundry
Local, the benchmark backend, the fidelity worker); what sits between them (the order, what a
rerun skips, failing fast, the one registry write, the summary) is this module's own.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curator import foundry
from curator.bench.backends import Backend, FoundryBackend
from curator.bench.machine import describe_machine
from curator.bench.record import record_run
from curator.bench.reports import JSON_NAME, MARKDOWN_NAME, write_reports
from curator.bench.runner import BenchSettings, run_bench
from curator.budget import BudgetResult, budget_for, compile_to_budget
from curator.cache.modeldir import read_manifest, sha256_file
from curator.compile import CompilePlan, CompileRequest, CompileResult, compile_model
from curator.compile.gguf_source import already_quantized_note, is_gguf_file
from curator.compile.imported import ImportRequest, ImportResult, import_model
from curator.compile.source import GENAI, classify_local
from curator.errors import CuratorError, FoundryError, RegistryInvalid, UsageProblem
from curator.fidelity.locate import default_reference, reference_from_dir
from curator.fidelity.measure import measure_fidelity
from curator.fidelity.record import record_in_manifest, record_in_registry
from curator.fidelity.text import load_text
from curator.fidelity.types import FidelityResult
from curator.formats.gguf import read_gguf_facts
from curator.foundry import FoundryRuntime
from curator.hub import model_facts
from curator.hub.models import ModelFacts
from curator.jsonio import read_json, write_text_atomic
from curator.onboard.summary import render_summary
from curator.paths import foundry_cache_dir
from curator.progress import Progress
from curator.prompts import default_prompt_set_path, load_prompt_set
from curator.recipes import DEFAULT_RECIPE
from curator.register import RegisterResult, register
from curator.registry import find_model, load_registry, update_model, upsert_model
from curator.registry.rules import ram_floor_gb
from curator.registry.store import lock_path
from curator.smoke.run import run_smoke


@dataclass(frozen=True)
class OnboardRequest:
    source: str
    recipe: str = DEFAULT_RECIPE
    registry: Path = Path("registry/models.json")
    cache_dir: Path | None = None
    out_dir: Path = Path("onboard-out")
    model_id: str | None = None
    revision: str | None = None
    alias: str | None = None
    license: str | None = None
    capabilities: tuple[str, ...] = ("chat",)
    trust_remote_code: bool = False
    calibration: Path | None = None
    rounds: int = 3
    warmup: int = 1
    max_tokens: int = 64
    prompts: Path | None = None
    fidelity: bool = True
    force: bool = False
    gguf_file: str | None = None  # a GGUF file of the Hub repo (or directory) ``source``
    chat_template: str | None = None  # --chat-template NAME|FILE (issue 21)
    completion_only: bool = False  # a base model: text-generation, continuation prompts
    adapter: str | None = None  # --adapter: a LoRA adapter merged into ``source`` (issue 21)
    adapter_revision: str | None = None
    subfolder: str | None = None  # a repo of ONNX Runtime GenAI variants: the one to import
    max_kl: float | None = None  # a fidelity budget (issue 22): the compile searches its plan
    min_top1: float | None = None
    context_length: int | None = None  # compile --context-length: the KV cache the runtime sizes

    def prompt_set(self) -> Path | None:
        """--prompts, else for a completion-only model the shipped continuation set."""
        if self.prompts is None and self.completion_only:
            return default_prompt_set_path("completion")
        return self.prompts


@dataclass(frozen=True)
class StepOutcome:
    name: str
    status: str  # "done" | "skipped"
    seconds: float
    detail: str


@dataclass(frozen=True)
class OnboardResult:
    model_id: str
    model_dir: Path
    registry: Path
    registry_action: str  # "added" | "updated" | "unchanged"
    steps: tuple[StepOutcome, ...]
    summary_path: Path
    bench_report: Path | None
    entry: dict[str, Any] = field(default_factory=dict)


class OnboardStepFailed(CuratorError):
    """A step failed; the message names the step and its cause."""


@dataclass(frozen=True)
class Collaborators:
    """Who does each step's work. The defaults are the real ones; a test passes its own of the
    same signatures to drive the pipeline in process."""

    hub_facts: Callable[[str, str | None], ModelFacts] = model_facts
    compile: Callable[[CompileRequest, Progress | None], CompileResult] = compile_model
    compile_to_budget: Callable[..., BudgetResult] = compile_to_budget
    import_model: Callable[[ImportRequest, Progress | None], ImportResult] = import_model
    register: Callable[..., RegisterResult] = register
    runtime: Callable[[Path], FoundryRuntime] = foundry.runtime  # Foundry Local, in process
    bench_backend: Callable[[Path], Backend] = FoundryBackend
    measure_fidelity: Callable[..., FidelityResult] = measure_fidelity


class _Steps:
    def __init__(self, progress: Progress | None) -> None:
        self.outcomes: list[StepOutcome] = []
        self.say = progress or (lambda _m: None)

    @contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        """Yields a one-item list the step fills with its detail; ``skip`` marks a skipped step."""
        self.say(f"[{len(self.outcomes) + 1}] {name} ...")
        start = time.monotonic()
        detail: list[str] = []
        try:
            yield detail
        except CuratorError as exc:
            problems = exc.problems if isinstance(exc, RegistryInvalid) else ()
            because = f" ({'; '.join(problems)})" if problems else ""
            raise OnboardStepFailed(
                f"{name} failed: {exc.message}{because}", hint=exc.hint
            ) from exc
        seconds = time.monotonic() - start
        status = "skipped" if detail and detail[0].startswith("skipped") else "done"
        text = detail[0] if detail else ""
        self.outcomes.append(StepOutcome(name, status, round(seconds, 2), text))
        self.say(f"[{len(self.outcomes)}] {name}: {text or status} ({seconds:.1f} s)")


def onboard(
    request: OnboardRequest,
    progress: Progress | None = None,
    collaborators: Collaborators | None = None,
) -> OnboardResult:
    tools = collaborators or Collaborators()
    cache_dir = foundry_cache_dir(request.cache_dir).absolute()
    request.out_dir.mkdir(parents=True, exist_ok=True)
    staged = request.out_dir / "staged-registry.json"
    _stage_registry(request.registry, staged)
    try:
        return _run_steps(request, cache_dir, staged, _Steps(progress), tools)
    finally:  # the staged copy and its edit lock are working files, never left behind
        staged.unlink(missing_ok=True)
        lock_path(staged).unlink(missing_ok=True)


def _run_steps(
    request: OnboardRequest, cache_dir: Path, staged: Path, steps: _Steps, tools: Collaborators
) -> OnboardResult:
    with steps.step("info") as detail:
        facts, hub_sha, genai = _facts(request, tools)
        detail.append(facts)
    # a model already in ONNX Runtime GenAI format is imported as it is (issue 21)
    with steps.step("import" if genai else "compile") as detail:
        if genai:
            model_dir, model_id, compiled = _import(request, cache_dir, steps.say, tools)
        else:
            model_dir, model_id, compiled = _compile(request, cache_dir, hub_sha, steps.say, tools)
        detail.append(compiled)
    manifest = _manifest(model_dir)
    with steps.step("register") as detail:
        detail.append(_register(request, cache_dir, staged, model_dir, model_id, manifest, tools))
    with steps.step("smoke") as detail:
        smoke_detail, answers = _smoke(request, cache_dir, model_id, steps.say, tools)
        detail.append(smoke_detail)
    bench_report = request.out_dir / "bench" / JSON_NAME
    with steps.step("bench") as detail:
        detail.append(
            _bench(request, cache_dir, staged, model_id, manifest, bench_report, steps.say, tools)
        )
    if request.fidelity:
        with steps.step("fidelity") as detail:
            detail.append(_fidelity(request, staged, model_dir, model_id, manifest, tools))
    entry = find_model(load_registry(staged), model_id)
    assert entry is not None  # register put the entry into the staged registry
    before = find_model(load_registry(request.registry), model_id)
    action = "unchanged" if before == entry else upsert_model(request.registry, entry)
    summary_path = request.out_dir / "SUMMARY.md"
    write_text_atomic(
        summary_path,
        render_summary(
            entry,
            tuple(steps.outcomes),
            request,
            bench_report,  # the bench step wrote it, or skipped because it was there
            answers=answers,
            notes=_notes(manifest),
        ),
    )
    return OnboardResult(
        model_id=model_id,
        model_dir=model_dir,
        registry=request.registry,
        registry_action=action,
        steps=tuple(steps.outcomes),
        summary_path=summary_path,
        bench_report=bench_report,
        entry=entry,
    )


def _stage_registry(registry: Path, staged: Path) -> None:
    if registry.exists():
        shutil.copyfile(registry, staged)
    else:
        staged.unlink(missing_ok=True)


def _local_gguf(request: OnboardRequest) -> Path | None:
    """The GGUF file of a local GGUF source (a .gguf file, or --gguf-file in a directory)."""
    source = Path(request.source).expanduser()
    candidate = source / request.gguf_file if request.gguf_file and source.is_dir() else source
    return candidate if is_gguf_file(candidate) else None


def _facts(request: OnboardRequest, tools: Collaborators) -> tuple[str, str | None, bool]:
    """A one-line description, for a Hub source the commit sha its revision resolves to, and
    whether the source is already an ONNX Runtime GenAI model (imported, not compiled)."""
    source = Path(request.source).expanduser()
    is_dir = source.is_dir() and not request.gguf_file
    if is_dir and classify_local(source.absolute(), request.source).kind == GENAI:
        return "local ONNX Runtime GenAI model: imported as it is", None, True
    gguf = _local_gguf(request)
    if gguf is not None:
        header = read_gguf_facts(gguf)
        note = already_quantized_note(gguf.name, header.quantization_types)
        return (
            f"local GGUF, {header.architecture}, {header.parameter_count:,} parameters; {note}",
            None,
            False,
        )
    if source.is_dir():
        config = read_json(source / "config.json", "model config")
        archs = config.get("architectures") if isinstance(config, dict) else None
        return f"local model, {', '.join(archs or ['unknown architecture'])}", None, False
    facts = tools.hub_facts(request.source, request.revision)
    text = f"{facts.repo_id}@{facts.sha[:12]}, {facts.architecture}, license {facts.license}"
    if request.gguf_file:
        text += f"; {already_quantized_note(request.gguf_file)}"
    genai = facts.kind == "genai" and not request.gguf_file
    if genai:
        text += "; already ONNX Runtime GenAI: imported as it is"
    return text, facts.sha, genai


def _import(
    request: OnboardRequest, cache_dir: Path, say: Progress, tools: Collaborators
) -> tuple[Path, str, str]:
    """``curator import`` as onboard's build step; a rerun keeps an import of the same files."""
    if request.context_length is not None:
        raise UsageProblem(
            f"--context-length applies to a compile, and {request.source} is already in ONNX "
            "Runtime GenAI format (imported as it is)",
            hint="drop --context-length, or edit the imported model's genai_config.json",
        )

    def ask(dry_run: bool, force: bool) -> ImportResult:
        return tools.import_model(
            ImportRequest(
                source=request.source,
                subfolder=request.subfolder,
                model_id=request.model_id,
                revision=request.revision,
                cache_dir=cache_dir,
                chat_template=request.chat_template,
                completion_only=request.completion_only,
                force=force,
                dry_run=dry_run,
            ),
            say,
        )

    plan = ask(dry_run=True, force=True).plan
    existing = _manifest(plan.target) if (plan.target / "genai_config.json").is_file() else None
    if existing and not request.force:
        declared = existing.get("source") or {}
        listed = [(f.path, f.sha256) for f in plan.files]
        if declared.get("revision") == plan.source_revision and listed == [
            (f.get("path"), f.get("sha256")) for f in declared.get("files") or []
        ]:
            return plan.target, plan.model_id, f"skipped: {plan.target} holds this import"
    result = ask(dry_run=False, force=True)
    assert result.path is not None  # an import that is not a dry run has its directory
    size = sum(a.bytes for a in result.artifacts) / 2**20
    return result.path, result.model_id, f"{size:.1f} MiB in {result.wall_seconds or 0:.0f} s"


def _same_context(existing: dict[str, Any], asked: int | None) -> bool:
    """A kept build runs with the context asked: ``asked``'s, else the model's own (a build whose
    context --context-length shortened records the model's own as modelContextLength)."""
    if asked is None:
        return "modelContextLength" not in existing
    return existing.get("contextLength") == asked


def _compile(
    request: OnboardRequest,
    cache_dir: Path,
    hub_sha: str | None,
    say: Progress,
    tools: Collaborators,
) -> tuple[Path, str, str]:
    if request.recipe == "auto" or request.max_kl is not None or request.min_top1 is not None:
        return _compile_to_budget(request, cache_dir, say, tools)

    def ask(dry_run: bool, force: bool) -> CompileResult:
        return tools.compile(
            CompileRequest(
                source=request.source,
                recipe=request.recipe,
                model_id=request.model_id,
                revision=request.revision,
                cache_dir=cache_dir,
                calibration=request.calibration,
                trust_remote_code=request.trust_remote_code,
                force=force,
                dry_run=dry_run,
                gguf_file=request.gguf_file,
                chat_template=request.chat_template,
                completion_only=request.completion_only,
                adapter=request.adapter,
                adapter_revision=request.adapter_revision,
                context_length=request.context_length,
            ),
            say,
        )

    plan = ask(dry_run=True, force=True).plan
    existing = _manifest(plan.target) if (plan.target / "genai_config.json").is_file() else None
    if (
        existing
        and not request.force
        and _same_build(existing, plan, hub_sha)
        and _same_gguf(existing, request)
        and existing.get("chatTemplate")
        == (plan.chat_template.manifest_record() if plan.chat_template else None)
        and (existing.get("adapter") or {}).get("sha256")
        == (plan.source_adapter.sha256 if plan.source_adapter else None)
        and _same_context(existing, request.context_length)
    ):
        return plan.target, plan.model_id, "skipped: the Foundry cache holds this build"
    result = ask(dry_run=False, force=True)
    assert result.path is not None  # a compile that is not a dry run has its directory
    seconds = result.wall_seconds or 0.0
    return result.path, result.model_id, f"{result.total_bytes / 2**20:.1f} MiB in {seconds:.0f} s"


def _compile_to_budget(
    request: OnboardRequest, cache_dir: Path, say: Progress, tools: Collaborators
) -> tuple[Path, str, str]:
    """``--recipe auto`` / ``--max-kl``: the smallest plan that meets the budget (curator.budget)."""
    budget = budget_for(request.recipe, request.max_kl, request.min_top1, request.registry)
    assert budget is not None
    result = tools.compile_to_budget(
        CompileRequest(
            source=request.source,
            recipe="auto",
            model_id=request.model_id,
            revision=request.revision,
            cache_dir=cache_dir,
            trust_remote_code=request.trust_remote_code,
            force=True,
            gguf_file=request.gguf_file,
            chat_template=request.chat_template,
            completion_only=request.completion_only,
            context_length=request.context_length,
        ),
        budget,
        progress=say,
    )
    compiled = result.compiled
    assert compiled.path is not None
    detail = (
        f"{compiled.total_bytes / 2**20:.1f} MiB in {result.seconds:.0f} s, budget "
        f"{budget.describe()}: KL {result.kl:.4f}, recipe {result.recipe.name}"
    )
    return compiled.path, compiled.model_id, detail


def _same_build(manifest: dict[str, Any], plan: CompilePlan, hub_sha: str | None) -> bool:
    """Same recipe file, same source and, for a Hub source, the same commit."""
    source = manifest.get("source") or {}
    build = manifest.get("build") or {}
    return bool(
        build.get("recipeSha256") == plan.recipe_sha256
        and source.get("repo") == plan.source_repo
        and (hub_sha is None or source.get("revision") == hub_sha)
    )


def _same_gguf(manifest: dict[str, Any], request: OnboardRequest) -> bool:
    """A GGUF source: the manifest names the same file (a local one: the same bytes)."""
    recorded = manifest.get("gguf")
    if not request.gguf_file and _local_gguf(request) is None:
        return recorded is None
    if not isinstance(recorded, dict):
        return False
    local = _local_gguf(request)
    if local is None:  # a Hub repo's file: the commit is compared by _same_build
        return bool(recorded.get("file") == Path(str(request.gguf_file)).name)
    return bool(recorded.get("sha256") == sha256_file(local))


def _manifest(model_dir: Path) -> dict[str, Any]:
    manifest = read_manifest(model_dir)
    if manifest is None:
        raise FoundryError(
            f"{model_dir} has no compile manifest", hint="recompile with curator compile --force"
        )
    return manifest


def _artifacts(record: dict[str, Any] | None) -> list[Any]:
    build = (record or {}).get("build") or {}
    return sorted(build.get("artifacts") or [], key=lambda a: str(a.get("path")))


def _register(
    request: OnboardRequest,
    cache_dir: Path,
    staged: Path,
    model_dir: Path,
    model_id: str,
    manifest: dict[str, Any],
    tools: Collaborators,
) -> str:
    entry = find_model(load_registry(staged), model_id)
    registered = tools.runtime(cache_dir).get(model_id) is not None
    if registered and entry and _artifacts(entry) == _artifacts(manifest) and not request.force:
        return "skipped: Foundry and the registry already hold this build"
    result = tools.register(
        str(model_dir),
        cache_dir=cache_dir,
        registry=staged,
        model_id=model_id,
        alias=request.alias,
        capabilities=request.capabilities,
        license=request.license,
    )
    return f"{result.foundry_action}, registry entry {result.registry_action}"


def _notes(manifest: dict[str, Any]) -> tuple[str, ...]:
    """What a reviewer must know about the build (an already quantized GGUF source)."""
    gguf = manifest.get("gguf")
    if not isinstance(gguf, dict):
        return ()
    types = tuple(str(t) for t in gguf.get("quantizationTypes") or ())
    return (already_quantized_note(str(gguf.get("file")), types),)


def _smoke(
    request: OnboardRequest, cache_dir: Path, model_id: str, say: Progress, tools: Collaborators
) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The step's detail and each prompt's (id, answer); FoundryError when a prompt fails (an
    answer without its expected words, or a degenerate one, is a failure: the registry gets
    nothing)."""
    report = run_smoke(
        model_id,
        cache_dir=cache_dir,
        prompts=request.prompt_set(),
        progress=say,
        runtime=tools.runtime(cache_dir),
    )
    if not report.passed:
        failures = "; ".join(f"{o.id}: {o.error}" for o in report.outcomes if not o.ok)
        raise FoundryError(
            f"smoke prompts failed: {failures}",
            hint=f"curator smoke {model_id} shows each answer",
        )
    answers = tuple((o.id, o.answer) for o in report.outcomes)
    return f"{len(report.outcomes)} prompts passed", answers


def _bench(
    request: OnboardRequest,
    cache_dir: Path,
    staged: Path,
    model_id: str,
    manifest: dict[str, Any],
    report_path: Path,
    say: Progress,
    tools: Collaborators,
) -> str:
    entry = find_model(load_registry(staged), model_id) or {}
    compiled_at = str((manifest.get("build") or {}).get("compiledAt", ""))
    fingerprint = describe_machine().fingerprint
    if report_path.exists() and not request.force:
        for run in entry.get("benchmarks") or []:
            if run["machine"]["fingerprint"] == fingerprint and run["date"] >= compiled_at:
                return f"skipped: benchmarked on this machine at {run['date']}"
    run = run_bench(
        [model_id],
        load_prompt_set(request.prompt_set()),
        tools.bench_backend(cache_dir),
        BenchSettings(rounds=request.rounds, warmup=request.warmup, max_tokens=request.max_tokens),
        progress=say,
    )
    model = run.models[0]
    if model.status != "ok":
        raise FoundryError(f"benchmark failed: {model.error}", hint=f"curator bench {model_id}")
    write_reports(run, report_path.parent)
    if model.peak_memory_mb:
        _cover_peak(staged, model_id, model.peak_memory_mb)
    refused = [r for r in record_run(run, staged) if r.outcome != "recorded"]
    if refused:
        raise FoundryError(f"benchmark not recorded: {refused[0].detail}", hint="see the report")
    decode = model.figures.decode_tokens_per_sec if model.figures else None
    assert decode is not None  # record_run refuses a run without a decode rate
    return f"{decode.mean:.1f} tok/s decode, report {report_path.parent.name}/{MARKDOWN_NAME}"


def _cover_peak(staged: Path, model_id: str, peak_mb: float) -> None:
    """Raise the entry's minRamGb to the bench's peak memory (the registry rule
    min-ram-covers-benchmark). Register's load test generates 8 tokens; the bench runs every
    prompt (in its own process, curator.bench.isolated), and the entry must not claim less than
    was measured."""
    floor = ram_floor_gb(peak_mb)

    def raise_floor(entry: dict[str, Any]) -> None:
        if float(entry.get("minRamGb") or 0) < floor:
            entry["minRamGb"] = floor

    update_model(staged, model_id, raise_floor)


def _fidelity(
    request: OnboardRequest,
    staged: Path,
    model_dir: Path,
    model_id: str,
    manifest: dict[str, Any],
    tools: Collaborators,
) -> str:
    existing = manifest.get("fidelity")
    entry = find_model(load_registry(staged), model_id) or {}
    if isinstance(existing, dict) and entry.get("fidelity") == existing:
        return "skipped: measured for this build"
    if (manifest.get("build") or {}).get("recipe") == "imported":
        return (
            "skipped: an imported model has no fp32 checkpoint here to compare with "
            f"(curator fidelity {model_id} --reference DIR --record)"
        )
    # A local checkpoint is its own reference; a Hub or GGUF source's is named by the manifest
    # (for a GGUF, the dequantized checkpoint the compile started from; with an adapter, the
    # merged checkpoint).
    source = Path(request.source).expanduser()
    is_checkpoint = source.is_dir() and not request.gguf_file and not request.adapter
    reference = reference_from_dir(source) if is_checkpoint else default_reference(model_dir)
    result = tools.measure_fidelity(model_dir, reference, load_text(), model=model_id)
    record_in_manifest(model_dir, result)
    record_in_registry(staged, model_id, result)
    record = result.to_record()
    return f"KL {record['klMean']:.4f}, top-1 {record['top1Agreement']:.1%}"
