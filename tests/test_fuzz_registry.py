"""Guards: curator.cli._output, curator.cli.main, curator.errors, curator.jsonio,
  curator.registry.diff, curator.registry.review, curator.registry.rules

Property-based tests of the registry (issue 23, item 7): the reader over arbitrary bytes and
JSON-ish text, the rules over mutated registries, diff and review of two generated registries,
and the registry commands over arbitrary files.

What must hold for every input: no exception other than a CuratorError, every refusal one line
(and a one-line hint), no output larger than a few KB per problem, nothing accepted that cannot be
written back, and no Infinity or NaN in any JSON output. A few hundred cases each in the default
run; ``make fuzz`` runs 10,000 (tests/conftest.py). Inputs that once failed are pinned as
``@example``.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import example, given
from hypothesis import strategies as st

from curator.cli._output import to_jsonable
from curator.cli.main import cli
from curator.errors import CuratorError, InputFileError
from curator.jsonio import MAX_SAFE_INTEGER, dumps_strict, parse_json, read_json
from curator.registry.diff import diff_documents
from curator.registry.review import render_review
from curator.registry.rules import validate_document
from tests.samples import make_benchmark, make_document, make_entry

pytestmark = pytest.mark.fuzz

LINE_LIMIT = 6_000  # characters of one line of output (a table row of eight elided cells)
PROBLEM_LIMIT = 1_000  # characters of one problem line


def assert_one_line(error: CuratorError) -> None:
    assert "\n" not in error.message and "\r" not in error.message, error.message
    assert len(error.message) <= PROBLEM_LIMIT, len(error.message)
    assert error.hint is None or ("\n" not in error.hint and len(error.hint) <= PROBLEM_LIMIT)


# --- strategies --------------------------------------------------------------------------------

ODD_TEXT = st.sampled_from(
    [
        "",
        " ",
        "CON",
        "nul.txt",
        "a:stream",
        "trailing.",
        "Model.onnx",
        "model.onnx",
        "caf\u00e9",
        "cafe\u0301",
        "evil\u202egnp.exe",
        "\U000e0041tag",
        "soft\u00adhyphen",
        "zw\u200dj",
        "\ue000",
        "\u0378",
        "line\nbreak",
        "tab\there",
        "../escape",
        "/abs/path",
        "C:drive",
        "a\\b",
        "`code` | *bold* [x](y) <b>",
        "x" * 3000,
        "\u202e|" * 400,
        "\u2028",
        "model0-generic-cpu:1",
        "model1-generic-cpu:2",
        "org/model0",
        "int4-cpu",
    ]
)
ANY_TEXT = st.text(max_size=40) | ODD_TEXT
NUMBERS = (
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0, 0.0, -0.0, 5e-324, 1.7976931348623157e308, 368.0, -1, 1e-300])
)
SCALARS = st.none() | st.booleans() | NUMBERS | ANY_TEXT
# What the strict reader can return: finite floats, safe integers, text without surrogates.
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(ANY_TEXT, children, max_size=4)
    ),
    max_leaves=12,
)

ODD_TOKENS = [
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "-Infinity",
    "9" * 400,
    "9007199254740992",
    "-9007199254740992",
    "368.0",
    "5e-324",
    "-0",
    "1E+2",
    '"\\ud800"',
    '"\\udc00\\ud800"',
    '"\\ud83d\\ude00"',
    '"\\\\ud800"',
    '"\\u0000"',
    "01",
    "1.",
    "[",
    "}",
    '"unterminated',
]


def render(value: Any, draw: Any) -> str:
    """JSON text of ``value`` with random spacing, escaping and odd tokens mixed in."""
    space = draw(st.sampled_from(["", " ", "\n", "\t", "\r\n  "]))
    if isinstance(value, dict):
        items = [
            f"{json.dumps(k, ensure_ascii=draw(st.booleans()))}{space}:{space}{render(v, draw)}"
            for k, v in value.items()
        ]
        if items and draw(st.integers(0, 9)) == 0:
            items.append(items[0])  # a duplicate key
        return "{" + space + ("," + space).join(items) + space + "}"
    if isinstance(value, list):
        return "[" + ("," + space).join(render(v, draw) for v in value) + "]"
    if draw(st.integers(0, 14)) == 0:
        return draw(st.sampled_from(ODD_TOKENS))
    return json.dumps(value, ensure_ascii=draw(st.booleans()))


@st.composite
def json_ish(draw: Any) -> str:
    text = render(draw(JSON_VALUES), draw)
    if draw(st.integers(0, 9)) == 0:  # a deep nest
        depth = draw(st.integers(1, 80))
        text = "[" * depth + text + "]" * depth
    return text


def set_at(document: Any, draw: Any) -> None:
    """One mutation somewhere in ``document``: set, delete, duplicate or rename."""
    node = document
    while True:
        children = (
            list(node.keys())
            if isinstance(node, dict)
            else list(range(len(node)))
            if isinstance(node, list)
            else []
        )
        if not children:
            return
        key = draw(st.sampled_from(children))
        child = node[key]
        if isinstance(child, (dict, list)) and child and draw(st.integers(0, 3)) > 0:
            node = child
            continue
        action = draw(st.sampled_from(["set", "set", "set", "delete", "duplicate", "float"]))
        if action == "set":
            node[key] = draw(JSON_VALUES)
        elif action == "delete":
            del node[key]
        elif action == "duplicate" and isinstance(node, list):
            node.append(copy.deepcopy(child))
        elif action == "float" and type(child) is int and abs(child) < 2**53:
            node[key] = float(child)
        elif isinstance(node, dict):
            node[draw(ANY_TEXT)] = copy.deepcopy(child)
        return


def registry_entry(draw: Any, n: int) -> dict[str, Any]:
    runs = [
        make_benchmark(
            date=f"2026-11-0{draw(st.integers(1, 9))}T10:00:00Z",
            decode=draw(st.sampled_from([0.0, 5e-324, 1.0, 50.0, 100.0, 1e300])),
            ttft=draw(st.sampled_from([0.0, 5e-324, 100.0, 1e300])),
        )
        for _ in range(draw(st.integers(0, 2)))
    ]
    return make_entry(n, benchmarks=runs, minRamGb=8.0)


@st.composite
def registries(draw: Any) -> dict[str, Any]:
    entries = [registry_entry(draw, n) for n in range(draw(st.integers(0, 3)))]
    document = make_document(entries)
    for _ in range(draw(st.integers(0, 5))):
        set_at(document, draw)
    return document


@st.composite
def base_and_head(draw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    base = draw(registries())
    head = copy.deepcopy(base)
    models = head.get("models")
    if isinstance(models, list) and models and isinstance(models[0], dict):
        renamed = copy.deepcopy(models[0])  # a rename or a new version: lineage, versions
        renamed["id"] = draw(st.sampled_from(["fresh-generic-cpu:1", "model0-generic-cpu:7"]))
        renamed["benchmarks"] = [make_benchmark(decode=draw(NUMBERS.filter(_positive)))]
        models.append(renamed)
    for _ in range(draw(st.integers(0, 5))):
        set_at(head, draw)
    return base, head


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and value > 0


# --- the reader --------------------------------------------------------------------------------


@given(st.binary(max_size=2_000))
@example(b'{"a": 1e400}')
@example(b'["\\ud800"]')
@example(b"\xff\xfe{}")
@example(b"[" * 100 + b"]" * 100)
def test_the_reader_over_arbitrary_bytes(tmp_path_factory: Any, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("bytes") / "models.json"
    path.write_bytes(raw)
    try:
        data = read_json(path, "registry")
    except InputFileError as exc:
        assert_one_line(exc)
        return
    assert parse_json(dumps_strict(data), "again") == data


@given(json_ish())
@example('{"minRamGb": 1e400}')
@example('{"a": ' + "9" * 400 + "}")
@example('["\\ud800"]')
@example('{"a": "\\\\\\ud800"}')
@example('{"a": 1, "a": 2}')
@example("[5e-324, -0, 368.0, 9007199254740991]")
def test_whatever_the_reader_accepts_is_written_back_the_same(text: str) -> None:
    try:
        data = parse_json(text, "doc.json", "registry")
    except InputFileError as exc:
        assert_one_line(exc)
        assert exc.message.startswith("doc.json")
        position = exc.message.split(": ", 1)[0].split(":")[1:]
        if position:  # line and column point into the text
            line, column = int(position[0]), int(position[1])
            assert 1 <= line <= text.count("\n") + 1
            assert 1 <= column <= len(text.split("\n")[line - 1]) + 1
        return
    written = dumps_strict(data, sort_keys=True)
    assert parse_json(written, "again") == data
    json.loads(written, parse_constant=pytest.fail)  # no NaN or Infinity token


@given(st.text(max_size=300))
@example("\ud800")
@example('"\udfff"')
def test_the_reader_over_arbitrary_text_with_surrogates(text: str) -> None:
    try:
        parse_json(text, "t")
    except InputFileError as exc:
        assert_one_line(exc)


# --- the rules ---------------------------------------------------------------------------------


@given(registries())
@example(make_document([make_entry(0, fileSizeMb=999999)]))
@example({**make_document([]), "\r": "a key that is a line break"})  # found: a two-line problem
@example({**make_document([]), "$schema": "\u202e|" * 400})  # found: 1,158 characters
def test_validation_of_mutated_registries(document: dict[str, Any]) -> None:
    report = validate_document(document)
    for problem in report.problems:
        line = str(problem)
        assert "\n" not in line and "\r" not in line, line
        assert len(line) <= PROBLEM_LIMIT, len(line)
    json.dumps(to_jsonable(report), allow_nan=False)
    if report.valid:  # a valid registry can be written and read back as it is
        assert parse_json(dumps_strict(document), "again") == document


# --- diff and review ---------------------------------------------------------------------------


@given(base_and_head(), st.booleans(), st.lists(ANY_TEXT, max_size=6))
def test_diff_and_review_of_two_generated_registries(
    pair: tuple[dict[str, Any], dict[str, Any]], fail_on_regression: bool, changed: list[str]
) -> None:
    base, head = pair
    result = diff_documents(
        base, head, fail_on_regression=fail_on_regression, changed_paths=tuple(changed)
    )
    review = render_review(result)
    for line in review.splitlines():
        assert len(line) <= LINE_LIMIT, line[:200]
    items = (
        len(result.violations)
        + len(result.added)
        + len(result.removed)
        + sum(len(fields) for _, fields in result.changed)
        + len(result.figures)
        + len(result.lineage)
        + len(result.outside_changes)
        + len(result.policy_changes)
        + 1
    )
    assert len(review) <= LINE_LIMIT * items
    for problem in result.violations:
        assert "\n" not in str(problem) and len(str(problem)) <= PROBLEM_LIMIT
    for figure in result.figures:
        assert figure.change_pct is None or math.isfinite(figure.change_pct)
    json.dumps(to_jsonable(result), allow_nan=False)


# --- the commands ------------------------------------------------------------------------------


COMMANDS = [
    ["registry", "validate"],
    ["registry", "list"],
    ["registry", "list", "--json"],
    ["registry", "show", "model0-generic-cpu:1"],
    ["registry", "update", "model0-generic-cpu:1", "--notes", "x"],
    ["select", "--ram-gb", "16"],
]


@given(
    st.one_of(
        st.binary(max_size=500),
        json_ish().map(str.encode),
        registries().map(lambda d: json.dumps(d).encode()),
    ),
    st.sampled_from(COMMANDS),
)
@example(
    b'{"schemaVersion": 1, "policy": {"allowedLicenses": []}, "models": [{"minRamGb": 1e400}]}',
    COMMANDS[1],
)
@example(json.dumps(make_document([make_entry(0, minRamGb="a")])).encode(), COMMANDS[5])
@example(b"NaN", COMMANDS[2])
@example(  # a shown entry whose artifacts are a number and whose name is 3,000 hidden characters
    json.dumps(
        make_document(
            [make_entry(0, displayName="\u202e" * 3000, build={"recipe": "x", "artifacts": 5})]
        )
    ).encode(),
    COMMANDS[3],
)
@example(  # found: registry list printed a 7,000-character id (an object) as one table cell
    json.dumps(make_document([make_entry(0, id={"x" * 7000: None})])).encode(), COMMANDS[1]
)
@example(b'[{"\xe2\x80\xa8": 0, "\xe2\x80\xa8": 0}]', COMMANDS[0])  # found: U+2028 in an error
@example(  # found: a benchmark run that is null crashed the edit's canonical sort
    json.dumps(make_document([make_entry(0, benchmarks=[None, make_benchmark()])])).encode(),
    COMMANDS[4],
)
def test_registry_commands_over_arbitrary_files(
    tmp_path_factory: Any, raw: bytes, command: list[str]
) -> None:
    path = tmp_path_factory.mktemp("cli") / "models.json"
    path.write_bytes(raw)
    result = CliRunner().invoke(cli, [*command, "--registry", str(path)])
    assert result.exit_code in (0, 1), (result.exit_code, result.output)
    everything = result.stdout + result.stderr
    assert "internal error" not in everything and "Traceback" not in everything, everything
    if result.stdout.startswith(("{", "[")):  # --json, show, or a --json error: strict JSON
        json.loads(result.stdout, parse_constant=pytest.fail)
    if result.exit_code == 1 and result.stderr.startswith("error: "):
        # one line of error, one problem a line (an edit refused), one line of hint
        _error, *problems, hint = result.stderr.splitlines()
        assert hint.startswith("hint: ") and all(p.startswith("  ") for p in problems)
    for line in everything.splitlines():
        assert len(line) <= LINE_LIMIT, line[:200]
    if result.exit_code == 0 and command[1] == "update":
        read_json(path, "registry")  # what the edit wrote reads back
