"""Guards: curator.cli.search, curator.errors, curator.hub, curator.hub.feasibility,
  curator.hub.models, curator.hub.search, curator.hub.units

``search_models`` and ``curator search`` against the loopback fake Hub: filters, sorting,
pagination, parameter limits, the compilable filter, and the JSON the CLI prints."""

# ruff: noqa: F811 - the fake Hub fixtures are imported, and tests take them as arguments
from __future__ import annotations

import json

import pytest

from curator.errors import UsageProblem
from curator.hub import search_models
from curator.hub.feasibility import NOT_ENOUGH_RAM, UNSUPPORTED_ARCHITECTURE
from curator.hub.search import NO_PARAMETER_COUNT, TOO_MANY_PARAMETERS, search_hub
from curator.hub.units import format_param_count, parse_param_count
from tests.conftest import run_curator
from tests.fakehub import GATED, TINY, FakeHub, FakeRepo, server
from tests.fakehub.plugin import fake_hub_server, hub  # noqa: F401

pytestmark = pytest.mark.usefixtures("hub")


def ids(results: tuple[object, ...]) -> list[str]:
    return [r.repo_id for r in results]  # type: ignore[attr-defined]


def expected_order(hub: FakeHub, key: str) -> list[str]:
    """The fixture set sorted by ``key``, highest first, computed from the fixture data."""
    repos = sorted(hub.repos.values(), key=lambda r: (getattr(r, key), r.repo_id), reverse=True)
    return [r.repo_id for r in repos]


@pytest.mark.parametrize(
    ("sort", "attribute"),
    [
        ("downloads", "downloads"),
        ("likes", "likes"),
        ("trending", "trending_score"),
        ("updated", "last_modified"),
    ],
)
def test_sort_orders_highest_first(hub: FakeHub, sort: str, attribute: str) -> None:
    results = search_models(None, sort=sort, limit=50)
    assert ids(results) == expected_order(hub, attribute)


def test_sort_is_sent_as_the_hub_names_it(hub: FakeHub) -> None:
    search_models(None, sort="trending", limit=3)
    search_models(None, sort="updated", limit=3)
    sent = [r.query.get("sort") for r in hub.seen("GET", "/api/models")]
    assert sent == [["trendingScore"], ["lastModified"]]


def test_query_author_task_and_tag_filters(hub: FakeHub) -> None:
    assert sorted(ids(search_models("qwen2", limit=50))) == sorted(
        r for r in hub.repos if "qwen2" in r.lower()
    )
    assert set(ids(search_models(None, author="acme", limit=50))) == {
        r for r in hub.repos if r.startswith("acme/")
    }
    text_gen = {r.repo_id for r in hub.repos.values() if r.pipeline_tag == "text-generation"}
    assert set(ids(search_models(None, task="text-generation", limit=50))) == text_gen
    tagged = set(ids(search_models(None, filters=("llama", "conversational"), limit=50)))
    assert tagged == {"acme/chat-7b", "acme/chat-70b"}


def test_gated_filter_both_ways(hub: FakeHub) -> None:
    gated = set(ids(search_models(None, gated=True, limit=50)))
    assert gated == {r.repo_id for r in hub.repos.values() if r.gated}
    assert GATED in gated
    ungated = set(ids(search_models(None, gated=False, limit=50)))
    assert ungated == set(hub.repos) - gated


def test_limit_and_pagination_follow_the_link_header(hub: FakeHub) -> None:
    hub.page_size = 2
    results = search_models(None, sort="downloads", limit=5)
    assert ids(results) == expected_order(hub, "downloads")[:5]
    pages = hub.seen("GET", "/api/models")
    assert len(pages) == 3
    assert all("cursor" in p.query for p in pages[1:])


def test_max_params_keeps_models_at_or_under_the_limit(hub: FakeHub) -> None:
    results = search_models(None, max_params=parse_param_count("8B"), limit=50)
    assert results
    assert all(r.parameters is not None and r.parameters <= 8_000_000_000 for r in results)
    listed = {r.repo_id: (r.safetensors() or {}).get("total") for r in hub.repos.values()}
    assert set(ids(results)) == {k for k, v in listed.items() if v is not None and v <= 8e9}
    sent = hub.seen("GET", "/api/models")[0].query["num_parameters"]
    assert sent == ["max:8B"]


def test_summary_figures_come_from_the_listing(hub: FakeHub) -> None:
    (tiny,) = [r for r in search_models("tiny-qwen2", limit=50) if r.repo_id == TINY]
    repo = hub.repos[TINY]
    weights = repo.files["model.safetensors"]
    counts = repo.safetensors()
    assert counts is not None
    assert tiny.parameters == counts["total"]
    # F32 weights: 4 bytes a parameter, i.e. the weight file minus its header.
    header_size = int.from_bytes(weights[:8], "little") + 8
    assert tiny.download_bytes == len(weights) - header_size
    assert tiny.license == "apache-2.0"
    assert tiny.architecture == "Qwen2ForCausalLM"
    assert "int4-cpu" in tiny.compilable_recipes
    assert tiny.int4_run_bytes is not None and tiny.int4_run_bytes > 0
    # One listing request for the whole search: no per-model calls.
    assert len(hub.requests) == 1


