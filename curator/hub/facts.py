"""``model_facts``: what a curator needs to know before compiling, without downloading weights.

The model info answer comes first (one request, with file sizes): it already holds the parameter
counts (``safetensors``), the architecture and tokenizer settings (``config``), the card's license
(``cardData``), the gate and the files. Only what it lacks is fetched: config.json or
tokenizer_config.json (small files), the safetensors headers (range reads), the file listing for
sizes. A failed fetch loses only the facts it was for: each such fact is recorded as a gap with its
reason, and the rest is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from curator.errors import HubError
from curator.hub.client import check_repo_id, hub_errors, make_api
from curator.hub.endpoint import hf_cache_dir, hub_endpoint
from curator.hub.feasibility import recipe_fits
from curator.hub.files import compile_files, weight_format
from curator.hub.local import read_json_object
from curator.hub.models import FactGap, FileEntry, ModelFacts
from curator.hub.transport import body_limit, hub_deadline

if TYPE_CHECKING:
    from huggingface_hub import HfApi, ModelInfo

T = TypeVar("T")

CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")
LICENSE_FILES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE")
# The most bytes a small JSON file (config.json, tokenizer_config.json) may hold.
SMALL_FILE_LIMIT = 8 * 2**20


class _Gaps:
    """Facts not known so far, and a way to try a request that may add one."""

    def __init__(self, repo_id: str, revision: str | None) -> None:
        self.repo_id = repo_id
        self.revision = revision
        self.found: list[FactGap] = []

    def has(self, fact: str) -> bool:
        return any(gap.fact == fact for gap in self.found)

    def unknown(self, fact: str, reason: str) -> None:
        self.found.append(FactGap(fact, "unknown", reason))

    def attempt(self, fact: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """``function(*args, **kwargs)``, or None with a ``failed`` gap for ``fact``."""
        try:
            with hub_errors(self.repo_id, self.revision):
                return _quietly(function, *args, **kwargs)
        except HubError as exc:
            self.found.append(FactGap(fact, "failed", exc.message))
            return None


def model_facts(repo_id: str, revision: str | None = None) -> ModelFacts:
    """Facts about ``repo_id`` at ``revision`` (default: the main branch), pinned to its commit.

    Raises only when the model info request itself fails (repository or revision not found,
    offline, stalled ...); every later failure becomes a gap."""
    check_repo_id(repo_id)
    api = make_api()
    with hub_deadline():
        with hub_errors(repo_id, revision):
            info = api.model_info(repo_id, revision=revision, files_metadata=True)
        return _facts(api, info, repo_id, revision)


def _facts(api: HfApi, info: ModelInfo, asked: str, revision: str | None) -> ModelFacts:
    repo_id = info.id or asked
    sha = info.sha or ""
    gaps = _Gaps(repo_id, revision)
    siblings = {s.rfilename: s.size for s in info.siblings or []}
    fmt = weight_format(siblings)

    config = _config(api, info, repo_id, sha, siblings, gaps)
    architectures = config.get("architectures") if config is not None else None
    architecture = (
        str(architectures[0]) if isinstance(architectures, list) and architectures else None
    )
    if architecture is None and not gaps.has("architecture"):
        gaps.unknown("architecture", "config.json names no architecture")
    model_type = config.get("model_type") if config is not None else None
    auto_map = bool(config.get("auto_map")) if config is not None else False

    counts = _parameter_counts(api, info, repo_id, sha, fmt, gaps)
    parameters = sum(counts.values()) if counts else None

    chosen = compile_files(siblings, with_code=auto_map)
    sizes = _sizes(api, repo_id, sha, siblings, chosen, gaps)
    download_bytes = (
        sum(sizes[p] or 0 for p in chosen)
        if all(sizes.get(p) is not None for p in chosen)
        else None
    )
    license_id = _license(info)
    if license_id is None:
        gaps.unknown("license", "the model card states no license")
    kind, variants, base_model, notes = _kind(api, info, repo_id, sha, siblings, gaps)
    recipes = recipe_fits(architecture, parameters, fmt, auto_map=auto_map)
    if kind in ("genai", "adapter"):
        reason = notes[0]
        recipes = tuple(
            replace(fit, can_compile=False, reason=reason, reason_kind="not a checkpoint")
            for fit in recipes
        )
    return ModelFacts(
        repo_id=repo_id,
        renamed_from=asked if repo_id != asked else None,
        revision=revision,
        sha=sha,
        url=f"{hub_endpoint()}/{repo_id}",
        license=license_id,
        license_link=_license_link(info, repo_id, sha, siblings),
        gated=bool(info.gated),
        gate=str(info.gated) if info.gated else None,
        architecture=architecture,
        model_type=str(model_type) if model_type else None,
        auto_map=auto_map,
        chat_template=_chat_template(api, info, repo_id, sha, siblings, gaps),
        parameters=parameters,
        parameters_by_dtype=counts,
        weight_format=fmt,
        download_bytes=download_bytes,
        download_files=tuple(FileEntry(p, sizes.get(p)) for p in chosen),
        repo_bytes=(
            sum(s or 0 for s in siblings.values())
            if siblings and all(s is not None for s in siblings.values())
            else None
        ),
        pipeline_tag=info.pipeline_tag,
        library=info.library_name,
        downloads=info.downloads,
        likes=info.likes,
        last_modified=info.last_modified.isoformat() if info.last_modified else None,
        recipes=recipes,
        gaps=tuple(gaps.found),
        kind=kind,
        variants=variants,
        base_model=base_model,
        notes=notes,
    )


def _kind(
    api: HfApi,
    info: ModelInfo,
    repo_id: str,
    sha: str,
    siblings: dict[str, int | None],
    gaps: _Gaps,
) -> tuple[str, tuple[str, ...], str | None, tuple[str, ...]]:
    """(kind, variant subfolders, adapter base, notes) from the repository's file list."""
    genai = sorted(
        name.rsplit("/", 1)[0] if "/" in name else "."
        for name in siblings
        if name == "genai_config.json" or name.endswith("/genai_config.json")
    )
    if genai:
        variants = tuple(v for v in genai if v != ".")
        command = f"curator import {repo_id}" + (f" --subfolder {variants[0]}" if variants else "")
        return (
            "genai",
            variants,
            None,
            (
                "already ONNX Runtime GenAI: nothing to compile; curator import brings it in",
                f"import it: {command}",
            ),
        )
    if "adapter_config.json" in siblings and "config.json" not in siblings:
        card = info.card_data
        base = getattr(card, "base_model", None) if card is not None else None
        if isinstance(base, list):
            base = base[0] if base else None
        if not base:
            adapter = gaps.attempt(
                "base model", _json_file, api, repo_id, "adapter_config.json", sha
            )
            base = (adapter or {}).get("base_model_name_or_path")
        base_text = str(base) if base else None
        return (
            "adapter",
            (),
            base_text,
            (
                f"a LoRA adapter: compile its base {base_text or ''} with --adapter".replace(
                    "  ", " "
                ),
                f"compile it: curator compile {base_text or 'BASE'} --adapter {repo_id} "
                "--recipe int4-cpu",
            ),
        )
    if weight_format(siblings) is None and any(n.lower().endswith(".gguf") for n in siblings):
        ggufs = sorted(n for n in siblings if n.lower().endswith(".gguf"))
        return (
            "gguf",
            (),
            None,
            (
                f"GGUF files only: compile one with curator compile {repo_id} --gguf-file {ggufs[0]}",
            ),
        )
    return "checkpoint", (), None, ()


