"""Guards: curator.cli.demo

`make demo` end to end (issue 17: it had no test). Slow: it builds or loads the demo model,
compiles, registers, smokes, benchmarks and measures fidelity, as a user's first run would."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def demo_command(out: Path) -> list[str]:
    """The command `make demo` runs (read from the Makefile, so the test follows it), with
    --out pointed at ``out``."""
    plan = subprocess.run(
        ["make", "-n", "demo"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    (line,) = [line for line in plan.splitlines() if "curator.cli.demo" in line]
    argv = shlex.split(line)
    argv[argv.index("--out") + 1] = str(out)
    argv[0] = str(REPO_ROOT / argv[0]) if not Path(argv[0]).is_absolute() else argv[0]
    return argv


def test_make_demo_onboards_a_model_into_a_valid_registry(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    done = subprocess.run(
        demo_command(out), cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    registry = out / "registry" / "models.json"
    assert done.stdout.rstrip().splitlines()[-2:] == [
        f"demo: report at {out / 'report' / 'SUMMARY.md'}",
        f"demo: registry copy at {registry}",
    ]
    shipped = {
        m["id"] for m in json.loads((REPO_ROOT / "registry" / "models.json").read_text())["models"]
    }
    added = [m for m in json.loads(registry.read_text())["models"] if m["id"] not in shipped]
    assert len(added) == 1, [m["id"] for m in added]
    (entry,) = added
    bench = entry["benchmarks"][-1]
    assert bench["decodeTokensPerSec"]["mean"] > 0
    assert bench["ttftMs"]["mean"] <= bench["latencyMs"]["mean"]
    fidelity = entry["fidelity"]
    assert 0.0 <= fidelity["top1Agreement"] <= 1.0 and fidelity["klMean"] >= 0.0
    model_dir = out / "foundry-cache" / entry["publisher"] / entry["id"].replace(":", "-")
    manifest = json.loads((model_dir / "curator-manifest.json").read_text())
    assert {a["path"]: a["sha256"] for a in manifest["build"]["artifacts"]} == {
        a["path"]: a["sha256"] for a in entry["build"]["artifacts"]
    }
    summary = (out / "report" / "SUMMARY.md").read_text(encoding="utf-8")
    assert entry["id"] in summary
    assert "Paris" in summary  # the real model's smoke answer to the capital of France
