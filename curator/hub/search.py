"""``search_models``: one listing request to the Hub, summarised per model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from curator.errors import UsageProblem
from curator.hub.client import hub_errors, make_api
from curator.hub.feasibility import Machine, int4_run_bytes, recipe_fits, this_machine
from curator.hub.files import bytes_from_dtype_counts
from curator.hub.models import ModelSummary
from curator.hub.units import format_param_count

if TYPE_CHECKING:
    from huggingface_hub import ModelInfo

# curator's sort names -> huggingface_hub's list_models sort values (always descending).
SORTS: dict[str, str] = {
    "downloads": "downloads",
    "likes": "likes",
    "trending": "trending_score",
    "updated": "last_modified",
}

# The listing fields a summary needs (list_models' expand); nothing per model afterwards.
EXPAND = [
    "author",
    "config",
    "downloads",
    "gated",
    "lastModified",
    "library_name",
    "likes",
    "pipeline_tag",
    "safetensors",
    "tags",
    "trendingScore",
]

# With --compilable, how many listing entries to look through to fill ``limit`` results.
COMPILABLE_SCAN_FACTOR = 5
MAX_SCAN = 1000


def search_models(
    query: str | None,
    *,
    task: str | None = None,
    author: str | None = None,
    filters: Sequence[str] = (),
    sort: str = "downloads",
    limit: int = 20,
    gated: bool | None = None,
    max_params: int | None = None,
    compilable: bool = False,
) -> tuple[ModelSummary, ...]:
    """Models on the Hub matching ``query`` and the filters, in ``sort`` order (descending)."""
    if sort not in SORTS:
        raise UsageProblem(
            f"unknown sort {sort!r}; known: {', '.join(SORTS)}", hint="curator search --help"
        )
    if limit < 1:
        raise UsageProblem(f"--limit must be at least 1, not {limit}", hint="curator search --help")
    fetch = min(max(limit * COMPILABLE_SCAN_FACTOR, 100), MAX_SCAN) if compilable else limit
    api = make_api()
    machine = this_machine()
    results: list[ModelSummary] = []
    with hub_errors():
        listing = api.list_models(
            search=query or None,
            author=author or None,
            filter=list(filters) or None,
            pipeline_tag=task or None,
            gated=gated,
            num_parameters=f"max:{format_param_count(max_params)}" if max_params else None,
            sort=SORTS[sort],  # type: ignore[arg-type]
            limit=fetch,
            expand=EXPAND,  # type: ignore[arg-type]
        )
        for info in listing:
            summary = summarise(info, machine=machine)
            if max_params is not None and (summary.parameters or 0) > max_params:
                continue
            if max_params is not None and summary.parameters is None:
                continue
            if compilable and not summary.compilable_recipes:
                continue
            results.append(summary)
            if len(results) >= limit:
                break
    return tuple(results)


def summarise(info: ModelInfo, *, machine: Machine) -> ModelSummary:
    """A ModelSummary from one listing entry."""
    counts = dict(info.safetensors.parameters) if info.safetensors else {}
    parameters = int(info.safetensors.total) if info.safetensors else None
    architecture = _architecture(info.config)
    fmt = "safetensors" if info.safetensors else None
    auto_map = bool((info.config or {}).get("auto_map"))
    fits = recipe_fits(architecture, parameters, fmt, auto_map=auto_map, machine=machine)
    return ModelSummary(
        repo_id=info.id,
        parameters=parameters,
        download_bytes=bytes_from_dtype_counts(counts) if counts else None,
        license=license_from_tags(info.tags or ()),
        gated=bool(info.gated),
        downloads=info.downloads,
        likes=info.likes,
        last_modified=info.last_modified.isoformat() if info.last_modified else None,
        architecture=architecture,
        pipeline_tag=info.pipeline_tag,
        library=info.library_name,
        tags=tuple(info.tags or ()),
        compilable_recipes=tuple(f.recipe for f in fits if f.can_compile),
        int4_run_bytes=int4_run_bytes(parameters),
    )


def license_from_tags(tags: Sequence[str]) -> str | None:
    for tag in tags:
        if tag.startswith("license:"):
            return tag.split(":", 1)[1]
    return None


def _architecture(config: dict[str, Any] | None) -> str | None:
    if not config:
        return None
    names = config.get("architectures") or []
    return str(names[0]) if names else None
