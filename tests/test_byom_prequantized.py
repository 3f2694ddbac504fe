"""Guards: curator.cli.compile, curator.compile.prequantized, curator.compile.source

Issue 21 item 3: a pre-quantized GPTQ checkpoint (quantization_config in config.json). No pinned
library makes one on CPU (auto-gptq, gptqmodel and optimum's GPTQ are not installed; Olive's Gptq
pass writes ONNX), so the test writes the GPTQ v1 packed layout itself from the tiny model:
qweight int32 [in/8, out] (8 4-bit values per int32 along the input), qzeros int32
[in/group, out/8] holding zero-1, scales fp16 [in/group, out], g_idx int32 [in]."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_curator

GROUP = 32


def pack_gptq(source: Path, out: Path, group: int = GROUP) -> dict[str, np.ndarray]:
    """Write ``source`` as a GPTQ 4-bit checkpoint; returns each packed layer's 4-bit values
    as [out, in] uint8 (what the compiled MatMulNBits must hold)."""
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(source / "model.safetensors"))
    written: dict[str, torch.Tensor] = {}
    grids: dict[str, np.ndarray] = {}
    for name, weight in tensors.items():
        if not (name.endswith("_proj.weight") and ".layers." in name):
            written[name] = weight
            continue
        base = name[: -len(".weight")]
        w = weight.float()
        out_f, in_f = w.shape
        groups = w.reshape(out_f, in_f // group, group)
        low, high = groups.amin(-1), groups.amax(-1)
        scale = ((high - low) / 15).clamp(min=1e-6).half().float()
        zero = torch.round(-low / scale).clamp(0, 15)
        q = torch.clamp(torch.round(groups / scale[..., None]) + zero[..., None], 0, 15)
        q = q.reshape(out_f, in_f).to(torch.int32)
        grids[base] = q.numpy().astype(np.uint8)
        by_input = q.T.contiguous()
        qweight = torch.zeros(in_f // 8, out_f, dtype=torch.int32)
        for i in range(8):
            qweight |= by_input[i::8, :] << (4 * i)
        stored_zero = (zero.T.to(torch.int32) - 1) & 0xF  # GPTQ v1 stores zero - 1
        qzeros = torch.zeros(in_f // group, out_f // 8, dtype=torch.int32)
        for i in range(8):
            qzeros |= stored_zero[:, i::8] << (4 * i)
        written[base + ".qweight"] = qweight
        written[base + ".qzeros"] = qzeros
        written[base + ".scales"] = scale.T.contiguous().half()
        written[base + ".g_idx"] = torch.arange(in_f, dtype=torch.int32) // group
    out.mkdir(parents=True)
    save_file(written, str(out / "model.safetensors"), metadata={"format": "pt"})
    for path in source.iterdir():
        if path.is_file() and path.suffix != ".safetensors" and path.name != "config.json":
            shutil.copyfile(path, out / path.name)
    config = json.loads((source / "config.json").read_text())
    config["quantization_config"] = {
        "quant_method": "gptq",
        "bits": 4,
        "group_size": group,
        "desc_act": False,
        "sym": False,
        "checkpoint_format": "gptq",
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return grids


@pytest.fixture
def gptq_model(tiny_model_dir: Path, tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    out = tmp_path / "tiny-gptq"
    return out, pack_gptq(tiny_model_dir, out)


def test_info_counts_packed_parameters_and_names_the_recipe(
    gptq_model: tuple[Path, dict[str, np.ndarray]], tiny_model_dir: Path
) -> None:
    from curator.compile.source import read_model_config, weight_facts

    model, _ = gptq_model
    unpacked = weight_facts(tiny_model_dir, read_model_config(tiny_model_dir)).parameters
    done = run_curator("info", str(model), "--json")
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["parameters"] == unpacked  # 8 values per int32, qzeros/scales/g_idx none
    assert facts["quantization"] == f"gptq 4-bit, group {GROUP}"
    fits = {f["recipe"]: f for f in facts["recipes"]}
    assert fits["int4-prequantized-cpu"]["can_compile"] is True
    assert fits["int4-cpu"]["can_compile"] is False and "again" in fits["int4-cpu"]["reason"]
    assert facts["next_command"].endswith("--recipe int4-prequantized-cpu")
    refused = run_curator("compile", str(model), "--recipe", "int4-cpu")
    assert refused.returncode == 1
    assert "pre-quantized gptq 4-bit" in refused.stderr and "quantize its packed" in refused.stderr
    assert "--recipe int4-prequantized-cpu" in refused.stderr
    plan = run_curator(
        "compile", str(model), "--recipe", "int4-prequantized-cpu", "--dry-run", "--json"
    )
    assert plan.returncode == 0, plan.stderr
    planned = json.loads(plan.stdout)["plan"]
    assert planned["parameters"] == unpacked and planned["predicted_peak_bytes"] > 0
    assert any("nothing is quantized a second time" in n for n in planned["notes"])


def test_unsupported_quantization_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    model = shutil.copytree(tiny_model_dir, tmp_path / "bnb")
    config = json.loads((model / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (model / "config.json").write_text(json.dumps(config))
    done = run_curator("compile", str(model), "--recipe", "int4-prequantized-cpu")
    assert done.returncode == 1 and "reads only 4-bit GPTQ and AWQ" in done.stderr


def test_gptq_compiles_through_the_builders_quantized_path_without_requantizing(
    gptq_model: tuple[Path, dict[str, np.ndarray]], isolated_env: Path
) -> None:
    import onnx
    from onnx import numpy_helper

    model, grids = gptq_model
    done = run_curator("compile", str(model), "--recipe", "int4-prequantized-cpu", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    compiled = Path(json.loads(done.stdout)["path"])
    assert "Unpacking and repacking layer 0" in (compiled / "compile.log").read_text()
    graph = onnx.load(str(compiled / "model.onnx")).graph
    initializers = {i.name: i for i in graph.initializer}
    checked = 0
    for node in graph.node:
        if node.op_type != "MatMulNBits" or "/layers." not in node.name:
            continue
        layer = node.name.split("/layers.")[1].split("/")[0]
        part = node.name.split("/")[-2]  # qkv_proj, o_proj, gate_proj, up_proj, down_proj
        kind = "self_attn" if part in ("qkv_proj", "o_proj") else "mlp"
        names = ("q_proj", "k_proj", "v_proj") if part == "qkv_proj" else (part,)
        expected = np.concatenate([grids[f"model.layers.{layer}.{kind}.{n}"] for n in names])
        packed = numpy_helper.to_array(initializers[node.input[1]])  # [N, blocks, blob] uint8
        values = np.stack([packed & 0xF, packed >> 4], axis=-1).reshape(packed.shape[0], -1)
        assert values.shape == expected.shape, (node.name, values.shape, expected.shape)
        same = float((values == expected).mean())
        assert same > 0.999, (node.name, same)  # the publisher's grid, not a new one
        checked += 1
    assert checked == 2 * 5  # two layers: qkv, o, gate, up, down
