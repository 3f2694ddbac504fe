"""Guards: curator.compile.stream.builder_patch, curator.budget.groups, curator.budget.recipe,
  curator.quant.plan

A tied embedding stored once (issue 22 item 4). With ``share_tied_embedding`` the streamed build
quantizes a tied table once, in the lm_head's format, and the embedding's GatherBlockQuantized
reads the lm_head MatMulNBits' data, scales and zero points. The reference is "the patched
model": the same build without sharing, its own embedding table removed and its gather pointed
at the lm_head's initializers by hand (ONNX protobuf edits, independent of the builder code).
Same initializers for everything else, same logits, a smaller file. An untied model, or an
lm_head format the gather cannot read, builds byte for byte as without the option. The budget
weighs the tied table as one group whose bytes count once, and the recipe it writes reruns to the
same shared model through ``curator compile --recipe``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from curator.budget.formats import CANDIDATES, EMBEDDING_CANDIDATES, Format, parse_format
from curator.budget.groups import EMBEDDING, LM_HEAD, TIED_TABLE, Group, tied_table_options
from curator.budget.recipe import plan_recipe, share_tied_table, write_recipe
from curator.budget.search import search
from curator.budget.sensitivity import Sensitivity
from curator.quant.plan import LM_HEAD_NODE, plan_for
from tests.conftest import REPO_ROOT, run_curator
from tests.one_node import run_one_node
from tests.test_stream_compile import bf16_tied_copy

EMBEDDING_QUANT = {"bits": 4, "block_size": 32, "symmetric": False}
LM_8 = {"match": LM_HEAD_NODE, "bits": 8, "block_size": 32, "symmetric": True, "algo": "rtn"}
LM_4 = {"match": LM_HEAD_NODE, "bits": 4, "block_size": 16, "symmetric": False, "algo": "k_quant"}
LM_4SYM = {"match": LM_HEAD_NODE, "bits": 4, "block_size": 32, "symmetric": True, "algo": "rtn"}
# hidden 64: a block of 128 does not divide the row, so the gather cannot read the MatMul's table
LM_BLOCKED = {"match": LM_HEAD_NODE, "bits": 8, "block_size": 128, "symmetric": True}


def _build(specs: list[dict[str, Any]], work: Path) -> dict[str, Any]:
    out = work / "result.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.tied_check", str(out), *(json.dumps(s) for s in specs)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def _config(share: bool, lm_head: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {"embedding_quant": EMBEDDING_QUANT, "tensor_overrides": [lm_head]}
    if share:
        config["share_tied_embedding"] = True
    return config


def _initializers(model_dir: Path) -> dict[str, np.ndarray[Any, Any]]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_dir / "model.onnx"))
    return {
        t.name: numpy_helper.to_array(t, base_dir=str(model_dir)) for t in model.graph.initializer
    }


def _patched(own: Path, out: Path) -> Path:
    """``own`` (a build with its own embedding table) with the embedding gather reading the
    lm_head's quantized table instead, its own table removed."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(own / "model.onnx"))
    graph = model.graph
    gather = next(n for n in graph.node if n.op_type == "GatherBlockQuantized")
    head = next(n for n in graph.node if n.name.startswith("/lm_head/MatMul"))
    attrs = {a.name: helper.get_attribute_value(a) for a in head.attribute}
    data = next(t for t in graph.initializer if t.name == head.input[1])
    vocab, flat = int(data.dims[0]), int(np.prod(data.dims[1:]))
    shape = numpy_helper.from_array(np.array([vocab, flat], dtype=np.int64), "patched/shape")
    reshape = helper.make_node("Reshape", [head.input[1], shape.name], ["patched/table"])
    new_gather = helper.make_node(
        "GatherBlockQuantized",
        ["patched/table", "input_ids", *head.input[2:]],
        list(gather.output),
        name="patched/gather",
        domain="com.microsoft",
        gather_axis=0,
        quantize_axis=1,
        block_size=attrs["block_size"],
        bits=attrs["bits"],
    )
    index = list(graph.node).index(gather)
    dropped = set(gather.input) - {"input_ids"}
    graph.node.remove(gather)
    graph.node.insert(index, new_gather)
    graph.node.insert(index, reshape)
    kept = [t for t in graph.initializer if t.name not in dropped]
    del graph.initializer[:]
    graph.initializer.extend([*kept, shape])
    out.mkdir(parents=True)
    onnx.save(
        model, str(out / "model.onnx"), save_as_external_data=True, location="model.onnx.data"
    )
    return out


