"""Guards: curator.fidelity.refcache, curator.fidelity.measure, curator.fidelity.worker

The reference cache (issue 22 item 4, issue 20 item 5): the reference's side of a measurement is
computed once, in a process of its own, and read back by later measurements; the compiled model is
scored in another process. Cached and uncached figures agree within the stated tolerance on real
SmolLM2 weights; a damaged entry is computed again, never trusted; a second run does not run the
reference (its stored files are not rewritten, and the result says "cached")."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from curator.fidelity import (
    FidelityResult,
    load_text,
    measure_fidelity,
    refcache,
    reference_from_dir,
)
from curator.fidelity import worker as fidelity_worker

# The stored reference's log-probabilities are 16-bit levels (at most ~2e-4 nats off; its argmax
# and NLL are exact): the figures move by less than this (measured on SmolLM2: see the test).
KL_TOLERANCE = 1e-3  # nats, absolute
TOP1_TOLERANCE = 1e-3  # share of positions, absolute
MAX_TOKENS = 256


def _entries(cache: Path) -> list[Path]:
    root = cache / "entries"
    return sorted(d for d in root.iterdir() if d.is_dir()) if root.is_dir() else []


def _same(a: FidelityResult, b: FidelityResult, kl: float = KL_TOLERANCE) -> None:
    assert a.tokens == b.tokens and a.windows == b.windows
    assert abs(a.kl_mean - b.kl_mean) <= kl
    assert abs(a.top1_agreement - b.top1_agreement) <= TOP1_TOLERANCE
    assert a.reference_perplexity == pytest.approx(b.reference_perplexity, rel=1e-9)
    assert a.perplexity == pytest.approx(b.perplexity, rel=1e-9)


@dataclass(frozen=True)
class Stored:
    cache: Path
    plain: FidelityResult  # both models in one process, nothing stored
    first: FidelityResult  # the reference run and stored
    second: FidelityResult  # the reference read back
    stored: dict[str, int]  # the entry's files' mtimes after the first run


WINDOW = 100


@pytest.fixture(scope="module")
def stored(
    tiny_model_dir: Path, compiled_tiny_int4: Path, tmp_path_factory: pytest.TempPathFactory
) -> Stored:
    cache = tmp_path_factory.mktemp("refcache")
    reference, text = reference_from_dir(tiny_model_dir), load_text()
    args = {"max_tokens": MAX_TOKENS, "window": WINDOW}
    plain = measure_fidelity(compiled_tiny_int4, reference, text, reference_cache=False, **args)
    first = measure_fidelity(compiled_tiny_int4, reference, text, reference_cache=cache, **args)
    [entry] = _entries(cache)
    mtimes = {f.name: f.stat().st_mtime_ns for f in entry.iterdir()}
    second = measure_fidelity(compiled_tiny_int4, reference, text, reference_cache=cache, **args)
    return Stored(cache, plain, first, second, mtimes)


def _measure_again(stored: Stored, cache: Path, compiled: Path, model: Path) -> FidelityResult:
    return measure_fidelity(
        compiled,
        reference_from_dir(model),
        load_text(),
        max_tokens=MAX_TOKENS,
        window=WINDOW,
        reference_cache=cache,
    )


def test_a_second_run_reads_the_reference_and_matches_one_process(stored: Stored) -> None:
    assert stored.plain.reference_cached is None
    assert stored.first.reference_cached is False and stored.first.reference_seconds > 0
    assert set(stored.stored) == {refcache.LOGPROBS, refcache.EXACT, refcache.META}
    assert stored.second.reference_cached is True
    assert stored.second.reference_seconds == stored.first.reference_seconds  # the stored run's
    # the reference did not run: its stored arrays were not written again
    [entry] = _entries(stored.cache)
    now = {f.name: f.stat().st_mtime_ns for f in entry.iterdir() if f.name != refcache.META}
    assert now == {n: t for n, t in stored.stored.items() if n != refcache.META}
    _same(stored.plain, stored.first)
    assert (stored.second.kl_mean, stored.second.top1_agreement) == (
        stored.first.kl_mean,
        stored.first.top1_agreement,
    )
    # 99 scored positions per window of 100: the layout the scorer reads back
    meta = json.loads((entry / refcache.META).read_text(encoding="utf-8"))
    assert meta["positions"] == stored.plain.tokens and meta["key"]["window"] == WINDOW
    assert stored.plain.tokens == MAX_TOKENS - (MAX_TOKENS + WINDOW - 1) // WINDOW


def test_another_window_text_or_reference_is_another_entry(tmp_path: Path) -> None:
    base = {
        "reference_sha": "a" * 64,
        "reference_kind": "transformers",
        "reference_dtype": "float32",
        "ids_sha": "b" * 64,
        "window": 512,
        "positions": 10,
    }
    one = refcache.entry_for(tmp_path, **base)  # type: ignore[arg-type]
    assert refcache.entry_for(tmp_path, **base).directory == one.directory  # type: ignore[arg-type]
    for change in (
        {"window": 256},
        {"ids_sha": "c" * 64},
        {"reference_sha": "d" * 64},
        {"reference_dtype": "bfloat16"},
        {"reference_kind": "onnx"},
    ):
        other = refcache.entry_for(tmp_path, **{**base, **change})  # type: ignore[arg-type]
        assert other.directory != one.directory, change
    assert refcache.tokens_path(tmp_path, "t", "x") != refcache.tokens_path(tmp_path, "t", "y")
    assert refcache.tokens_path(tmp_path, "t", "x") != refcache.tokens_path(tmp_path, "u", "x")


def _corrupt_flip(entry: Path) -> None:
    data = bytearray((entry / refcache.LOGPROBS).read_bytes())
    data[-3] ^= 0x40  # one stored level near the end: same size, same header
    (entry / refcache.LOGPROBS).write_bytes(bytes(data))


def _corrupt_truncate(entry: Path) -> None:
    path = entry / refcache.EXACT
    path.write_bytes(path.read_bytes()[:-8])


def _corrupt_pad(entry: Path) -> None:
    with (entry / refcache.LOGPROBS).open("ab") as handle:
        handle.write(b"\0\0")


def _corrupt_meta(entry: Path) -> None:
    (entry / refcache.META).write_text("{not json", encoding="utf-8")


def _corrupt_reshape(entry: Path) -> None:
    path = entry / refcache.LOGPROBS
    array = np.load(path)
    np.save(path, array[:, : array.shape[1] // 2])  # a valid .npy, half as wide


def _corrupt_header(entry: Path) -> None:
    path = entry / refcache.EXACT
    data = path.read_bytes()
    path.write_bytes(b"NOTNUMPY" + data[8:])


def _remove_meta(entry: Path) -> None:
    (entry / refcache.META).unlink()


def _remove_array(entry: Path) -> None:
    (entry / refcache.EXACT).unlink()


@pytest.mark.parametrize(
    "damage",
    [
        _corrupt_flip,
        _corrupt_truncate,
        _corrupt_pad,
        _corrupt_meta,
        _corrupt_reshape,
        _corrupt_header,
        _remove_meta,
        _remove_array,
    ],
)
def test_a_damaged_entry_is_not_trusted(
    damage: Callable[[Path], None], stored: Stored, tmp_path: Path
) -> None:
    cache = tmp_path / "refcache"
    shutil.copytree(stored.cache, cache)
    [entry_dir] = _entries(cache)
    key = json.loads((entry_dir / refcache.META).read_text(encoding="utf-8"))["key"]
    entry = refcache.Entry(entry_dir, key, stored.first.tokens)
    assert refcache.read_meta(entry) is not None
    assert refcache.read_meta(refcache.Entry(entry_dir, key, stored.first.tokens + 1)) is None
    damage(entry_dir)
    assert refcache.read_meta(entry) is None


def test_a_damaged_entry_is_computed_again(
    stored: Stored, tiny_model_dir: Path, compiled_tiny_int4: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "refcache"
    shutil.copytree(stored.cache, cache)
    [entry] = _entries(cache)
    _corrupt_flip(entry)
    again = _measure_again(stored, cache, compiled_tiny_int4, tiny_model_dir)
    assert again.reference_cached is False
    assert (again.kl_mean, again.top1_agreement) == (
        stored.first.kl_mean,
        stored.first.top1_agreement,
    )
    [entry] = _entries(cache)
    key = json.loads((entry / refcache.META).read_text(encoding="utf-8"))["key"]
    assert refcache.read_meta(refcache.Entry(entry, key, again.tokens)) is not None


def test_damaged_token_ids_are_cut_again(
    stored: Stored, tiny_model_dir: Path, compiled_tiny_int4: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "refcache"
    shutil.copytree(stored.cache, cache)
    [ids_file] = (cache / "tokens").glob("*.npy")
    ids = np.load(ids_file)
    np.save(ids_file, ids[::-1].copy())  # same size and header, other ids: the digest differs
    assert refcache.read_tokens(ids_file) is None
    again = _measure_again(stored, cache, compiled_tiny_int4, tiny_model_dir)
    assert np.array_equal(np.load(ids_file), ids)
    assert again.reference_cached is True  # the same ids again: the stored reference still holds
    assert again.kl_mean == stored.first.kl_mean


def test_a_cache_that_cannot_be_written_measures_in_one_process(
    stored: Stored, tiny_model_dir: Path, compiled_tiny_int4: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    got = _measure_again(stored, blocker / "refcache", compiled_tiny_int4, tiny_model_dir)
    assert got.reference_cached is None  # both models in one process, nothing stored
    assert (got.kl_mean, got.top1_agreement) == (stored.plain.kl_mean, stored.plain.top1_agreement)


def test_row_files_refuse_a_wrong_shape(tmp_path: Path) -> None:
    path = tmp_path / "rows.npy"
    writer = refcache.RowWriter(path, "<f2", (3, 4))
    writer.write(np.ones((2, 4)))
    with pytest.raises(ValueError, match="rows of shape"):
        writer.write(np.ones((1, 5)))
    with pytest.raises(ValueError, match="2 rows written of 3"):
        writer.close()
    writer = refcache.RowWriter(path, "<f2", (3, 4))
    writer.write(np.arange(12).reshape(3, 4))
    writer.close()
    assert np.array_equal(np.load(path), np.arange(12).reshape(3, 4).astype(np.float16))
    reader = refcache.RowReader(path)
    assert np.array_equal(reader.rows(1, 3), np.arange(4, 12).reshape(2, 4))
    reader.close()
    path.write_bytes(path.read_bytes()[:-2])
    with pytest.raises(ValueError, match="ended early"):
        refcache.RowReader(path).rows(0, 3)


def test_eviction_keeps_the_most_recently_used(tmp_path: Path) -> None:
    import os

    for index in range(6):
        entry = tmp_path / "entries" / f"e{index}"
        entry.mkdir(parents=True)
        (entry / refcache.META).write_text("{}", encoding="utf-8")
        os.utime(entry / refcache.META, (1000 + index, 1000 + index))
    os.utime(tmp_path / "entries" / "e0" / refcache.META, (5000, 5000))  # used last
    removed = refcache.evict(tmp_path, keep=3)
    assert sorted(p.name for p in removed) == ["e1", "e2", "e3"]
    assert sorted(p.name for p in (tmp_path / "entries").iterdir()) == ["e0", "e4", "e5"]


def test_a_smaller_candidate_vocabulary_is_scored_over_the_shared_part() -> None:
    """As the one-process scorer does: the reference renormalised over the candidate's vocabulary."""
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(5, 12)).astype(np.float32)
    model = rng.normal(size=(5, 10)).astype(np.float32)
    targets = rng.integers(0, 10, size=5)
    lr16, exact = fidelity_worker._reference_rows(ref, targets)
    want = fidelity_worker._score(model, ref[:, :10], targets)
    got = fidelity_worker._score_stored(model, lr16, exact, targets, 12)
    np.testing.assert_allclose(got["kl"], want["kl"], atol=2e-3)
    assert got["agree"] == want["agree"]
    np.testing.assert_allclose(got["nll_reference"], want["nll_reference"], atol=2e-3)
    same = fidelity_worker._score_stored(ref[:, :12] * 0.9, lr16, exact, targets, 12)
    exact_want = fidelity_worker._score(ref * 0.9, ref, targets)
    np.testing.assert_allclose(same["nll_reference"], exact_want["nll_reference"], rtol=1e-12)
    assert same["agree"] == exact_want["agree"]


