"""Guards: curator.cli.registry, curator.errors, curator.jsonio, curator.registry.diff,
  curator.registry.document, curator.registry.review, curator.registry.rules,
  curator.registry.store

Issue 23: numbers that stay JSON, hidden characters, Windows paths, files that are not files.

Each test is an input that once got through (or hung, or crashed) and what curator does now.
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from curator.errors import InputFileError
from curator.jsonio import dumps_strict, parse_json, read_json, write_json_atomic
from curator.registry.diff import diff_documents
from curator.registry.document import canonical, load_registry
from curator.registry.rules import integer_paths, validate_document
from curator.registry.store import upsert_model
from tests.conftest import run_curator
from tests.samples import make_benchmark, make_document, make_entry, sha


def rules_at(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(p.path, p.rule) for p in validate_document(document).problems}


def registry_text(min_ram: str) -> str:
    text = json.dumps(make_document([make_entry(0)]), indent=2)
    return text.replace('"minRamGb": 1.0', f'"minRamGb": {min_ram}')


# --- 2. non-finite and out-of-range numbers, lone surrogates ----------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1e400", "number 1e400 is out of range"),
        ("-1e400", "number -1e400 is out of range"),
        ("NaN", "NaN is not a JSON number"),
        ("Infinity", "Infinity is not a JSON number"),
        ("-Infinity", "-Infinity is not a JSON number"),
        ("9007199254740992", "integer 9007199254740992 is out of range"),
        ("9" * 400, "is out of range"),
        ('"\\ud800"', "lone surrogate \\ud800"),
        ('"ok\\udc00"', "lone surrogate \\udc00"),
        ('"\\ud83d x"', "lone surrogate \\ud83d"),
    ],
)
def test_the_reader_refuses_odd_numbers_and_lone_surrogates_with_a_position(
    tmp_path: Path, value: str, message: str
) -> None:
    text = registry_text(value)
    line = 1 + text[: text.index('"minRamGb"')].count("\n")
    column = text.split("\n")[line - 1].index(value) + 1
    if value.startswith('"'):  # a surrogate is placed at its escape, inside the string
        column += value.index(message.rsplit(" ", 1)[-1])
    path = tmp_path / "models.json"
    path.write_text(text)
    with pytest.raises(InputFileError) as refused:
        read_json(path, "registry")
    assert refused.value.message.startswith(f"{path}:{line}:{column}: invalid JSON in registry: ")
    assert message in refused.value.message and "\n" not in refused.value.message
    assert "null is not of type" not in refused.value.message
    assert len(refused.value.message) < 300


def test_numbers_and_pairs_that_are_fine_stay_fine() -> None:
    text = '{"a": 5e-324, "b": 1e-400, "c": -9007199254740991, "d": "\\ud83d\\ude00 \\\\ud800"}'
    assert parse_json(text, "x") == {
        "a": 5e-324,
        "b": 0.0,
        "c": -9007199254740991,
        "d": "😀 \\ud800",
    }


@pytest.mark.parametrize("command", ["show", "list", "update", "validate", "diff"])
def test_no_registry_command_prints_infinity_or_crashes_on_1e400(
    tmp_path: Path, command: str
) -> None:
    path = tmp_path / "models.json"
    path.write_text(registry_text("1e400"))
    args = {
        "show": ["show", "model0-generic-cpu:1"],
        "list": ["list"],
        "update": ["update", "model0-generic-cpu:1", "--notes", "x"],
        "validate": ["validate"],
        "diff": ["diff", str(path), str(path)],
    }[command]
    before = path.read_bytes()
    result = run_curator("registry", *args, "--registry", str(path))
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    first, hint = result.stderr.splitlines()
    assert first.startswith(f"error: {path}:") and "number 1e400 is out of range" in first
    assert hint.startswith("hint: ")
    assert "Infinity" not in result.stderr and "internal error" not in result.stderr
    assert path.read_bytes() == before


def test_a_base_figure_of_5e_324_gives_a_finite_change() -> None:
    base = make_document([make_entry(0, benchmarks=[make_benchmark(decode=5e-324)])])
    head = make_document([make_entry(0, benchmarks=[make_benchmark(decode=2000.0)])])
    result = diff_documents(base, head)
    (decode,) = [f for f in result.figures if f.figure == "decode tok/s"]
    assert decode.change_pct is None and not decode.regression  # "from 0", up
    json.dumps([f.change_pct for f in result.figures], allow_nan=False)


def test_the_diff_json_of_a_tiny_base_is_strict_json(tmp_path: Path) -> None:
    base, head = tmp_path / "base.json", tmp_path / "head.json"
    base.write_text(
        json.dumps(make_document([make_entry(0, benchmarks=[make_benchmark(ttft=5e-324)])]))
    )
    head.write_text(
        json.dumps(make_document([make_entry(0, benchmarks=[make_benchmark(ttft=900.0)])]))
    )
    result = run_curator("registry", "diff", str(base), str(head), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout, parse_constant=lambda name: pytest.fail(name))
    assert {f["change_pct"] for f in data["figures"] if f["figure"].startswith("TTFT")} == {None}
    assert "from 0" in data["markdown"]


def test_float_byte_counts_are_refused_and_do_not_switch_off_the_size_rule() -> None:
    entry = make_entry(0, fileSizeMb=999999)
    entry["build"]["artifacts"][0]["bytes"] = 1_000_000.0
    found = rules_at(make_document([entry]))
    assert ("models[0].build.artifacts[0].bytes", "integer-literal") in found
    assert ("models[0].fileSizeMb", "file-size-matches-artifacts") in found


def test_every_integer_field_of_the_schema_refuses_a_float_literal() -> None:
    entry = make_entry(0, maxOutputTokens=512, benchmarks=[make_benchmark()])
    entry["benchmarks"][0].update(rounds=3, maxTokens=64)
    entry["fidelity"] = full_fidelity()
    entry["distribution"] = full_distribution(entry)
    document = make_document([entry])
    assert rules_at(document) == set()
    for path in integer_paths():
        broken = copy.deepcopy(document)
        target: Any = broken
        for key in path[:-1]:
            target = target[0] if key == "*" else target.setdefault(key, {})
        if path[-1] not in target:
            continue  # source.version is a catalog source's field: covered by the catalog test
        target[path[-1]] = float(target[path[-1]])
        assert "integer-literal" in {p.rule for p in validate_document(broken).problems}, path


def full_fidelity() -> dict[str, Any]:
    return {
        "reference": "fp32 reference",
        "textSha256": sha("text"),
        "tokens": 2048,
        "klMean": 0.05,
        "klP99": 0.4,
        "top1Agreement": 0.9,
        "perplexity": 12.5,
        "referencePerplexity": 12.0,
        "date": "2026-11-02T10:00:00Z",
    }


def full_distribution(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "repo": "org/model0-int4",
        "commit": sha("commit")[:40],
        "branch": "int4-cpu",
        "publishedAt": "2026-11-03T10:00:00Z",
        "manifest": {"sha256": sha("manifest"), "bytes": 2345},
        "files": copy.deepcopy(entry["build"]["artifacts"]),
    }


def every_field_entry() -> dict[str, Any]:
    """An entry with every optional field the schema knows, and text at the edges of what is
    allowed (astral characters, tab and newline in notes, 5e-324, the largest safe integer)."""
    entry = make_entry(
        0,
        displayName="Qwen 2.5 · 中文 (é) 😀 \U0001d518",
        licenseDescription="Apache 2.0\twith\nlines",
        maxOutputTokens=9007199254740991,
        supportsToolCalling=True,
        notes="measured on 2 cores\n\t5e-324 ok",
        minRamGb=2,
        benchmarks=[make_benchmark(decode=5e-324, peak_mb=1.5e3)],
    )
    entry["build"]["compiledAt"] = "2026-11-01T09:00:00Z"
    entry["benchmarks"][0].update(
        promptSetSha256=sha("prompts"),
        rounds=3,
        maxTokens=64,
        loadTimeMs=0.0,
        qualityScore=1.0,
    )
    entry["benchmarks"][0]["decodeTokensPerSec"]["p50"] = 1.7976931348623157e308
    entry["fidelity"] = full_fidelity()
    entry["distribution"] = full_distribution(entry)
    return entry


def test_every_field_round_trips_through_write_and_strict_read(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    entry = every_field_entry()
    assert upsert_model(path, entry) == "added"
    document = load_registry(path)
    assert document["models"] == canonical(make_document([entry]))["models"]  # artifacts sorted
    assert validate_document(document).valid
    catalog = make_entry(
        1,
        id="phi-4-generic-cpu:2",
        source={
            "catalog": "foundry-local",
            "id": "phi-4-generic-cpu:2",
            "version": 2,
            "publisher": "Microsoft",
            "license": "MIT",
            "uri": "azureml://registries/azureml/models/Phi-4/versions/2",
        },
    )
    del catalog["build"]
    assert upsert_model(path, catalog) == "added"
    assert load_registry(path)["models"] == [document["models"][0], catalog]
    policy = {
        "allowedLicenses": ["apache-2.0", "mit"],
        "maxRegressionPct": 5e-324,
        "failOnRegression": True,
        "failOnSensitiveChange": False,
        "minTop1Agreement": 0,
        "maxKlDivergence": 1.7976931348623157e308,
    }
    whole = {**load_registry(path), "policy": policy}
    assert validate_document(whole).valid
    write_json_atomic(path, whole, sort_keys=True, strict=True)
    assert load_registry(path) == whole


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (float("inf"), "NaN or Infinity"),
        (float("nan"), "NaN or Infinity"),
        (2**60, "integer 1152921504606846976 is out of range"),
        ("a\ud800b", "lone surrogate U+D800"),
    ],
)
def test_curator_never_writes_what_it_cannot_read_back(
    tmp_path: Path, value: Any, why: str
) -> None:
    path = tmp_path / "models.json"
    upsert_model(path, make_entry(0))
    before = path.read_bytes()
    with pytest.raises(InputFileError, match=re.escape(why)):
        write_json_atomic(path, {"models": [{"notes": value}]}, strict=True)
    with pytest.raises(InputFileError, match=re.escape(why)):
        dumps_strict([value])
    assert path.read_bytes() == before


@pytest.mark.parametrize("flag", ["--min-ram-gb", "--file-size-mb"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
def test_number_flags_refuse_non_finite_values(tmp_path: Path, flag: str, value: str) -> None:
    path = tmp_path / "models.json"
    upsert_model(path, make_entry(0))
    result = run_curator(
        "registry", "update", "model0-generic-cpu:1", flag, value, "--registry", str(path)
    )
    assert result.returncode == 2
    assert "is not a finite number" in result.stderr
    assert "Infinity" not in path.read_text() and "NaN" not in path.read_text()


# --- 4. hidden characters and Windows paths ---------------------------------------------------


HIDDEN = [
    "\u00ad",  # soft hyphen (Cf)
    "\u180e",  # Mongolian vowel separator (Cf)
    "\u206a",  # inhibit symmetric swapping (Cf)
    "\ufff9",  # interlinear annotation anchor (Cf)
    "\U000e0041",  # tag latin capital A (Cf)
    "\u200d",  # zero-width joiner (Cf): no emoji exception
    "\ue000",  # private use (Co)
    "\U000f0000",  # supplementary private use (Co)
    "\u0378",  # unassigned (Cn)
    "\x85",  # next line (Cc)
    "\u2029",  # paragraph separator
]


@pytest.mark.parametrize("char", HIDDEN, ids=[f"U+{ord(c):04X}" for c in HIDDEN])
def test_every_text_field_refuses_hidden_characters(char: str) -> None:
    entry = make_entry(0, displayName=f"a{char}b", notes=f"n{char}", licenseDescription=char)
    entry["benchmarks"] = [make_benchmark()]
    entry["benchmarks"][0]["machine"]["cpu"] = f"cpu{char}"
    entry["fidelity"] = {**full_fidelity(), "reference": f"r{char}"}
    entry["build"]["artifacts"][0]["path"] = f"model{char}.onnx"
    document = make_document([entry])
    document["$schema"] = f"../schemas/models.schema.json{char}"
    found = rules_at(document)
    for where in (
        "$schema",
        "models[0].displayName",
        "models[0].notes",
        "models[0].licenseDescription",
        "models[0].benchmarks[0].machine.cpu",
        "models[0].fidelity.reference",
        "models[0].build.artifacts[0].path",
    ):
        assert (where, "schema.pattern") in found, where
    assert ("models[0].build.artifacts[0].path", "artifact-path-safe") in found


def test_tab_and_newline_are_the_free_texts_only_exceptions() -> None:
    entry = make_entry(0, notes="a\tb\nc", licenseDescription="x\ny")
    assert rules_at(make_document([entry])) == set()
    assert ("models[0].notes", "schema.pattern") in rules_at(
        make_document([make_entry(0, notes="a\rb")])
    )
    assert ("models[0].displayName", "schema.pattern") in rules_at(
        make_document([make_entry(0, displayName="a\tb")])
    )


def test_the_review_spells_out_every_hidden_character() -> None:
    from curator.registry.review import render_review

    head = make_document([make_entry(0, displayName="x" + "".join(HIDDEN) + "y")])
    review = render_review(diff_documents(make_document([]), head))
    for char in HIDDEN:
        assert char not in review
        assert f"⟨U+{ord(char):04X}⟩" in review


@pytest.mark.parametrize(
    "path",
    [
        "CON",
        "con",
        "nul.txt",
        "sub/Aux.onnx",
        "COM1",
        "lpt9.data",
        "com\u00b9",
        "PRN.tar.gz",
        "a:stream",
        "model.onnx:zone.identifier",
        "trailing.",
        "trailing ",
        "dir./model.onnx",
        "a<b",
        "a|b",
        'a"b',
        "a?b",
        "a*b",
    ],
)
def test_windows_reserved_and_altered_names_are_refused(path: str) -> None:
    entry = make_entry(0)
    entry["build"]["artifacts"][0]["path"] = path
    assert ("models[0].build.artifacts[0].path", "artifact-path-safe") in rules_at(
        make_document([entry])
    )


@pytest.mark.parametrize("path", ["console.onnx", "nul_x.bin", "com10", "lpt0.data", "a.b.c"])
def test_names_that_only_look_reserved_stay_valid(path: str) -> None:
    entry = make_entry(0)
    entry["build"]["artifacts"][0]["path"] = path
    assert rules_at(make_document([entry])) == set()


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Model.onnx", "model.onnx"),
        ("caf\u00e9.bin", "cafe\u0301.bin"),  # NFC and NFD
        ("STRASSE.bin", "stra\u00dfe.bin"),  # case folding
        ("Sub/x.onnx", "sub/X.onnx"),
    ],
)
def test_paths_that_are_one_file_on_windows_or_macos_are_refused(first: str, second: str) -> None:
    entry = make_entry(0)
    entry["build"]["artifacts"][0]["path"] = first
    entry["build"]["artifacts"][1]["path"] = second
    problems = validate_document(make_document([entry])).problems
    (clash,) = [p for p in problems if p.rule == "artifact-path-unique"]
    assert "one file on Windows and macOS" in clash.message


# --- 5. paths that are not regular files ------------------------------------------------------


def make_fifo(path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    os.mkfifo(path)
    return path


def test_read_json_refuses_a_fifo_a_directory_and_a_device(tmp_path: Path) -> None:
    fifo = make_fifo(tmp_path / "fifo.json")
    for path, kind in (
        (fifo, "a named pipe (FIFO)"),
        (tmp_path, "a directory"),
        (Path(os.devnull), "a character device"),
    ):
        with pytest.raises(InputFileError) as refused:
            read_json(path, "registry")
        assert refused.value.message == f"registry {path} is not a regular file (it is {kind})"


def fifo_args(tmp_path: Path) -> dict[str, list[str]]:
    fifo = str(tmp_path / "fifo.json")
    entry = tmp_path / "entry.json"
    entry.write_text(json.dumps(make_entry(0)))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(make_document([make_entry(0)])))
    reg = ["--registry", fifo]
    return {
        "validate": ["validate", *reg],
        "list": ["list", *reg],
        "show": ["show", "model0-generic-cpu:1", *reg],
        "add": ["add", "--file", str(entry), *reg],
        "update": ["update", "model0-generic-cpu:1", "--notes", "x", *reg],
        "remove": ["remove", "model0-generic-cpu:1", *reg],
        "diff-base": ["diff", fifo, str(good)],
        "diff-head-schema": ["diff", str(good), str(good), "--head-schema", fifo],
        "add-entry-file": ["add", "--file", fifo, "--registry", str(good)],
        "merge": ["merge", fifo, "--registry", str(good)],
        "fragment": ["fragment", "model0-generic-cpu:1", "--output", str(tmp_path / "f"), *reg],
        "matrix": ["matrix", fifo],
    }


@pytest.mark.parametrize(
    "command",
    [
        "validate",
        "list",
        "show",
        "add",
        "update",
        "remove",
        "diff-base",
        "diff-head-schema",
        "add-entry-file",
        "merge",
        "fragment",
        "matrix",
    ],
)
def test_no_registry_command_hangs_on_a_fifo(tmp_path: Path, command: str) -> None:
    make_fifo(tmp_path / "fifo.json")
    result = run_curator("registry", *fifo_args(tmp_path)[command], timeout=60)
    assert result.returncode == 1, result.stderr
    assert "is not a regular file (it is a named pipe (FIFO))" in result.stderr.splitlines()[0]
    assert not (tmp_path / ".fifo.json.lock").exists() or command not in ("add", "update")


def test_an_edit_of_a_fifo_registry_returns_and_leaves_the_lock_free(tmp_path: Path) -> None:
    fifo = make_fifo(tmp_path / "models.json")
    done: list[BaseException] = []

    def edit() -> None:
        try:
            upsert_model(fifo, make_entry(0))
        except BaseException as exc:  # the outcome is checked below
            done.append(exc)

    worker = threading.Thread(target=edit, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "the edit hangs on the FIFO"
    assert isinstance(done[0], InputFileError)
    from filelock import FileLock

    with FileLock(str(tmp_path / ".models.json.lock"), timeout=1):
        pass


# --- 9. exit codes and the review of a crash --------------------------------------------------


def test_a_taken_id_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    upsert_model(path, make_entry(0))
    entry = tmp_path / "entry.json"
    entry.write_text(json.dumps(make_entry(0)))
    result = run_curator("registry", "add", "--file", str(entry), "--registry", str(path))
    assert result.returncode == 1
    assert result.stderr.startswith("error: 'model0-generic-cpu:1' is already in")


def test_an_internal_error_during_review_still_writes_a_review(tmp_path: Path) -> None:
    """The crash is real: the review module is replaced by one whose renderer raises, in the
    child process only (sitecustomize), so the CLI's own handling is what is tested."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import curator.registry.review as review\n"
        "def broken(diff):\n"
        "    raise KeyError('boom')\n"
        "review.render_review = broken\n"
    )
    base, head = tmp_path / "base.json", tmp_path / "head.json"
    base.write_text(json.dumps(make_document([])))
    head.write_text(json.dumps(make_document([make_entry(0)])))
    output = tmp_path / "review.md"
    result = run_curator(
        "registry",
        "diff",
        str(base),
        str(head),
        "--output",
        str(output),
        env={"PYTHONPATH": os.pathsep.join([str(hook), *sys.path])},
    )
    assert result.returncode != 0
    assert "internal error" in result.stderr
    review = output.read_text()
    assert "❌ cannot review" in review and "internal error" in review and "KeyError" in review


