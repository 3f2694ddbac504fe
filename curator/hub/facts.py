"""``model_facts``: what a curator needs to know before compiling, without downloading weights.

Requests: model info with file sizes (one), config.json and tokenizer_config.json (small files),
and the safetensors headers (range reads of the first bytes of each weight file).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from curator.hub.client import check_repo_id, hub_errors, make_api
from curator.hub.endpoint import hf_cache_dir, hub_endpoint
from curator.hub.feasibility import recipe_fits
from curator.hub.files import compile_files, weight_format
from curator.hub.models import FileEntry, ModelFacts

if TYPE_CHECKING:
    from huggingface_hub import HfApi, ModelInfo

T = TypeVar("T")

CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")
LICENSE_FILES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE")


def model_facts(repo_id: str, revision: str | None = None) -> ModelFacts:
    """Facts about ``repo_id`` at ``revision`` (default: the main branch), pinned to its commit."""
    check_repo_id(repo_id)
    api = make_api()
    with hub_errors(repo_id, revision):
        info = api.model_info(repo_id, revision=revision, files_metadata=True)
        sha = info.sha or ""
        sizes = {s.rfilename: s.size for s in info.siblings or []}
        config = _json_file(api, repo_id, "config.json", sha) if "config.json" in sizes else {}
        tokenizer_config = (
            _json_file(api, repo_id, "tokenizer_config.json", sha)
            if "tokenizer_config.json" in sizes
            else {}
        )
        fmt = weight_format(sizes)
        counts: dict[str, int] = {}
        if fmt == "safetensors":
            metadata = _quietly(api.get_safetensors_metadata, repo_id, revision=sha)
            counts = {str(dtype): int(n) for dtype, n in metadata.parameter_count.items()}
    architectures = config.get("architectures") or []
    architecture = str(architectures[0]) if architectures else None
    auto_map = bool(config.get("auto_map"))
    parameters = sum(counts.values()) if counts else None
    chosen = compile_files(sizes, with_code=auto_map)
    license_id = _license(info)
    return ModelFacts(
        repo_id=info.id or repo_id,
        revision=revision,
        sha=sha,
        url=f"{hub_endpoint()}/{repo_id}",
        license=license_id,
        license_link=_license_link(info, repo_id, sha, sizes),
        gated=bool(info.gated),
        gate=str(info.gated) if info.gated else None,
        architecture=architecture,
        model_type=config.get("model_type"),
        auto_map=auto_map,
        chat_template=bool(tokenizer_config.get("chat_template"))
        or any(name in sizes for name in CHAT_TEMPLATE_FILES),
        parameters=parameters,
        parameters_by_dtype=counts,
        weight_format=fmt,
        download_bytes=sum(sizes.get(p) or 0 for p in chosen),
        download_files=tuple(FileEntry(p, sizes.get(p)) for p in chosen),
        repo_bytes=sum(s or 0 for s in sizes.values()) if sizes else None,
        pipeline_tag=info.pipeline_tag,
        library=info.library_name,
        downloads=info.downloads,
        likes=info.likes,
        last_modified=info.last_modified.isoformat() if info.last_modified else None,
        recipes=recipe_fits(architecture, parameters, fmt, auto_map=auto_map),
    )


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
    path = _quietly(api.hf_hub_download, repo_id, filename, revision=sha, cache_dir=hf_cache_dir())
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


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