def _config(
    api: HfApi,
    info: ModelInfo,
    repo_id: str,
    sha: str,
    siblings: dict[str, int | None],
    gaps: _Gaps,
) -> dict[str, Any] | None:
    """The model config: the answer's ``config`` (the Hub copies architectures, model_type and
    auto_map from config.json), else config.json itself."""
    if info.config and (info.config.get("architectures") or info.config.get("model_type")):
        return dict(info.config)
    if "config.json" not in siblings:
        gaps.unknown("architecture", "the repository has no config.json")
        return None
    return gaps.attempt("architecture", _json_file, api, repo_id, "config.json", sha)


def _chat_template(
    api: HfApi,
    info: ModelInfo,
    repo_id: str,
    sha: str,
    siblings: dict[str, int | None],
    gaps: _Gaps,
) -> bool | None:
    if any(name in siblings for name in CHAT_TEMPLATE_FILES):
        return True
    summary = (info.config or {}).get("tokenizer_config")
    if isinstance(summary, dict):  # the Hub's copy of tokenizer_config.json's main keys
        return bool(summary.get("chat_template"))
    if "tokenizer_config.json" not in siblings:
        return False
    found = gaps.attempt("chat template", _json_file, api, repo_id, "tokenizer_config.json", sha)
    return None if found is None else bool(found.get("chat_template"))