# --- 3. lineage: a new name does not hide a regression ----------------------------------------


def renamed(entry: dict[str, Any], decode: float, **changes: Any) -> dict[str, Any]:
    """``entry`` under a new id, alias and display name (same source, recipe and artifacts)."""
    return {
        **copy.deepcopy(entry),
        "id": "fresh-name-generic-cpu:1",
        "alias": "fresh-name",
        "displayName": "Fresh name",
        "benchmarks": [make_benchmark(date="2026-12-01T00:00:00Z", decode=decode)],
        **changes,
    }


@pytest.mark.parametrize("keep_old", [True, False], ids=["old-kept", "old-removed"])
def test_a_renamed_model_is_compared_with_its_lineage_and_fails_review(
    tmp_path: Path, keep_old: bool
) -> None:
    old = make_entry(0, benchmarks=[make_benchmark(decode=100.0)])
    new = renamed(old, decode=50.0)
    base = tmp_path / "base.json"
    head = tmp_path / "head.json"
    base.write_text(json.dumps(make_document([old])))
    head.write_text(json.dumps(make_document([old, new] if keep_old else [new])))
    review = tmp_path / "review.md"
    result = run_curator(
        "registry", "diff", str(base), str(head), "--fail-on-regression", "--output", str(review)
    )
    assert result.returncode == 1
    summary = review.read_text()
    assert "### Compared with an earlier entry" in summary
    assert (
        "- `fresh-name-generic-cpu:1` vs `model0-generic-cpu:1`: same source org/model0@" in summary
    )
    assert "and recipe int4-cpu" in summary
    assert (
        "| `fresh-name-generic-cpu:1` (vs `model0-generic-cpu:1`) | decode tok/s | 100 | 50 "
        "| -50.0% | 🔻 regression |" in summary
    )
    assert "benchmark-regression" in summary and "**❌ policy violations**" in summary
    plain = run_curator("registry", "diff", str(base), str(head))
    assert plain.returncode == 0 and "🔻 regression" in plain.stdout  # shown, not failing


