"""``compile_model``: preflight, run Olive, check the output, describe it, place it atomically."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from curator.cache.modeldir import MANIFEST_NAME
from curator.compile import adapter as adapter_merge
from curator.compile import (
    chat_templates,
    check,
    cost,
    gguf_source,
    manifest,
    placement,
    preflight,
    prequantized,
    runtime_options,
)
from curator.compile.olive_run import OliveRun, log_tail, run_olive
from curator.compile.source import (
    custom_code_files,
    read_model_config,
    resolve_source,
    slug,
    weight_facts,
)
from curator.compile.types import CompilePlan, CompileRequest, CompileResult, SourceModel
from curator.errors import CompileError, CuratorError, UsageProblem, storage_error
from curator.foundry import sizing
from curator.hub import model_facts
from curator.paths import curator_home, foundry_cache_dir
from curator.progress import Progress, say
from curator.recipes import (
    Recipe,
    get_recipe,
    load_recipe_file,
    predict_run_bytes,
    render_olive_config,
)

OLIVE_CONFIG_NAME = "olive-config.json"


class OliveRunner(Protocol):
    """How a compile runs Olive on a written workflow config (:func:`run_olive`: a child process
    for minutes). Another runner (a test's, writing Olive's output itself) sees the same config,
    work directory and log path."""

    def __call__(
        self,
        config_path: Path,
        log_path: Path,
        *,
        offline: bool,
        progress: Progress | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> OliveRun: ...


def _olive_config(
    recipe: Recipe, source_dir: Path | str, work: Path, request: CompileRequest
) -> dict[str, Any]:
    return render_olive_config(
        recipe,
        model_path=Path(source_dir),
        output_dir=work / "olive-output",
        cache_dir=work / "olive-cache",
        calibration=request.calibration.resolve() if request.calibration else None,
        trust_remote_code=request.trust_remote_code,
    )


def plan_compile(request: CompileRequest, recipe: Recipe, source: SourceModel) -> CompilePlan:
    """Every check that needs no heavy work; raises PreflightError/UsageProblem on the first."""
    quant_notes: tuple[str, ...] = ()
    cache_root = foundry_cache_dir(request.cache_dir).absolute()
    model_id = request.model_id or f"{source.name}-{recipe.variant}:1"
    preflight.check_model_id(model_id, recipe)
    target = placement.target_dir(cache_root, source.publisher, model_id)
    exists = target.exists() and not request.force
    preflight.check_target(target, request.force or request.dry_run)  # a dry run shows the plan
    architecture = parameters = predicted_peak = predicted_disk = context = None
    model_config: dict[str, Any] | None = None  # config.json: the shape sets a streamed peak
    stored_bytes = 2.0  # bytes per stored parameter (bf16 unless the files say otherwise)
    predicted_seconds: float | None = None
    prediction_basis: str | None = None
    unknown_because: tuple[tuple[str, str], ...] = ()
    if source.local_dir is not None:
        config = read_model_config(source.local_dir)
        architecture = preflight.check_architecture(config, source.local_dir)
        preflight.check_custom_code(
            custom_code_files(source.local_dir, config), request.trust_remote_code
        )
        quant = prequantized.prequantized(config)  # AWQ/GPTQ: the builder's quantized path
        if quant is not None:
            prequantized.check_recipe(quant, recipe, request.source)
            quant_notes = (quant.note(),)
        facts = weight_facts(source.local_dir, config)
        parameters = facts.parameters
        model_config = config
        if parameters:
            stored_bytes = facts.weight_bytes / parameters
        raw_context = config.get("max_position_embeddings")
        context = raw_context if isinstance(raw_context, int) else None
        has_template: bool | None = check.has_chat_template(source.local_dir)
    elif source.gguf_path is not None:  # not dequantized yet: the header has the sizes
        parameters, context = gguf_source.parameter_count(source.gguf_path)
        unknown_because = (("architecture", "the transformers class is read when dequantizing"),)
        has_template = gguf_source.has_chat_template(source.gguf_path)
    else:
        has_template = None  # a Hub source before its download: checked once downloaded
        if request.dry_run:  # a real run reads them from the download
            architecture, parameters, unknown_because = _hub_sizes(source)
    if not (request.chat_template or request.completion_only):
        preflight.check_chat_template(has_template, request.source)
    free_disk = preflight.free_disk_bytes(cache_root)
    available_ram = preflight.available_ram_bytes()
    if parameters:  # RAM first: no --cache-dir gets round it, and its hint names a recipe
        predicted = cost.estimate(recipe, parameters, model_config, stored_bytes)
        predicted_peak, predicted_seconds = predicted.peak_bytes, predicted.seconds
        prediction_basis = predicted.basis
        if predicted_peak > available_ram:
            fits = cost.fitting_recipes(
                recipe, parameters, available_ram, model_config, stored_bytes
            )
            preflight.check_ram(predicted_peak, available_ram, recipe, fits)
        predicted_disk = preflight.predicted_disk_bytes(recipe, parameters)
        preflight.check_disk(predicted_disk, free_disk, cache_root)
    if request.context_length is not None:
        runtime_options.check_context_length(request.context_length, context)
    serving_context = request.context_length or context
    kv_shape = sizing.source_kv_shape(model_config, recipe.device) if model_config else None
    predicted_kv = sizing.kv_cache_bytes(kv_shape, serving_context)
    predicted_serving = (
        predict_run_bytes(recipe, parameters) + predicted_kv
        if parameters and predicted_kv is not None
        else None
    )
    template, template_notes = _chat_template(request, source)
    label = model_id.replace(":", "-")
    placeholder_work = cache_root / placement.WORK_ROOT_NAME / f"{label}-XXXXXXXX"
    olive_config = _olive_config(recipe, source.local_dir or source.repo, placeholder_work, request)
    return CompilePlan(
        model_id=model_id,
        publisher=source.publisher,
        target=target,
        recipe=recipe.name,
        recipe_sha256=recipe.sha256,
        source_repo=source.repo,
        source_revision=source.revision,
        source_dir=source.local_dir,
        architecture=architecture,
        parameters=parameters,
        context_length=context,
        predicted_peak_bytes=predicted_peak,
        available_ram_bytes=available_ram,
        predicted_disk_bytes=predicted_disk,
        predicted_seconds=predicted_seconds,
        prediction_basis=prediction_basis,
        free_disk_bytes=free_disk,
        olive_config=olive_config,
        source_gguf_file=source.gguf_file,
        source_gguf=source.gguf,
        notes=_notes(source) + quant_notes + template_notes + _exists_note(target, exists),
        unknown_because=unknown_because,
        chat_template=template,
        completion_only=request.completion_only,
        source_adapter=source.adapter,
        source_license=_base_license(source),
        serving_context_length=serving_context,
        predicted_kv_bytes=predicted_kv,
        predicted_serving_bytes=predicted_serving,
    )


def _base_license(source: SourceModel) -> str | None:
    """The base's license when its local files state it (a card's ``license``)."""
    from curator.compile.describe import card_metadata  # start-up: ~30 ms, not for --help

    if source.gguf_path is not None:  # a GGUF states it in its metadata (general.license)
        from curator.formats.gguf import read_gguf_facts  # start-up: ~6 ms, GGUF sources only

        value = read_gguf_facts(source.gguf_path).metadata.get("general.license")
        return str(value).lower() if value else None
    base = source.base_dir or source.local_dir
    if base is None:
        return None
    return card_metadata(base).get("license")


def _chat_template(
    request: CompileRequest, source: SourceModel
) -> tuple[chat_templates.ChatTemplate | None, tuple[str, ...]]:
    """The template --chat-template or --completion-only installs, and what to say about it."""
    if request.completion_only:
        if request.chat_template:
            raise UsageProblem(
                "--completion-only and --chat-template exclude each other",
                hint="a base model: --completion-only; a chat model: --chat-template NAME",
            )
        return chat_templates.completion_template(), (
            "completion-only: the prompt is passed to the model unchanged (no chat format); it is "
            "registered for text-generation and smoke-tested with continuations",
        )
    if not request.chat_template:
        return None, ()
    template = chat_templates.resolve_chat_template(request.chat_template)
    notes = [f"chat template: {template.name} ({template.origin}) replaces the model's own, if any"]
    if source.local_dir is not None:
        missing = chat_templates.missing_markers(template, source.local_dir)
        if missing:
            notes.append(
                f"the tokenizer has no token for {', '.join(missing)}: the model reads them as "
                "plain text (choose the template the model was trained with)"
            )
    return template, tuple(notes)


def _hub_sizes(source: SourceModel) -> tuple[str | None, int | None, tuple[tuple[str, str], ...]]:
    """A Hub source before its download (a dry run): architecture and parameter count from the
    Hub's model info, or why they are unknown (issue 25: every "-" in a plan says why)."""
    try:
        facts = model_facts(source.repo, source.revision)
    except CuratorError as exc:
        why = f"Hub unreachable: {exc.message}"
        return None, None, (("architecture", why), ("parameters", why))
    reasons: tuple[tuple[str, str], ...] = ()
    if facts.architecture is None:
        reasons += (("architecture", "the Hub's model info does not name it"),)
    if facts.parameters is None:
        reasons += (("parameters", "the Hub lists no safetensors parameter count"),)
    return facts.architecture, facts.parameters, reasons


