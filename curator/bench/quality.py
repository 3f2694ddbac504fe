"""Answer quality: coverage of a prompt's expected aspects, and manual 1-5 scores read from a CSV.

An aspect is covered when the answer contains it, case-insensitively (``Prompt.coverage`` of
curator.prompts, shared with ``curator smoke``). A model's coverage is the mean over prompts (each
prompt: the mean over its measured answers) of covered / expected.

``--annotate FILE.csv`` writes one row per model and prompt with the answer and empty rubric
columns (1-5 each); ``--scores FILE.csv`` reads the filled file back. The quality score recorded
(0-1) is the manual mean mapped from 1-5 onto 0-1 where manual scores exist, else the coverage.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from curator.errors import BenchError
from curator.jsonio import write_text_atomic

RUBRIC: tuple[str, ...] = ("correctness", "completeness", "relevance", "clarity")
TEMPLATE_COLUMNS: tuple[str, ...] = (
    "model",
    "prompt_id",
    "expected_aspects",
    "aspect_coverage",
    "answer_sha256",
    "answer",
    *RUBRIC,
    "notes",
)


def answer_digest(answer: str) -> str:
    return hashlib.sha256(answer.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ManualScore:
    """One filled row of the annotation file."""

    model_id: str
    prompt_id: str
    scores: tuple[tuple[str, int], ...]
    answer_sha256: str
    notes: str

    @property
    def mean(self) -> float | None:
        values = [v for _, v in self.scores]
        return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class Quality:
    """A model's quality figures; ``score`` (0-1) is what ``--record`` writes."""

    aspect_coverage: float | None
    prompts_with_aspects: int
    manual_mean: float | None  # 1-5
    manual_by_criterion: tuple[tuple[str, float], ...]
    manual_rows: int
    stale_manual_rows: int  # scored answers that differ from this run's answers
    score: float | None
    source: str | None  # "manual", "aspects" or None


@dataclass(frozen=True)
class TemplateRow:
    model_id: str
    prompt_id: str
    expected_aspects: tuple[str, ...]
    aspect_coverage: float | None
    answer: str


def write_template(path: Path, rows: Iterable[TemplateRow]) -> int:
    """Write the manual-scoring CSV; returns the number of rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TEMPLATE_COLUMNS)
    count = 0
    for row in rows:
        cov = "" if row.aspect_coverage is None else f"{row.aspect_coverage:.3f}"
        writer.writerow(
            [
                row.model_id,
                row.prompt_id,
                " | ".join(row.expected_aspects),
                cov,
                answer_digest(row.answer),
                row.answer,
                *([""] * len(RUBRIC)),
                "",
            ]
        )
        count += 1
    write_text_atomic(path, buffer.getvalue())
    return count


def read_scores(path: Path) -> dict[tuple[str, str], ManualScore]:
    """Filled rows keyed by (model, prompt id); rows with no score at all are skipped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise BenchError(f"{path} is not UTF-8 text", hint="save the scores as UTF-8 CSV") from None
    except OSError as exc:
        raise BenchError(
            f"cannot read scores {path}: {exc}", hint="check the --scores path"
        ) from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("model", "prompt_id", *RUBRIC) if c not in (reader.fieldnames or [])]
    if missing:
        raise BenchError(
            f"{path}: missing columns: {', '.join(missing)}",
            hint="write a template with curator bench ID --annotate FILE.csv",
        )
    found: dict[tuple[str, str], ManualScore] = {}
    for line, record in enumerate(reader, start=2):
        scores = []
        for name in RUBRIC:
            raw = (record.get(name) or "").strip()
            if not raw:
                continue
            if not raw.isdigit() or not 1 <= int(raw) <= 5:
                raise BenchError(
                    f"{path}:{line}: {name} must be a whole number from 1 to 5, got {raw!r}",
                    hint="score each rubric column 1-5 or leave it empty",
                )
            scores.append((name, int(raw)))
        if not scores:
            continue
        key = (record["model"].strip(), record["prompt_id"].strip())
        found[key] = ManualScore(
            key[0],
            key[1],
            tuple(scores),
            (record.get("answer_sha256") or "").strip(),
            (record.get("notes") or "").strip(),
        )
    return found


def summarize_quality(
    per_prompt_coverage: Mapping[str, float | None],
    manual: Sequence[ManualScore],
    answers: Mapping[str, str],
) -> Quality:
    """Combine the coverage of each prompt and the manual rows of one model."""
    covered = [v for v in per_prompt_coverage.values() if v is not None]
    aspect_cov = sum(covered) / len(covered) if covered else None
    criteria: dict[str, list[int]] = {}
    for row in manual:
        for name, value in row.scores:
            criteria.setdefault(name, []).append(value)
    means = [m for m in (row.mean for row in manual) if m is not None]
    manual_mean = sum(means) / len(means) if means else None
    stale = sum(
        1
        for row in manual
        if row.answer_sha256
        and row.prompt_id in answers
        and row.answer_sha256 != answer_digest(answers[row.prompt_id])
    )
    if manual_mean is not None:
        score, source = (manual_mean - 1.0) / 4.0, "manual"
    elif aspect_cov is not None:
        score, source = aspect_cov, "aspects"
    else:
        score, source = None, None
    return Quality(
        aspect_coverage=aspect_cov,
        prompts_with_aspects=len(covered),
        manual_mean=manual_mean,
        manual_by_criterion=tuple(
            (name, sum(vals) / len(vals)) for name, vals in sorted(criteria.items())
        ),
        manual_rows=len(manual),
        stale_manual_rows=stale,
        score=score,
        source=source,
    )