def test_the_same_weights_are_one_lineage_whatever_the_source_claims() -> None:
    old = make_entry(0, benchmarks=[make_benchmark(decode=100.0)])
    new = renamed(old, decode=40.0, source={**old["source"], "repo": "other/name"})
    result = diff_documents(make_document([old]), make_document([new]), fail_on_regression=True)
    assert result.lineage == (
        (
            "fresh-name-generic-cpu:1",
            "model0-generic-cpu:1",
            f"same weights (sha256 {sha('data0')[:12]})",
        ),
    )
    assert "benchmark-regression" in {p.rule for p in result.violations}


def test_a_decoy_name_does_not_choose_the_baseline() -> None:
    """The added entry takes the name of a slow base entry (its 'previous version'), but its
    source, recipe and weights are those of a fast one: it is compared with both."""
    fast = make_entry(0, benchmarks=[make_benchmark(decode=100.0)])
    slow = make_entry(1, id="decoy-generic-cpu:1", benchmarks=[make_benchmark(decode=10.0)])
    new = renamed(fast, decode=50.0, id="decoy-generic-cpu:2")
    result = diff_documents(make_document([fast, slow]), make_document([fast, slow, new]))
    decode = {f.base_id: f.regression for f in result.figures if f.figure == "decode tok/s"}
    assert decode == {"model0-generic-cpu:1": True, "decoy-generic-cpu:1": False}


def test_another_source_or_recipe_is_not_the_same_lineage() -> None:
    old = make_entry(0, benchmarks=[make_benchmark(decode=100.0)])
    for change in (
        {"source": {**old["source"], "revision": "e" * 40}},
        {"build": {**old["build"], "recipe": "int8-cpu"}},
    ):
        new = renamed(old, decode=50.0, **change)
        new["build"] = copy.deepcopy(new["build"])
        new["build"]["artifacts"][1]["sha256"] = sha("other weights")
        result = diff_documents(make_document([old]), make_document([old, new]))
        assert result.lineage == () and result.figures == ()