def _exists_note(target: Path, exists: bool) -> tuple[str, ...]:
    if not exists:
        return ()
    return (
        f"{target} already exists: a real run stops there; with --force it compiles again "
        "and replaces it",
    )


def _notes(source: SourceModel) -> tuple[str, ...]:
    notes: tuple[str, ...] = ()
    if source.gguf is not None:
        notes = (source.gguf.note(),)
    elif source.gguf_file is not None:
        notes = (gguf_source.already_quantized_note(source.gguf_file),)
    if source.adapter is not None:
        notes += (source.adapter.note(source.repo),)
        mismatch = adapter_merge.check_base_matches(source.adapter, source.repo)
        if mismatch:
            notes += (mismatch,)
        notes += (adapter_merge.SEPARATE_ADAPTER_BLOCKED,)
    return notes


def _with_adapter(
    request: CompileRequest, base: SourceModel, progress: Progress | None
) -> SourceModel:
    """The base with ``request.adapter`` resolved and (unless a dry run) merged into it; the id
    and publisher come from the adapter (it is the model being brought)."""
    assert request.adapter is not None
    origin = adapter_merge.resolve_adapter(request.adapter, request.adapter_revision)
    if origin.repo.startswith("local:"):
        publisher, name = "local", origin.repo.split(":", 1)[1]
    else:
        org, repo_name = origin.repo.split("/", 1)
        publisher, name = org, slug(repo_name)
    merged = None
    if base.local_dir is not None and not request.dry_run:
        say(progress, f"merging adapter {origin.repo} into {base.repo} (once per pair) ...")
        merged = adapter_merge.merge(base.local_dir, base.revision, origin)
    return replace(
        base,
        local_dir=merged or base.local_dir,
        publisher=publisher,
        name=name,
        adapter=origin,
        base_dir=base.local_dir,
    )


