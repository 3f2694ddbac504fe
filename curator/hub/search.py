"""``search_models``: one listing request to the Hub, summarised per model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from curator.errors import UsageProblem
from curator.hub.client import hub_errors, make_api
from curator.hub.feasibility import Machine, int4_run_bytes, recipe_fits, this_machine, why_not
from curator.hub.files import bytes_from_dtype_counts
from curator.hub.models import ModelSummary, RecipeFit
from curator.hub.transport import hub_deadline
from curator.hub.units import format_param_count, human_count

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

# Why --max-params left an entry out.
NO_PARAMETER_COUNT = "no parameter count"
TOO_MANY_PARAMETERS = "too many parameters"

# With --compilable, how many listing entries to look through to fill ``limit`` results.
COMPILABLE_SCAN_FACTOR = 5
MAX_SCAN = 1000


@dataclass(frozen=True)
class LeftOut:
    """A listing entry a filter dropped, and why (``kind`` is short enough to count by)."""

    repo_id: str
    kind: str
    reason: str


@dataclass(frozen=True)
class SearchOutcome:
    """The models found, how many listing entries were looked at, and those left out."""

    models: tuple[ModelSummary, ...]
    scanned: int
    left_out: tuple[LeftOut, ...]

    def left_out_counts(self) -> dict[str, int]:
        """Left-out entries per kind, most frequent first."""
        counts: dict[str, int] = {}
        for entry in self.left_out:
            counts[entry.kind] = counts.get(entry.kind, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


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
    return search_hub(
        query,
        task=task,
        author=author,
        filters=filters,
        sort=sort,
        limit=limit,
        gated=gated,
        max_params=max_params,
        compilable=compilable,
    ).models


def search_hub(
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
) -> SearchOutcome:
    """Like :func:`search_models`, and says which listing entries the filters left out and why."""
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
    left_out: list[LeftOut] = []
    scanned = 0
    with hub_deadline(), hub_errors():
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
            scanned += 1
            summary, fits = summarise_with_fits(info, machine=machine)
            dropped = _left_out(summary, fits, max_params, compilable)
            if dropped is not None:
                left_out.append(dropped)
                continue
            results.append(summary)
            if len(results) >= limit:
                break
    return SearchOutcome(tuple(results), scanned, tuple(left_out))


def _left_out(
    summary: ModelSummary,
    fits: tuple[RecipeFit, ...],
    max_params: int | None,
    compilable: bool,
) -> LeftOut | None:
    if max_params is not None and summary.parameters is None:
        return LeftOut(summary.repo_id, NO_PARAMETER_COUNT, "the Hub gives no parameter count")
    if max_params is not None and (summary.parameters or 0) > max_params:
        return LeftOut(
            summary.repo_id,
            TOO_MANY_PARAMETERS,
            f"{human_count(summary.parameters)} parameters, more than {human_count(max_params)}",
        )
    if compilable:
        refusal = why_not(fits)
        if refusal is not None:
            return LeftOut(
                summary.repo_id, refusal.reason_kind or "other", refusal.reason or "no recipe fits"
            )
    return None


def summarise_with_fits(
    info: ModelInfo, *, machine: Machine
) -> tuple[ModelSummary, tuple[RecipeFit, ...]]:
    """A ModelSummary from one listing entry, and each recipe's verdict on it."""
    counts = dict(info.safetensors.parameters) if info.safetensors else {}
    parameters = int(info.safetensors.total) if info.safetensors else None
    architecture = _architecture(info.config)
    fmt = "safetensors" if info.safetensors else None
    auto_map = bool((info.config or {}).get("auto_map"))
    fits = recipe_fits(architecture, parameters, fmt, auto_map=auto_map, machine=machine)
    summary = ModelSummary(
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
    return summary, fits


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
