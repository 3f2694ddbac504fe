"""Guards: curator.compile.cost, curator.compile.preflight

Preflight's compile cost (issue 20 item 4): a streamed compile's peak follows the model's widest
unit, not its depth; whole-model passes and the builder's own path cost per parameter; the
prediction stays within 15% of the peaks measured on the size ladder; a refusal names a recipe
that fits."""

from __future__ import annotations

from typing import Any

import pytest

from curator.compile import cost
from curator.recipes import get_recipe
from tests.conftest import REPO_ROOT

TEST_RECIPES = REPO_ROOT / "tests" / "data" / "recipes"  # int8-cpu-reference: the two-pass int8
GIB = 2**30
MIB = 2**20


def qwen25(
    hidden: int, intermediate: int, layers: int, heads: int, kv: int, vocab: int, tied: bool
) -> dict[str, Any]:
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "vocab_size": vocab,
        "tie_word_embeddings": tied,
    }


# The size ladder's shapes (perf/ladder.py) and their parameter counts.
SHAPES = {
    "0.4b": (qwen25(896, 4864, 24, 14, 2, 32768, False), 420_000_000),
    "1.5b": (qwen25(1536, 8960, 28, 12, 2, 151936, True), 1_540_000_000),
    "3b": (qwen25(2048, 11008, 36, 16, 2, 151936, True), 3_090_000_000),
    "7b": (qwen25(3584, 18944, 28, 28, 4, 152064, False), 7_620_000_000),
    # the 3B shape cut to 1 layer: its widest unit, the 151,936 x 2,048 lm_head (8-bit k-quant
    # in int4-cpu), tied to the embedding, is the 3B's; and 10 layers with a 32k vocabulary
    "3b-1-layer": (qwen25(2048, 11008, 1, 16, 2, 151936, True), 388_243_968),
    "3b-10-layers-32k": (qwen25(2048, 11008, 10, 16, 2, 32768, True), 837_880_832),
    "1.5b-1-layer": (qwen25(1536, 8960, 1, 12, 2, 151936, True), 280_173_056),
}

# Peaks measured with the streaming build as committed (curator compile on the ladder's bf16 checkpoints, this
# machine, 2 cores; the compile's Olive process tree, as the manifest records it; the ladder's
# whole-tree figures, curator's own process included, are 30-60 MiB higher): (rung, recipe, MiB,
# cores the prediction is made for). Peaks measured before the quantizers ran in worker processes
# (curator.quant.kernels used threads then, holding nothing more on 2 cores than on 1) are
# compared with the prediction for 1 core, which counts no worker processes.
MEASURED = [
    ("0.4b", "int4-cpu", 566, 1),
    # perf/ladder.py (the lead's final run, whole tree), quantizing in 2 worker processes that
    # load onnxruntime's k-quant module; pinned to 1 core, no workers: 591 MiB
    ("0.4b", "int4-cpu", 829, 2),
    ("0.4b", "int4-cpu", 591, 1),
    ("1.5b", "int4-cpu", 1321, 2),  # the same run, 1.54B
    ("1.5b", "int4-cpu", 1077, 1),  # pinned to 1 core
    ("3b", "int4-cpu", 1240, 1),  # perf/ladder.py, whole tree, 917 s (predicted 1,162 MiB)
    ("0.4b", "int8-cpu", 622, 2),  # perf/ladder.py, whole tree (7,011 MiB as two passes)
    ("1.5b", "int8-cpu", 1004, 2),  # perf/ladder.py, whole tree (under the heavy lock)
    ("0.4b", "fp32-cpu", 618, 2),  # perf/ladder.py, whole tree
    ("0.4b", "int4-rtn-cpu", 1748, 2),  # does not stream: Olive's Rtn in torch, bf16 held as stored
    ("0.4b", "int4-gptq-cpu", 2405, 2),  # nor Olive's Gptq (64 calibration texts; manifest's peak)
    ("1.5b", "fp32-cpu", 949, 2),
    ("3b", "int4-cpu-accurate", 1244, 1),  # before big weights were sliced (1,141 predicted now)
    # traced: 466 MiB before the lm_head, 1,203 in it (1,406 before it was sliced); 1,236 MiB for
    # the whole tree
    ("3b-1-layer", "int4-cpu", 1203, 1),
    ("1.5b-1-layer", "int4-cpu", 1044, 1),  # the 1.5B's lm_head, sliced (1,077 MiB whole tree)
    ("3b-10-layers-32k", "int4-cpu", 686, 1),  # the same 616 MiB before each of the 10 layers
]