def resolve_recipe(name_or_path: str) -> Recipe:
    """A recipe by name (recipes/), or a recipe file of one's own (a path ending in .json)."""
    path = Path(name_or_path).expanduser()
    if name_or_path.endswith(".json") and path.is_file():
        return load_recipe_file(path.resolve())
    return get_recipe(name_or_path)


def _keep_failed_log(log_path: Path, label: str) -> Path | None:
    """Copy a failed compile's log to ``$CURATOR_HOME/logs`` (the work directory goes away)."""
    try:
        logs = curator_home() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        kept = logs / f"compile-{label}-{stamp}.log"
        shutil.copyfile(log_path, kept)
        return kept
    except OSError:
        return None


def _assemble(olive_output: Path, model_dir: Path) -> None:
    """Move the model files (not Olive's bookkeeping) from Olive's output into ``model_dir``."""
    model_dir.mkdir()
    for entry in sorted(olive_output.iterdir()):
        if entry.name not in check.OLIVE_BOOKKEEPING:
            os.replace(entry, model_dir / entry.name)


def compile_model(
    request: CompileRequest, progress: Progress | None = None, olive: OliveRunner = run_olive
) -> CompileResult:
    """Compile ``request.source`` with ``request.recipe`` into the Foundry Local cache."""
    started = time.monotonic()
    recipe = resolve_recipe(request.recipe)
    preflight.check_calibration(recipe, request.calibration)
    if not request.dry_run:
        preflight.check_toolchain()
        preflight.check_device(recipe)
    # A Hub or GGUF source: its target can be refused before anything is downloaded or converted.
    light = resolve_source(
        request.source, request.revision, download=False, gguf_file=request.gguf_file
    )
    if light.local_dir is None:
        early = plan_compile(request, recipe, light)
        if request.dry_run:
            if request.adapter:  # the plan names the adapter (resolved, never merged here)
                early = plan_compile(request, recipe, _with_adapter(request, light, progress))
            return CompileResult(plan=early, dry_run=True)
        if not light.is_local:
            say(progress, f"downloading {light.repo} {light.gguf_file or ''}".rstrip())
        if light.gguf_file:
            say(progress, f"dequantizing {light.gguf_file} to fp32 (once per file) ...")
    source = (
        light
        if light.local_dir is not None
        else resolve_source(
            request.source, request.revision, download=True, gguf_file=request.gguf_file
        )
    )
    if request.adapter:
        source = _with_adapter(request, source, progress)
    for note in _notes(source):
        say(progress, f"note: {note}")
    plan = plan_compile(request, recipe, source)
    if request.dry_run:
        return CompileResult(plan=plan, dry_run=True)
    assert source.local_dir is not None

    cache_root = foundry_cache_dir(request.cache_dir).absolute()
    for stale in placement.remove_stale(cache_root):
        say(progress, f"removed a work directory left by an interrupted compile: {stale.name}")
    label = plan.model_id.replace(":", "-")
    with placement.work_directory(cache_root, label) as work:
        config = _olive_config(recipe, source.local_dir, work, request)
        config_path = work / OLIVE_CONFIG_NAME
        config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        log_path = work / manifest.LOG_NAME
        say(progress, f"olive: {recipe.name} ({' -> '.join(p.name for p in recipe.passes)})")
        run = olive(
            config_path,
            log_path,
            offline=True,  # Olive reads a local directory (a Hub source is downloaded above)
            progress=progress,
            on_start=lambda pid: placement.record_owner(work, pid),
        )
        if plan.chat_template is not None and (work / "olive-output").is_dir():
            chat_templates.install(plan.chat_template, work / "olive-output")
        problems = check.check_output(work / "olive-output")
        if problems:
            kept = _keep_failed_log(log_path, label)
            raise CompileError(
                f"Olive did not produce a usable model (exit code {run.returncode}): "
                f"{'; '.join(problems)}\n--- last lines of compile.log ---\n{log_tail(log_path)}",
                hint=f"full log: {kept}" if kept else "rerun to see the log",
            )
        model_dir = work / "model"
        _assemble(work / "olive-output", model_dir)
        runtime_options.use_all_cores(model_dir)
        own_context = (
            runtime_options.set_context_length(model_dir, request.context_length)
            if request.context_length is not None
            else None
        )
        shutil.copyfile(log_path, model_dir / manifest.LOG_NAME)
        manifest.write_inference_model(model_dir, plan.model_id)
        found = manifest.artifacts(model_dir)
        wall = time.monotonic() - started
        context_now = manifest.context_length(model_dir)
        kv_bytes = sizing.kv_cache_bytes(
            sizing.compiled_kv_shape(model_dir, recipe.device), context_now
        )
        document = manifest.manifest_document(
            plan=plan,
            recipe=recipe,
            found=found,
            compiled_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            wall_seconds=wall,
            olive_seconds=run.wall_seconds,
            peak_rss_bytes=run.peak_rss_bytes,
            context=context_now,
            predicted_run_bytes=(
                predict_run_bytes(recipe, plan.parameters) + (kv_bytes or 0)
                if plan.parameters
                else None
            ),
        )
        if kv_bytes:  # what the runtime allocates per request at contextLength
            document["kvCacheBytes"] = kv_bytes
        if own_context is not None and own_context != request.context_length:
            document["modelContextLength"] = own_context  # before --context-length changed it
        manifest.write_manifest(model_dir, document)
        _place(model_dir, plan.target, work, replace=request.force)
    return CompileResult(
        plan=plan,
        dry_run=False,
        path=plan.target,
        manifest_path=plan.target / MANIFEST_NAME,
        log_path=plan.target / manifest.LOG_NAME,
        wall_seconds=wall,
        peak_rss_bytes=run.peak_rss_bytes,
        artifacts=found,
    )


def _place(model_dir: Path, target: Path, work: Path, *, replace: bool) -> None:
    """Move the finished model into the cache, or say in one line why it could not go there."""
    try:
        placement.place(model_dir, target, work, replace=replace)
    except OSError as exc:
        if isinstance(exc, FileExistsError) or exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise CompileError(  # a racing compile of the same id got there first
                f"{target} appeared while compiling (another compile of the same id?)",
                hint="rerun with --force to replace it, or choose another --id",
            ) from exc
        mapped = storage_error(exc)
        if mapped is None:
            raise
        raise mapped from exc
