"""Guards: curator.cli.bench, curator.cli.cache, curator.cli.catalog, curator.cli.foundry,
  curator.cli.pull, curator.cli.registry, curator.foundry.browse, curator.foundry.catalog,
  curator.foundry.urls, curator.register.catalog

Foundry Local's public catalog through curator, against the loopback catalog in tests/fakecatalog
(the real foundry-local-sdk talks to it over http; nothing of curator is patched).

The catalog offers two CPU variants and a CUDA variant of ``qwen2.5-0.5b`` (the server, like the
real one, answers only what the SDK asks for: this machine's CPU), ``phi-4-mini`` and an embeddings
model.
``qwen2.5-0.5b``'s CPU variant is cached: the compiled tiny model placed where a finished download
lives. Downloads go through the model-registry service over https, which a loopback server cannot
stand in for: a pull of an uncached model fails there, and that failure is what is tested.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TINY_MODEL_ID, interruptible_python, run_curator
from tests.fakecatalog import FakeCatalog, catalog_record, closed_port_url, place_cached
from tests.serve_helpers import client as make_client
from tests.serve_helpers import running_server

QWEN_CPU = "qwen2.5-0.5b-instruct-generic-cpu:4"
QWEN_GPU = "qwen2.5-0.5b-instruct-cuda-gpu:4"
QWEN_INT8 = "qwen2.5-0.5b-instruct-int8-cpu:2"
PHI = "phi-4-mini-instruct-generic-cpu:5"
EMBED = "tiny-embed-generic-cpu:2"
RECORDS = [
    catalog_record(
        "qwen2.5-0.5b-instruct-generic-cpu",
        "qwen2.5-0.5b",
        version=4,
        license="apache-2.0",
        size_bytes=822 * 2**20,
        display_name="Qwen2.5 0.5B Instruct",
    ),
    catalog_record(
        "qwen2.5-0.5b-instruct-cuda-gpu",
        "qwen2.5-0.5b",
        version=4,
        device="gpu",
        execution_provider="CUDAExecutionProvider",
        license="apache-2.0",
    ),
    catalog_record(
        "qwen2.5-0.5b-instruct-int8-cpu", "qwen2.5-0.5b", version=2, license="apache-2.0"
    ),
    catalog_record(
        "phi-4-mini-instruct-generic-cpu",
        "phi-4-mini",
        version=5,
        license="mit",
        registry="curator-tests-no-such-registry",  # the tests' failed downloads: never a real one
    ),
    catalog_record("tiny-embed-generic-cpu", "tiny-embed", version=2, task="embeddings"),
]


@pytest.fixture
def catalog(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCatalog]:
    with FakeCatalog(list(RECORDS)) as served:
        monkeypatch.setenv("CURATOR_CATALOG_URL", served.url)
        yield served


@pytest.fixture
def cache() -> Path:
    return Path(os.environ["FOUNDRY_CACHE_DIR"])


@pytest.fixture
def cached_qwen(compiled_tiny_int4: Path, cache: Path) -> Path:
    return place_cached(cache, compiled_tiny_int4, "qwen2.5-0.5b-instruct-generic-cpu", 4)


def curator_json(*args: str) -> Any:
    result = run_curator(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_list_shows_this_machines_variants_with_their_facts_and_cache_state(
    catalog: FakeCatalog, cached_qwen: Path
) -> None:
    listing = curator_json("catalog", "list")
    assert listing["reachable"] is True and listing["url"] == catalog.url
    rows = {m["id"]: m for m in listing["models"]}
    # The SDK asked for this machine's device only, so the CUDA variant never arrived.
    assert set(rows) == {QWEN_CPU, QWEN_INT8, PHI, EMBED}
    [(_path, body)] = catalog.requests
    device_filter = next(
        f for f in body["filters"] if f["field"].endswith("variantMetadata/device")
    )
    assert device_filter["values"] == ["cpu"]
    qwen = rows[QWEN_CPU]
    assert (qwen["alias"], qwen["name"], qwen["version"]) == (
        "qwen2.5-0.5b",
        "qwen2.5-0.5b-instruct-generic-cpu",
        4,
    )
    assert (qwen["device_type"], qwen["execution_provider"]) == ("CPU", "CPUExecutionProvider")
    assert (qwen["file_size_mb"], qwen["license"], qwen["publisher"], qwen["task"]) == (
        822,
        "apache-2.0",
        "Microsoft",
        "chat-completion",
    )
    assert qwen["cached"] is True and Path(qwen["path"]) == cached_qwen
    assert rows[PHI]["cached"] is False and rows[PHI]["path"] is None

    embeddings = curator_json("catalog", "list", "--task", "embeddings")
    assert [m["id"] for m in embeddings["models"]] == [EMBED]

    text = run_curator("catalog", "list", "--device", "cpu")
    assert text.returncode == 0, text.stderr
    header, *lines = text.stdout.splitlines()
    assert header.split()[:4] == ["ALIAS", "ID", "VERSION", "DEVICE"]
    qwen_line = next(line for line in lines if QWEN_CPU in line)
    assert qwen_line.split()[0] == "qwen2.5-0.5b" and qwen_line.split()[-1] == "yes"
    assert next(line for line in lines if PHI in line).split()[-1] == "no"
    assert curator_json("catalog", "list", "--device", "gpu")["models"] == []


def test_show_resolves_an_alias_to_this_machines_variant_and_knows_ids_and_names(
    catalog: FakeCatalog, cached_qwen: Path
) -> None:
    # Of the alias's two CPU variants the downloaded one is chosen, as the Foundry CLI chooses.
    shown = curator_json("catalog", "show", "qwen2.5-0.5b")
    assert shown["resolved"]["id"] == QWEN_CPU
    assert shown["resolved"]["display_name"] == "Qwen2.5 0.5B Instruct"
    assert [v["id"] for v in shown["variants"]] == [QWEN_CPU, QWEN_INT8]

    assert curator_json("catalog", "show", PHI)["resolved"]["id"] == PHI
    # A name without :version is the latest version of that name.
    assert (
        curator_json("catalog", "show", "phi-4-mini-instruct-generic-cpu")["resolved"]["id"] == PHI
    )

    missing = run_curator("catalog", "show", "no-such-model")
    assert missing.returncode == 1
    assert "no-such-model is not in Foundry's catalog" in missing.stderr


def test_bench_compares_a_catalog_alias_and_a_compiled_model_in_one_report(
    catalog: FakeCatalog,
    cached_qwen: Path,
    install_compiled: Callable[..., Path],
    tmp_path: Path,
) -> None:
    compiled = install_compiled()
    assert run_curator("register", str(compiled), "--license", "mit").returncode == 0
    result = run_curator(
        "bench",
        "qwen2.5-0.5b",
        TINY_MODEL_ID,
        "--in-process",
        "--rounds",
        "1",
        "--max-tokens",
        "8",
        "--out",
        str(tmp_path / "out"),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    models = json.loads(result.stdout)["report"]["models"]
    assert [m["id"] for m in models] == ["qwen2.5-0.5b", TINY_MODEL_ID]
    for model in models:
        assert model["status"] == "ok", model["error"]
        assert model["requests"] and all(r["completionTokens"] == 8 for r in model["requests"])
        assert model["summary"]["decodeTokensPerSec"]["mean"] > 0

    # chat takes the catalog id too; an alias that is in the catalog but not downloaded, and a
    # name that is nowhere, are told apart.
    chat = run_curator("chat", QWEN_CPU, "--prompt", "Hello", "--max-tokens", "4")
    assert chat.returncode == 0, chat.stderr
    assert "4 completion tokens" in chat.stderr
    not_pulled = run_curator("smoke", "phi-4-mini")
    assert not_pulled.returncode == 1
    assert f"phi-4-mini ({PHI}) is in Foundry's catalog but not downloaded" in not_pulled.stderr
    assert "curator pull phi-4-mini" in not_pulled.stderr
    nowhere = run_curator("smoke", "no-such-model")
    assert nowhere.returncode == 1
    assert "neither registered with Foundry Local" in nowhere.stderr


def test_pull_load_tests_a_cached_model_and_a_failed_download_leaves_nothing(
    catalog: FakeCatalog, cached_qwen: Path, cache: Path
) -> None:
    pulled = curator_json("pull", "qwen2.5-0.5b")
    assert (pulled["id"], pulled["action"]) == (QWEN_CPU, "already cached")
    assert Path(pulled["path"]) == cached_qwen
    assert pulled["load_test"]["completion_tokens"] >= 1

    # The download goes to the model-registry service, which is not reachable from here.
    failed = run_curator("pull", "phi-4-mini")
    assert failed.returncode == 1
    assert f"error: cannot download {PHI}" in failed.stderr
    assert "download phi-4-mini: 0%" in failed.stderr  # progress went to stderr
    assert failed.stdout == ""
    assert not (cache / "Microsoft" / "phi-4-mini-instruct-generic-cpu-5").exists()
    assert not list(cache.rglob("download.tmp"))
    rows = {m["id"]: m for m in curator_json("catalog", "list")["models"]}
    assert rows[PHI]["cached"] is False and rows[QWEN_CPU]["cached"] is True
    # Foundry Local can load the downloaded model: cache ls says so (it has no compile manifest).
    cached_rows = {row["id"]: row for row in curator_json("cache", "ls")}
    assert cached_rows[QWEN_CPU]["foundry_registered"] is True
    assert cached_rows[QWEN_CPU]["has_manifest"] is False
    # ... and cache verify does not fail it for having none.
    verified = run_curator("cache", "verify", QWEN_CPU)
    assert verified.returncode == 0, verified.stdout
    assert "not checked (a Foundry catalog download" in verified.stdout
    # An unfinished download left by another tool (Foundry's download.tmp marker) is not cached.
    partial = place_cached(cache, cached_qwen, "phi-4-mini-instruct-generic-cpu", 5)
    (partial / "download.tmp").touch()
    listed = run_curator("cache", "ls")
    assert f"{partial} is an unfinished download, not a usable model" in listed.stderr
    rows = {m["id"]: m for m in curator_json("catalog", "list")["models"]}
    assert rows[PHI]["cached"] is False
    removed = run_curator("cache", "rm", QWEN_CPU)
    assert removed.returncode == 0, removed.stderr
    assert f"{QWEN_CPU}: a Foundry catalog download" in removed.stdout
    assert not cached_qwen.exists()
    rows = {m["id"]: m for m in curator_json("catalog", "list")["models"]}
    assert rows[QWEN_CPU]["cached"] is False


def test_register_puts_a_catalog_model_in_the_registry_with_the_catalog_as_source(
    catalog: FakeCatalog, cached_qwen: Path
) -> None:
    result = curator_json("register", "qwen2.5-0.5b", "--capability", "chat")
    entry = result["entry"]
    assert result["id"] == QWEN_CPU and result["registry_action"] == "added"
    assert entry["source"] == {
        "catalog": "foundry-local",
        "id": QWEN_CPU,
        "version": 4,
        "publisher": "Microsoft",
        "license": "apache-2.0",
        "uri": "azureml://registries/azureml/models/qwen2.5-0.5b-instruct-generic-cpu/versions/4",
    }
    assert "build" not in entry
    assert (entry["alias"], entry["variant"], entry["license"]) == (
        "qwen2.5-0.5b",
        "generic-cpu",
        "apache-2.0",
    )
    assert entry["minRamGb"] == result["min_ram_gb"] > 0
    validated = run_curator("registry", "validate")
    assert validated.returncode == 0, validated.stdout + validated.stderr
    # The downloaded directory names the same model as its alias does.
    again = curator_json("register", str(cached_qwen))
    assert (again["id"], again["registry_action"]) == (QWEN_CPU, "updated")

    # The registry's rule: a catalog entry is filed under its catalog id.
    registry = Path(os.environ["CURATOR_REGISTRY"])
    document = json.loads(registry.read_text())
    document["models"][0]["source"]["id"] = PHI
    registry.write_text(json.dumps(document))
    broken = run_curator("registry", "validate")
    assert broken.returncode == 1
    assert "catalog-id-is-entry-id" in broken.stdout + broken.stderr

    not_pulled = run_curator("register", "phi-4-mini")
    assert not_pulled.returncode == 1
    assert "curator pull phi-4-mini" in not_pulled.stderr


def test_offline_says_the_catalog_is_unreachable_in_one_line_and_lists_the_cache(
    catalog: FakeCatalog, cached_qwen: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = time.monotonic()
    online = run_curator("catalog", "list")
    online_s = time.monotonic() - start
    assert online.returncode == 0, online.stderr

    monkeypatch.setenv("CURATOR_CATALOG_URL", closed_port_url())
    start = time.monotonic()
    offline = run_curator("catalog", "list")
    offline_s = time.monotonic() - start
    assert offline.returncode == 0, offline.stderr
    [line] = offline.stderr.strip().splitlines()
    assert "catalog unreachable" in line and "Connection refused" in line
    _header, *rows = offline.stdout.splitlines()
    # What is cached, described by the catalog copy the SDK stored while online.
    assert len(rows) == 1 and rows[0].split()[:2] == ["qwen2.5-0.5b", QWEN_CPU]
    assert "apache-2.0" in rows[0]
    # The SDK alone spends about 4 s retrying before it answers; curator does not wait for it:
    # offline costs no more than the online listing (same machine, same load) plus well under 4 s.
    assert offline_s < online_s + 3.0, (offline_s, online_s)

    as_json = curator_json("catalog", "list")
    assert as_json["reachable"] is False and "Connection refused" in as_json["problem"]
    assert [m["id"] for m in as_json["models"]] == [QWEN_CPU]
    shown = run_curator("catalog", "show", "qwen2.5-0.5b")
    assert shown.returncode == 0 and QWEN_CPU in shown.stdout
    assert "catalog unreachable" in shown.stderr
    missing = run_curator("catalog", "show", "phi-4-mini")
    assert missing.returncode == 1
    assert "not cached and Foundry's catalog is unreachable" in missing.stderr

    # A downloaded model still runs offline (the SDK resolves it from its stored catalog copy);
    # a name no download carries fails at once, saying the catalog is unreachable.
    chat = run_curator("chat", "qwen2.5-0.5b", "--prompt", "Hello", "--max-tokens", "4")
    assert chat.returncode == 0, chat.stderr
    not_here = run_curator("smoke", "phi-4-mini")
    assert not_here.returncode == 1
    assert "Foundry's catalog is unreachable" in not_here.stderr


def test_serve_answers_for_a_downloaded_catalog_model_by_alias_and_id(
    catalog: FakeCatalog, cached_qwen: Path
) -> None:
    """serve resolves names through the runtime: the downloaded catalog model is listed and answers
    under its alias and its id (serve's own code knows nothing of the catalog)."""
    assert run_curator("catalog", "list").returncode == 0  # the SDK stores its catalog copy
    with running_server(dict(os.environ)) as (url, _):
        client = make_client(url, timeout=60)
        listed = {m.id for m in client.models.list().data}
        assert {QWEN_CPU, "qwen2.5-0.5b"} <= listed
        for name in ("qwen2.5-0.5b", QWEN_CPU):
            answer = client.chat.completions.create(
                model=name, messages=[{"role": "user", "content": "Hello"}], max_tokens=4
            )
            assert answer.model == QWEN_CPU
            assert answer.usage is not None and answer.usage.completion_tokens == 4


def test_ctrl_c_stops_a_pull_that_waits_for_another_processs_download(
    catalog: FakeCatalog, cache: Path
) -> None:
    """Ctrl-C reaches a download the SDK runs in native code: curator runs it in a worker thread
    and sets the SDK's cancel event. Here the SDK waits for another process's lock on the model
    directory (as it does while that process downloads the model), so the pull is still running
    when the interrupt comes."""
    target = cache / "Microsoft" / "phi-4-mini-instruct-generic-cpu-5"
    target.mkdir(parents=True)
    with (target / ".download.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pull = subprocess.Popen(
            interruptible_python("-m", "curator", "pull", "phi-4-mini"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert pull.stderr is not None
            first = pull.stderr.readline()  # the SDK's first heartbeat while it waits
            assert "download phi-4-mini: 0%" in first, first
            pull.send_signal(signal.SIGINT)
            _, stderr = pull.communicate(timeout=120)
        finally:
            if pull.poll() is None:
                pull.kill()
                pull.wait()
    assert pull.returncode == 130, stderr
    assert "interrupted" in stderr
    assert not (target / "inference_model.json").exists()
    rows = {m["id"]: m for m in curator_json("catalog", "list")["models"]}
    assert rows[PHI]["cached"] is False
