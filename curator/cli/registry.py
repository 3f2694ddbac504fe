"""``curator registry validate|list|show|add|update|remove|diff`` and ``curator select``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from curator.cli._options import ListGroup, PositiveNumber, json_option, registry_option
from curator.cli._output import Output, to_jsonable
from curator.cli.registry_merge import fragment, matrix, merge
from curator.errors import CuratorError, InputFileError, NotFound, UsageProblem
from curator.jsonio import read_json, require_regular_file, write_text_atomic
from curator.paths import registry_path
from curator.registry import (
    add_model,
    find_model,
    load_registry,
    load_registry_source,
    remove_model,
    update_model,
    validate_document,
)
from curator.registry.diff import BENCH_FIGURES, diff_documents, figure, latest_benchmark
from curator.registry.document import merged, models_of
from curator.registry.review import render_failed_review, render_review
from curator.registry.rules import one_line
from curator.registry.select import select_models


def existing_registry(registry: Path | None) -> Path:
    """The registry a reading command uses; a missing file is an error, not an empty registry."""
    path = registry_path(registry)
    if not path.exists():
        raise NotFound(f"registry not found: {path}", hint="pass --registry PATH")
    return path


@click.group(cls=ListGroup)
def registry() -> None:
    """Validate, edit and review the team registry (registry/models.json)."""


registry.add_command(merge)
registry.add_command(matrix)
registry.add_command(fragment)


@registry.command()
@registry_option
@json_option
def validate(registry: Path | None, as_json: bool) -> None:
    """Check the registry against the schema and the team's policy (exit 1 when invalid)."""
    path = existing_registry(registry)
    report = validate_document(load_registry(path))
    out = Output(as_json)
    if as_json:
        out.json(
            {
                "registry": str(path),
                "valid": report.valid,
                "models": report.models,
                "problems": report.problems,
            }
        )
    else:
        for problem in report.problems:
            out.text(str(problem))
        verdict = "valid" if report.valid else f"INVALID: {len(report.problems)} problem(s)"
        out.text(f"{path}: {report.models} model(s), {verdict}")
    if not report.valid:
        raise SystemExit(1)


@registry.command("list")
@registry_option
@json_option
def list_models(registry: Path | None, as_json: bool) -> None:
    """List the registry's models."""
    models = models_of(load_registry(existing_registry(registry)))
    out = Output(as_json)
    if as_json:
        out.json(models)
        return
    out.table(
        [
            (
                _shown(m.get("id")),
                _shown(m.get("alias")),
                _shown(m.get("license")),
                _shown(m.get("fileSizeMb")),
                _shown(m.get("minRamGb")),
                _shown(m.get("capabilities")),
                figure(latest_benchmark(m), BENCH_FIGURES["decode tok/s"][0]),
            )
            for m in models
        ],
        ["id", "alias", "license", "size MiB", "min RAM GiB", "capabilities", "decode tok/s"],
    )


def _shown(value: Any) -> Any:
    """A table cell of a registry that may be invalid: numbers as they are (finite: the reader
    refuses the others), anything else one line, elided, with hidden characters spelled out."""
    if value is None or type(value) in (bool, int, float):
        return value
    if isinstance(value, list):
        return one_line(",".join(map(str, value)))
    return one_line(str(value))


@registry.command()
@click.argument("model_id")
@registry_option
@json_option
def show(model_id: str, registry: Path | None, as_json: bool) -> None:
    """One entry: its facts, latest benchmark and fidelity (--json: the whole entry).

    MODEL_ID is an id, an id without version (the newest) or an alias.
    """
    from curator.names import (  # start-up: kept off --help
        Name,
        did_you_mean,
        resolve,
        with_suggestion,
    )

    path = existing_registry(registry)
    models = [m for m in models_of(load_registry(path)) if isinstance(m.get("id"), str)]
    names = [
        Name(str(m["id"]), m.get("alias") if isinstance(m.get("alias"), str) else None)
        for m in models
    ]
    found = resolve(model_id, names)
    entry = find_model(load_registry(path), found.id) if found is not None else None
    if entry is None:
        raise NotFound(
            f"no model {model_id!r} in {path}",
            hint=with_suggestion(
                "`curator registry list` shows ids", did_you_mean(model_id, names)
            ),
        )
    out = Output(as_json)
    if as_json:
        out.json(entry)
        return
    out.table([(field, _shown(value)) for field, value in _entry_rows(entry)], ["field", "value"])