@pytest.mark.parametrize(("rung", "recipe", "mib", "cores"), MEASURED)
def test_prediction_is_within_15_percent_of_the_measured_peak(
    rung: str, recipe: str, mib: int, cores: int
) -> None:
    config, parameters = SHAPES[rung]
    predicted = cost.estimate(get_recipe(recipe), parameters, config, cores=cores).peak_bytes
    assert abs(predicted / (mib * MIB) - 1) <= 0.15, (rung, recipe, predicted / MIB, mib)


def test_the_quantizer_processes_are_counted_one_per_core_up_to_the_kernels_cap() -> None:
    """int4-cpu quantizes in worker processes (curator.quant.kernels), one per core on 2 or
    more cores; fp32-cpu quantizes nothing and starts none."""
    from curator.quant import kernels

    assert cost.KERNEL_MAX_WORKERS == kernels.MAX_WORKERS
    assert cost.KERNEL_TASK_ELEMENTS == kernels.TASK_ELEMENTS
    assert [cost.kernel_workers(c) for c in (1, 2, 64)] == [0, 2, kernels.MAX_WORKERS]
    assert [kernels.workers_for(c) for c in (1, 2, 64)] == [0, 2, kernels.MAX_WORKERS]
    config, parameters = SHAPES["0.4b"]

    def peak(recipe: str, cores: int) -> int:
        return cost.estimate(get_recipe(recipe), parameters, config, cores=cores).peak_bytes

    pool = cost.KERNEL_POOL_BYTES + 2 * cost.KERNEL_WORKER_BYTES
    assert peak("int4-cpu", 2) == peak("int4-cpu", 1) + pool
    many = cost.KERNEL_POOL_BYTES + kernels.MAX_WORKERS * cost.KERNEL_WORKER_BYTES
    assert peak("int4-cpu", 64) == peak("int4-cpu", 1) + many
    assert peak("fp32-cpu", 2) == peak("fp32-cpu", 1)
    assert (
        "2 quantizer processes"
        in cost.estimate(get_recipe("int4-cpu"), parameters, config, cores=2).basis
    )


def test_a_streamed_peak_follows_the_widest_unit_not_the_depth() -> None:
    int4 = get_recipe("int4-cpu")
    config, parameters = SHAPES["3b"]
    deep = {**config, "num_hidden_layers": 72}
    shallow = cost.estimate(int4, parameters, config)
    deeper = cost.estimate(int4, 2 * parameters, deep)
    assert shallow.streamed and deeper.streamed
    assert deeper.peak_bytes == shallow.peak_bytes  # twice the layers, same widest unit
    assert deeper.seconds > 1.8 * shallow.seconds - cost.STARTUP_SECONDS
    wider_vocab = cost.estimate(int4, parameters, {**config, "vocab_size": 2 * 151936})
    assert wider_vocab.peak_bytes > shallow.peak_bytes


def test_issue_targets_a_7b_shape_is_predicted_under_12_gib_and_each_rung_under_its_bound() -> None:
    int4 = get_recipe("int4-cpu")
    for rung, (config, parameters) in SHAPES.items():
        predicted = cost.estimate(int4, parameters, config).peak_bytes
        assert predicted <= 1.0 * parameters + 1.5 * GIB, rung
    assert cost.estimate(int4, SHAPES["7b"][1], SHAPES["7b"][0]).peak_bytes < 12 * GIB