def _logits(model_dir: Path, ids: list[int]) -> np.ndarray[Any, Any]:
    import onnxruntime as ort

    session = ort.InferenceSession(
        str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    feed: dict[str, Any] = {}
    for value in session.get_inputs():
        if value.name == "input_ids":
            feed[value.name] = np.array([ids], dtype=np.int64)
        elif value.name == "attention_mask":
            feed[value.name] = np.ones((1, len(ids)), dtype=np.int64)
        elif value.name == "position_ids":
            feed[value.name] = np.arange(len(ids), dtype=np.int64)[None]
        else:  # an empty past: [batch, kv heads, 0, head size]
            dims = [1 if i == 0 else (0 if i == 2 else d) for i, d in enumerate(value.shape)]
            feed[value.name] = np.zeros(dims, dtype=np.float32)
    logits: np.ndarray[Any, Any] = session.run(["logits"], feed)[0]
    return logits


def _data_bytes(model_dir: Path) -> int:
    return (model_dir / "model.onnx.data").stat().st_size


def _sha(model_dir: Path) -> tuple[str, str]:
    return tuple(  # type: ignore[return-value]
        hashlib.sha256((model_dir / name).read_bytes()).hexdigest()
        for name in ("model.onnx", "model.onnx.data")
    )


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Path]:
    """One child process: the tied bf16 fixture shared and not (lm_head 8-bit symmetric and
    4-bit symmetric, read in place; 4-bit asymmetric k-quant, read through a Reshape; a block the
    gather cannot read), the untied one likewise."""
    work = tmp_path_factory.mktemp("tied")
    tied = bf16_tied_copy(tiny_model_dir, work / "qwen2-bf16-tied")
    plans = {
        "shared8": (tied, _config(True, LM_8)),
        "own8": (tied, _config(False, LM_8)),
        "shared4": (tied, _config(True, LM_4)),
        "own4": (tied, _config(False, LM_4)),
        "shared4sym": (tied, _config(True, LM_4SYM)),
        "own4sym": (tied, _config(False, LM_4SYM)),
        "blocked-shared": (tied, _config(True, LM_BLOCKED)),
        "blocked-own": (tied, _config(False, LM_BLOCKED)),
        "untied-shared": (tiny_model_dir, _config(True, LM_8)),
        "untied-own": (tiny_model_dir, _config(False, LM_8)),
    }
    specs = [
        {"model": str(model), "out": str(work / label), "config": config}
        for label, (model, config) in plans.items()
    ]
    result = _build(specs, work)
    for label in plans:
        info = result[str(work / label)]
        assert info["streamed"], label
        assert info["tied"] == (not label.startswith("untied")), label
        (work / label / "build-log.json").write_text(json.dumps(info["log"]), encoding="utf-8")
    return {label: work / label for label in plans}


def _log(model_dir: Path) -> str:
    return "\n".join(json.loads((model_dir / "build-log.json").read_text(encoding="utf-8")))


@pytest.mark.parametrize("bits", ["8", "4", "4sym"])
def test_a_tied_table_shared_is_the_patched_model_and_smaller(
    builds: dict[str, Path], tmp_path: Path, bits: str
) -> None:
    shared, own = builds[f"shared{bits}"], builds[f"own{bits}"]
    patched = _patched(own, tmp_path / "patched")
    mine, theirs = _initializers(shared), _initializers(own)
    embedding_own = {n for n in theirs if n.startswith("model.embed_tokens.")}
    assert embedding_own and not any(n.startswith("model.embed_tokens.") for n in mine)
    # everything but the embedding's own table is the same, byte for byte (the lm_head too)
    assert set(theirs) - embedding_own == set(mine)
    for name in set(mine) & set(theirs):
        assert mine[name].dtype == theirs[name].dtype and np.array_equal(mine[name], theirs[name])
    saved = sum(int(theirs[n].nbytes) for n in embedding_own)
    assert _data_bytes(shared) == _data_bytes(own) - saved
    ids = [5, 17, 300, 2, 999, 64, 64, 12, 800, 1]
    got, want = _logits(shared, ids), _logits(patched, ids)
    assert got.shape == (1, len(ids), 1024)
    assert np.array_equal(got, want)
    assert not np.array_equal(got, _logits(own, ids))  # the embedding really changed
    assert "stored once" in _log(shared)