def _count(value: Any) -> int | None:
    return len(value) or None if isinstance(value, list) else None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _entry_rows(entry: dict[str, Any]) -> list[tuple[str, Any]]:
    """The facts a reviewer reads first, one per row."""
    source, build, runtime = (_object(entry.get(key)) for key in ("source", "build", "runtime"))
    rows: list[tuple[str, Any]] = [
        ("id", entry.get("id")),
        ("alias", entry.get("alias")),
        ("display name", entry.get("displayName")),
        ("task", entry.get("task")),
        ("license", entry.get("license")),
        ("capabilities", entry.get("capabilities")),
        ("size, MiB", entry.get("fileSizeMb")),
        ("min RAM, GiB", entry.get("minRamGb")),
        ("context length", entry.get("contextLength")),
        ("runtime", f"{runtime.get('deviceType', '-')} / {runtime.get('executionProvider', '-')}"),
        ("source", f"{source.get('repo', '-')} @ {str(source.get('revision') or '-')[:12]}"),
        ("parameters", source.get("parameters")),
        ("recipe", build.get("recipe")),
        ("artifacts", _count(build.get("artifacts"))),
    ]
    latest = latest_benchmark(entry)
    if latest:
        for label, (key, _) in BENCH_FIGURES.items():
            rows.append((f"bench {label}", figure(latest, key)))
        rows.append(("bench date", latest.get("date")))
    fidelity = _object(entry.get("fidelity"))
    if fidelity:
        rows.append(("fidelity KL mean", fidelity.get("klMean")))
        rows.append(("fidelity top-1", fidelity.get("top1Agreement")))
    distribution = entry.get("distribution")
    if isinstance(distribution, dict):
        rows.append(("published to", distribution.get("repo")))
    return rows


