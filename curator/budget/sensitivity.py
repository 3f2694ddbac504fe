"""Per-group sensitivity: what each tensor group costs in fidelity at each format, computed once
per source (keyed by the source's sha256) and kept under ``$CURATOR_HOME/budget/sensitivity``.

The cost of a group at a format is the mean KL(fp32 || model) over a calibration text when that
group alone is quantized (everything else fp32). It is measured directly for the anchor format
(4-bit RTN, block 64: onnxruntime's C++ kernel, ~50x faster than k-quant's numpy search) on every
group; the other formats are scaled from it by the proxy (the
output error energy ``tr(dW C dW^T)`` with C the input covariance of the calibration pass, a
full-matrix importance matrix), and the proxy is checked against direct measurements on a sample
of groups (``validation`` in the record). Those costs are the weights' alone (the pass runs in
fp32); the compiled MatMulNBits also quantizes its input to int8 per block, and that error, priced
the same way (its output error energy, scaled by the group's measured KL per unit of energy), is
added to every MatMul format at that format's block. The calibration text is not the fidelity
text: it is the Python language reference that ships with every CPython (``pydoc_data.topics``),
so the budget is not tuned on the text that judges it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curator.budget.formats import CANDIDATES, EMBEDDING_CANDIDATES, Format, parse_format
from curator.budget.groups import EMBEDDING, Group, group_tensors
from curator.cache.modeldir import sha256_file
from curator.compile.source import read_model_config
from curator.errors import CuratorError
from curator.jsonio import write_json_atomic
from curator.paths import curator_home

ANCHOR = Format(4, 64, False, "wk_quant")
DEFAULT_TOKENS = 128
# 4: batched tail, the proxy on one row sample; 5: the joint check; 6: the int8 inputs' error;
# 7: float16 MatMul scales (half_scales); 8: 4-bit formats by weighted k-quant, importance file;
# 9: weighted k-quant's 8 grids instead of 16
WORKER_VERSION = 9
VALIDATION_FORMATS = (Format(4, 32, False, "wk_quant"), Format(8, 64, True, "rtn"))
IMPORTANCE_SUFFIX = ".importance.safetensors"


class SensitivityError(CuratorError):
    """The sensitivity pass could not run on this source."""


@dataclass(frozen=True)
class Sensitivity:
    """The cost table of one source: ``cost[group][format name]`` in nats of mean KL."""

    source_sha256: str
    groups: tuple[Group, ...]
    cost: dict[str, dict[str, float]]
    measured: dict[str, dict[str, float]]
    proxy: dict[str, dict[str, float]]
    sizes: dict[str, dict[str, int]]
    tokens: int
    seconds: float
    other_bytes: int
    validation: dict[str, float] = field(default_factory=dict)
    activation: dict[str, dict[str, float]] = field(default_factory=dict)
    cached: bool = False
    # each Linear's input importance (HF tensor name -> mean squared activation), a safetensors
    # file beside the cached table (curator.quant.importance); not part of the record
    importance: Path | None = None

    def formats_for(self, group: Group) -> tuple[Format, ...]:
        return tuple(parse_format(n) for n in self.cost[group.name])

    def to_record(self) -> dict[str, Any]:
        return {
            "sourceSha256": self.source_sha256,
            "tokens": self.tokens,
            "seconds": self.seconds,
            "otherBytes": self.other_bytes,
            "groups": [
                {
                    "name": g.name,
                    "kind": g.kind,
                    "tensors": list(g.tensors),
                    "shapes": [list(s) for s in g.shapes],
                }
                for g in self.groups
            ],
            "cost": self.cost,
            "measured": self.measured,
            "proxy": self.proxy,
            "bytes": self.sizes,
            "validation": self.validation,
            "activation": self.activation,
        }


def from_record(record: dict[str, Any], cached: bool = True) -> Sensitivity:
    groups = tuple(
        Group(
            name=g["name"],
            kind=g["kind"],
            tensors=tuple(g["tensors"]),
            shapes=tuple((int(s[0]), int(s[1])) for s in g["shapes"]),
        )
        for g in record["groups"]
    )
    return Sensitivity(
        source_sha256=record["sourceSha256"],
        groups=groups,
        cost=record["cost"],
        measured=record["measured"],
        proxy=record["proxy"],
        sizes={g: {f: int(b) for f, b in v.items()} for g, v in record["bytes"].items()},
        tokens=int(record["tokens"]),
        seconds=float(record["seconds"]),
        other_bytes=int(record["otherBytes"]),
        validation=dict(record.get("validation", {})),
        activation=dict(record.get("activation", {})),
        cached=cached,
    )


def source_sha256(source_dir: Path) -> str:
    """One sha256 over the checkpoint's weight files and config (names and bytes, sorted)."""
    digest = hashlib.sha256()
    files = [*sorted(source_dir.glob("*.safetensors")), source_dir / "config.json"]
    for path in files:
        if path.is_file():
            digest.update(f"{path.name}:{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def calibration_text() -> str:
    """The Python language reference shipped with CPython, in a fixed order."""
    import pydoc_data.topics

    topics: dict[str, str] = pydoc_data.topics.topics
    return "\n\n".join(topics[k] for k in sorted(topics))


def tensor_shapes(source_dir: Path) -> tuple[dict[str, tuple[int, ...]], int, bool]:
    """(shape of every tensor, bytes of what is not quantized, tied embeddings?) from the headers."""
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, int] = {}
    sizes = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "U8": 1, "I8": 1}
    for path in sorted(source_dir.glob("*.safetensors")):
        with path.open("rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(length))
        for name, info in header.items():
            if name == "__metadata__":
                continue
            shapes[name] = tuple(int(d) for d in info["shape"])
            dtypes[name] = sizes.get(str(info.get("dtype")), 4)
    config = read_model_config(source_dir)
    raw_text = config.get("text_config")
    text_config: dict[str, Any] = raw_text if isinstance(raw_text, dict) else {}
    tied = bool(config.get("tie_word_embeddings", text_config.get("tie_word_embeddings", True)))
    grouped = {t for g in group_tensors(shapes) for t in g.tensors}
    other = sum(4 * math.prod(s) for n, s in shapes.items() if n not in grouped)
    embedding = next((n for n in shapes if n.endswith("embed_tokens.weight")), None)
    if "lm_head.weight" not in shapes and embedding is not None:
        tied = True  # the compile writes the tied table twice: a Gather and the lm_head MatMul
        shapes["lm_head.weight"] = shapes[embedding]
    return shapes, other, tied


def _cache_path(home: Path, sha: str, settings: dict[str, Any]) -> Path:
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return home / "budget" / "sensitivity" / f"{sha}-{key}.json"


def _validation_sample(groups: tuple[Group, ...], count: int = 8) -> list[str]:
    """A spread of groups (every kind, early and late layers) to check the proxy on."""
    layered = [g for g in groups if g.layer is not None]
    if not layered:
        return [g.name for g in groups][:count]
    step = max(1, len(layered) // count)
    picked = [g.name for g in layered[::step]][:count]
    return picked + [g.name for g in groups if g.kind == EMBEDDING]


def _spearman(xs: list[float], ys: list[float]) -> float:
    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=lambda i: values[i])
        out = [0.0] * len(values)
        for rank, i in enumerate(order):
            out[i] = float(rank)
        return out

    if len(xs) < 3:
        return float("nan")
    rx, ry = ranks(xs), ranks(ys)
    n = len(xs)
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    vy = math.sqrt(sum((b - my) ** 2 for b in ry))
    return cov / (vx * vy) if vx and vy else float("nan")


def build_costs(
    groups: tuple[Group, ...],
    measured: dict[str, dict[str, float]],
    proxy: dict[str, dict[str, float]],
    activation: dict[str, dict[str, float]] | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """The cost table (measured where measured, else the anchor scaled by the proxy ratio, plus
    the int8 input's error at the format's block: ``activation[group][str(block)]``, an output
    error energy scaled by the same ratio) and the proxy's validation figures on the groups
    measured at more than the anchor (the weights' costs alone: that is what was measured)."""
    activation = activation or {}
    anchor = ANCHOR.name
    cost: dict[str, dict[str, float]] = {}
    predicted: list[float] = []
    actual: list[float] = []
    for group in groups:
        m, p = measured.get(group.name, {}), proxy.get(group.name, {})
        key = anchor if anchor in m else next((k for k in m if k in p), anchor)
        base_kl, base_proxy = m.get(key), p.get(key)
        table: dict[str, float] = {}
        for name, energy in p.items():
            if name in m:
                table[name] = max(m[name], 0.0)
            elif base_kl is not None and base_proxy:
                table[name] = max(base_kl * energy / base_proxy, 0.0)
            if name in m and name != key and base_kl is not None and base_proxy:
                predicted.append(base_kl * energy / base_proxy)
                actual.append(m[name])
        inputs = activation.get(group.name, {})
        if inputs and base_kl is not None and base_proxy:
            for name in table:
                error = inputs.get(str(parse_format(name).block))
                if error is not None:
                    table[name] += max(base_kl * error / base_proxy, 0.0)
        cost[group.name] = table
    with_anchor = [g for g in groups if anchor in measured.get(g.name, {})]
    anchor_kl = [measured[g.name][anchor] for g in with_anchor]
    anchor_proxy = [proxy[g.name][anchor] for g in with_anchor]
    validation = {
        "proxyVsMeasuredSpearmanAcrossGroups": round(_spearman(anchor_proxy, anchor_kl), 4),
        "scaledFormatsChecked": float(len(actual)),
    }
    if actual:
        errors = [abs(a - b) / max(b, 1e-9) for a, b in zip(predicted, actual, strict=True)]
        validation["scaledFormatsMedianRelativeError"] = round(sorted(errors)[len(errors) // 2], 4)
        validation["scaledFormatsSpearman"] = round(_spearman(predicted, actual), 4)
    return cost, validation


def measure_sensitivity(
    source_dir: Path,
    *,
    tokens: int = DEFAULT_TOKENS,
    threads: int | None = None,
    home: Path | None = None,
    sha256: str | None = None,
    timeout: float | None = None,
) -> Sensitivity:
    """The source's cost table, from the cache when this source (by sha256) was measured before."""
    sha = sha256 or source_sha256(source_dir)
    shapes, other_bytes, tied = tensor_shapes(source_dir)
    groups = group_tensors(shapes)
    if not groups:
        raise SensitivityError(
            f"no quantizable tensors found in {source_dir}",
            hint="compile it with a fixed recipe: `curator compile SOURCE --recipe int4-cpu`",
        )
    text = calibration_text()
    settings = {
        "tokens": tokens,
        "version": WORKER_VERSION,
        "anchor": ANCHOR.name,
        "formats": [f.name for f in (*CANDIDATES, *EMBEDDING_CANDIDATES)],
        "text": hashlib.sha256(text.encode()).hexdigest(),
    }
    path = _cache_path(home or curator_home(), sha, settings)
    importance = path.with_name(path.stem + IMPORTANCE_SUFFIX)
    if path.is_file() and importance.is_file():
        from curator.quant.importance import load_importance  # start-up: numpy

        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            load_importance(importance)  # PlanError (a ValueError) when damaged
            return dataclasses.replace(from_record(record), importance=importance)
        except (ValueError, KeyError, TypeError):
            pass  # a damaged cache entry is measured again
    importance.parent.mkdir(parents=True, exist_ok=True)
    validate = _validation_sample(groups)
    request = {
        "source": str(source_dir),
        "tokens": tokens,
        "threads": threads,
        "tied": tied,
        "groups": [
            {"name": g.name, "kind": g.kind, "tensors": list(g.tensors), "layer": g.layer}
            for g in groups
        ],
        "measure": [ANCHOR.name],
        "proxy": [f.name for f in CANDIDATES],
        "embedding_formats": [f.name for f in EMBEDDING_CANDIDATES],
        "validate_groups": validate,
        "validate_formats": [f.name for f in VALIDATION_FORMATS],
        "activation_blocks": sorted({f.block for f in CANDIDATES}),
        "importance_file": str(importance),
    }
    result = _run_worker(request, timeout)
    measured: dict[str, dict[str, float]] = result["measured"]
    proxy: dict[str, dict[str, float]] = result["proxy"]
    sizes: dict[str, dict[str, int]] = result["bytes"]
    activation: dict[str, dict[str, float]] = result.get("activation", {})
    cost, validation = build_costs(groups, measured, proxy, activation)
    sensitivity = Sensitivity(
        source_sha256=sha,
        groups=groups,
        cost=cost,
        measured=measured,
        proxy=proxy,
        sizes=sizes,
        tokens=int(result["tokens"]),
        seconds=float(result["seconds"]),
        other_bytes=other_bytes,
        validation={
            **validation,
            "replayExact": float(bool(result.get("replay"))),
            **_joint_figures(result.get("joint")),
        },
        activation=activation,
        importance=importance,
    )
    write_json_atomic(path, sensitivity.to_record())
    return sensitivity


def _joint_figures(joint: Any) -> dict[str, float]:
    """The worker's all-groups-at-the-anchor check as validation figures: the whole model's KL,
    the summed single costs, and their ratio (``jointOverSum``: how additive the costs are on the
    calibration text; 0.94 on de-gridded SmolLM2)."""
    if not isinstance(joint, dict):
        return {}
    kl, total = float(joint.get("kl", 0.0)), float(joint.get("sum", 0.0))
    if not (math.isfinite(kl) and math.isfinite(total) and kl > 0 and total > 0):
        return {}
    return {
        "jointKl": round(kl, 6),
        "jointSum": round(total, 6),
        "jointOverSum": round(kl / total, 4),
    }


def _run_worker(request: dict[str, Any], timeout: float | None) -> dict[str, Any]:
    from curator.fidelity.measure import run_json_worker  # start-up: loads curator.fidelity

    with tempfile.TemporaryDirectory(prefix="curator-sensitivity-") as tmp:
        text_path = Path(tmp) / "calibration.txt"
        text_path.write_text(calibration_text(), encoding="utf-8")
        return run_json_worker(
            "curator.budget.sensitivity_worker",
            {**request, "text_file": str(text_path)},
            Path(tmp),
            timeout=timeout,
            error=SensitivityError,
            timed_out="the sensitivity pass timed out",
            timed_out_hint="compile with a fixed recipe: `curator compile SOURCE --recipe int4-cpu`",
            failed="the sensitivity pass failed",
            failed_hint="rerun with CURATOR_DEBUG=1, or use `--recipe int4-cpu`",
        )
