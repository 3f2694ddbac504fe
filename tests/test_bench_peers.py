"""Guards: perf.peers

perf.peers pieces that decide its verdicts: the grid-breaking step and the target verdicts (issue 22
item 4: the smallest budget point reaching each peer's KL, on both bases a peer is measured on,
decode at Q4_K_M, search time), the budgets aimed at the peers and llama-perplexity's summary."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from perf.peers import (
    DECODE_TARGET,
    FIXED,
    SEARCH_TARGET,
    SIZE_TARGET,
    Row,
    closing_note,
    parse_kl_divergence,
    peer_budgets,
    ratio_text,
    search_costs,
    verdicts,
)
from perf.peers_model import BLOCK, degrid


def _on_a_4bit_grid(rows: int = 64, cols: int = 128) -> np.ndarray:
    """Weights as a Q4_1 GGUF dequantizes them: 16 levels per block of 32 (scale, minimum)."""
    rng = np.random.default_rng(1)
    levels = rng.integers(0, 16, size=(rows, cols // BLOCK, BLOCK)).astype(np.float32)
    levels[..., 0], levels[..., 1] = 0, 15  # every block spans its whole range
    scale = rng.uniform(0.001, 0.01, size=(rows, cols // BLOCK, 1)).astype(np.float32)
    low = rng.uniform(-0.05, 0.0, size=(rows, cols // BLOCK, 1)).astype(np.float32)
    return (levels * scale + low).reshape(rows, cols)


def _asym_4bit_roundtrip(w: np.ndarray) -> np.ndarray:
    blocks = w.reshape(w.shape[0], -1, BLOCK)
    low, high = blocks.min(-1, keepdims=True), blocks.max(-1, keepdims=True)
    step = (high - low) / 15
    return (np.round((blocks - low) / step) * step + low).reshape(w.shape)


def test_degridding_defeats_a_quantizer_that_matches_the_grid() -> None:
    gridded = _on_a_4bit_grid()
    # the trap: an asymmetric block-32 4-bit quantizer recovers gridded weights almost exactly
    assert np.abs(_asym_4bit_roundtrip(gridded) - gridded).max() < 1e-6
    noisy = np.asarray(degrid({"w": gridded})["w"])
    error = np.abs(_asym_4bit_roundtrip(noisy) - noisy)
    step = (np.ptp(gridded.reshape(64, -1, BLOCK), axis=-1) / 15).mean()
    assert error.mean() > 0.1 * step  # now it pays a real rounding error


def test_degridding_is_bounded_seeded_and_leaves_other_tensors_alone() -> None:
    gridded = _on_a_4bit_grid()
    norm = np.ones(128, dtype=np.float32)
    first = degrid({"w": gridded, "norm": norm})
    again = degrid({"w": gridded, "norm": norm})
    np.testing.assert_array_equal(first["w"], again["w"])  # reproducible
    assert not np.array_equal(degrid({"w": gridded}, seed=7)["w"], first["w"])
    blocks = gridded.reshape(64, -1, BLOCK)
    half_step = (blocks.max(-1, keepdims=True) - blocks.min(-1, keepdims=True)) / 30
    moved = np.abs(np.asarray(first["w"]).reshape(blocks.shape) - blocks)
    assert (moved <= half_step + 1e-7).all()  # at most half a step of its own block
    np.testing.assert_array_equal(first["norm"], norm)  # 1-D tensors are not touched


MIB = 2**20


def _row(
    name: str,
    mib: float,
    kl: float,
    decode: float,
    kind: str = "llama.cpp",
    search: float = 0.0,
) -> Row:
    return Row(
        name,
        int(mib * MIB),
        kl,
        0.8,
        30.0,
        30.0,
        {1: decode, 2: decode},
        {1: 1.0, 2: 1.0},
        kind=kind,
        search_seconds=search,
        compiles=3 if kind == "curator" else 0,
    )


def _peers() -> list[Row]:
    return [_row("Q4_0", 88, 0.5, 90.0), _row("Q4_K_M", 101, 0.098, 100.0)]


def test_targets_are_judged_on_the_smallest_budget_point_reaching_each_peer() -> None:
    rows = [
        # the fixed recipe is smaller and better than either peer, but it is not a budget point
        _row(FIXED, 50, 0.01, 500.0, kind="fixed"),
        *_peers(),
        _row("curator KL<=0.5", 90, 0.45, 120.0, kind="curator", search=100.0),
        _row("curator KL<=0.098", 105, 0.09, 110.0, kind="curator", search=300.0),
        _row("curator KL<=0.02", 140, 0.02, 90.0, kind="curator", search=400.0),
    ]
    found = verdicts(rows, one_compile=60.0)
    by_name = {v.name: v for v in found}
    assert set(by_name) == {
        f"Q4_0: same KL at <= {SIZE_TARGET}x the file (its weights dequantized, KL 0.5000)",
        f"Q4_K_M: same KL at <= {SIZE_TARGET}x the file (its weights dequantized, KL 0.0980)",
        f"Q4_K_M: decode at 1 thread(s) >= {DECODE_TARGET}x",
        f"Q4_K_M: decode at 2 thread(s) >= {DECODE_TARGET}x",
        f"curator KL<=0.5: search < {SEARCH_TARGET:g}x one compile",
        f"curator KL<=0.098: search < {SEARCH_TARGET:g}x one compile",
        f"curator KL<=0.02: search < {SEARCH_TARGET:g}x one compile",
    }  # decode is judged at Q4_K_M only
    assert all(v.ok for v in found)  # every target met here
    assert not any(FIXED in v.detail for v in found)
    size = by_name[
        f"Q4_K_M: same KL at <= {SIZE_TARGET}x the file (its weights dequantized, KL 0.0980)"
    ].detail
    assert size.startswith("curator KL<=0.098 ") and "1.04x" in size  # not the larger 0.02 point
    assert "NOT met" not in closing_note(found)


def test_a_miss_on_any_target_is_reported() -> None:
    rows = [
        *_peers(),
        _row("curator KL<=0.098", 112, 0.098, 99.0, kind="curator", search=601.0),
    ]  # each just past its target: 1.11x the file, 0.99x decode, 10.02x one compile
    found = verdicts(rows, one_compile=60.0)
    assert {v.name.split(": ", 1)[1].split(" (")[0]: v.ok for v in found} == {
        f"same KL at <= {SIZE_TARGET}x the file": False,  # Q4_0 and Q4_K_M alike
        f"decode at 1 thread(s) >= {DECODE_TARGET}x": False,
        f"decode at 2 thread(s) >= {DECODE_TARGET}x": False,
        f"search < {SEARCH_TARGET:g}x one compile": False,
    }
    assert len(found) == 5
    assert closing_note(found).count("NOT met") == 5


def test_a_peer_no_budget_point_reaches_is_a_miss_and_unmeasured_speed_is_not_judged() -> None:
    rows = [
        *_peers(),
        _row("Q8_0", 150, 0.005, 0.0),
        _row("curator KL<=0.098", 105, 0.09, 0.0, kind="curator"),  # --rounds 0: no speed
    ]
    found = {v.name: v for v in verdicts(rows, one_compile=60.0)}
    missed = found[
        f"Q8_0: same KL at <= {SIZE_TARGET}x the file (its weights dequantized, KL 0.0050)"
    ]
    assert missed.ok is False and "no curator point reaches KL 0.0050" in missed.detail
    assert "curator KL<=0.098" in missed.detail  # the best point is named with its figures
    weights = "its weights dequantized"
    assert found[f"Q4_K_M: same KL at <= {SIZE_TARGET}x the file ({weights}, KL 0.0980)"].ok
    assert (  # 105 vs 88 MiB
        found[f"Q4_0: same KL at <= {SIZE_TARGET}x the file ({weights}, KL 0.5000)"].ok is False
    )
    # no speed figure: the decode target is neither met nor missed; no search time, no verdict
    assert [v.ok for n, v in found.items() if "decode" in n] == [None, None]
    assert not any("search" in n for n in found)
    note = closing_note(list(found.values()))
    assert note.count("not judged") == 2 and note.count("NOT met") == 2


def test_search_cost_is_printed_as_a_ratio_to_one_compile_with_its_parts_and_load() -> None:
    from dataclasses import replace

    rows = [
        replace(_row(FIXED, 129, 0.3, 150.0, kind="fixed"), load="3.0/2.5/2.0"),
        *_peers(),
        replace(
            _row("curator KL<=0.1", 110, 0.09, 150.0, kind="curator", search=300.0),
            sensitivity_seconds=120.0,
            compile_seconds=80.0,
            fidelity_seconds=90.0,
            reference_seconds=50.0,
            load="4.0/3.0/2.0",
        ),
    ]
    lines = search_costs(rows, one_compile=40.0).splitlines()
    assert lines[0].startswith("search cost: one fresh compile 40 s (int4-cpu, load 3.0/2.5/2.0")
    assert len(lines) == 2  # one line per budget point; the peers and the fixed recipe have none
    assert lines[1] == (
        "  curator KL<=0.1: 300 s = 7.5x one compile (sensitivity 120 s, 3 compile(s) 80 s, "
        "3 fidelity measurement(s) 90 s of which the reference's one run 50 s, the rest 10 s; "
        "load 4.0/3.0/2.0)"
    )


def test_a_peer_is_judged_on_its_weights_and_as_llama_cpp_runs_it() -> None:
    from dataclasses import replace

    rows = [
        # as llama.cpp runs them (int8 activations) both peers lose more than their weights do
        replace(_row("Q4_K_M", 100, 0.0756, 100.0), kl_as_run=0.080, top1_as_run=0.83),
        replace(_row("Q8_0", 138, 0.0020, 100.0), kl_as_run=0.0053, top1_as_run=0.946),
        _row("curator KL<=0.079", 108, 0.078, 90.0, kind="curator"),
        _row("curator KL<=0.07", 118, 0.070, 120.0, kind="curator"),
        _row("curator KL<=0.0052", 145, 0.0050, 95.0, kind="curator"),
    ]
    found = {v.name: v for v in verdicts(rows, one_compile=60.0)}
    size = f"same KL at <= {SIZE_TARGET}x the file"
    on_weights = found[f"Q4_K_M: {size} (its weights dequantized, KL 0.0756)"]
    as_run = found[f"Q4_K_M: {size} (as llama.cpp runs it, KL 0.0800)"]
    assert on_weights.ok is False and "curator KL<=0.07 " in on_weights.detail  # 1.18x
    assert as_run.ok is True and "curator KL<=0.079 " in as_run.detail  # 1.08x
    assert found[f"Q8_0: {size} (its weights dequantized, KL 0.0020)"].ok is False
    assert found[f"Q8_0: {size} (as llama.cpp runs it, KL 0.0053)"].ok is True  # 1.05x
    # decode is judged on the point that reaches Q4_K_M as it runs: the smaller, slower one
    decode = found[f"Q4_K_M: decode at 1 thread(s) >= {DECODE_TARGET}x"]
    assert decode.ok is False and decode.detail.startswith("curator KL<=0.079 90 vs 100")


def test_budgets_aim_just_under_each_peer_on_both_bases_merging_near_ones() -> None:
    budgets = peer_budgets({"Q4_K_M": (0.0756, 0.0735), "Q8_0": (0.0020, 0.0053)})
    # 0.0752 is within 5% of 0.0731: the smaller answers both; largest first
    assert budgets == (0.0731, 0.00527, 0.00199)


def test_llama_perplexity_summary_is_read_and_its_absence_is_an_error() -> None:
    import pytest

    output = (
        "chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence\n"
        "   7      31.5 ...\n"
        "====== KL divergence statistics ======\n"
        "Mean    KLD:   0.073519 \u00b1   0.001698\n"
        "Maximum KLD:   4.123456\n"
        "====== Token probability statistics ======\n"
        "Same top p: 83.193 \u00b1 0.885 %\n"
    )
    assert parse_kl_divergence(output) == {"kl": 0.073519, "top1": 0.83193}
    with pytest.raises(RuntimeError, match="no KL summary"):
        parse_kl_divergence("main: error: failed to load model\n")


def test_a_ratio_is_shown_on_the_side_of_the_target_it_is_on() -> None:
    assert ratio_text(1.0376, 1.1) == "1.04"
    assert ratio_text(110.7 / 100.6, 1.1) == "1.1004"  # 1.10 would read as met
    assert ratio_text(1.0996, 1.1) == "1.10"  # at most 1.1: met, as shown
    assert ratio_text(1.1, 1.1) == "1.10"


@pytest.mark.skipif(os.name == "nt", reason="the stand-in llama-perplexity is a #! script")
def test_as_run_fidelity_runs_llama_cpp_once_per_file_and_caches_it(tmp_path: Path) -> None:
    """gguf_fidelity_as_run with a stand-in llama-perplexity that logs its calls: the f32 base
    run once, each GGUF scored once, a changed GGUF scored again."""
    import sys
    from types import SimpleNamespace

    from curator.fidelity import load_text
    from perf.peers import gguf_fidelity_as_run

    calls = tmp_path / "calls.txt"
    fake = tmp_path / "llama-perplexity"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys, pathlib\n"
        f"pathlib.Path({str(calls)!r}).open('a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        "if '--kl-divergence' in sys.argv:\n"
        "    print('Mean    KLD:   0.012345 \\u00b1   0.000100')\n"
        "    print('Same top p: 91.500 \\u00b1 0.500 %')\n"
        "else:\n"
        "    pathlib.Path(sys.argv[sys.argv.index('--kl-divergence-base') + 1]).write_text('b')\n",
        encoding="utf-8",
    )
    fake.chmod(0o755)
    tools = SimpleNamespace(perplexity=fake)
    f32, gguf = tmp_path / "m-f32.gguf", tmp_path / "m-Q8_0.gguf"
    f32.write_bytes(b"f" * 64)
    gguf.write_bytes(b"q" * 16)
    text = load_text()
    first = gguf_fidelity_as_run(tools, f32, gguf, text)
    assert first == {"kl": 0.012345, "top1": 0.915}
    assert gguf_fidelity_as_run(tools, f32, gguf, text) == first  # from its cache
    gguf.write_bytes(b"q" * 17)  # re-quantized: measured again, the base reused
    gguf_fidelity_as_run(tools, f32, gguf, text)
    lines = calls.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    assert "m-f32.gguf" in lines[0] and "--kl-divergence-base" in lines[0]
    assert all("m-Q8_0.gguf" in line and line.endswith("--kl-divergence") for line in lines[1:])
    assert "-c 512" in lines[0]  # the same chunk as curator fidelity's window