class FiniteNumber(click.types.FloatParamType):
    """A finite number (click's FLOAT takes nan and inf, which JSON cannot hold); its sign and
    range are the registry rules' to judge, so a negative size is a validation problem."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if number != number or number in (float("inf"), float("-inf")):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


# option name -> (entry path, click type); the same flags serve add and update.
ENTRY_FLAGS: dict[str, tuple[tuple[str, ...], Any]] = {
    "alias": (("alias",), str),
    "display_name": (("displayName",), str),
    "variant": (("variant",), str),
    "task": (("task",), str),
    "license": (("license",), str),
    "publisher": (("publisher",), str),
    "file_size_mb": (("fileSizeMb",), FiniteNumber()),
    "min_ram_gb": (("minRamGb",), FiniteNumber()),
    "context_length": (("contextLength",), int),
    "device": (("runtime", "deviceType"), str),
    "execution_provider": (("runtime", "executionProvider"), str),
    "notes": (("notes",), str),
}


def entry_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for name, (_, kind) in reversed(ENTRY_FLAGS.items()):
        command = click.option(f"--{name.replace('_', '-')}", name, type=kind, default=None)(
            command
        )
    command = click.option(
        "--capability",
        "capabilities",
        multiple=True,
        help="Capability tag (repeat); replaces the list.",
    )(command)
    return click.option(
        "--file",
        "entry_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="A JSON file with the entry (flags override its fields).",
    )(command)


def entry_from_options(
    entry_file: Path | None, capabilities: tuple[str, ...], flags: dict[str, Any]
) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if entry_file is not None:
        data = read_json(entry_file, "entry file")
        if not isinstance(data, dict):
            raise InputFileError(
                f"{entry_file}: an entry must be a JSON object",
                hint="see `curator registry show ID` for the shape",
            )
        entry = data
    change: dict[str, Any] = {}
    for name, value in flags.items():
        if value is None:
            continue
        *parents, leaf = ENTRY_FLAGS[name][0]
        target = change
        for key in parents:
            target = target.setdefault(key, {})
        target[leaf] = value
    if capabilities:
        change["capabilities"] = list(capabilities)
    return merged(entry, change)


def _report_edit(as_json: bool, action: str, model_id: str, path: Path) -> None:
    if as_json:
        Output(True).json({"action": action, "id": model_id, "registry": path})
    else:
        click.echo(f"{action} {model_id} in {path}")


@registry.command()
@click.option("--id", "model_id", help="Model id <name>-<variant>:<version> (or in --file).")
@entry_options
@registry_option
@json_option
def add(
    model_id: str | None,
    entry_file: Path | None,
    capabilities: tuple[str, ...],
    registry: Path | None,
    as_json: bool,
    **flags: Any,
) -> None:
    """Add an entry from a JSON file and/or flags; refused if the registry would become invalid."""
    entry = entry_from_options(entry_file, capabilities, flags)
    if model_id:
        entry["id"] = model_id
    if "id" not in entry:
        raise UsageProblem("no model id", hint="pass --id NAME-VARIANT:VERSION or an id in --file")
    path = registry_path(registry)
    add_model(path, entry)
    _report_edit(as_json, "added", entry["id"], path)


@registry.command()
@click.argument("model_id")
@entry_options
@registry_option
@json_option
def update(
    model_id: str,
    entry_file: Path | None,
    capabilities: tuple[str, ...],
    registry: Path | None,
    as_json: bool,
    **flags: Any,
) -> None:
    """Change fields of an entry (objects merge; lists and values are replaced)."""
    change = entry_from_options(entry_file, capabilities, flags)
    if change.get("id", model_id) != model_id:
        raise UsageProblem(
            "an update cannot change the id", hint="add the new id and remove the old one"
        )
    path = registry_path(registry)

    def apply(entry: dict[str, Any]) -> None:
        entry.update(merged(entry, change))

    update_model(path, model_id, apply)
    _report_edit(as_json, "updated", model_id, path)


@registry.command()
@click.argument("model_id")
@registry_option
@json_option
def remove(model_id: str, registry: Path | None, as_json: bool) -> None:
    """Remove an entry."""
    path = registry_path(registry)
    remove_model(path, model_id)
    _report_edit(as_json, "removed", model_id, path)


@registry.command()
@click.argument("base")
@click.argument("head", required=False)
@registry_option
@click.option(
    "--threshold",
    type=PositiveNumber(),
    default=None,
    help="Regression threshold in percent [default: policy.maxRegressionPct or 10].",
)
@click.option(
    "--fail-on-regression",
    is_flag=True,
    default=None,
    help="Count benchmark regressions as policy violations.",
)
@click.option(
    "--accept-policy-change",
    is_flag=True,
    help="A maintainer accepts HEAD's policy edits: judge HEAD by its own policy.",
)
@click.option(
    "--head-schema",
    type=click.Path(dir_okay=False, path_type=Path),
    help="HEAD's schemas/models.schema.json: its differences from this curator's are listed.",
)
@click.option(
    "--accept-schema-change",
    is_flag=True,
    help="A maintainer accepts HEAD's schema edits (HEAD is still validated by this schema).",
)
@click.option(
    "--changed-files",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The change's file paths (git diff --name-only [-z]): those outside registry/ are "
    "listed; workflows, recipes and schemas fail the review unless accepted.",
)
@click.option(
    "--accept-sensitive-change",
    is_flag=True,
    help="A maintainer accepts the change's edits of workflows, recipes or schemas.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the Markdown review to this file (also when the review cannot run).",
)
@json_option
def diff(
    base: str,
    head: str | None,
    registry: Path | None,
    threshold: float | None,
    fail_on_regression: bool | None,
    accept_policy_change: bool,
    head_schema: Path | None,
    accept_schema_change: bool,
    changed_files: Path | None,
    accept_sensitive_change: bool,
    output: Path | None,
    as_json: bool,
) -> None:
    """Review a registry change: BASE and HEAD are paths or git:REV (HEAD defaults to the file).

    Exit 1 when HEAD violates policy.
    """
    import gc

    default = registry_path(registry)
    try:
        before = load_registry_source(base, default)
        after = load_registry_source(head or str(default), default)
        if not after.exists:
            raise NotFound(
                f"{after.label} has no registry file", hint="check HEAD's path or revision"
            )
        schema = read_json(head_schema, "schema") if head_schema is not None else None
        changed = read_path_list(changed_files) if changed_files is not None else ()
    except CuratorError as exc:
        if output is not None:
            failed = render_failed_review(base, head or str(default), exc.message, exc.hint)
            write_text_atomic(output, failed)
        raise
    gc.freeze()  # the registries hold no cycles: the collector need not walk them again
    try:
        result = diff_documents(
            before.document,
            after.document,
            before.label,
            after.label,
            threshold,
            fail_on_regression,
            accept_policy_change=accept_policy_change,
            base_exists=before.exists,
            head_schema=schema,
            accept_schema_change=accept_schema_change,
            changed_paths=changed,
            accept_sensitive_change=accept_sensitive_change,
        )
        markdown = render_review(result)
    except Exception as exc:  # a bug: the pull request still gets a review saying the check broke
        if output is not None:
            failed = render_failed_review(
                before.label,
                after.label,
                f"internal error: {type(exc).__name__}",
                "this is a bug in curator, not in the change; rerun with CURATOR_DEBUG=1",
                cause="curator failed while comparing the registries (internal error)",
            )
            write_text_atomic(output, failed)
        raise
    finally:
        gc.unfreeze()
    if output is not None:
        write_text_atomic(output, markdown + "\n")
    out = Output(as_json)
    if as_json:
        out.json({**_asdict(result), "regressions": result.regressions, "markdown": markdown})
    else:
        out.text(markdown)
    if result.violations:
        raise SystemExit(1)


def read_path_list(path: Path) -> tuple[str, ...]:
    """File paths, NUL-separated (git -z) or one a line, from a regular file of at most 16 MB."""
    require_regular_file(path, "changed-files list")
    with path.open("rb") as handle:
        raw = handle.read(16 * 2**20 + 1)
    if len(raw) > 16 * 2**20:
        raise InputFileError(f"{path} is larger than 16 MB", hint="pass git diff --name-only -z")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(
            f"cannot read {path}: {exc}", hint="git diff -z writes UTF-8"
        ) from None
    return tuple(p for p in text.split("\0" if "\0" in text else "\n") if p)


def _asdict(value: Any) -> dict[str, Any]:
    data: dict[str, Any] = to_jsonable(value)
    return data


@click.command()
@click.option("--task", default="chat", show_default=True, help="Task (chat = chat-completion).")
@click.option("--capability", "capabilities", multiple=True, help="Required capability (repeat).")
@click.option(
    "--ram-gb",
    type=PositiveNumber(),
    default=None,
    help="RAM to fit in [default: this machine's total RAM].",
)
@registry_option
@json_option
def select(
    task: str,
    capabilities: tuple[str, ...],
    ram_gb: float | None,
    registry: Path | None,
    as_json: bool,
) -> None:
    """Pick the best registry entry for this machine (exit 1 when none fits)."""
    if ram_gb is None:
        import psutil

        ram_gb = psutil.virtual_memory().total / 2**30
    selection = select_models(
        load_registry(existing_registry(registry)), task, capabilities, ram_gb
    )
    out = Output(as_json)
    if as_json:
        out.json({**_asdict(selection), "best": selection.best})
    else:
        if selection.best:
            best = selection.best
            speed = (
                f"{best.decode_tokens_per_sec:.1f} tok/s measured"
                if best.decode_tokens_per_sec is not None
                else "not benchmarked yet"
            )
            out.text(f"best: {best.id} ({speed}, needs {best.min_ram_gb:g} GB)")
        else:
            out.text(f"no model fits task {selection.task} with {ram_gb:.1f} GB RAM")
        for other in selection.ranked[1:]:
            out.text(f"  also fits: {other.id}")
        for excluded in selection.excluded:
            out.text(f"  excluded: {excluded.id}: {excluded.reason}")
    if selection.best is None:
        raise SystemExit(1)