def _embedding_nodes(model_dir: Path) -> tuple[dict[str, Any], Any]:
    import onnx

    model = onnx.load(str(model_dir / "model.onnx"), load_external_data=False)
    nodes = {n.name: n for n in model.graph.node}
    head = next(n for n in model.graph.node if n.op_type == "MatMulNBits" and "lm_head" in n.name)
    return nodes, head


def test_the_shared_gather_reads_the_lm_heads_initializers(builds: dict[str, Path]) -> None:
    from onnx import helper

    # 4-bit asymmetric: zero points packed two blocks per byte, the data reshaped to [V, H / 2]
    nodes, head = _embedding_nodes(builds["shared4"])
    gather = nodes["/model/embed_tokens/GatherBlockQuantized"]
    reshape = nodes["/model/embed_tokens/Reshape"]
    assert reshape.input[0] == head.input[1] == "lm_head.MatMul.weight_Q4G16"
    assert list(gather.input) == [reshape.output[0], "input_ids", *head.input[2:]]
    assert len(head.input) == 4  # asymmetric k-quant: the zero points are shared too
    attrs = {a.name: helper.get_attribute_value(a) for a in gather.attribute}
    assert attrs == {"gather_axis": 0, "quantize_axis": 1, "block_size": 16, "bits": 4}
    # 8-bit: the data read in place, [V, k_blocks, block], only the scales reshaped
    nodes, head = _embedding_nodes(builds["shared8"])
    gather = nodes["/model/embed_tokens/GatherBlockQuantized"]
    scales = nodes["/model/embed_tokens/Reshape_scales"]
    assert gather.input[0] == head.input[1] == "lm_head.MatMul.weight_Q8"
    assert scales.input[0] == head.input[2] and gather.input[2] == scales.output[0]
    assert nodes["/model/embed_tokens/Reshape"].input[0] == gather.output[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in gather.attribute}
    assert attrs == {"gather_axis": 0, "quantize_axis": 2, "block_size": 32, "bits": 8}


@pytest.mark.parametrize(
    ("shared", "own"), [("untied-shared", "untied-own"), ("blocked-shared", "blocked-own")]
)
def test_an_untied_model_or_a_blocked_format_is_unchanged(
    builds: dict[str, Path], shared: str, own: str
) -> None:
    assert _sha(builds[shared]) == _sha(builds[own])
    log = _log(builds[shared])
    reason = "does not tie" if shared.startswith("untied") else "does not divide the hidden size 64"
    assert "the embedding keeps its own table (" in log and reason in log
    assert "stored once" not in log


@pytest.mark.parametrize(
    "fmt",
    [*CANDIDATES, *EMBEDDING_CANDIDATES, parse_format("q8-b32-asym-k_quant")],
    ids=lambda f: f.name,
)
def test_the_pinned_gather_reads_every_shareable_matmul_format(fmt: Format) -> None:
    """What share_blocker lets through, the pinned onnxruntime's GatherBlockQuantized reads: the
    MatMulNBits arrays (data reshaped to [V, H * bits / 8]) gather the rows they dequantize to."""
    from onnx import TensorProto, helper, numpy_helper

    from curator.quant.kernels import quantize_matmul
    from curator.quant.plan import TensorQuant, share_blocker

    rows, cols = 40, 576
    quant = TensorQuant(fmt.bits, fmt.block, fmt.symmetric, fmt.algorithm)
    assert share_blocker(quant, cols) is None
    weight = np.random.default_rng(1).standard_normal((rows, cols)).astype(np.float32)
    packed = quantize_matmul(weight, quant, threads=1)
    tensors = [
        numpy_helper.from_array(packed.data.reshape(rows, -1), "data"),
        numpy_helper.from_array(np.asarray(packed.scales).reshape(rows, -1), "scales"),
    ]
    if packed.zero_points is not None:
        tensors.append(numpy_helper.from_array(packed.zero_points.reshape(rows, -1), "zp"))
    node = helper.make_node(
        "GatherBlockQuantized",
        ["data", "ids", *[t.name for t in tensors[1:]]],
        ["rows"],
        domain="com.microsoft",
        gather_axis=0,
        quantize_axis=1,
        block_size=fmt.block,
        bits=fmt.bits,
    )
    ids = np.array([3, 0, 39, 3, 17], dtype=np.int64)
    got = run_one_node(
        node,
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [None])],
        helper.make_tensor_value_info("rows", TensorProto.FLOAT, None),
        tensors,
        {"ids": ids},
    )
    assert np.array_equal(got, packed.dequantize()[ids])