def test_what_cannot_stream_costs_per_parameter() -> None:
    config, parameters = SHAPES["1.5b"]
    rtn = get_recipe("int4-rtn-cpu")  # Rtn pass in torch, then the builder's own path
    legacy = cost.estimate(rtn, parameters, config)
    assert not legacy.streamed
    # Rtn holds the model in its stored dtype: bf16 (2 bytes) costs half of ram_factor's fp32
    assert legacy.peak_bytes == int(cost.LEGACY_OVERHEAD_BYTES + rtn.ram_factor / 2 * parameters)
    from_fp32 = cost.estimate(rtn, parameters, config, stored_bytes=4.0)
    assert from_fp32.peak_bytes == int(cost.LEGACY_OVERHEAD_BYTES + rtn.ram_factor * parameters)
    other = {**config, "architectures": ["ChatGLMModel"]}  # not one the streaming builder covers
    assert not cost.estimate(get_recipe("int4-cpu"), parameters, other).streamed
    two_pass = get_recipe("int8-cpu-reference", TEST_RECIPES)  # int8-cpu before it streamed
    int8 = cost.estimate(two_pass, parameters, config)
    assert "OnnxDynamicQuantization" in int8.basis
    assert int8.peak_bytes == int(cost.BASE_BYTES + 16.0 * parameters)


def test_int8_cpu_streams_at_fp32_cpus_peak_plus_its_chunks_in_flight() -> None:
    """int8-cpu writes each weight chunk by chunk as it is made: it holds what fp32-cpu holds,
    plus one chunk per quantizer thread and one more (the threads capped at 8)."""
    config, parameters = SHAPES["1.5b"]
    shape = cost.ModelShape.from_config(config)

    def predicted(recipe: str, cores: int) -> cost.CompileCost:
        return cost.predict(
            get_recipe(recipe), parameters, shape=shape, architecture="Qwen2ForCausalLM",
            cores=cores,
        )  # fmt: skip

    int8, fp32 = predicted("int8-cpu", 2), predicted("fp32-cpu", 2)
    assert int8.streamed and int8.peak_bytes == fp32.peak_bytes + 3 * cost.INT8_CHUNK_BYTES
    many = predicted("int8-cpu", 64).peak_bytes - predicted("fp32-cpu", 64).peak_bytes
    assert many == (cost.INT8_MAX_THREADS + 1) * cost.INT8_CHUNK_BYTES
    assert int8.peak_bytes <= 1.0 * parameters + 1.5 * GIB


@pytest.mark.parametrize(("rung", "seconds"), [("0.4b", 38.3), ("1.5b", 40.5)])
def test_int8_cpu_time_is_within_15_percent_of_the_ladder(rung: str, seconds: float) -> None:
    """perf.ladder --recipe int8-cpu under the heavy lock, 2 cores (whole compile wall time)."""
    config, parameters = SHAPES[rung]
    found = cost.predict(
        get_recipe("int8-cpu"), parameters, shape=cost.ModelShape.from_config(config),
        architecture="Qwen2ForCausalLM", cores=2,
    )  # fmt: skip
    assert abs(found.seconds / seconds - 1) <= 0.15, (rung, found.seconds, seconds)


@pytest.mark.parametrize(("rung", "seconds"), [("0.4b", 77.0), ("1.5b", 323.0)])
def test_fp32_cpu_time_is_within_15_percent_of_the_ladder(rung: str, seconds: float) -> None:
    """perf.ladder --recipe fp32-cpu (README's table): no quantizer, so no gain from the cores."""
    config, parameters = SHAPES[rung]
    found = cost.estimate(get_recipe("fp32-cpu"), parameters, config)
    assert found.streamed
    assert abs(found.seconds / seconds - 1) <= 0.15, (rung, found.seconds, seconds)
    one = cost.predict(
        get_recipe("fp32-cpu"), parameters, shape=cost.ModelShape.from_config(config),
        architecture="Qwen2ForCausalLM", cores=1,
    )  # fmt: skip
    assert one.seconds == found.seconds


def test_int4_gptq_cpu_time_is_within_15_percent_of_its_measured_compile() -> None:
    """curator compile --recipe int4-gptq-cpu on the 0.42B bf16 rung, 64 calibration texts:
    859 s (the GPTQ pass runs on one core; 812 s CPU)."""
    config, parameters = SHAPES["0.4b"]
    found = cost.estimate(get_recipe("int4-gptq-cpu"), parameters, config)
    assert not found.streamed
    assert abs(found.seconds / 859 - 1) <= 0.15, found.seconds


