"""Guards: curator.cli.fidelity, curator.errors, curator.fidelity, curator.fidelity.stats,
  curator.fidelity.types, curator.fidelity.worker, curator.hub, curator.registry

Fidelity without models: statistics, limits, the record's schema, texts, locating models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from curator.errors import InputFileError, NotFound, UsageProblem
from curator.fidelity import (
    FidelityResult,
    Reference,
    Thresholds,
    TokenStats,
    default_reference,
    default_text_path,
    find_compiled,
    load_text,
    resolve_reference,
    summarize,
)
from curator.fidelity.stats import mean, percentile, perplexity
from curator.registry import validate_document
from tests.conftest import run_curator
from tests.fakehub.fixtures import TINY
from tests.fakehub.plugin import fake_hub_server, hub  # noqa: F401
from tests.fakehub.server import FakeHub
from tests.samples import make_document, make_entry


@pytest.mark.parametrize("q", [0, 1, 50, 90, 99, 100])
def test_percentile_matches_numpy_linear(q: float) -> None:
    rng = np.random.default_rng(7)
    values = rng.exponential(size=501).tolist()
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-12)


def test_mean_and_perplexity() -> None:
    nll = [0.5, 1.0, 2.0, 0.25]
    assert mean(nll) == pytest.approx(0.9375)
    assert perplexity(nll) == pytest.approx(math.exp(0.9375))
    with pytest.raises(ValueError):
        percentile([], 50)


def _stats(kl: list[float], agree: list[bool]) -> TokenStats:
    n = len(kl)
    return TokenStats(
        kl=tuple(kl),
        agree=tuple(agree),
        nll_model=tuple([math.log(20.0)] * n),
        nll_reference=tuple([math.log(10.0)] * n),
        windows=1,
        vocab_size=64,
    )


def _summary(kl: list[float], agree: list[bool], tmp_path: Path) -> FidelityResult:
    text = load_text()
    ref = Reference("transformers", tmp_path, "local:x")
    return summarize(
        _stats(kl, agree),
        model="m-generic-cpu:1",
        model_dir=tmp_path,
        reference=ref,
        text=text,
        window=512,
        seconds=1.0,
    )


def test_summarize_and_record_fit_the_registry_schema(tmp_path: Path) -> None:
    kl = [0.01 * i for i in range(100)]
    agree = [i % 4 != 0 for i in range(100)]
    result = _summary(kl, agree, tmp_path)
    assert result.tokens == 100
    assert result.kl_mean == pytest.approx(0.495)
    assert result.kl_max == pytest.approx(0.99)
    assert result.top1_agreement == pytest.approx(0.75)
    assert result.perplexity == pytest.approx(20.0)
    assert result.reference_perplexity == pytest.approx(10.0)
    record = result.to_record()
    assert record["reference"] == "transformers-fp32:local:x"
    assert record["textSha256"] == load_text().sha256
    document = make_document([make_entry(0, fidelity=record)])
    assert list(validate_document(document).problems) == []
    broken = make_document([make_entry(0, fidelity={**record, "top1Agreement": 1.5})])
    assert list(validate_document(broken).problems) != []


def test_thresholds_flag_each_limit(tmp_path: Path) -> None:
    result = _summary([0.2] * 10, [True] * 8 + [False] * 2, tmp_path)
    assert Thresholds().violations(result) == ()
    assert Thresholds(max_kl=0.5, min_top1=0.8).violations(result) == ()
    (kl_line,) = Thresholds(max_kl=0.1).violations(result)
    assert "KL" in kl_line and "0.1" in kl_line
    (top_line,) = Thresholds(min_top1=0.9).violations(result)
    assert "80.00%" in top_line


def test_default_text_is_shipped_with_its_source() -> None:
    text = load_text()
    assert text.path == default_text_path()
    assert len(text.text.split()) > 2000
    source = (default_text_path().parent / "SOURCE.md").read_text(encoding="utf-8")
    assert default_text_path().name in source and "public domain" in source


def test_unusable_texts_are_user_errors(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9".encode("latin-1"))
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n", encoding="utf-8")
    for path in (latin1, empty, tmp_path / "missing.txt"):
        with pytest.raises(InputFileError):
            load_text(path)


def _fake_compiled(root: Path, manifest: dict[str, object] | None = None) -> Path:
    root.mkdir(parents=True)
    (root / "genai_config.json").write_text("{}", encoding="utf-8")
    if manifest is not None:
        (root / "curator-manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return root


def test_find_compiled_by_id_folder_manifest_or_path(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    by_folder = _fake_compiled(cache / "local" / "a-generic-cpu-1")
    by_manifest = _fake_compiled(cache / "team" / "renamed", {"id": "b-generic-cpu:2"})
    assert find_compiled(cache, "a-generic-cpu:1") == by_folder
    assert find_compiled(cache, "b-generic-cpu:2") == by_manifest
    assert find_compiled(cache, str(by_manifest)) == by_manifest.resolve()
    with pytest.raises(NotFound):
        find_compiled(cache, "c-generic-cpu:1")


def test_reference_from_manifest_or_option(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "config.json").write_text("{}", encoding="utf-8")
    model = _fake_compiled(
        tmp_path / "cache" / "local" / "m-generic-cpu-1",
        {"id": "m-generic-cpu:1", "source": {"repo": "local:src"}, "sourceDir": str(source)},
    )
    ref = default_reference(model)
    assert (ref.kind, ref.path, ref.describe()) == (
        "transformers",
        source,
        "transformers-fp32:local:src",
    )
    other = _fake_compiled(tmp_path / "cache" / "local" / "m-fp32-generic-cpu-1")
    by_id = resolve_reference("m-fp32-generic-cpu:1", model, tmp_path / "cache")
    assert (by_id.kind, by_id.path) == ("onnx", other)
    bare = _fake_compiled(tmp_path / "bare", {"id": "x:1", "source": {"repo": "local:gone"}})
    with pytest.raises(UsageProblem):
        default_reference(bare)
    with pytest.raises(NotFound):
        resolve_reference("nowhere-generic-cpu:1", model, tmp_path / "cache")


def test_cli_unknown_model_is_a_one_line_error(tmp_path: Path) -> None:
    proc = run_curator("fidelity", "nothing-generic-cpu:1", "--cache-dir", str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: no compiled model 'nothing-generic-cpu:1'")
    assert "hint: " in proc.stderr and "Traceback" not in proc.stderr


def test_worker_scoring_matches_torch() -> None:
    import torch

    from curator.fidelity.worker import _score

    gen = torch.Generator().manual_seed(3)
    model_logits = torch.randn(70, 50, generator=gen) * 3  # 70 rows: more than one block of 64
    ref_logits = model_logits + torch.randn(70, 50, generator=gen) * 0.5
    targets = torch.randint(0, 50, (70,), generator=gen)
    got = _score(model_logits.numpy(), ref_logits.numpy(), targets.numpy())
    log_m = torch.log_softmax(model_logits.double(), -1)
    log_r = torch.log_softmax(ref_logits.double(), -1)
    kl = torch.nn.functional.kl_div(log_m, log_r, log_target=True, reduction="none").sum(-1)
    assert got["kl"] == pytest.approx(kl.tolist(), rel=1e-6, abs=1e-12)
    assert got["agree"] == (model_logits.argmax(-1) == ref_logits.argmax(-1)).tolist()
    nll_m = torch.nn.functional.cross_entropy(log_m, targets, reduction="none")
    nll_r = torch.nn.functional.cross_entropy(log_r, targets, reduction="none")
    assert got["nll_model"] == pytest.approx(nll_m.tolist(), rel=1e-9)
    assert got["nll_reference"] == pytest.approx(nll_r.tolist(), rel=1e-9)
    assert 0 < sum(got["agree"]) < 70


def test_reference_from_the_hub_through_the_compile_download_path(
    hub: FakeHub,  # noqa: F811
    tmp_path: Path,
    isolated_env: Path,
) -> None:
    """A Hub source without a recorded directory is fetched (or found cached) like a compile."""
    from curator.hub import download_for_compile

    snapshot, sha = download_for_compile(TINY, None)
    model = _fake_compiled(
        tmp_path / "cache" / "fixture" / "t-generic-cpu-1",
        {"id": "t-generic-cpu:1", "source": {"repo": TINY, "revision": sha}},
    )
    ref = default_reference(model)
    assert (ref.kind, ref.path, ref.describe()) == (
        "transformers",
        snapshot,
        f"transformers-fp32:{TINY}",
    )
    other = _fake_compiled(
        tmp_path / "cache" / "org" / "n-generic-cpu-1",
        {"id": "n-generic-cpu:1", "source": {"repo": "fixture/nope", "revision": sha}},
    )
    with pytest.raises(UsageProblem):
        default_reference(other)