# --- the budget ----------------------------------------------------------------------------------

Q4, K4, K16, Q8 = "q4-b64-asym-rtn", "q4-b32-asym-k_quant", "q4-b16-asym-k_quant", "q8-b64-sym-rtn"


def test_tied_table_options_add_the_costs_and_count_the_bytes_once() -> None:
    embedding = {Q4: 0.04, "q4-b32-asym-rtn": 0.03, "q8-b64-asym-rtn": 0.001}
    head = {Q4: 0.10, K4: 0.05, K16: 0.03, Q8: 0.002}
    proxy = {Q4: 8.0, K4: 4.0, K16: 2.0, Q8: 0.1}
    sizes = {Q4: 100, K4: 120, K16: 150, Q8: 200}
    cost, size = tied_table_options(embedding, head, proxy, sizes, lambda name: name != K16)
    assert size == {Q4: 100, K4: 120, Q8: 200}  # the lm_head's bytes, once; K16 cannot share
    assert cost[Q4] == pytest.approx(0.10 + 0.04)  # weighed for both: measured figures
    assert cost[K4] == pytest.approx(0.05 + 0.04 * 4.0 / 8.0)  # scaled from the common format
    assert cost[Q8] == pytest.approx(0.002 + 0.04 * 0.1 / 8.0)
    # no format both tables have: nothing to scale from
    assert tied_table_options({"q4-b32-asym-rtn": 0.03}, head, proxy, sizes, bool) == ({}, {})


def _tied_sensitivity(embedding: tuple[int, int]) -> Sensitivity:
    groups = (
        Group(EMBEDDING, EMBEDDING, ("model.embed_tokens.weight",), (embedding,)),
        Group("layers.0.o", "o", ("model.layers.0.self_attn.o_proj.weight",), ((64, 64),)),
        Group(LM_HEAD, LM_HEAD, ("lm_head.weight",), (embedding,)),
    )
    rows, cols = embedding
    return Sensitivity(
        source_sha256="2" * 64,
        groups=groups,
        cost={
            EMBEDDING: {Q4: 0.02, "q4-b32-asym-rtn": 0.015},
            "layers.0.o": {Q4: 0.01, Q8: 0.0001},
            LM_HEAD: {Q4: 0.05, K4: 0.03, Q8: 0.001},
        },
        measured={},
        proxy={LM_HEAD: {Q4: 5.0, K4: 3.0, Q8: 0.1}},
        sizes={
            EMBEDDING: {
                Q4: parse_format(Q4).bytes_for(rows, cols),
                "q4-b32-asym-rtn": parse_format("q4-b32-asym-rtn").bytes_for(rows, cols),
            },
            "layers.0.o": {Q4: 2400, Q8: 4600},
            LM_HEAD: {f: parse_format(f).bytes_for(rows, cols) for f in (Q4, K4, Q8)},
        },
        tokens=1,
        seconds=0.0,
        other_bytes=1000,
    )


def test_a_tied_source_is_searched_as_one_table(tiny_model_dir: Path, tmp_path: Path) -> None:
    tied_dir = bf16_tied_copy(tiny_model_dir, tmp_path / "tied")
    sens = _tied_sensitivity((1024, 64))
    merged = share_tied_table(sens, tied_dir)
    assert [g.name for g in merged.groups] == [TIED_TABLE, "layers.0.o"]
    assert merged.groups[0].shapes == ((1024, 64),)
    assert merged.sizes[TIED_TABLE] == sens.sizes[LM_HEAD]
    assert merged.cost[TIED_TABLE][Q8] == pytest.approx(0.001 + 0.02 * 0.1 / 5.0)
    # the table's bytes count once: the most faithful plan holds one 8-bit table
    plan = search(merged, 0.0)
    assert plan.format_of(TIED_TABLE) == Q8
    assert plan.bytes == 1000 + 4600 + parse_format(Q8).bytes_for(1024, 64)
    # an untied source keeps its two tables, two groups
    assert share_tied_table(sens, tiny_model_dir) is sens