def _parameter_counts(
    api: HfApi, info: ModelInfo, repo_id: str, sha: str, fmt: str | None, gaps: _Gaps
) -> dict[str, int]:
    """Parameters per dtype: the answer's ``safetensors`` figure, else the weight headers."""
    if info.safetensors is not None and info.safetensors.parameters:
        return {str(dtype): int(n) for dtype, n in info.safetensors.parameters.items()}
    if fmt == "pytorch":
        gaps.unknown("parameters", "only pytorch .bin weights; the Hub counts safetensors only")
        return {}
    if fmt is None:
        gaps.unknown("parameters", "no weight files at the top level of the repository")
        return {}
    metadata = gaps.attempt("parameters", api.get_safetensors_metadata, repo_id, revision=sha)
    if metadata is None:
        return {}
    return {str(dtype): int(n) for dtype, n in metadata.parameter_count.items()}


def _sizes(
    api: HfApi,
    repo_id: str,
    sha: str,
    siblings: dict[str, int | None],
    chosen: tuple[str, ...],
    gaps: _Gaps,
) -> dict[str, int | None]:
    """File sizes: the answer's (``blobs``), else the file listing's; None where neither says."""
    sizes = dict(siblings)
    if all(sizes.get(p) is not None for p in chosen):
        return sizes
    listing = gaps.attempt("download size", _top_level_sizes, api, repo_id, sha)
    if listing is not None:
        for path in chosen:
            if sizes.get(path) is None:
                sizes[path] = listing.get(path)
        if any(sizes.get(p) is None for p in chosen):
            gaps.unknown("download size", "the Hub gave no size for some of the files")
    return sizes


def _top_level_sizes(api: HfApi, repo_id: str, sha: str) -> dict[str, int | None]:
    from huggingface_hub.hf_api import RepoFile

    return {
        entry.path: entry.size
        for entry in api.list_repo_tree(repo_id, revision=sha or None, recursive=False)
        if isinstance(entry, RepoFile)
    }


def _quietly(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``function`` with huggingface_hub's progress bars off (it prints one per shard)."""
    from huggingface_hub.utils.tqdm import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        return function(*args, **kwargs)
    finally:
        if not was_disabled:
            enable_progress_bars()


def _json_file(api: HfApi, repo_id: str, filename: str, sha: str) -> dict[str, Any]:
    """A small JSON file of the repository at ``sha`` (cached in the HF cache); {} if unreadable."""
    with body_limit(SMALL_FILE_LIMIT):
        path = api.hf_hub_download(
            repo_id, filename, revision=sha or None, cache_dir=hf_cache_dir()
        )
    return read_json_object(Path(path))


def _license(info: ModelInfo) -> str | None:
    card = info.card_data
    if card is not None and getattr(card, "license", None):
        return str(card.license)
    for tag in info.tags or ():
        if tag.startswith("license:"):
            return tag.split(":", 1)[1]
    return None


def _license_link(
    info: ModelInfo, repo_id: str, sha: str, sizes: dict[str, int | None]
) -> str | None:
    """The card's license_link (made absolute), else the repository's LICENSE file."""
    base = f"{hub_endpoint()}/{repo_id}/blob/{sha or 'main'}"
    card = info.card_data
    link = getattr(card, "license_link", None) if card is not None else None
    if link:
        link = str(link)
        return link if "://" in link else f"{base}/{link.lstrip('/')}"
    for name in LICENSE_FILES:
        if name in sizes:
            return f"{base}/{name}"
    return None