def test_without_a_config_the_prediction_is_an_estimate_from_the_parameter_count() -> None:
    found = cost.estimate(get_recipe("int4-cpu"), 1_000_000_000)
    assert found.streamed and "estimated" in found.basis
    assert cost.BASE_BYTES < found.peak_bytes < 2 * GIB


def test_a_refusal_names_the_recipes_that_fit() -> None:
    config, parameters = SHAPES["1.5b"]
    int8 = get_recipe("int8-cpu-reference", TEST_RECIPES)  # the two-pass int8: ~25 GiB here
    available = 4 * GIB  # the streamed recipes need under 2 GiB
    assert cost.estimate(int8, parameters, config).peak_bytes > available
    fits = cost.fitting_recipes(int8, parameters, available, config)
    assert {"int4-cpu", "int4-cpu-accurate", "fp32-cpu", "int8-cpu"} <= set(fits)
    assert "int4-gptq-cpu" not in fits  # needs calibration
    from curator.compile import preflight
    from curator.errors import PreflightError

    with pytest.raises(PreflightError) as caught:
        preflight.check_ram(
            cost.estimate(int8, parameters, config).peak_bytes, available, int8, fits
        )
    assert "int4-cpu" in caught.value.hint and "--recipe" in caught.value.hint


def test_a_weight_over_a_slice_holds_its_scales_and_one_slice_of_packed_data() -> None:
    from curator.compile.stream import builder_patch

    assert cost.SLICE_ELEMENTS == builder_patch.SLICE_ELEMENTS  # the build's own slice
    lm_head = 151936 * 2048  # 8-bit k-quant in int4-cpu: 343 MiB packed, 297 MiB of it data
    held = cost.held_packed(lm_head, cost.PACKED[8])
    assert held == lm_head * (cost.PACKED[8] - 1.0) + cost.SLICE_ELEMENTS * 1.0
    assert 75 * MIB < held < 80 * MIB  # (was 343 MiB held whole)
    small = cost.SLICE_ELEMENTS  # one slice: held whole
    assert cost.held_packed(small, cost.PACKED[4]) == small * cost.PACKED[4]
    assert cost.held_packed(lm_head, 0.0) == 0.0  # kept float: nothing packed


def test_a_7b_on_a_16_gb_machine_is_pointed_at_a_streamed_recipe() -> None:
    """int4-rtn-cpu (a torch Rtn pass, then the builder's own path) does not stream: on a 16 GB
    runner the refusal names the streamed recipes, each predicted to fit there."""
    config, parameters = SHAPES["7b"]
    rtn = get_recipe("int4-rtn-cpu")
    available = 14 * GIB  # what a 16 GB machine has free
    assert cost.estimate(rtn, parameters, config).peak_bytes > available
    fits = cost.fitting_recipes(rtn, parameters, available, config)
    assert {"int4-cpu", "int4-cpu-accurate", "fp32-cpu"} <= set(fits)
    for name in fits:
        assert cost.estimate(get_recipe(name), parameters, config).peak_bytes <= available


def test_shape_from_a_multimodal_wrapper_reads_its_text_config() -> None:
    wrapped = {"architectures": ["Gemma3ForConditionalGeneration"], "text_config": SHAPES["3b"][0]}
    shape = cost.ModelShape.from_config(wrapped)
    assert shape is not None and shape.vocab == 151936 and shape.layers == 36
    assert cost.ModelShape.from_config({"hidden_size": "x"}) is None


@pytest.mark.parametrize(
    ("rung", "cores", "seconds"),
    [("0.4b", 1, 86.2), ("0.4b", 2, 64.4), ("1.5b", 1, 320.4), ("1.5b", 2, 166.9)],
)
def test_int4_cpu_time_is_within_15_percent_of_the_ladder(
    rung: str, cores: int, seconds: float
) -> None:
    """perf.ladder --cores 1,2 under the heavy lock (whole compile wall time; a 2-core figure is
    the unpinned run on this 2-core machine, load average 1.5-2.1; 1.5b pinned to 2 cores in
    another run: 179.4 s, 1.79x its 1-core 320.4 s)."""
    config, parameters = SHAPES[rung]
    found = cost.estimate(get_recipe("int4-cpu"), parameters, config, cores=cores)
    assert abs(found.seconds / seconds - 1) <= 0.15, (cores, found.seconds, seconds)
