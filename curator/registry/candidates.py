"""registry/candidates.json: the models x recipes a team compiles on CI, and the GitHub Actions job
matrix rendered from it (``curator registry matrix``, read by .github/workflows/compile-matrix.yml).

Each job gets: the source, recipe and revision; ``runs-on`` labels (the candidate's ``runsOn``,
else ``runners[recipe]``, else ``runners[device]``, else the defaults below); the repository and
branch it publishes to (``<publishTo>/<model>`` on branch ``<recipe>``: one repository per model,
one branch per recipe, so parallel jobs never commit to the same branch); and ``key``, a name
unique in the matrix for its artifact and fragment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.errors import InputFileError, UsageProblem
from curator.jsonio import read_json
from curator.recipes import get_recipe
from curator.schemas import schema_problems

DEFAULT_RUNNERS: dict[str, tuple[str, ...]] = {
    "cpu": ("ubuntu-latest",),
    "gpu": ("self-hosted", "gpu"),
    "npu": ("self-hosted", "npu"),
}


@dataclass(frozen=True)
class Job:
    key: str
    source: str
    recipe: str
    revision: str
    runs_on: tuple[str, ...]
    repo: str
    branch: str
    license: str | None
    capabilities: tuple[str, ...]
    prompts: str | None = None
    model_id: str | None = None

    def matrix_entry(self) -> dict[str, Any]:
        """The job as a GitHub Actions ``include`` item (strings only: they go into shell)."""
        return {
            "key": self.key,
            "source": self.source,
            "recipe": self.recipe,
            "revision": self.revision,
            "runs-on": list(self.runs_on),
            "repo": self.repo,
            "branch": self.branch,
            "license": self.license or "",
            "capabilities": " ".join(self.capabilities),
            "prompts": self.prompts or "",
            "id": self.model_id or "",
        }


@dataclass(frozen=True)
class Matrix:
    path: Path
    jobs: tuple[Job, ...]

    def document(self) -> dict[str, Any]:
        return {"include": [job.matrix_entry() for job in self.jobs]}


def slug(text: str) -> str:
    """A lowercase name of letters, digits, '.', '-' (a repository or artifact name)."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "model"


def load_matrix(path: Path, recipes_directory: Path | None = None) -> Matrix:
    """Read and check ``path`` (schema, known recipes, no duplicate source x recipe) and render
    one job per candidate, in file order."""
    document = read_json(path, "candidates file")
    problems = schema_problems(document, "candidates")
    if problems:
        raise InputFileError(
            f"{path} is not a valid candidates file: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            hint="see schemas/candidates.schema.json",
        )
    runners: dict[str, list[str]] = document.get("runners", {})
    jobs: list[Job] = []
    seen: dict[str, int] = {}
    default_ids: dict[tuple[str, str], int] = {}  # (source, variant) -> candidate without an id
    explicit_ids: dict[str, int] = {}
    for index, candidate in enumerate(document["candidates"]):
        try:
            recipe = get_recipe(candidate["recipe"], recipes_directory)
        except UsageProblem as exc:
            raise InputFileError(
                f"{path}: candidates[{index}]: {exc.message}", hint="curator recipes list"
            ) from None
        model = slug(candidate["source"].split("/", 1)[1])
        key = f"{model}--{recipe.name}"
        if key in seen:
            raise InputFileError(
                f"{path}: candidates[{index}] repeats candidates[{seen[key]}] "
                f"({candidate['source']} with {recipe.name})",
                hint="list each source x recipe once",
            )
        seen[key] = index
        _check_id(path, index, candidate, recipe.variant, model, default_ids, explicit_ids)
        labels = (
            candidate.get("runsOn")
            or runners.get(recipe.name)
            or runners.get(recipe.device)
            or DEFAULT_RUNNERS.get(recipe.device, DEFAULT_RUNNERS["cpu"])
        )
        jobs.append(
            Job(
                key=key,
                source=candidate["source"],
                recipe=recipe.name,
                revision=candidate["revision"],
                runs_on=tuple(labels),
                repo=f"{document['publishTo']}/{model}",
                branch=recipe.name,
                license=candidate.get("license"),
                capabilities=tuple(candidate.get("capabilities", ())),
                prompts=candidate.get("prompts"),
                model_id=candidate.get("id"),
            )
        )
    return Matrix(path, tuple(jobs))


def _check_id(
    path: Path,
    index: int,
    candidate: dict[str, Any],
    variant: str,
    model: str,
    default_ids: dict[tuple[str, str], int],
    explicit_ids: dict[str, int],
) -> None:
    """Every job must produce its own registry id: two candidates of one source whose recipes share
    a Foundry variant would both get the compile's default id (and the merge would refuse them)."""
    where = f"{path}: candidates[{index}]"
    model_id = candidate.get("id")
    if model_id is None:
        other = default_ids.setdefault((candidate["source"], variant), index)
        if other != index:
            raise InputFileError(
                f"{where} ({candidate['source']} with {candidate['recipe']}) would get the same "
                f"model id as candidates[{other}]: both recipes make variant {variant}",
                hint=f'give one of them an "id", e.g. "{model}-{candidate["recipe"]}-{variant}:1"'
                if not candidate["recipe"].endswith(variant)
                else f'give one of them an "id", e.g. "{model}-b-{variant}:1"',
            )
        return
    if not model_id.rsplit(":", 1)[0].endswith(f"-{variant}"):
        raise InputFileError(
            f"{where}: id {model_id!r} must end in -{variant}:VERSION (recipe "
            f"{candidate['recipe']} makes variant {variant})",
            hint=f"e.g. {model}-{variant}:1",
        )
    if model_id in explicit_ids:
        raise InputFileError(
            f"{where}: id {model_id!r} is also candidates[{explicit_ids[model_id]}]",
            hint="each model x recipe needs its own id",
        )
    explicit_ids[model_id] = index