def test_compilable_drops_unsupported_and_oversized_models(hub: FakeHub) -> None:
    results = search_models(None, compilable=True, limit=50)
    assert results
    assert all(r.compilable_recipes for r in results)
    found = set(ids(results))
    assert TINY in found
    assert "fixture/bert-tiny" not in found  # BertForMaskedLM: not a model-builder architecture
    assert "fixture/custom-code" not in found
    assert "acme/chat-70b" not in found  # a 70B compile does not fit this machine's RAM


def test_bad_options_are_usage_errors() -> None:
    with pytest.raises(UsageProblem):
        search_models("x", sort="stars")
    with pytest.raises(UsageProblem):
        parse_param_count("eight billion")
    assert parse_param_count("1.5B") == 1_500_000_000
    assert format_param_count(500_000_000) == "500M"


def test_cli_search_json_and_table(hub: FakeHub) -> None:
    env = {"HF_ENDPOINT": hub.url}
    done = run_curator("search", "qwen", "--sort", "likes", "--limit", "3", "--json", env=env)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    qwen = [r for r in hub.repos.values() if "qwen" in r.repo_id.lower()]
    want = [r.repo_id for r in sorted(qwen, key=lambda r: (r.likes, r.repo_id), reverse=True)][:3]
    assert [r["repo_id"] for r in rows] == want
    assert {"parameters", "download_bytes", "license", "gated", "compilable_recipes"} <= set(
        rows[0]
    )

    table = run_curator("search", "tiny-qwen2", "--compilable", env=env)
    assert table.returncode == 0, table.stderr
    header, *lines = table.stdout.splitlines()
    for column in ("REPO", "PARAMS", "DOWNLOAD", "LICENSE", "GATED", "RECIPES", "INT4 RAM"):
        assert column in header
    assert any(line.startswith(TINY + " ") for line in lines)


def test_cli_rejects_a_bad_parameter_limit(hub: FakeHub) -> None:
    done = run_curator("search", "x", "--max-params", "lots", env={"HF_ENDPOINT": hub.url})
    assert done.returncode == 2
    assert "parameter count" in done.stderr


def test_what_compilable_leaves_out_is_counted_with_its_reason(hub: FakeHub) -> None:
    outcome = search_hub(None, compilable=True, limit=50)
    kept = set(ids(outcome.models))
    dropped = {entry.repo_id: entry for entry in outcome.left_out}
    assert outcome.scanned == len(hub.repos) == len(kept) + len(dropped)
    assert not kept & set(dropped)
    assert dropped["fixture/bert-tiny"].kind == UNSUPPORTED_ARCHITECTURE
    assert "BertForMaskedLM" in dropped["fixture/bert-tiny"].reason
    assert dropped["acme/chat-70b"].kind == NOT_ENOUGH_RAM  # not "needs a GPU": the model's limit
    assert sum(outcome.left_out_counts().values()) == len(dropped)


def test_max_params_says_which_models_were_left_out_and_why(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mirror that ignores num_parameters: curator's own check leaves out entries without a
    count and those over the limit, and says which was which."""
    monkeypatch.setattr(server, "_in_range", lambda repo, low, high: True)
    no_count = FakeRepo("acme/no-count", {"README.md": b"# no weights"}, downloads=1)
    monkeypatch.setitem(hub.repos, no_count.repo_id, no_count)
    outcome = search_hub(None, max_params=parse_param_count("8B"), limit=50)
    dropped = {entry.repo_id: entry.kind for entry in outcome.left_out}
    assert dropped == {
        "acme/no-count": NO_PARAMETER_COUNT,
        "acme/chat-70b": TOO_MANY_PARAMETERS,
        "other/vision-qwen-8b": TOO_MANY_PARAMETERS,  # 8.29B
    }
    assert all((r.parameters or 0) <= 8_000_000_000 for r in outcome.models)


def test_cli_footer_and_explain(hub: FakeHub) -> None:
    env = {"HF_ENDPOINT": hub.url}
    plain = run_curator("search", "--compilable", "--limit", "50", env=env)
    assert plain.returncode == 0, plain.stderr
    footer = plain.stderr.strip().splitlines()
    assert len(footer) == 1 and footer[0].startswith("left out ")
    assert "unsupported architecture" in footer[0] and "--explain" in footer[0]

    explained = run_curator("search", "--compilable", "--limit", "50", "--explain", env=env)
    assert "  fixture/bert-tiny: architecture BertForMaskedLM is not supported" in explained.stderr

    as_json = run_curator("search", "--compilable", "--limit", "50", "--explain", "--json", env=env)
    data = json.loads(as_json.stdout)
    assert data["scanned"] == len(data["models"]) + len(data["left_out"])
    assert {"repo_id": "fixture/bert-tiny", "kind": UNSUPPORTED_ARCHITECTURE} | {
        "reason": next(e["reason"] for e in data["left_out"] if e["repo_id"] == "fixture/bert-tiny")
    } in data["left_out"]