def test_the_tied_tables_recipe_asks_for_the_sharing(tmp_path: Path) -> None:
    from curator.recipes import load_recipe_file

    sens = _tied_sensitivity((1024, 64))
    merged = _merged(sens, tmp_path)
    plan = search(merged, 0.0)
    path = write_recipe(plan_recipe(plan, name="budget-kl-0-1", summary="t"), tmp_path / "r")
    config = load_recipe_file(path).passes[0].config
    assert config["share_tied_embedding"] is True
    quant = plan_for(config, num_layers=1)
    assert quant.share_tied_embedding
    head = quant.for_node(LM_HEAD_NODE)
    assert head is not None and (head.bits, head.block_size, head.symmetric) == (8, 64, True)
    # the embedding's own format, for a model that turns out not to be tied: the same bits
    assert config["embedding_quant"] == {"bits": 8, "block_size": 64, "symmetric": True}


def _merged(sens: Sensitivity, tmp_path: Path) -> Sensitivity:
    """``share_tied_table`` on a checkpoint directory with only the headers it reads."""
    from safetensors.numpy import save_file

    source = tmp_path / "src"
    source.mkdir()
    save_file(
        {"model.embed_tokens.weight": np.zeros((1024, 64), np.float32)}, source / "m.safetensors"
    )
    (source / "config.json").write_text(json.dumps({"tie_word_embeddings": True}))
    return share_tied_table(sens, source)


def test_the_budgets_tied_recipe_reruns_to_the_same_shared_model(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The recipe file a search writes for a tied source, compiled twice with `curator compile
    --recipe`: the same bytes, and the embedding reads the lm_head's table."""
    import onnx

    tied_dir = bf16_tied_copy(tiny_model_dir, tmp_path / "tied")
    plan = search(share_tied_table(_tied_sensitivity((1024, 64)), tied_dir), 0.0)
    recipe = write_recipe(plan_recipe(plan, name="budget-kl-0-1", summary="t"), tmp_path / "r")
    cache = tmp_path / "cache"
    dirs = []
    for model_id in ("tied-a-generic-cpu:1", "tied-b-generic-cpu:1"):
        done = run_curator(
            "compile",
            str(tied_dir),
            "--recipe",
            str(recipe),
            "--id",
            model_id,
            "--cache-dir",
            str(cache),
            "--json",
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        dirs.append(Path(json.loads(done.stdout)["path"]))
    assert _sha(dirs[0]) == _sha(dirs[1])
    model = onnx.load(str(dirs[0] / "model.onnx"), load_external_data=False)
    assert not [t.name for t in model.graph.initializer if t.name.startswith("model.embed_tokens")]
    gather = next(n for n in model.graph.node if n.op_type == "GatherBlockQuantized")
    assert gather.input[0] == "lm_head.MatMul.weight_Q8"


@pytest.mark.slow
def test_a_budget_search_on_a_tied_source_compiles_it_shared(
    trained_model_dir: Path, isolated_env: Path, tmp_path: Path
) -> None:
    """The whole search (sensitivity, plan, compile, fidelity) on a tied copy of the trained
    fixture: the tied table is one group, the kept model reads it once, and the recipe file in the
    model directory rebuilds the same bytes."""
    import onnx

    from curator.budget import check_budget, compile_to_budget
    from curator.compile import CompileRequest, compile_model

    tied_dir = bf16_tied_copy(trained_model_dir, tmp_path / "trained-tied")
    request = CompileRequest(source=str(tied_dir), recipe="auto", model_id="tt-generic-cpu:1")
    result = compile_to_budget(request, check_budget(0.05, None), threads=2, sensitivity_tokens=64)
    assert result.kl <= 0.05 and result.compiled.path is not None
    assert result.counts and sum(result.counts.values()) == 1 + 2 * 4  # the table, 2 layers x 4
    config = json.loads(result.recipe.read_text(encoding="utf-8"))["passes"][0]["config"]
    assert config["share_tied_embedding"] is True
    model = onnx.load(str(result.compiled.path / "model.onnx"), load_external_data=False)
    assert not [t.name for t in model.graph.initializer if t.name.startswith("model.embed_tokens")]
    again = compile_model(
        CompileRequest(
            source=str(tied_dir), recipe=str(result.recipe), model_id="tt2-generic-cpu:1"
        )
    )
    assert again.path is not None and _sha(again.path) == _sha(result.compiled.path)