@pytest.mark.slow
def test_smollm2_cached_and_uncached_figures_agree(compiled_smollm2: Path, tmp_path: Path) -> None:
    """Real weights: the int4 SmolLM2 compile against its dequantized fp32 source on the default
    text, one process holding both vs the stored reference: KL and top-1 within 1e-3."""
    manifest = json.loads((compiled_smollm2 / "curator-manifest.json").read_text())
    reference = reference_from_dir(Path(manifest["sourceDir"]))
    text = load_text()
    cache = tmp_path / "refcache"
    plain = measure_fidelity(compiled_smollm2, reference, text, threads=2, reference_cache=False)
    first = measure_fidelity(compiled_smollm2, reference, text, threads=2, reference_cache=cache)
    second = measure_fidelity(compiled_smollm2, reference, text, threads=2, reference_cache=cache)
    print(
        f"one process: KL {plain.kl_mean:.6f} top-1 {plain.top1_agreement:.6f} "
        f"{plain.seconds:.1f} s peak {plain.peak_rss_bytes / 2**20:.0f} MiB; cached first: KL "
        f"{first.kl_mean:.6f} top-1 {first.top1_agreement:.6f} {first.seconds:.1f} s peak "
        f"{first.peak_rss_bytes / 2**20:.0f} MiB; second: {second.seconds:.1f} s "
        f"(reference {first.reference_seconds:.1f} s); tokens {plain.tokens}"
    )
    assert plain.kl_mean > 0.05  # a real int4 gap, so the comparison means something
    assert (first.reference_cached, second.reference_cached) == (False, True)
    _same(plain, first)
    assert (second.kl_mean, second.top1_agreement) == (first.kl_mean, first.top1_agreement)
